"""One registry entry per library and release: what it computes, logs and calls things, and where we read it.

``dialect_loss(name, ...)`` computes the loss that library (at the releases the entry names) computes for
the same batch as one micro-batch on one rank, and the clip fraction it logs; ``dashboard_value`` turns that
loss into the number its dashboard shows after an update (``Dialect.metrics``, per release). Everything the app knows about a library lives on its :class:`Dialect`: the parameter
and its units, the clip convention, the aggregation, what it logs under which metric name, the
releases described, the pinned source, what the entry does not model, and how it is verified. Other
modules ask the entry; none of them branches on a library's name.

Where a library changed behaviour, each behaviour is its own entry of the same ``family`` (e.g. verl
``v0.4.0`` without the 0.5 factor), so the app can offer a version picker and name the version next to
every number. Libraries without token masks (CleanRL, SB3, baselines, rsl_rl) see only the real tokens,
selected by indexing, so NaN in padding never reaches them; RLlib squares the padded tensor and selects the
real steps after, so a NaN there reaches its gradient. The fields code decides on are ``Literal`` types,
checked when an entry is built; the words beside them are only shown.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, cast, get_args

import numpy as np
import torch

from . import _validate as check
from . import library_code as lc
from .library_code import LibraryCode

__all__ = [
    "ClipConvention",
    "CombineRule",
    "EpsUnits",
    "LoggedMetric",
    "Quantity",
    "Ranks",
    "Reduction",
    "SanityDefinition",
    "TieRule",
    "Verification",
    "dashboard_rows",
    "dashboard_value",
    "Dialect",
    "DialectResult",
    "DIALECTS",
    "dialect_loss",
    "get_dialect",
    "logged_metric",
    "check_clip_param",
    "families",
    "family_versions",
    "version_label",
]


# The registry's typed fields: code decides on these, never on the prose beside them.
# How a library combines the unclipped and clipped terms (``combine`` says it in words):
#   "max": max of the squared errors (PPO2); "clip-only": only the clipped term (SB3);
#   "huber-max": max of the Huber losses (TorchRL); "loss-clamp": clamps the squared error itself (RLlib).
CombineRule = Literal["max", "clip-only", "huber-max", "loss-clamp"]
# How the prediction is clipped: "bounds" max(min(v, o + eps), o - eps) (verl); "clamp" torch.clamp(v, o - eps,
# o + eps) (TRL, trlx, DeepSpeed-Chat); "delta" o + clamp(v - o, -eps, eps) (OpenRLHF, CleanRL, baselines, ...);
# "none": the prediction is not clipped (RLlib since ray 1.12 clamps the loss instead).
ClipConvention = Literal["bounds", "clamp", "delta", "none"]
# What the clip parameter bounds: "return" the prediction's move (return units); "loss" the squared error.
EpsUnits = Literal["return", "loss"]
# Who gets the gradient of a tied max: "torch" splits it 1/2-1/2; "tensorflow" (tf.maximum, _MaximumGrad with
# mask x >= y) sends all of it to the first argument.
TieRule = Literal["torch", "tensorflow"]
# The clip fraction the Sanity page reasons with for this library: "loss" tokens where the clipped loss wins
# (the zero-gradient tokens); "prediction" tokens whose prediction was clipped (|v - o| > eps); "clamp" tokens
# whose squared error exceeds the bound.
SanityDefinition = Literal["loss", "prediction", "clamp"]
# How CI checks the entry (README, How exact): "real package" the released package's own loss code, installed
# pinned from PyPI, run on our batches bit for bit; "real training step" a real optimizer step of the released
# package; "restated formula" no release on a registry: a restatement, compared once by hand with the release's
# code (``verified`` names the commit and how).
Verification = Literal["real package", "real training step", "restated formula"]

# ---- what a trainer logs (issue 19 item 6): one LoggedMetric per metric name and release range
# The quantity a metric carries. "policy_clipfrac" is the POLICY's clip fraction that some trainers log under a
# name that looks like the critic's (SB3 train/clip_fraction, CleanRL losses/clipfrac, baselines loss/clipfrac):
# it is listed so that nothing reads it as the value clip fraction.
Quantity = Literal[
    "value_loss",
    "value_loss_unclipped",
    "clipfrac",
    "policy_clipfrac",
    "explained_variance",
    "vpred_mean",
    "grad_norm",
    "returns_mean",
    "returns_max",
    "returns_min",
    "values_mean",
    "values_max",
    "values_min",
]
# How the logged number relates to the per-call loss L (what the loss function returns for one micro-batch),
# over an update of E epochs x B mini-batches x K micro-batches (see ``dashboard_value``):
#   "per_call"            every call is logged as its own point (the dashboard's latest point: the last call)
#   "last_call"           only the last call of the update is logged (CleanRL: the last minibatch)
#   "mean"                mean over every call of the update (all micro-batches, mini-batches and epochs)
#   "mean_scaled"         mean over every call of L / K (verl v0.6.x logs the loss times its backward scale)
#   "sum_scaled"          sum over every call of L / K (verl v0.7.0-v0.7.1: B x E times the mean loss)
#   "minibatch_sum_mean"  per mini-batch the sum of its K calls (each normalised by the global counts, so a
#                         partial sum), then the mean over mini-batches and epochs (verl v0.9)
#   "step_mean"           one point per optimizer step: the mean of that mini-batch's K calls (trlx, NeMo-Aligner)
#   "sum_calls"           the sum over every call of the update (DeepSpeed-Chat critic_loss_sum)
#   "rollout"             a statistic of the rollout batch (returns, old values), computed once per step: not a
#                         function of the loss
Reduction = Literal[
    "per_call",
    "last_call",
    "mean",
    "mean_scaled",
    "sum_scaled",
    "minibatch_sum_mean",
    "step_mean",
    "sum_calls",
    "rollout",
]
# Which ranks' numbers reach the logger: one process; rank 0's only; the mean over data-parallel ranks.
Ranks = Literal["one process", "rank 0", "mean over ranks"]


def _check_literal(owner: str, field_name: str, value, kind) -> None:
    allowed = get_args(kind)
    if value not in allowed:
        raise ValueError(f"{owner}: {field_name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


@dataclass(frozen=True)
class LoggedMetric:
    """One name a trainer logs, for some of an entry's releases, and how the logged number relates to the loss.

    ``key`` is the exact name on the dashboard (TensorBoard / W&B); ``releases`` the releases of the entry that
    log it under that key ("" = every release the entry describes; a range outside them names an older
    release that logged the same quantity under another name); ``note`` says it in words for users.
    """

    quantity: Quantity
    key: str
    reduction: Reduction = "mean"
    releases: str = ""
    ranks: Ranks = "mean over ranks"
    note: str = ""

    def __post_init__(self):
        _check_literal(f"LoggedMetric {self.key!r}", "quantity", self.quantity, Quantity)
        _check_literal(f"LoggedMetric {self.key!r}", "reduction", self.reduction, Reduction)
        _check_literal(f"LoggedMetric {self.key!r}", "ranks", self.ranks, Ranks)
        if not self.key:
            raise ValueError("LoggedMetric: key must name the metric")

    @property
    def of_loss(self) -> bool:
        """Whether the logged number is a function of the per-call loss (``dashboard_value`` applies)."""
        return self.reduction != "rollout"


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
    clip_convention: ClipConvention  # how the prediction is clipped (ClipConvention)
    combine: str  # the combine rule in words, shown next to the numbers (code reads ``combine_rule``)
    half: bool
    aggregation: str
    clipfrac_definition: str | None
    repo: str
    path: str
    commit: str
    notes: str
    compute: LibraryCode  # (vpreds, returns, values, mask, eps, mode) -> (loss, clipfrac): library_code
    supports_off: bool = False  # eps=None turns clipping off
    # --- the version-aware part of the registry
    family: str = ""  # the library: every release of it shares this key (and a version picker)
    versions: str = ""  # the releases this entry describes
    current: bool = True  # the newest behaviour of its family
    formula: str = ""  # per-token loss in the app's notation (LaTeX)
    eps_units: EpsUnits = "return"  # "loss": the parameter bounds the squared error, not the value
    off_values: tuple = ()  # parameter values that turn clipping off in the library (0, inf), beside None
    modes: tuple[str, ...] = ("token-mean",)  # aggregation modes (verl's loss_agg_mode; OpenRLHF's two)
    metrics: tuple[LoggedMetric, ...] = ()  # what the trainer logs, per release: names and how each is reduced
    limits: str = ""  # what this entry does not model
    verification: Verification = "restated formula"  # how CI checks it (Verification); code reads this
    verified: str = ""  # the same in words: which release, which code, how (shown; never branched on)
    tie_rule: TieRule = "torch"  # "tensorflow": tf.maximum sends the whole gradient to its first argument at a tie
    zeroes_padded_predictions: bool = False  # the trainer sets padded predictions to 0 before the loss
    sanity_definition: SanityDefinition = "loss"  # the clip fraction that matters for it (SanityDefinition)
    threads: tuple[str, ...] = ()  # issue threads that discuss this library's value clipping (owner/repo#n)
    export_label: str = ""  # short label for the export picker
    reduce: Callable | None = None  # (per-token max term, mask, mode) -> loss; None: not a max form
    indexed: bool = False  # sees only the real tokens (no mask argument): reduce gets the 1-D real tokens
    combine_rule: CombineRule = "max"
    shares_policy_clip: bool = False  # one parameter clips the policy ratio and the value (code reads this)

    def __post_init__(self):
        for field_name, kind in (
            ("combine_rule", CombineRule),
            ("clip_convention", ClipConvention),
            ("eps_units", EpsUnits),
            ("tie_rule", TieRule),
            ("sanity_definition", SanityDefinition),
            ("verification", Verification),
        ):
            _check_literal(f"Dialect {self.name!r}", field_name, getattr(self, field_name), kind)
        if not self.verified.startswith(self.verification):
            raise ValueError(f"Dialect {self.name!r}: verified must say {self.verification!r} first, then how")
        if not any(m.quantity == "value_loss" for m in self.metrics):
            raise ValueError(f"Dialect {self.name!r}: metrics must say under which name the value loss is logged")

    def metrics_for(self, quantity: Quantity) -> tuple[LoggedMetric, ...]:
        """The names this entry's releases log ``quantity`` under, the entry's own releases first."""
        _check_literal("metrics_for", "quantity", quantity, Quantity)
        return tuple(m for m in self.metrics if m.quantity == quantity)

    @property
    def loss_metric(self) -> str:
        """The name the newest release of this entry logs the value loss under."""
        return self.metrics_for("value_loss")[0].key

    @property
    def clipfrac_metric(self) -> str | None:
        """The name it logs the value clip fraction under (None: it logs none)."""
        found = self.metrics_for("clipfrac")
        return found[0].key if found else None

    @property
    def logged(self) -> str:
        """What the logged value loss is, in words (the value-loss metric's note)."""
        return self.metrics_for("value_loss")[0].note

    @property
    def export_source(self) -> Callable[[], str] | None:
        """The standalone torch source of the function this entry computes with (``LibraryCode.source``)."""
        return self.compute.source

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


def _openrlhf_v07_reduce(loss, m, mode):
    if mode == "token-mean":
        return 0.5 * ((loss * m).sum() / m.sum())
    return _openrlhf_2025_04_reduce(loss, m, mode)


def _openrlhf_v01_reduce(loss, m, mode):
    return 0.5 * ((loss * m).sum(dim=1) / (m.sum(dim=1) + 1e-8)).mean()


def _openrlhf_entry(name, versions, commit, compute, aggregation, notes, metrics, *, default_eps=0.2, **fields):
    """An older OpenRLHF release: ValueLoss with the delta clip and the 0.5, read at ``commit``."""
    return Dialect(
        name=name,
        library=f"OpenRLHF {versions}",
        param_name="--critic.value_clip",
        default_eps=default_eps,
        clip_convention="delta",
        combine="max",
        half=True,
        aggregation=aggregation,
        clipfrac_definition=None,
        repo="OpenRLHF/OpenRLHF",
        path="openrlhf/models/loss.py",
        commit=commit,
        notes=notes,
        compute=compute,
        supports_off=True,
        family="openrlhf",
        metrics=metrics,
        versions=versions,
        current=False,
        export_label=f"OpenRLHF ValueLoss ({versions})",
        **fields,
    )


def _trl_reduce(loss_max, m, mode):
    return 0.5 * ((loss_max * m).sum() / m.sum())


def _trlx_reduce(loss_max, m, mode):
    return 0.5 * torch.sum(loss_max * m) / m.sum()


def _half_mean(loss_max, m, mode):
    return 0.5 * loss_max.mean()


def _plain_mean(loss_max, m, mode):
    return loss_max.mean()


def _rllib_reduce(loss_max, m, mode):
    return lc.rllib_masked_mean(loss_max, m)


def _nemo_aligner_reduce(loss_max, m, mode):
    return 0.5 * loss_max[m.bool()].mean()  # masked_mean: values[mask.bool()].mean(), after the max


def _slime_reduce(loss_max, m, mode):
    return lc.slime_sample_mean(loss_max, m).double() / (m.shape[0] if m.dim() > 1 else 1)


def _slime_per_token_reduce(loss_max, m, mode):
    total, num_tokens = lc.slime_token_sum(loss_max, m)
    return total.double() / num_tokens.to(torch.float32).double()


def _deepspeed_chat_fp32_settings(mode):
    return dict(compute_fp32_loss=True)


def _slime_per_token_settings(mode):
    return dict(calculate_per_token_loss=True)


# ---------------------------------------------------------------------------------------------------------
# What each trainer logs (read from each release's trainer loop; the tests restate each loop and check
# ``dashboard_value`` against it). Keys are the names on the dashboard, prefixes included.

_M = LoggedMetric

_VERL_ROLLOUT = tuple(
    _M(
        cast(Quantity, q),
        f"critic/{name}/{stat}",
        "rollout",
        note=f"{stat} of the rollout's {what} over the response tokens",
    )
    for name, what, qs in (
        ("returns", "returns R", ("returns_mean", "returns_max", "returns_min")),
        ("values", "old values v_old", ("values_mean", "values_max", "values_min")),
    )
    for q, stat in zip(qs, ("mean", "max", "min"), strict=True)
) + (
    _M(
        "explained_variance",
        "critic/vf_explained_var",
        "rollout",
        note="1 - var(R - v_old) / (var(R) + 1e-5) over the rollout's response tokens (old values, not this update's)",
    ),
)
_VERL_PER_MICRO = (
    _M("clipfrac", "critic/vf_clipfrac", note="mean over every micro-batch of the update (every rank)"),
    _M("vpred_mean", "critic/vpred_mean", note="masked mean of v per micro-batch, averaged over the update"),
    _M("grad_norm", "critic/grad_norm", note="one value per optimizer step (mini-batch), averaged over the update"),
)
_VERL_LEGACY_MEAN = "critic/vf_loss: the mean over every micro-batch, mini-batch and epoch of the micro-batch loss"
_VERL_RANK0 = "; only rank 0's numbers reach the logger before v0.6.0 (DataProto.concat kept the first meta_info)"
_VERL_LOSS_V07 = _M(
    "value_loss",
    "critic/vf_loss",
    "sum_scaled",
    "v0.7.0 – v0.7.1",
    note="critic/vf_loss is a SUM over every micro-batch, mini-batch and epoch of loss / gradient_accumulation "
    "(verl#4711, default FSDP critic), averaged over ranks: ppo_mini_batches x ppo_epochs times the loss",
)
_VERL_METRICS = (
    _M(
        "value_loss",
        "critic/vf_loss",
        "minibatch_sum_mean",
        "v0.9.0 – v0.9.1",
        note="critic/vf_loss: per mini-batch the SUM of its micro-batch losses (each normalised by the global "
        "counts, so the sum is the mini-batch's loss; verl#6957), averaged over ranks, then the mean over "
        "mini-batches and epochs",
    ),
    _M(
        "value_loss",
        "critic/vf_loss",
        "mean",
        "v0.8.0",
        note="critic/vf_loss: the mean over every micro-batch of every rank, mini-batch and epoch of the "
        "micro-batch loss, each normalised by its own counts",
    ),
    replace(_VERL_LOSS_V07, releases="v0.7.1"),
    *_VERL_PER_MICRO,
    *_VERL_ROLLOUT,
)
_VERL_070_METRICS = (_VERL_LOSS_V07, *_VERL_PER_MICRO, *_VERL_ROLLOUT)
_VERL_06_LOSS = _M(
    "value_loss",
    "critic/vf_loss",
    "mean_scaled",
    "v0.6.0 – v0.6.1",
    note="critic/vf_loss: the mean over every micro-batch (every rank) of loss / gradient_accumulation, the "
    "number backpropagated: 1/K of the loss with K micro-batches per mini-batch",
)
_VERL_061_METRICS = (replace(_VERL_06_LOSS, releases="v0.6.1"), *_VERL_PER_MICRO, *_VERL_ROLLOUT)
_VERL_05_METRICS = (
    _M("value_loss", "critic/vf_loss", "mean", "v0.5.0", "rank 0", note=_VERL_LEGACY_MEAN + _VERL_RANK0),
    replace(_VERL_06_LOSS, releases="v0.6.0"),
    *_VERL_PER_MICRO,
    *_VERL_ROLLOUT,
)
_VERL_OLD_METRICS = (
    _M("value_loss", "critic/vf_loss", "mean", "", "rank 0", note=_VERL_LEGACY_MEAN + _VERL_RANK0),
    *_VERL_PER_MICRO,
    *_VERL_ROLLOUT,
)

_OPENRLHF_METRICS = (
    _M(
        "value_loss",
        "train/critic_loss",
        note="train/critic_loss: every micro-batch's loss, averaged over ranks (all_reduce), then the mean over "
        "the micro-batches of all epochs",
    ),
    _M("vpred_mean", "train/values", note="masked mean of v per micro-batch, averaged like the loss"),
    _M("grad_norm", "train/critic_grad_norm", note="averaged like the loss (logged since v0.9.6)"),
)
_OPENRLHF_OLD_METRICS = _OPENRLHF_METRICS[:2]
_OPENRLHF_V07_METRICS = (*_OPENRLHF_OLD_METRICS, replace(_OPENRLHF_METRICS[2], releases="v0.9.6 – v0.10.2"))
_TRL_METRICS = (
    _M(
        "value_loss",
        "loss/value_avg",
        note="loss/value_avg: the mean over every epoch, minibatch and gradient-accumulation micro-batch, gathered "
        "over ranks; the loss before vf_coef",
    ),
    _M("clipfrac", "val/clipfrac_avg", note="averaged like loss/value_avg"),
    _M(
        "value_loss",
        "ppo/loss/value",
        releases="0.x PPOTrainer (before 0.12)",
        ranks="rank 0",
        note="ppo/loss/value (the classic PPOTrainer): the mean over the minibatches of every PPO epoch",
    ),
    _M("clipfrac", "ppo/val/clipfrac", releases="0.x PPOTrainer (before 0.12)", ranks="rank 0"),
    _M("vpred_mean", "ppo/val/vpred", releases="0.x PPOTrainer (before 0.12)", ranks="rank 0"),
    _M(
        "explained_variance",
        "ppo/val/var_explained",
        releases="0.x PPOTrainer (before 0.12)",
        ranks="rank 0",
        note="1 - masked mean of (v - R)^2 / masked variance of R, averaged over the minibatches",
    ),
)
_CLEANRL_METRICS = (
    _M(
        "value_loss",
        "losses/value_loss",
        "last_call",
        ranks="one process",
        note="losses/value_loss is the loss of the LAST minibatch of the update only, not an average",
    ),
    _M(
        "explained_variance",
        "losses/explained_variance",
        "rollout",
        ranks="one process",
        note="1 - var(R - v_old) / var(R) over the rollout (NaN when var(R) = 0)",
    ),
    _M(
        "policy_clipfrac",
        "losses/clipfrac",
        ranks="one process",
        note="the POLICY's clip fraction; CleanRL logs no value clip fraction",
    ),
)
_SB3_METRICS = (
    _M(
        "value_loss",
        "train/value_loss",
        ranks="one process",
        note="train/value_loss: the mean of this loss over every minibatch and epoch of the update (fewer epochs "
        "when target_kl stops early)",
    ),
    _M(
        "explained_variance",
        "train/explained_variance",
        "rollout",
        ranks="one process",
        note="1 - var(R - v_old) / var(R) over the rollout buffer",
    ),
    _M(
        "policy_clipfrac",
        "train/clip_fraction",
        ranks="one process",
        note="the POLICY's clip fraction (|ratio - 1| > clip_range), never the critic's; SB3 logs no value clip "
        "fraction",
    ),
)
_SLIME_SAMPLE_NOTE = (
    "{key}: per micro-batch the sum of per-sample means, summed over micro-batches and ranks, then divided by "
    "the step's number of samples in Python double: the mean over the micro-batches for equal micro-batches"
)
_SLIME_TOKEN_NOTE = (
    "{key}: per micro-batch the token sums, summed over micro-batches and ranks, then divided by the step's "
    "sum of max(n_i, 1) in Python double"
)


def _slime_metrics(note):
    loss, frac = "train/critic-value_loss", "train/critic-value_clipfrac"
    return (
        _M("value_loss", loss, note=note.format(key=loss)),
        _M("clipfrac", frac, note=note.format(key=frac) + "; the clip fraction is computed in float32"),
    )


_TORCHRL_METRICS = (
    _M(
        "value_loss",
        "loss_critic",
        "per_call",
        ranks="one process",
        note="loss_critic is multiplied by critic_coeff (default 1.0, shown here); one value per loss call, "
        "logged as the training script chooses",
    ),
    _M(
        "clipfrac",
        "value_clip_fraction",
        "per_call",
        ranks="one process",
        note="value_clip_fraction averages over every element including padding, while the loss averages over "
        "real tokens",
    ),
    _M(
        "explained_variance",
        "explained_variance",
        "per_call",
        ranks="one process",
        note="of this call's predictions against the value targets (log_explained_variance=True)",
    ),
)
_RLLIB_METRICS = (
    _M(
        "value_loss",
        "learners/default_policy/vf_loss",
        "last_call",
        "ray 2.x, new API stack (PPOTorchLearner)",
        note="vf_loss is the clamped loss of the last minibatch of the update (logged with window=1), averaged "
        "over learners; RLlib also logs vf_loss_unclipped",
    ),
    _M(
        "value_loss_unclipped",
        "learners/default_policy/vf_loss_unclipped",
        "last_call",
        "ray 2.x, new API stack (PPOTorchLearner)",
    ),
    _M(
        "explained_variance",
        "learners/default_policy/vf_explained_var",
        "last_call",
        "ray 2.x, new API stack (PPOTorchLearner)",
        note="of the last minibatch's predictions against the value targets",
    ),
    _M(
        "value_loss",
        "info/learner/default_policy/learner_stats/vf_loss",
        releases="ray 1.12 – 2.x, old API stack (PPOTorchPolicy)",
        note="vf_loss averaged (nanmean) over the SGD minibatches of the update",
    ),
)
_RLLIB_LEGACY_METRICS = (
    _M(
        "value_loss",
        "info/learner/default_policy/learner_stats/vf_loss",
        note="vf_loss averaged (nanmean) over the SGD minibatches of the update",
    ),
    _M(
        "explained_variance",
        "info/learner/default_policy/learner_stats/vf_explained_var",
        note="per minibatch, averaged",
    ),
)
_BASELINES_METRICS = (
    _M(
        "value_loss",
        "loss/value_loss",
        ranks="rank 0",
        note="loss/value_loss: the mean over every minibatch and epoch of the update (np.mean of mblossvals), "
        "before vf_coef",
    ),
    _M(
        "explained_variance",
        "misc/explained_variance",
        "rollout",
        ranks="rank 0",
        note="1 - var(R - v_old) / var(R) over the rollout",
    ),
    _M(
        "policy_clipfrac",
        "loss/clipfrac",
        ranks="rank 0",
        note="the POLICY's clip fraction; ppo2 logs none for the value",
    ),
)
_RSL_RL_METRICS = (
    _M(
        "value_loss",
        "Loss/value",
        ranks="rank 0",
        note="Loss/value: the mean of this loss over every minibatch and epoch of the update",
    ),
    _M(
        "value_loss",
        "Loss/value_function",
        releases="before v4.0.0 (renamed 2025-11-28, rsl_rl#140)",
        ranks="rank 0",
        note="the same mean, under the older name",
    ),
)
_DEEPSPEED_CHAT_METRICS = (
    _M(
        "value_loss",
        "critic_loss",
        "last_call",
        ranks="rank 0",
        note="critic_loss (TensorBoard) is the loss of the last training call of the step on rank 0; the printed "
        "'Critic Loss' is the mean over the PPO epochs' calls",
    ),
    _M(
        "value_loss",
        "critic_loss_sum",
        "sum_calls",
        ranks="rank 0",
        note="critic_loss_sum: the sum over every training call of the step (PPO epochs x batches)",
    ),
)
_TRLX_METRICS = (
    _M(
        "value_loss",
        "losses/value_loss",
        "step_mean",
        ranks="rank 0",
        note="losses/value_loss: one point per optimizer step, the mean of that minibatch's micro-batch losses",
    ),
    _M("clipfrac", "values/clipfrac", "step_mean", ranks="rank 0", note="averaged like the loss"),
    _M("vpred_mean", "values/mean", "step_mean", ranks="rank 0", note="masked mean of v (the new predictions)"),
    _M("values_mean", "old_values/mean", "step_mean", ranks="rank 0"),
    _M("values_max", "old_values/max", "step_mean", ranks="rank 0"),
    _M("values_min", "old_values/min", "step_mean", ranks="rank 0"),
    _M("returns_mean", "returns/mean", "step_mean", ranks="rank 0"),
    _M("returns_max", "returns/max", "step_mean", ranks="rank 0"),
    _M("returns_min", "returns/min", "step_mean", ranks="rank 0"),
)
_NEMO_ALIGNER_METRICS = (
    _M(
        "value_loss",
        "train/loss",
        "step_mean",
        note="train/loss (critic server): one point per global batch, the mean over its micro-batches of the "
        "loss averaged over data-parallel ranks",
    ),
    _M("grad_norm", "train/grad_norm", "step_mean", note="one value per global batch"),
)

# ---------------------------------------------------------------------------------------------------------

_MAX_FORMULA = r"\max[(v-R)^2,\ (\mathrm{clip}(v)-R)^2]"
_VERL_FORMULA = r"\tfrac12\,\mathrm{AGG}\big(\max[(v-R)^2,\ (\mathrm{clip}(v, v_{old}\pm\epsilon)-R)^2]\big)"
_DELTA = r"v_{old}+\mathrm{clamp}(v-v_{old},\pm\epsilon)"
_CLAMP = r"\mathrm{clamp}(v, v_{old}\pm\epsilon)"
_VERL_MODES = check.AGG_MODES
_VERL_OLD_MODES = tuple(m for m in check.AGG_MODES if m != "token-sum")
_VERL_PARAM = dict(param_name="critic.cliprange_value", default_eps=0.5, clip_convention="bounds", combine="max")


def _verl_entry(
    name, versions, commit, rel, notes, metrics, *, current=False, verification="real package", verified="", modes=None
):
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
        metrics=metrics,
        verification=verification,
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
            _VERL_METRICS,
            current=True,
            verification="real package",
            verified="real package: the verl 0.7.1, 0.8.0, 0.9.0 and 0.9.1 wheels, compute_value_loss run on our "
            "batches (tests/upstream)",
            modes=_VERL_MODES,
        ),
        Dialect(
            name="openrlhf",
            library="OpenRLHF v0.10.3 on",
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
            notes="clip_eps=None means no clipping. The token mode (the critic's) is unchanged since v0.7.0; the "
            "sequence mode leaves fully masked rows out since v0.10.3 (older releases: pick them in the version list).",
            compute=LibraryCode(lc.openrlhf_value_loss, _openrlhf_settings),
            supports_off=True,
            family="openrlhf",
            metrics=_OPENRLHF_METRICS,
            versions="v0.10.3 on (checked 0.10.3 and 0.11.2)",
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(" + _DELTA + r"-R)^2,\ (v-R)^2]\big)",
            modes=("token-mean", "seq-mean-token-mean"),
            limits="One process (dp_size=1): the dp_size / batch_num_tokens / global_batch_size arguments of 0.11 are "
            "not offered here.",
            verification="real package",
            verified="real package: the openrlhf 0.10.3 and 0.11.2 wheels, ValueLoss run on our batches (tests/upstream)",
            export_label="OpenRLHF ValueLoss (v0.10.3 on)",
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
            metrics=_TRL_METRICS,
            versions="1.0 – 1.12 (trl.experimental.ppo; removed after 1.12)",
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(v-R)^2,\ (" + _CLAMP + r"-R)^2]\big)",
            verification="real package",
            verified="real package: the value-loss lines of PPOTrainer.train in the trl 1.12.0 wheel, run on our batches "
            "(tests/upstream); the same lines at tags v1.0.0, v1.5.0 and v1.9.0",
            zeroes_padded_predictions=True,
            threads=("huggingface/trl#202",),
            export_label="TRL PPOTrainer",
            reduce=_trl_reduce,
        ),
        Dialect(
            name="cleanrl",
            library="CleanRL ppo.py",
            param_name="clip_coef (shared with the policy; --clip-vloss)",
            shares_policy_clip=True,
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
            metrics=_CLEANRL_METRICS,
            versions="master (2026-04)",
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(v-R)^2,\ (" + _DELTA + r"-R)^2]\big)",
            threads=("vwxyzjn/cleanrl#208",),
            export_label="CleanRL ppo.py",
            verified="restated formula (a single script, on no registry): its loss lines at fe8d8a03 were run once "
            "on our batches, bit for bit (README, How exact)",
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
            metrics=_SB3_METRICS,
            versions="2.x (2.9.2 checked)",
            formula=r"\mathrm{mean}\big((R - " + _DELTA + r")^2\big)",
            verification="real training step",
            verified="real training step: one PPO update of stable-baselines3 2.9.2 (tests/upstream); the same "
            "value-loss lines at tags v2.0.0, v2.3.0, v2.6.0 and e05d2dbe",
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
            aggregation="per-sample token means (/ max(n_i, 1), in float32) added one sample at a time, / number of "
            "samples in Python double",
            clipfrac_definition="value_clipfrac = share of tokens with |v - o| > eps (prediction clipped)",
            repo="THUDM/slime",
            path="slime/backends/megatron_utils/loss.py",
            commit="624b824a",
            notes="Counts clipped predictions, not tokens where the clipped loss wins. The per-sample denominators "
            "are float32 (rollout_mask_sums) and the masks int32, so bf16 row sums are divided and added in float32; "
            "the clip fraction is float32 in every dtype; the logged value is divided by the samples in Python "
            "double, so both numbers come back as float64.",
            compute=LibraryCode(lc.slime_value_loss),
            family="slime",
            metrics=_slime_metrics(_SLIME_SAMPLE_NOTE),
            versions="master (2026-08)",
            formula=r"\mathrm{mean}_{seq}\,\mathrm{mean}_{tok}\big(\max[(\mathrm{clip}(v)-R)^2,\ (v-R)^2]\big)",
            limits="One micro-batch of one rank, no context parallelism, one sample per rollout (a rollout of "
            "several samples shares one denominator in slime).",
            sanity_definition="prediction",
            export_label="slime (per-sample mean)",
            verified="restated formula (not on PyPI): value_loss_function, get_sum_of_sample_mean and "
            "reduce_train_step_metrics at 624b824a were run once on our batches, bit for bit (README, How exact)",
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
            metrics=_TORCHRL_METRICS,
            versions="0.14.1",
            formula=r"\mathrm{mean}\big(\max[\mathrm{huber}(v-R),\ \mathrm{huber}(\mathrm{clip}(v)-R)]\big)",
            off_values=(0.0,),
            verification="real package",
            verified="real package: ClipPPOLoss of torchrl 0.14.1 + tensordict 0.14.3 (tests/upstream)",
            sanity_definition="prediction",
            export_label="TorchRL ClipPPOLoss (critic)",
        ),
        Dialect(
            name="rllib",
            library="RLlib since ray 1.12 (loss clamp)",
            param_name="vf_clip_param",
            default_eps=10.0,
            clip_convention="none",
            combine="clamps the loss, not the value: clamp((v-R)^2, 0, vf_clip_param)",
            combine_rule="loss-clamp",
            half=False,
            aggregation="masked mean over the padded tensor: torch.sum(L[mask]) / torch.sum(mask)",
            clipfrac_definition=None,
            repo="ray-project/ray",
            path="rllib/algorithms/ppo/torch/ppo_torch_learner.py",
            commit="ray-2.60.0",
            notes="Here eps is a bound on the squared error (loss units), not on the value. "
            'vf_clip_param=float("inf") turns it off. The clamp replaced the value clip in ray 1.12.0 '
            "(ray-project/ray#22171; #19291 is the issue). The loss is squared and clamped on the padded tensor, "
            "then the real steps are selected: a NaN in padding gives a NaN gradient there.",
            compute=LibraryCode(lc.rllib_value_loss),
            family="rllib",
            metrics=_RLLIB_METRICS,
            versions="ray 1.12.0 on (ray-project/ray#22171); checked 1.12.0 and 2.60.0",
            formula=r"\mathrm{mean}\big(\mathrm{clamp}((v-R)^2,\ 0,\ \epsilon_{loss})\big)",
            eps_units="loss",
            off_values=(math.inf,),
            verification="real package",
            verified="real package: PPOTorchPolicy.loss of the ray 1.12.0 wheel and "
            "PPOTorchLearner.compute_loss_for_module of ray 2.60.0, run on our batches (tests/upstream)",
            sanity_definition="clamp",
            threads=("ray-project/ray#19291", "ray-project/ray#22171", "ray-project/ray#8908"),
            export_label="RLlib PPO (loss clamp, since ray 1.12)",
        ),
        # ---- six more trainers
        Dialect(
            name="baselines-ppo2",
            library="OpenAI baselines ppo2 (TensorFlow)",
            param_name="cliprange (shared with the policy)",
            shares_policy_clip=True,
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
            metrics=_BASELINES_METRICS,
            versions="master (2020, TF 1.x)",
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(v-R)^2,\ (" + _DELTA + r"-R)^2]\big)",
            limits="Computed in torch with TensorFlow's tie rule for the max; TF's reduce_mean may sum in another "
            "order (ulp-level differences in float32).",
            tie_rule="tensorflow",
            threads=("openai/baselines#91", "openai/baselines#1134"),
            export_label="OpenAI baselines ppo2",
            verified="restated formula (TensorFlow 1.x; PyPI's baselines is a 2018 sdist): TensorFlow's tie rule "
            "is restated in torch; an opt-in test runs ppo2's own lines in TensorFlow (README, How exact)",
            indexed=True,
        ),
        Dialect(
            name="rsl_rl",
            library="rsl_rl PPO (IsaacLab)",
            param_name="clip_param (shared with the policy; use_clipped_value_loss)",
            shares_policy_clip=True,
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
            metrics=_RSL_RL_METRICS,
            versions="5.x (rsl-rl-lib 5.5.1 checked)",
            formula=r"\mathrm{mean}\big(\max[(v-R)^2,\ (" + _DELTA + r"-R)^2]\big)",
            verification="real training step",
            verified="real training step: one PPO.update of rsl-rl-lib 5.5.1 (tests/upstream)",
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
            metrics=_DEEPSPEED_CHAT_METRICS,
            versions="master since 2023-11 (e86d0c6d; unchanged through 2025-02)",
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(v-R)^2,\ (" + _CLAMP + r"-R)^2]\big)",
            limits="--compute_fp32_loss is its own entry (deepspeed-chat-fp32): float32 inputs are not the same "
            "thing, because the flag casts after the clamp.",
            threads=("deepspeedai/DeepSpeedExamples#556", "deepspeedai/DeepSpeedExamples#956"),
            verified="restated formula (not on PyPI): critic_loss_fn at e86d0c6d (unchanged through 83757d9c, "
            "2025-02) was run once on our batches, bit for bit (README, How exact)",
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
            metrics=_TRLX_METRICS,
            versions="main (2024, archived)",
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(v-R)^2,\ (" + _CLAMP + r"-R)^2]\big)",
            verified="restated formula (archived, not on PyPI): PPOConfig.loss at 2e667e6a was run once on our "
            "batches, bit for bit (README, How exact)",
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
            metrics=_NEMO_ALIGNER_METRICS,
            versions="main (2025-05, archived; NeMo-RL has no PPO critic)",
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(" + _DELTA + r"-R)^2,\ (v-R)^2]\big)",
            off_values=(0.0,),
            limits="Value standardisation (enable_standardization) is not modelled.",
            verification="real package",
            verified="real package: the critic's loss_func of the nemo-aligner 0.7.0 wheel, run on our batches "
            "(tests/upstream); loss_clip_val <= 0 restated",
            export_label="NeMo-Aligner critic",
            reduce=_nemo_aligner_reduce,
        ),
        Dialect(
            name="rllib-legacy",
            library="RLlib up to ray 1.11 (value clip)",
            param_name="vf_clip_param",
            default_eps=10.0,
            clip_convention="delta",
            combine="max (clips the prediction, baselines-style)",
            half=False,
            aggregation="masked mean over the padded tensor: torch.sum(L[mask]) / torch.sum(mask) (reduce_mean_valid)",
            clipfrac_definition=None,
            repo="ray-project/ray",
            path="rllib/agents/ppo/ppo_torch_policy.py",
            commit="ray-1.11.0",
            notes="Here vf_clip_param is in return units, as in baselines; the default 10.0 rarely clips. Still the "
            "behaviour of ray 1.9.0 – 1.11.0 (March 2022); the loss clamp ships in ray 1.12.0.",
            limits="Padded batches are the RNN case (reduce_mean_valid over the sequence mask); a feed-forward "
            "model has no padding and takes torch.mean, which rounds differently from sum / n in bf16 only.",
            compute=LibraryCode(lc.rllib_legacy_value_loss),
            family="rllib",
            metrics=_RLLIB_LEGACY_METRICS,
            versions="up to ray 1.11.0 (rllib/agents/ppo; checked 1.11.0)",
            current=False,
            formula=r"\mathrm{mean}\big(\max[(v-R)^2,\ (" + _DELTA + r"-R)^2]\big)",
            threads=("ray-project/ray#19291", "ray-project/ray#22171", "ray-project/ray#8908"),
            verification="real package",
            verified="real package: PPOTorchPolicy.loss of the ray 1.11.0 wheel, run on our batches (tests/upstream)",
            export_label="RLlib PPO (value clip, up to ray 1.11)",
            reduce=_rllib_reduce,
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
            aggregation="token sums added one sample at a time (in the input dtype), / the sum of max(n_i, 1) in "
            "Python double",
            clipfrac_definition="value_clipfrac = share of tokens with |v - o| > eps (prediction clipped)",
            repo="THUDM/slime",
            path="slime/backends/megatron_utils/cp_utils.py",
            commit="624b824a",
            notes="With --calculate-per-token-loss slime sums tokens (sum_of_token) and divides by num_tokens, the "
            "sum over samples of max(n_i, 1): a fully masked sample still counts one token.",
            compute=LibraryCode(lc.slime_value_loss, _slime_per_token_settings),
            family="slime",
            metrics=_slime_metrics(_SLIME_TOKEN_NOTE),
            versions="master (2026-08), --calculate-per-token-loss",
            current=False,
            formula=r"\mathrm{mean}_{tok}\big(\max[(\mathrm{clip}(v)-R)^2,\ (v-R)^2]\big)",
            limits="One micro-batch of one rank, no context parallelism.",
            sanity_definition="prediction",
            export_label="slime (per-token loss)",
            verified="restated formula (not on PyPI): value_loss_function, get_sum_of_sample_mean and "
            "reduce_train_step_metrics at 624b824a were run once on our batches, bit for bit (README, How exact)",
            reduce=_slime_per_token_reduce,
        ),
        Dialect(
            name="deepspeed-chat-fp32",
            library="DeepSpeed-Chat critic_loss_fn, --compute_fp32_loss",
            param_name="cliprange_value (hard-coded 0.2)",
            default_eps=0.2,
            clip_convention="clamp",
            combine="max",
            half=True,
            aggregation="0.5 * sum(L*m) / sum(m), in float32",
            clipfrac_definition=None,
            repo="microsoft/DeepSpeedExamples",
            path="applications/DeepSpeed-Chat/dschat/rlhf/ppo_trainer.py",
            commit="e86d0c6d",
            notes="--compute_fp32_loss casts v and clip(v) to float32 after torch.clamp, so in a bf16 model the clip "
            "bounds v_old +- 0.2 are rounded to bf16 first; the squares and the mean are float32. With float32 or "
            "float64 inputs it is the plain entry.",
            compute=LibraryCode(lc.deepspeed_chat_value_loss, _deepspeed_chat_fp32_settings),
            family="deepspeed-chat",
            metrics=_DEEPSPEED_CHAT_METRICS,
            versions="master since 2023-11 (e86d0c6d; unchanged through 2025-02), --compute_fp32_loss",
            current=False,
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(v-R)^2,\ (" + _CLAMP + r"-R)^2]\big)",
            threads=("deepspeedai/DeepSpeedExamples#556", "deepspeedai/DeepSpeedExamples#956"),
            export_label="DeepSpeed-Chat critic_loss_fn (--compute_fp32_loss)",
            verified="restated formula (not on PyPI): critic_loss_fn at e86d0c6d with compute_fp32_loss=True was "
            "run once on our batches, bit for bit (README, How exact)",
        ),
        _verl_entry(
            "verl-v0.7.0",
            "v0.7.0",
            "f9c855f7",
            _VERL_070,
            "seq-mean-token-sum-norm divides the whole batch's sum by T (not the sequence mean); fixed in v0.7.1.",
            _VERL_070_METRICS,
            verification="real package",
            verified="real package: the verl 0.7.0 wheel, compute_value_loss run on our batches (tests/upstream)",
        ),
        _verl_entry(
            "verl-v0.6.1",
            "v0.6.1",
            "d62da495",
            _VERL_061,
            "First release that leaves fully masked rows out of the seq-mean modes (with masked_mean's +1e-8).",
            _VERL_061_METRICS,
            verification="real package",
            verified="real package: the verl 0.6.1 wheel, compute_value_loss run on our batches (tests/upstream)",
        ),
        _verl_entry(
            "verl-v0.5",
            "v0.5.0 – v0.6.0",
            "ddd86f52",
            _VERL_05,
            "token-mean adds 1e-8 to N; seq modes average every row, so a fully masked row gives NaN in "
            "seq-mean-token-mean (0/0) and pulls the mean down in seq-mean-token-sum.",
            _VERL_05_METRICS,
            verification="real package",
            verified="real package: the verl 0.5.0 and 0.6.0 wheels, compute_value_loss run on our batches (tests/upstream)",
        ),
        _verl_entry(
            "verl-v0.4.1",
            "v0.3.0.post0 – v0.4.1 (not v0.4.0)",
            "8d9e350e",
            _VERL_041,
            "masked_sum multiplies L * mask without where(): a NaN in padding poisons token-mean too. v0.3.x has "
            "token-mean only.",
            _VERL_OLD_METRICS,
            verification="real package",
            verified="real package: the verl 0.3.0.post0, 0.3.0.post1 and 0.4.1 wheels, compute_value_loss run on our batches (tests/upstream)",
        ),
        _verl_entry(
            "verl-v0.4.0",
            "v0.4.0",
            "07584894",
            _VERL_040,
            "v0.4.0 shipped without the 0.5 factor: its vf_loss is twice the other releases' (fixed in v0.4.1).",
            _VERL_OLD_METRICS,
            verification="real package",
            verified="real package: the verl 0.4.0 wheel, compute_value_loss run on our batches (tests/upstream)",
        ),
        _openrlhf_entry(
            "openrlhf-v0.7",
            "v0.7.0 – v0.10.2",
            "64c1cc4f",
            LibraryCode(lc.openrlhf_v07_value_loss, _openrlhf_settings),
            "token_level_loss=True (the critic's): sum(L*m)/sum(m); False: sum(L*m)/n_i per row (no eps), mean "
            "over every row",
            "The token mode is today's; the sequence mode (a ValueLoss(token_level_loss=False) you build yourself) "
            "still averages every row, so a fully masked row is 0/0 = NaN; v0.10.3 leaves such rows out. Default "
            "--critic.value_clip 0.2 until v0.8.1, 0.5 from v0.8.2.",
            _OPENRLHF_V07_METRICS,
            default_eps=0.5,
            modes=("token-mean", "seq-mean-token-mean"),
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(" + _DELTA + r"-R)^2,\ (v-R)^2]\big)",
            reduce=_openrlhf_v07_reduce,
            verification="real package",
            verified="real package: the openrlhf 0.7.0 and 0.10.2 wheels, ValueLoss run on our batches (tests/upstream)",
        ),
        _openrlhf_entry(
            "openrlhf-2025-04",
            "v0.1.4 – v0.6.x (before 2025-04-12)",
            "bb463427",
            LibraryCode(lc.openrlhf_2025_04_value_loss),
            "masked_mean(L, m, dim=-1).mean(): sum(L*m)/n_i per row (no eps), mean over every row",
            "Averaged per sequence first; a fully masked row is 0/0 = NaN. Changed by #923 (2025-04-12, v0.7.0). "
            "Default --critic.value_clip 0.2 then.",
            _OPENRLHF_OLD_METRICS,
            formula=r"\tfrac12\,\mathrm{mean}_{seq}\,\mathrm{mean}_{tok}\big(\max[("
            + _DELTA
            + r"-R)^2,\ (v-R)^2]\big)",
            reduce=_openrlhf_2025_04_reduce,
            verification="real package",
            verified="real package: the openrlhf 0.3.6.post1 and 0.6.4 wheels, ValueLoss run on our batches "
            "(tests/upstream); PyPI starts at 0.3.6.post1, so v0.1.4 - v0.3.5 were compared once with their tags",
        ),
        _openrlhf_entry(
            "openrlhf-v0.1.3",
            "v0.1.3",
            "0a1e3d11",
            LibraryCode(lc.openrlhf_v07_value_loss),
            "masked_mean(L, m) over every token: sum(L*m)/sum(m) (no eps)",
            "One release (2024-01-08) averaged over tokens; v0.1.4 went back to per-sequence means.",
            _OPENRLHF_OLD_METRICS,
            formula=r"\tfrac12\,\mathrm{mean}\big(\max[(" + _DELTA + r"-R)^2,\ (v-R)^2]\big)",
            reduce=_trl_reduce,
            verified="restated formula (no wheel on PyPI): compared once with ValueLoss at tag v0.1.3 (0a1e3d11)",
        ),
        _openrlhf_entry(
            "openrlhf-v0.1.2",
            "v0.0.1 – v0.1.2",
            "bbfd171a",
            LibraryCode(lc.openrlhf_v01_value_loss),
            "masked_mean(L, m) over each row with +1e-8: sum(L*m)/(n_i + 1e-8), mean over every row",
            "The first releases (2023-11 to 2024-01): the row means add 1e-8, so a fully masked row counts as 0 "
            "(finite) in the mean instead of NaN.",
            _OPENRLHF_OLD_METRICS,
            formula=r"\tfrac12\,\mathrm{mean}_{seq}\,\mathrm{mean}_{tok}\big(\max[("
            + _DELTA
            + r"-R)^2,\ (v-R)^2]\big)",
            reduce=_openrlhf_v01_reduce,
            verified="restated formula (no wheel on PyPI): compared once with ValueLoss at tags v0.0.1 - v0.1.2",
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
    """The value loss library ``name`` computes on this batch (one micro-batch, one rank) and the clip fraction
    it logs. slime's numbers are the logged ones (divided in Python double, so float64).

    ``cliprange`` is that library's parameter (for RLlib a bound on the squared error, where
    ``float("inf")`` is off); ``None`` turns clipping off where the library allows it.
    ``loss_agg_mode`` picks the aggregation where the library has several (``get_dialect(name).modes``).
    """
    dialect = get_dialect(name)
    check.batch_tensors(vpreds, returns, values, response_mask)
    cliprange = check_clip_param("cliprange", name, cliprange)
    if loss_agg_mode not in dialect.modes:
        raise ValueError(
            f"loss_agg_mode {loss_agg_mode!r} is not available for {dialect.library}; choose one of: "
            f"{', '.join(dialect.modes)}"
        )
    loss, clipfrac = dialect.compute(vpreds, returns, values, response_mask, cliprange, loss_agg_mode)
    return DialectResult(dialect=name, loss=loss, clipfrac=clipfrac)


_MAX_CALLS = 1_000_000  # loss calls per update that dashboard_value accepts (bounded memory)


def logged_metric(name: str, quantity: Quantity = "value_loss", release: str | None = None) -> LoggedMetric:
    """The metric entry ``name`` logs ``quantity`` under: its newest release's, or the one whose ``releases``
    (or ``key``) is ``release``. Raises ``ValueError`` naming the choices."""
    d = get_dialect(name)
    found = d.metrics_for(quantity)
    if not found:
        raise ValueError(f"{d.library} logs no {quantity}")
    if release is None:
        return found[0]
    for m in found:
        if release in (m.releases, m.key):
            return m
    choices = ", ".join(repr(m.releases or m.key) for m in found)
    raise ValueError(f"release {release!r}: {d.library} logs {quantity} for these releases: {choices}")


def dashboard_value(
    name: str,
    loss,
    *,
    quantity: Quantity = "value_loss",
    release: str | None = None,
    micro_batches: int = 1,
    mini_batches: int = 1,
    epochs: int = 1,
    ranks: int = 1,
) -> float:
    """The number library ``name``'s dashboard shows for ``quantity`` after one update, from the loss.

    ``loss`` is either a number, the loss of one micro-batch normalised by its own counts (``dialect_loss``)
    with every micro-batch alike, or an array of shape ``(ranks, epochs, mini_batches, micro_batches)``: what
    each call of the loss function returned, in order (for a release that normalises by the global counts,
    verl v0.9, those are the partial sums). The counts describe the update: ``micro_batches`` per mini-batch
    (gradient accumulation), ``mini_batches`` per epoch, ``epochs``, data-parallel ``ranks``; with an array
    they are its shape. ``release`` picks among the entry's metrics (``logged_metric``). The dashboard shows
    ``dashboard_value(name, 1.0, ...)`` times the loss when every micro-batch is alike.
    """
    metric = logged_metric(name, quantity, release)
    if not metric.of_loss:
        raise ValueError(f"{metric.key} is a statistic of the rollout, not a function of the loss")
    values = np.asarray(loss, dtype=np.float64) if not isinstance(loss, torch.Tensor) else loss.double().numpy()
    if values.ndim == 0:
        counts = {
            "ranks": ranks,
            "epochs": epochs,
            "mini_batches": mini_batches,
            "micro_batches": micro_batches,
        }
        for arg, count in counts.items():
            if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
                raise ValueError(f"{arg} must be a whole number >= 1, got {count!r}")
        if math.prod(counts.values()) > _MAX_CALLS:
            raise ValueError(f"ranks x epochs x mini_batches x micro_batches must be at most {_MAX_CALLS:,}")
        per_call = values / micro_batches if metric.reduction == "minibatch_sum_mean" else values
        values = np.full((ranks, epochs, mini_batches, micro_batches), per_call)
    elif values.ndim != 4 or values.size == 0:
        raise ValueError(
            "loss must be a number or a non-empty array of shape (ranks, epochs, mini_batches, micro_batches), "
            f"got shape {values.shape}"
        )
    elif (ranks, epochs, mini_batches, micro_batches) not in ((1, 1, 1, 1), values.shape):
        raise ValueError(
            f"the counts {(ranks, epochs, mini_batches, micro_batches)} contradict the shape {values.shape}"
        )
    if metric.ranks == "one process" and values.shape[0] > 1:
        raise ValueError(f"{get_dialect(name).library} trains in one process: ranks must be 1")
    per_rank = values[:1] if metric.ranks == "rank 0" else values
    calls = per_rank.mean(axis=0)  # (epochs, mini_batches, micro_batches)
    k = calls.shape[2]
    reduce = {
        "per_call": lambda x: x[-1, -1, -1],
        "last_call": lambda x: x[-1, -1, -1],
        "mean": lambda x: x.mean(),
        "mean_scaled": lambda x: (x / k).mean(),
        "sum_scaled": lambda x: (x / k).sum(),
        "minibatch_sum_mean": lambda x: x.sum(axis=2).mean(),
        "step_mean": lambda x: x[-1, -1].mean(),
        "sum_calls": lambda x: x.sum(),
    }[metric.reduction]
    return float(reduce(calls))


def dashboard_rows(
    name: str,
    loss: float | None = None,
    clipfrac: float | None = None,
    *,
    micro_batches: int = 1,
    mini_batches: int = 1,
    epochs: int = 1,
    ranks: int = 1,
) -> list[dict]:
    """One row per metric entry ``name`` logs: its key and releases, how it is reduced, and (for the loss and
    the clip fraction) the factor between one batch's number and the dashboard's, with both numbers when
    ``loss`` / ``clipfrac`` are given. The rows the pages show beside "what the loss is"."""
    rows = []
    for m in get_dialect(name).metrics:
        value = {"value_loss": loss, "clipfrac": clipfrac}.get(m.quantity)
        factor = None
        if m.of_loss and m.quantity in ("value_loss", "clipfrac"):
            factor = dashboard_value(
                name,
                1.0,
                quantity=m.quantity,
                release=m.releases or m.key,
                micro_batches=micro_batches,
                mini_batches=mini_batches,
                epochs=epochs,
                ranks=1 if m.ranks == "one process" else ranks,
            )
        rows.append(
            {
                "metric": m.key,
                "releases": m.releases or "every release of this entry",
                "quantity": m.quantity,
                "this batch": value if factor is not None else None,
                "your dashboard shows": None if factor is None or value is None else factor * value,
                "× this batch": factor,
                "how it is logged": m.note or m.reduction.replace("_", " "),
            }
        )
    return rows
