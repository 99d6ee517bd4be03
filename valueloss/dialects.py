"""One registry entry per library and release: what it computes, logs and calls things, and where we read it.

``dialect_loss(name, ...)`` computes the number that library (at the releases the entry names) logs for
the same batch. Everything the app knows about a library lives on its :class:`Dialect`: the parameter
and its units, the clip convention, the aggregation, what it logs under which metric name, the
releases described, the pinned source, what the entry does not model, and how it is verified. Other
modules ask the entry; none of them branches on a library's name.

Where a library changed behaviour, each behaviour is its own entry of the same ``family`` (e.g. verl
``v0.4.0`` without the 0.5 factor), so the app can offer a version picker and name the version next to
every number. Libraries without token masks (CleanRL, SB3, RLlib, baselines, rsl_rl) see only the real
tokens, selected by indexing, so NaN in padding never reaches them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from . import _validate as check
from . import library_code as lc
from .library_code import LibraryCode
from .losses import _check_batch

__all__ = [
    "CombineRule",
    "Dialect",
    "DialectResult",
    "DIALECTS",
    "dialect_loss",
    "get_dialect",
    "check_clip_param",
    "families",
    "family_versions",
    "version_label",
]


# How a library combines the unclipped and clipped terms: code decides on this, never on the ``combine`` prose.
#   "max": max of the squared errors (PPO2); "clip-only": only the clipped term (SB3);
#   "huber-max": max of the Huber losses (TorchRL); "loss-clamp": clamps the squared error itself (RLlib).
CombineRule = Literal["max", "clip-only", "huber-max", "loss-clamp"]


@dataclass(frozen=True)
class DialectResult:
    """The loss and clip fraction a library would log (``clipfrac`` is None where it logs none)."""

    dialect: str
    loss: torch.Tensor
    clipfrac: torch.Tensor | None


@dataclass(frozen=True)
class Dialect:
    """What one library (at the releases in ``versions``) computes, in words the app shows next to the numbers."""

    name: str
    library: str  # display name, with the releases: every number shown with it names its version
    param_name: str
    default_eps: float | None  # None: clipping is off by default
    clip_convention: str  # "bounds", "clamp", "delta" or "none"
    combine: str  # the combine rule in words, shown next to the numbers (code reads ``combine_rule``)
    half: bool
    aggregation: str
    clipfrac_definition: str | None
    repo: str
    path: str
    commit: str
    notes: str
    compute: LibraryCode = None  # (vpreds, returns, values, mask, eps, mode) -> (loss, clipfrac): library_code
    supports_off: bool = False  # eps=None turns clipping off
    # --- the version-aware part of the registry
    family: str = ""  # the library: every release of it shares this key (and a version picker)
    versions: str = ""  # the releases this entry describes
    current: bool = True  # the newest behaviour of its family
    formula: str = ""  # per-token loss in the app's notation (LaTeX)
    eps_units: str = "return"  # "loss": the parameter bounds the squared error, not the value
    off_values: tuple = ()  # parameter values that turn clipping off in the library (0, inf), beside None
    modes: tuple[str, ...] = ("token-mean",)  # aggregation modes (verl's loss_agg_mode; OpenRLHF's two)
    loss_metric: str | None = None  # the name the library logs the value loss under
    clipfrac_metric: str | None = None  # the name it logs the value clip fraction under (None: not logged)
    logged: str = ""  # what the logged number is, to show next to it (averaging over minibatches, coefficients)
    limits: str = ""  # what this entry does not model
    verified: str = "restated formula"  # how CI checks it: "real package", "real training step", "restated formula"
    tie_rule: str = "torch"  # "tensorflow": tf.maximum sends the whole gradient to its first argument at a tie
    zeroes_padded_predictions: bool = False  # the trainer sets padded predictions to 0 before the loss
    sanity_definition: str = "loss"  # the clip fraction that matters for it: "loss", "prediction" or "rllib"
    threads: tuple[str, ...] = ()  # issue threads that discuss this library's value clipping (owner/repo#n)
    export_label: str = ""  # short label for the export picker
    reduce: Callable | None = None  # (per-token max term, mask, mode) -> loss; None: not a max form
    indexed: bool = False  # sees only the real tokens (no mask argument): reduce gets the 1-D real tokens
    combine_rule: CombineRule = "max"

    @property
    def export_source(self) -> Callable[[], str] | None:
        """The standalone torch source of the function this entry computes with (``LibraryCode.source``)."""
        return self.compute.source if isinstance(self.compute, LibraryCode) else None

    @property
    def source_url(self) -> str:
        return f"https://github.com/{self.repo}/blob/{self.commit}/{self.path}"

    @property
    def closed_form(self) -> str | None:
        """The clip convention whose closed-form gradient (``value_loss_grad``) reproduces this loss, if any."""
        if self.reduce is None or self.tie_rule != "torch" or self.clip_convention == "none":
            return None
        return self.clip_convention

    @property
    def formula_text(self) -> str:
        """The per-token loss in plain text (figure titles, tables), built from the entry's facts."""
        if self.eps_units == "loss":
            return f"clamp((v − R)², 0, {self.param_name.split(' ')[0]})"
        if self.combine_rule == "clip-only":
            return "(clip(v) − R)², no max"
        if self.combine_rule == "huber-max":
            return "max of Huber (smooth L1), " + self.clip_convention + " clip"
        text = ("½·" if self.half else "") + "max[(v−R)², (clip(v)−R)²], " + self.clip_convention + " clip"
        return text + (", TensorFlow tie rule" if self.tie_rule == "tensorflow" else "")

    def off(self, eps) -> bool:
        """Whether ``eps`` turns clipping off in this library (``None``, or a value it treats as off)."""
        if eps is None:
            return True
        value = float(eps.item()) if isinstance(eps, torch.Tensor) else float(eps)
        return any(value == off for off in self.off_values)


# ---------------------------------------------------------------------------------------------------------
# What each entry computes is one function of ``library_code`` (the code an export writes, too), with the
# entry's settings. The ``reduce`` functions below are the aggregations alone, for the gradient views.

# verl: one function, the release's aggregation chosen by flags read from each tag's agg_loss/masked_mean


@dataclass(frozen=True)
class _VerlRelease:
    half: bool = True  # 0.5 * agg (missing in v0.4.0 only)
    nan_safe: bool = True  # masked_sum uses where(mask, x, 0) first (v0.5.0 on)
    token_mean_eps: bool = False  # token-mean = masked_mean, sum / (N + 1e-8) (before v0.7.0)
    skip_empty_rows: bool = True  # seq-mean modes leave out fully masked rows (v0.6.1 on)
    seq_mean_eps: bool = False  # ... and average the rows with masked_mean (+1e-8; v0.6.1 only)
    norm_per_seq: bool = True  # seq-mean-token-sum-norm = seq-mean-token-sum / T (v0.7.1 on); before: sum / T

    def flags(self) -> dict:
        """The keyword arguments of ``library_code.agg_loss`` for this release."""
        return dict(
            nan_safe=self.nan_safe,
            token_mean_eps=self.token_mean_eps,
            skip_empty_rows=self.skip_empty_rows,
            seq_mean_eps=self.seq_mean_eps,
            norm_per_seq=self.norm_per_seq,
        )


def _verl_release(rel: _VerlRelease):
    flags = rel.flags()
    loss_scale = 0.5 if rel.half else 1.0

    def settings(mode):
        return dict(loss_agg_mode=mode, loss_scale=loss_scale, **flags)

    def reduce(loss_max, m, mode):
        return loss_scale * lc.agg_loss(loss_max, m, mode, **flags)

    return LibraryCode(lc.value_loss, settings), reduce


_VERL_CURRENT = _VerlRelease()
_VERL_070 = _VerlRelease(norm_per_seq=False)
_VERL_061 = _VerlRelease(token_mean_eps=True, seq_mean_eps=True, norm_per_seq=False)
_VERL_05 = _VerlRelease(token_mean_eps=True, skip_empty_rows=False, norm_per_seq=False)
_VERL_041 = _VerlRelease(nan_safe=False, token_mean_eps=True, skip_empty_rows=False, norm_per_seq=False)
_VERL_040 = _VerlRelease(half=False, nan_safe=False, token_mean_eps=True, skip_empty_rows=False, norm_per_seq=False)


def _openrlhf_settings(mode):
    return dict(token_level_loss=mode == "token-mean")


def _openrlhf_2025_04_reduce(loss, m, mode):
    """Before 2025-04-12: masked_mean(loss, mask, dim=-1).mean(): sum / n_i per row (no eps), every row."""
    return 0.5 * ((loss * m).sum(dim=-1) / m.sum(dim=-1)).mean()


def _trl_reduce(loss_max, m, mode):
    return 0.5 * ((loss_max * m).sum() / m.sum())


def _trlx_reduce(loss_max, m, mode):
    return 0.5 * torch.sum(loss_max * m) / m.sum()


def _half_mean(loss_max, m, mode):
    return 0.5 * loss_max.mean()


def _plain_mean(loss_max, m, mode):
    return loss_max.mean()


def _nemo_aligner_reduce(loss_max, m, mode):
    return 0.5 * loss_max[m.bool()].mean()  # masked_mean: values[mask.bool()].mean(), after the max


def _slime_reduce(loss_max, m, mode):
    return lc.slime_sample_mean(loss_max, m)


def _slime_per_token_reduce(loss_max, m, mode):
    return lc.slime_token_sum(loss_max, m)


def _slime_per_token_settings(mode):
    return dict(calculate_per_token_loss=True)


# ---------------------------------------------------------------------------------------------------------

_MAX_FORMULA = r"\max[(v-R)^2,\ (\mathrm{clip}(v)-R)^2]"
_VERL_FORMULA = r"\tfrac12\,\mathrm{AGG}\big(\max[(v-R)^2,\ (\mathrm{clip}(v, v_{old}\pm\epsilon)-R)^2]\big)"
_DELTA = r"v_{old}+\mathrm{clamp}(v-v_{old},\pm\epsilon)"
_CLAMP = r"\mathrm{clamp}(v, v_{old}\pm\epsilon)"
_VERL_MODES = check.AGG_MODES
_VERL_OLD_MODES = tuple(m for m in check.AGG_MODES if m != "token-sum")
_ONCE = "restated formula in CI; matched the release's own code bit for bit once (README, How exact)"
_VERL_PARAM = dict(param_name="critic.cliprange_value", default_eps=0.5, clip_convention="bounds", combine="max")


def _verl_entry(name, versions, commit, rel, notes, *, current=False, verified=_ONCE, modes=None):
    compute, reduce = _verl_release(rel)
    old_agg = [
        "token-mean " + ("sum(L*m)/(N+1e-8)" if rel.token_mean_eps else "sum(L*m)/N"),
        "seq modes " + ("leave out fully masked rows" if rel.skip_empty_rows else "average every row (torch.mean)"),
        "seq-mean-token-sum-norm " + ("seq-mean / T" if rel.norm_per_seq else "sum(L*m) / T over the whole batch"),
    ]
    return Dialect(
        name=name,
        library=f"verl {versions}",
        half=rel.half,
        aggregation="loss_agg_mode (default token-mean); " + "; ".join(old_agg),
        clipfrac_definition="vf_clipfrac = masked_mean(L_clip > L_unclip) = sum(m * (L_clip > L_unclip)) / (N + 1e-8)",
        repo="verl-project/verl",
        path="verl/trainer/ppo/core_algos.py",
        commit=commit,
        notes=notes,
        compute=compute,
        reduce=reduce,
        family="verl",
        versions=versions,
        current=current,
        formula=_VERL_FORMULA if rel.half else _VERL_FORMULA.replace(r"\tfrac12\,", ""),
        modes=modes or _VERL_OLD_MODES,
        loss_metric="critic/vf_loss",
        clipfrac_metric="critic/vf_clipfrac",
        logged="critic/vf_loss is this loss for one micro-batch, averaged over the micro-batches of the update.",
        verified=verified,
        threads=("verl-project/verl#498", "verl-project/verl#2642"),
        export_label=f"verl {versions} (compute_value_loss)",
        **_VERL_PARAM,
    )


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        _verl_entry(
            "verl",
            "v0.7.1 – v0.9.1",
            "1dda039b",
            _VERL_CURRENT,
            "token-sum exists since v0.9.0. Older releases aggregate differently: pick them in the version list.",
            current=True,
            verified="real package (verl 0.9.1, tests/upstream)",
            modes=_VERL_MODES,
        ),
        Dialect(
            name="openrlhf",
            library="OpenRLHF since 2025-04-12 (0.11)",
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
            notes="Default --critic.value_clip is 0.5 since 2025-05-23 (0.2 before); clip_eps=None means no clipping.",
            compute=LibraryCode(lc.openrlhf_value_loss, _openrlhf_settings),
            supports_off=True,
            family="openrlhf",
            versions="since 2025-04-12 (0.11)",
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(" + _DELTA + r"-R)^2,\ (v-R)^2]\big)",
            modes=("token-mean", "seq-mean-token-mean"),
            loss_metric="critic_loss",
            logged="critic_loss: this loss per micro-batch, averaged over the update's steps.",
            limits="One process (dp_size=1): the dp_size / batch_num_tokens / global_batch_size arguments of 0.11 are "
            "not offered here.",
            verified="real package (openrlhf 0.11.2, tests/upstream)",
            export_label="OpenRLHF ValueLoss (0.11)",
        ),
        Dialect(
            name="trl",
            library="TRL PPOTrainer (trl.experimental, 1.0 – 1.12)",
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
            compute=LibraryCode(lc.trl_value_loss),
            family="trl",
            versions="1.0 – 1.12 (trl.experimental.ppo; removed after 1.12)",
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(v-R)^2,\ (" + _CLAMP + r"-R)^2]\big)",
            loss_metric="loss/value_avg",
            clipfrac_metric="val/clipfrac_avg",
            logged="loss/value_avg and val/clipfrac_avg: averaged over the minibatches and epochs of one update.",
            verified="the library's own loss lines (trl 1.12.0 PPOTrainer.train), run on our batches",
            zeroes_padded_predictions=True,
            threads=("huggingface/trl#202",),
            export_label="TRL PPOTrainer",
            reduce=_trl_reduce,
        ),
        Dialect(
            name="cleanrl",
            library="CleanRL ppo.py",
            param_name="clip_coef (shared with the policy; --clip-vloss)",
            default_eps=0.2,
            clip_convention="delta",
            combine="max",
            half=True,
            aggregation="plain mean over the minibatch",
            clipfrac_definition=None,
            repo="vwxyzjn/cleanrl",
            path="cleanrl/ppo.py",
            commit="fe8d8a03",
            notes="Logs only the policy clip fraction. --clip-vloss False (eps=None here) gives 0.5 * mean((v - R)^2).",
            compute=LibraryCode(lc.cleanrl_value_loss),
            supports_off=True,
            family="cleanrl",
            versions="master (2026-04)",
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(v-R)^2,\ (" + _DELTA + r"-R)^2]\big)",
            loss_metric="losses/value_loss",
            logged="losses/value_loss is the loss of the LAST minibatch of the update only, not an average.",
            threads=("vwxyzjn/cleanrl#208",),
            export_label="CleanRL ppo.py",
            reduce=_half_mean,
            indexed=True,
        ),
        Dialect(
            name="sb3",
            library="Stable-Baselines3 2.x",
            param_name="clip_range_vf",
            default_eps=None,
            clip_convention="delta",
            combine="clip-only: mean((R - clip(v))^2), no max",
            combine_rule="clip-only",
            half=False,
            aggregation="plain mean",
            clipfrac_definition=None,
            repo="DLR-RM/stable-baselines3",
            path="stable_baselines3/ppo/ppo.py",
            commit="e05d2dbe",
            notes="Off by default (clip_range_vf=None). Every token outside the band gets zero gradient.",
            compute=LibraryCode(lc.sb3_value_loss),
            supports_off=True,
            family="sb3",
            versions="2.x (2.9.2 checked)",
            formula=r"\mathrm{mean}\big((R - " + _DELTA + r")^2\big)",
            loss_metric="train/value_loss",
            logged="train/value_loss: the mean of this loss over every minibatch and epoch of the update.",
            verified="real training step (stable-baselines3 2.9.2, tests/upstream)",
            sanity_definition="prediction",
            threads=("DLR-RM/stable-baselines3#1426",),
            export_label="Stable-Baselines3 PPO",
            indexed=True,
        ),
        Dialect(
            name="slime",
            library="slime (per-sample mean, default)",
            param_name="--value-clip",
            default_eps=0.2,
            clip_convention="delta",
            combine="max",
            half=False,
            aggregation="per-sample token means (max(n_i, 1)) added one sample at a time, / number of samples",
            clipfrac_definition="value_clipfrac = share of tokens with |v - o| > eps (prediction clipped)",
            repo="THUDM/slime",
            path="slime/backends/megatron_utils/loss.py",
            commit="624b824a",
            notes="Counts clipped predictions, not tokens where the clipped loss wins. Samples are added one at a "
            "time (Python sum), so bf16 rounds after every sample, as slime does.",
            compute=LibraryCode(lc.slime_value_loss),
            family="slime",
            versions="master (2026-08)",
            formula=r"\mathrm{mean}_{seq}\,\mathrm{mean}_{tok}\big(\max[(\mathrm{clip}(v)-R)^2,\ (v-R)^2]\big)",
            loss_metric="value_loss",
            clipfrac_metric="value_clipfrac",
            limits="One micro-batch, no context parallelism; the division by the number of samples stands for "
            "slime's global-batch scaling with one micro-batch.",
            sanity_definition="prediction",
            export_label="slime (per-sample mean)",
            reduce=_slime_reduce,
        ),
        Dialect(
            name="torchrl",
            library="TorchRL ClipPPOLoss 0.14",
            param_name="clip_value",
            default_eps=None,
            clip_convention="delta",
            combine="max of smooth-L1 (Huber, the default loss_critic_type)",
            combine_rule="huber-max",
            half=False,
            aggregation="masked mean sum(critic_coeff * L * m) / sum(m) (NaN in padding poisons it)",
            clipfrac_definition="value_clip_fraction = mean over the WHOLE tensor, padding included, of "
            "(v - o) != clamp(v - o)",
            repo="pytorch/rl",
            path="torchrl/objectives/ppo.py",
            commit="v0.14.1",
            notes="Off by default; clip_value=0 is also off (`if self.clip_value:`). The loss is masked but the "
            "clip fraction is not: padding counts in its denominator. clip_value is kept as a float32 buffer, so "
            "the band is float32(eps) wide even for float64 batches.",
            compute=LibraryCode(lc.torchrl_value_loss),
            supports_off=True,
            family="torchrl",
            versions="0.14.1",
            formula=r"\mathrm{mean}\big(\max[\mathrm{huber}(v-R),\ \mathrm{huber}(\mathrm{clip}(v)-R)]\big)",
            off_values=(0.0,),
            loss_metric="loss_critic",
            clipfrac_metric="value_clip_fraction",
            logged="loss_critic is multiplied by critic_coeff (default 1.0, shown here); value_clip_fraction "
            "averages over every element including padding, while the loss averages over real tokens.",
            verified="real package (torchrl 0.14.1 + tensordict 0.14.3, tests/upstream)",
            sanity_definition="prediction",
            export_label="TorchRL ClipPPOLoss (critic)",
        ),
        Dialect(
            name="rllib",
            library="RLlib since late 2021 (loss clamp)",
            param_name="vf_clip_param",
            default_eps=10.0,
            clip_convention="none",
            combine="clamps the loss, not the value: clamp((v-R)^2, 0, vf_clip_param)",
            combine_rule="loss-clamp",
            half=False,
            aggregation="mean over valid steps",
            clipfrac_definition=None,
            repo="ray-project/ray",
            path="rllib/algorithms/ppo/torch/ppo_torch_learner.py",
            commit="04bef2a4",
            notes="Here eps is a bound on the squared error (loss units), not on the value. "
            'vf_clip_param=float("inf") turns it off.',
            compute=LibraryCode(lc.rllib_value_loss),
            family="rllib",
            versions="since late 2021 (after ray-project/ray#19291)",
            formula=r"\mathrm{mean}\big(\mathrm{clamp}((v-R)^2,\ 0,\ \epsilon_{loss})\big)",
            eps_units="loss",
            off_values=(math.inf,),
            loss_metric="vf_loss",
            logged="vf_loss is the clamped loss; RLlib also logs vf_loss_unclipped.",
            sanity_definition="rllib",
            threads=("ray-project/ray#19291", "ray-project/ray#8908"),
            export_label="RLlib PPO (loss clamp, since 2021)",
        ),
        # ---- six more trainers
        Dialect(
            name="baselines-ppo2",
            library="OpenAI baselines ppo2 (TensorFlow)",
            param_name="cliprange (shared with the policy)",
            default_eps=0.2,
            clip_convention="delta",
            combine="max (tf.maximum: at a tie the whole gradient goes to the unclipped term)",
            half=True,
            aggregation="tf.reduce_mean over the minibatch",
            clipfrac_definition=None,
            repo="openai/baselines",
            path="baselines/ppo2/model.py",
            commit="9b68103b",
            notes="The origin of the clipped value loss. TensorFlow's gradient of Maximum (tensorflow/tensorflow@61517a0b "
            "tensorflow/python/ops/math_grad.py, _MaximumGrad, mask x >= y) sends the whole gradient to its first argument at an exact tie, where "
            "torch.max splits it 1/2-1/2: at a symmetric overshoot ppo2 keeps 2(v - R), torch keeps (v - R).",
            compute=LibraryCode(lc.baselines_value_loss),
            family="baselines",
            versions="master (2020, TF 1.x)",
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(v-R)^2,\ (" + _DELTA + r"-R)^2]\big)",
            loss_metric="value_loss",
            logged="value_loss: averaged over the minibatches of the update (ppo2 logs the mean of the stats).",
            limits="Computed in torch with TensorFlow's tie rule for the max; TF's reduce_mean may sum in another "
            "order (ulp-level differences in float32).",
            tie_rule="tensorflow",
            threads=("openai/baselines#91", "openai/baselines#1134"),
            export_label="OpenAI baselines ppo2",
            indexed=True,
        ),
        Dialect(
            name="rsl_rl",
            library="rsl_rl PPO (IsaacLab)",
            param_name="clip_param (shared with the policy; use_clipped_value_loss)",
            default_eps=0.2,
            clip_convention="delta",
            combine="max",
            half=False,
            aggregation="plain mean over the minibatch",
            clipfrac_definition=None,
            repo="leggedrobotics/rsl_rl",
            path="rsl_rl/algorithms/ppo.py",
            commit="c281c32e",
            notes="No 0.5 factor; value_loss_coef=1.0 by default. use_clipped_value_loss=False (eps=None here) gives "
            "mean((R - v)^2).",
            compute=LibraryCode(lc.rsl_rl_value_loss),
            supports_off=True,
            family="rsl_rl",
            versions="5.x (rsl-rl-lib 5.5.1 checked)",
            formula=r"\mathrm{mean}\big(\max[(v-R)^2,\ (" + _DELTA + r"-R)^2]\big)",
            loss_metric="Loss/value",
            logged="Loss/value: the mean of this loss over every minibatch and epoch of the update.",
            verified="real training step (rsl-rl-lib 5.5.1, tests/upstream)",
            export_label="rsl_rl PPO",
            reduce=_plain_mean,
            indexed=True,
        ),
        Dialect(
            name="deepspeed-chat",
            library="DeepSpeed-Chat critic_loss_fn",
            param_name="cliprange_value (hard-coded 0.2)",
            default_eps=0.2,
            clip_convention="clamp",
            combine="max",
            half=True,
            aggregation="0.5 * sum(L*m) / sum(m)",
            clipfrac_definition=None,
            repo="microsoft/DeepSpeedExamples",
            path="applications/DeepSpeed-Chat/dschat/rlhf/ppo_trainer.py",
            commit="e86d0c6d",
            notes="self.cliprange_value = 0.2 in the trainer; no value clip fraction is logged.",
            compute=LibraryCode(lc.deepspeed_chat_value_loss),
            family="deepspeed-chat",
            versions="master (2025)",
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(v-R)^2,\ (" + _CLAMP + r"-R)^2]\big)",
            loss_metric="critic_loss",
            logged="critic_loss: printed as the average over the PPO epochs of a step.",
            limits="--compute_fp32_loss (values cast to float32 before the squares) is not modelled: pass "
            "float32 tensors to get it.",
            threads=("microsoft/DeepSpeedExamples#556", "microsoft/DeepSpeedExamples#956"),
            verified=_ONCE,
            export_label="DeepSpeed-Chat critic_loss_fn",
            reduce=_trlx_reduce,
        ),
        Dialect(
            name="trlx",
            library="trlx PPOConfig.loss",
            param_name="cliprange_value",
            default_eps=0.2,
            clip_convention="clamp",
            combine="max",
            half=True,
            aggregation="0.5 * sum(L*m) / n, n = sum(m)",
            clipfrac_definition="values/clipfrac = sum(m * (L_clip > L_unclip)) / n",
            repo="CarperAI/trlx",
            path="trlx/models/modeling_ppo.py",
            commit="2e667e6a",
            notes="Same numbers as TRL and DeepSpeed-Chat (the 0.5 is applied before the division, exact in binary).",
            compute=LibraryCode(lc.trlx_value_loss),
            family="trlx",
            versions="main (2024, archived)",
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(v-R)^2,\ (" + _CLAMP + r"-R)^2]\big)",
            loss_metric="losses/value_loss",
            clipfrac_metric="values/clipfrac",
            logged="losses/value_loss and values/clipfrac of one minibatch.",
            verified=_ONCE,
            export_label="trlx PPO",
            reduce=_trlx_reduce,
        ),
        Dialect(
            name="nemo-aligner",
            library="NeMo-Aligner critic",
            param_name="loss_clip_val",
            default_eps=0.2,
            clip_convention="delta",
            combine="max",
            half=True,
            aggregation="0.5 * mean of the real tokens (values[mask.bool()].mean())",
            clipfrac_definition=None,
            repo="NVIDIA/NeMo-Aligner",
            path="nemo_aligner/models/nlp/gpt/megatron_gpt_critic.py",
            commit="af2b3bd9",
            notes="loss_clip_val <= 0 turns clipping off (the clipped term becomes the scalar 0). "
            "loss_clip_val: 0.2 in gpt_ppo_critic.yaml.",
            compute=LibraryCode(lc.nemo_aligner_value_loss),
            family="nemo-aligner",
            versions="main (2025-05, archived; NeMo-RL has no PPO critic)",
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(" + _DELTA + r"-R)^2,\ (v-R)^2]\big)",
            off_values=(0.0,),
            loss_metric="critic loss",
            logged="loss: averaged over micro-batches and data-parallel ranks.",
            limits="Value standardisation (enable_standardization) is not modelled.",
            export_label="NeMo-Aligner critic",
            reduce=_nemo_aligner_reduce,
        ),
        Dialect(
            name="rllib-legacy",
            library="RLlib before late 2021 (value clip)",
            param_name="vf_clip_param",
            default_eps=10.0,
            clip_convention="delta",
            combine="max (clips the prediction, baselines-style)",
            half=False,
            aggregation="mean over valid steps",
            clipfrac_definition=None,
            repo="ray-project/ray",
            path="rllib/agents/ppo/ppo_torch_policy.py",
            commit="01a9ce8f",
            notes="Here vf_clip_param is in return units, as in baselines; the default 10.0 rarely clips.",
            compute=LibraryCode(lc.rllib_legacy_value_loss),
            family="rllib",
            versions="before late 2021 (rllib/agents/ppo)",
            current=False,
            formula=r"\mathrm{mean}\big(\max[(v-R)^2,\ (" + _DELTA + r"-R)^2]\big)",
            loss_metric="vf_loss",
            logged="vf_loss (learner stats) of one SGD minibatch, averaged over minibatches by the learner.",
            threads=("ray-project/ray#19291", "ray-project/ray#8908"),
            export_label="RLlib PPO (value clip, before 2021)",
            reduce=_plain_mean,
            indexed=True,
        ),
        # ---- other options and older releases of the libraries above
        Dialect(
            name="slime-per-token",
            library="slime --calculate-per-token-loss",
            param_name="--value-clip",
            default_eps=0.2,
            clip_convention="delta",
            combine="max",
            half=False,
            aggregation="token sums added one sample at a time, / all real tokens",
            clipfrac_definition="value_clipfrac = share of tokens with |v - o| > eps (prediction clipped)",
            repo="THUDM/slime",
            path="slime/backends/megatron_utils/cp_utils.py",
            commit="624b824a",
            notes="With --calculate-per-token-loss slime sums tokens (sum_of_token) and Megatron divides by the "
            "token count.",
            compute=LibraryCode(lc.slime_value_loss, _slime_per_token_settings),
            family="slime",
            versions="master (2026-08), --calculate-per-token-loss",
            current=False,
            formula=r"\mathrm{mean}_{tok}\big(\max[(\mathrm{clip}(v)-R)^2,\ (v-R)^2]\big)",
            loss_metric="value_loss",
            clipfrac_metric="value_clipfrac",
            limits="One micro-batch, no context parallelism.",
            sanity_definition="prediction",
            export_label="slime (per-token loss)",
            reduce=_slime_per_token_reduce,
        ),
        _verl_entry(
            "verl-v0.7.0",
            "v0.7.0",
            "f9c855f7",
            _VERL_070,
            "seq-mean-token-sum-norm divides the whole batch's sum by T (not the sequence mean); fixed in v0.7.1.",
        ),
        _verl_entry(
            "verl-v0.6.1",
            "v0.6.1",
            "d62da495",
            _VERL_061,
            "First release that leaves fully masked rows out of the seq-mean modes (with masked_mean's +1e-8).",
        ),
        _verl_entry(
            "verl-v0.5",
            "v0.5.0 – v0.6.0",
            "ddd86f52",
            _VERL_05,
            "token-mean adds 1e-8 to N; seq modes average every row, so a fully masked row gives NaN in "
            "seq-mean-token-mean (0/0) and pulls the mean down in seq-mean-token-sum.",
        ),
        _verl_entry(
            "verl-v0.4.1",
            "v0.3.0.post0 – v0.4.1 (not v0.4.0)",
            "8d9e350e",
            _VERL_041,
            "masked_sum multiplies L * mask without where(): a NaN in padding poisons token-mean too. v0.3.x has "
            "token-mean only.",
        ),
        _verl_entry(
            "verl-v0.4.0",
            "v0.4.0",
            "07584894",
            _VERL_040,
            "v0.4.0 shipped without the 0.5 factor: its vf_loss is twice the other releases' (fixed in v0.4.1).",
        ),
        Dialect(
            name="openrlhf-2025-04",
            library="OpenRLHF before 2025-04-12",
            param_name="--critic.value_clip",
            default_eps=0.2,
            clip_convention="delta",
            combine="max",
            half=True,
            aggregation="masked_mean(L, m, dim=-1).mean(): sum(L*m)/n_i per row (no eps), mean over every row",
            clipfrac_definition=None,
            repo="OpenRLHF/OpenRLHF",
            path="openrlhf/models/loss.py",
            commit="bb463427",
            notes="Averaged per sequence first; a fully masked row is 0/0 = NaN. Changed by #923 (2025-04-12). "
            "Default --critic.value_clip 0.2 then.",
            compute=LibraryCode(lc.openrlhf_2025_04_value_loss),
            supports_off=True,
            family="openrlhf",
            versions="before 2025-04-12",
            current=False,
            formula=r"\tfrac12\,\mathrm{mean}_{seq}\,\mathrm{mean}_{tok}\big(\max[("
            + _DELTA
            + r"-R)^2,\ (v-R)^2]\big)",
            loss_metric="critic_loss",
            verified=_ONCE,
            export_label="OpenRLHF ValueLoss (before 2025-04-12)",
            reduce=_openrlhf_2025_04_reduce,
        ),
    )
}


def get_dialect(name: str) -> Dialect:
    if not isinstance(name, str) or name not in DIALECTS:
        raise ValueError(f"unknown dialect {name!r}; valid dialects are: {', '.join(DIALECTS)}")
    return DIALECTS[name]


def families() -> dict[str, list[str]]:
    """Every library and the names of its entries, the current behaviour first."""
    out: dict[str, list[str]] = {}
    for d in DIALECTS.values():
        out.setdefault(d.family, []).append(d.name)
    for names in out.values():
        names.sort(key=lambda n: not DIALECTS[n].current)
    return out


def family_versions(name: str) -> list[str]:
    """The entries of ``name``'s library (its releases), the current one first."""
    return families()[get_dialect(name).family]


def version_label(name: str) -> str:
    """How a picker shows an entry: the library with its releases, marked when it is an older behaviour."""
    d = get_dialect(name)
    return d.library + ("" if d.current else " [older behaviour]")


def check_clip_param(arg: str, name: str, eps):
    """Validate ``eps`` as library ``name``'s clip parameter: finite and >= 0, or one of its off values
    (``None`` where it has an off switch, ``float("inf")`` for RLlib's vf_clip_param)."""
    d = get_dialect(name)
    return check.clip_range(arg, eps, allow_none=d.supports_off, off_values=d.off_values)


def dialect_loss(
    name: str, vpreds, returns, values, response_mask, cliprange, *, loss_agg_mode: str = "token-mean"
) -> DialectResult:
    """The value loss and clip fraction library ``name`` computes (and logs) on this batch.

    ``cliprange`` is that library's parameter (for RLlib a bound on the squared error, where
    ``float("inf")`` is off); ``None`` turns clipping off where the library allows it.
    ``loss_agg_mode`` picks the aggregation where the library has several (``get_dialect(name).modes``).
    """
    dialect = get_dialect(name)
    _check_batch(vpreds, returns, values, response_mask)
    cliprange = check_clip_param("cliprange", name, cliprange)
    if loss_agg_mode not in dialect.modes:
        raise ValueError(
            f"loss_agg_mode {loss_agg_mode!r} is not available for {dialect.library}; choose one of: "
            f"{', '.join(dialect.modes)}"
        )
    loss, clipfrac = dialect.compute(vpreds, returns, values, response_mask, cliprange, loss_agg_mode)
    return DialectResult(dialect=name, loss=loss, clipfrac=clipfrac)
