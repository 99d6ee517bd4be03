"""One registry entry per library: how it computes the value loss, its defaults and its source.

``dialect_loss(name, ...)`` computes the number that library logs for the same batch. Libraries
without token masks (CleanRL, SB3, TorchRL, RLlib) see only the real tokens, selected by indexing,
so NaN in padding never reaches them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import _validate as check
from .losses import ValueLoss, _check_batch, clip_clamp, clip_delta, compute_value_loss

__all__ = ["Dialect", "DialectResult", "DIALECTS", "dialect_loss", "get_dialect"]


@dataclass(frozen=True)
class DialectResult:
    """The loss and clip fraction a library would log (``clipfrac`` is None where it logs none)."""

    dialect: str
    loss: torch.Tensor
    clipfrac: torch.Tensor | None


@dataclass(frozen=True)
class Dialect:
    """What one library computes, in words the app can show next to the numbers."""

    name: str
    library: str
    param_name: str
    default_eps: float | None  # None: clipping is off by default
    clip_convention: str  # "bounds", "clamp", "delta" or "none"
    combine: str
    half: bool
    aggregation: str
    clipfrac_definition: str | None
    repo: str
    path: str
    commit: str
    notes: str
    compute: Callable = None  # filled below; (vpreds, returns, values, mask, eps) -> DialectResult
    supports_off: bool = False

    @property
    def source_url(self) -> str:
        return f"https://github.com/{self.repo}/blob/{self.commit}/{self.path}"

    @property
    def formula(self) -> str:
        """The per-token loss in the app's notation (LaTeX)."""
        return _FORMULAS[self.name]


def _valid(x, mask):
    return x[mask.bool()]


def _verl(v, r, o, m, eps):
    loss, clipfrac = compute_value_loss(v, r, o, m, eps, "token-mean")
    return loss, clipfrac


def _openrlhf(v, r, o, m, eps):
    return ValueLoss(clip_eps=eps, token_level_loss=True)(v, o, r, m), None


def _trl(v, r, o, m, eps):
    vpredclipped = clip_clamp(v, o, eps)
    loss_unclipped = torch.square(v - r)
    loss_clipped = torch.square(vpredclipped - r)
    loss_max = torch.max(loss_unclipped, loss_clipped)
    loss = 0.5 * ((loss_max * m).sum() / m.sum())
    clipfrac = ((loss_clipped > loss_unclipped).float() * m).sum() / m.sum()
    return loss, clipfrac


def _cleanrl(v, r, o, m, eps):
    v, r, o = _valid(v, m), _valid(r, m), _valid(o, m)
    loss_unclipped = (v - r) ** 2
    loss_clipped = (clip_delta(v, o, eps) - r) ** 2
    return 0.5 * torch.max(loss_unclipped, loss_clipped).mean(), None


def _sb3(v, r, o, m, eps):
    v, r, o = _valid(v, m), _valid(r, m), _valid(o, m)
    values_pred = v if eps is None else clip_delta(v, o, eps)
    return F.mse_loss(r, values_pred), None


def _slime(v, r, o, m, eps):
    clipped = (v - o).abs() > eps
    loss_clipped = (clip_delta(v, o, eps) - r) ** 2
    loss_unclipped = (v - r) ** 2
    loss_max = torch.max(loss_clipped, loss_unclipped)

    def sum_of_sample_mean(x):
        rows = (x * m).sum(dim=-1) / m.sum(dim=-1).clamp(min=1)
        return rows.sum() / rows.numel()

    return sum_of_sample_mean(loss_max), sum_of_sample_mean(clipped.to(v.dtype))


def _torchrl(v, r, o, m, eps):
    v, r, o = _valid(v, m), _valid(r, m), _valid(o, m)
    loss_unclipped = F.smooth_l1_loss(r, v, reduction="none")
    if eps is None:
        return loss_unclipped.mean(), None
    pre_clipped = v - o
    clipped = pre_clipped.clamp(-eps, eps)
    clipfrac = (pre_clipped != clipped).to(v.dtype).mean()
    loss_clipped = F.smooth_l1_loss(r, o + clipped, reduction="none")
    return torch.max(loss_unclipped, loss_clipped).mean(), clipfrac


def _rllib(v, r, o, m, eps):
    v, r = _valid(v, m), _valid(r, m)
    return torch.clamp((v - r) ** 2, 0, eps).mean(), None


_FORMULAS = {
    "verl": r"\tfrac12\,\mathrm{AGG}\big(\max[(v-R)^2,\ (\mathrm{clip}(v, v_{old}\pm\epsilon)-R)^2]\big)",
    "openrlhf": r"\tfrac12\,\mathrm{mean}\big(\max[(v_{old}+\mathrm{clamp}(v-v_{old},\pm\epsilon)-R)^2,\ (v-R)^2]\big)",
    "trl": r"\tfrac12\,\mathrm{mean}\big(\max[(v-R)^2,\ (\mathrm{clamp}(v, v_{old}\pm\epsilon)-R)^2]\big)",
    "cleanrl": r"\tfrac12\,\mathrm{mean}\big(\max[(v-R)^2,\ (v_{old}+\mathrm{clamp}(v-v_{old},\pm\epsilon)-R)^2]\big)",
    "sb3": r"\mathrm{mean}\big((R - v_{old} - \mathrm{clamp}(v-v_{old},\pm\epsilon))^2\big)",
    "slime": r"\mathrm{mean}_{seq}\,\mathrm{mean}_{tok}\big(\max[(\mathrm{clip}(v)-R)^2,\ (v-R)^2]\big)",
    "torchrl": r"\mathrm{mean}\big(\max[\mathrm{huber}(v-R),\ \mathrm{huber}(\mathrm{clip}(v)-R)]\big)",
    "rllib": r"\mathrm{mean}\big(\mathrm{clamp}((v-R)^2,\ 0,\ \epsilon_{loss})\big)",
}

DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect(
            name="verl",
            library="verl v0.9",
            param_name="critic.cliprange_value",
            default_eps=0.5,
            clip_convention="bounds",
            combine="max",
            half=True,
            aggregation="loss_agg_mode (default token-mean: sum(L*m)/N); 0.5 applied after aggregation",
            clipfrac_definition="vf_clipfrac = sum(m * (L_clip > L_unclip)) / (N + 1e-8)",
            repo="verl-project/verl",
            path="verl/trainer/ppo/core_algos.py",
            commit="1dda039b",
            notes="v0.4.0 shipped without the 0.5 factor (fixed in v0.4.1).",
            compute=_verl,
        ),
        Dialect(
            name="openrlhf",
            library="OpenRLHF",
            param_name="--critic.value_clip",
            default_eps=0.5,
            clip_convention="delta",
            combine="max",
            half=True,
            aggregation="token_level_loss=True: sum(L*m)/sum(m); False: mean over non-empty rows of row means",
            clipfrac_definition=None,
            repo="OpenRLHF/OpenRLHF",
            path="openrlhf/models/loss.py",
            commit="3c3be623",
            notes="Default was 0.2 before 2025-05-23; clip_eps=None means no clipping.",
            compute=_openrlhf,
            supports_off=True,
        ),
        Dialect(
            name="trl",
            library="TRL",
            param_name="cliprange_value",
            default_eps=0.2,
            clip_convention="clamp",
            combine="max",
            half=True,
            aggregation="sum(L*m)/sum(m)",
            clipfrac_definition="vf_clipfrac = sum(m * (L_clip > L_unclip)) / sum(m)",
            repo="huggingface/trl",
            path="trl/experimental/ppo/ppo_trainer.py",
            commit="f2cd5771",
            notes="vf_coef=0.1 scales the value loss in the total loss.",
            compute=_trl,
        ),
        Dialect(
            name="cleanrl",
            library="CleanRL ppo.py (= openai/baselines ppo2)",
            param_name="clip_coef (shared with the policy; clip_vloss=True)",
            default_eps=0.2,
            clip_convention="delta",
            combine="max",
            half=True,
            aggregation="plain mean over the minibatch",
            clipfrac_definition=None,
            repo="vwxyzjn/cleanrl",
            path="cleanrl/ppo.py",
            commit="master",
            notes="Logs only the policy clip fraction. Same form as openai/baselines ppo2.",
            compute=_cleanrl,
        ),
        Dialect(
            name="sb3",
            library="Stable-Baselines3",
            param_name="clip_range_vf",
            default_eps=None,
            clip_convention="delta",
            combine="clip-only: mean((R - clip(v))^2), no max",
            half=False,
            aggregation="plain mean",
            clipfrac_definition=None,
            repo="DLR-RM/stable-baselines3",
            path="stable_baselines3/ppo/ppo.py",
            commit="e05d2dbe",
            notes="Off by default (clip_range_vf=None). Every token outside the band gets zero gradient.",
            compute=_sb3,
            supports_off=True,
        ),
        Dialect(
            name="slime",
            library="slime",
            param_name="--value-clip",
            default_eps=0.2,
            clip_convention="delta",
            combine="max",
            half=False,
            aggregation="sum over rows of row token-means (max(n_i, 1)), divided by the number of rows",
            clipfrac_definition="value_clipfrac = share of tokens with |v - o| > eps (prediction clipped)",
            repo="THUDM/slime",
            path="slime/backends/megatron_utils/loss.py",
            commit="624b824a",
            notes="Counts clipped predictions, not tokens where the clipped loss wins.",
            compute=_slime,
        ),
        Dialect(
            name="torchrl",
            library="TorchRL",
            param_name="clip_value",
            default_eps=None,
            clip_convention="delta",
            combine="max of smooth-L1 (Huber, the default loss_critic_type)",
            half=False,
            aggregation="mean",
            clipfrac_definition="value_clip_fraction = share of tokens with (v - o) != clamp(v - o)",
            repo="pytorch/rl",
            path="torchrl/objectives/utils.py",
            commit="ae9719f1",
            notes="Off by default (clip_value=False).",
            compute=_torchrl,
            supports_off=True,
        ),
        Dialect(
            name="rllib",
            library="RLlib (classic PPO)",
            param_name="vf_clip_param",
            default_eps=10.0,
            clip_convention="none",
            combine="clamps the loss, not the value: clamp((v-R)^2, 0, vf_clip_param)",
            half=False,
            aggregation="mean over valid steps",
            clipfrac_definition=None,
            repo="ray-project/ray",
            path="rllib/algorithms/ppo/torch/ppo_torch_learner.py",
            commit="master",
            notes="Here eps is a bound on the squared error (loss units), not on the value.",
            compute=_rllib,
        ),
    )
}


def get_dialect(name: str) -> Dialect:
    if name not in DIALECTS:
        raise ValueError(f"unknown dialect {name!r}; valid dialects are: {', '.join(DIALECTS)}")
    return DIALECTS[name]


def dialect_loss(name: str, vpreds, returns, values, response_mask, cliprange) -> DialectResult:
    """The value loss and clip fraction library ``name`` computes on this batch.

    ``cliprange`` is that library's parameter (for RLlib a bound on the squared error); ``None``
    turns clipping off where the library allows it (OpenRLHF, SB3, TorchRL).
    """
    dialect = get_dialect(name)
    _check_batch(vpreds, returns, values, response_mask)
    check.clip_range("cliprange", cliprange, allow_none=dialect.supports_off)
    loss, clipfrac = dialect.compute(vpreds, returns, values, response_mask, cliprange)
    return DialectResult(dialect=name, loss=loss, clipfrac=clipfrac)
