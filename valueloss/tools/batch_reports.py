"""Batch reports: statistics, histograms and the token, aggregation and dialect tables of one batch, with the
words the Batch page shows beside them (written in ``valueloss.teach.batch_text`` from these numbers)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from .. import _validate as check
from ..anatomy import REGION_LABELS, ValueLossTerms
from ..dialects import DIALECTS, version_label
from ..losses import agg_loss
from ..teach import batch_text
from ..teach.advice import shown
from .batch import Batch
from .batch_anatomy import BatchAnatomy, batch_anatomy

__all__ = [
    "MAX_BINS",
    "BatchAnatomy",
    "batch_anatomy",
    "BatchStats",
    "Histogram",
    "batch_stats",
    "histogram",
    "token_table",
    "TOKEN_NUMBER_COLUMNS",
    "aggregation_table",
    "aggregation_weights",
    "dialect_table",
    "BatchReport",
    "analyse_batch",
    "DialectView",
    "dialect_view",
]

MAX_BINS = 1000  # a figure cannot show more; 10**9 bins would allocate gigabytes


@dataclass(frozen=True)
class Histogram:
    """Pre-binned counts (so a figure ships ``bins`` numbers, not every token)."""

    edges: np.ndarray
    counts: np.ndarray


def histogram(x: np.ndarray, eps: float, bins: int = 60) -> Histogram:
    """Counts of ``x`` on a range that always shows ``[-eps, eps]``; non-finite values are dropped."""
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or not 1 <= bins <= MAX_BINS:
        raise ValueError(f"bins must be a whole number between 1 and {MAX_BINS}, got {bins!r}")
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    lo = min(float(x.min()) if x.size else 0.0, -eps)
    hi = max(float(x.max()) if x.size else 0.0, eps)
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    pad = 0.02 * (hi - lo)
    counts, edges = np.histogram(x, bins=bins, range=(lo - pad, hi + pad))
    return Histogram(edges=edges, counts=counts)


@dataclass(frozen=True)
class BatchStats:
    """Per-batch numbers the Batch page shows; token arrays hold real tokens only, row-major."""

    eps: float
    n_rows: int
    n_tokens: int
    width: int
    lengths: np.ndarray
    delta: np.ndarray  # v - v_old
    gap: np.ndarray  # R - v_old
    loss_clipfrac: float  # verl's vf_clipfrac: share of real tokens with L_clip > L_unclip
    pred_clipfrac: float  # slime's value_clipfrac: share with |v - v_old| > eps
    zero_grad_share: float  # share of real tokens whose d loss / d v is exactly 0
    median_abs_gap: float  # median |R - v_old|: roughly eps x the rollouts the critic needs to catch up
    nan_real: int  # NaN / inf on real tokens (any of v, R, v_old)
    nan_padding: int  # NaN / inf in padded slots
    value_mean: float
    value_std: float
    return_mean: float
    return_std: float
    value_min: float
    value_max: float
    return_min: float
    return_max: float


def _real(x: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    return torch.masked_select(x, mask.bool()).double().numpy()


def _stat(fn, x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(fn(x)) if x.size else float("nan")


def batch_stats(batch: Batch, eps: float) -> BatchStats:
    """:func:`stats_of` a fresh :func:`batch_anatomy` (verl's bounds clip)."""
    return stats_of(batch_anatomy(batch, eps))


def stats_of(anatomy: BatchAnatomy) -> BatchStats:
    """Clip fractions, zero-gradient share and the distributions of Δ and R - v_old over real tokens.

    ``loss_clipfrac`` is verl's ``vf_clipfrac`` (computed by :func:`compute_value_loss`, so it is the
    logged number); the zero-gradient share is the share of real tokens whose closed-form gradient
    d max(L_unclip, L_clip)/dv is exactly 0: the clipped tokens plus any already sitting at v = R.
    """
    batch, eps, terms = anatomy.batch, anatomy.eps, anatomy.terms
    m = batch.mask.bool()
    clipfrac = anatomy.vf_clipfrac()
    n = int(m.sum().item())
    finite = torch.isfinite(batch.vpreds) & torch.isfinite(batch.returns) & torch.isfinite(batch.values)
    v, r, v_old = _real(batch.vpreds, m), _real(batch.returns, m), _real(batch.values, m)
    lengths = batch.lengths.numpy()
    share = (lambda b: float(b[m].double().mean().item())) if n else (lambda b: 0.0)
    return BatchStats(
        eps=float(eps),
        n_rows=batch.shape[0],
        n_tokens=n,
        width=batch.shape[1],
        lengths=lengths,
        delta=v - v_old,
        gap=r - v_old,
        loss_clipfrac=float(clipfrac.item()),
        pred_clipfrac=share(terms.prediction_clipped),
        zero_grad_share=share(terms.grad == 0),
        median_abs_gap=_stat(np.median, np.abs(r - v_old)),
        nan_real=int((~finite & m).sum().item()),
        nan_padding=int((~finite & ~m).sum().item()),
        value_mean=_stat(np.mean, v_old),
        value_std=_stat(np.std, v_old),
        return_mean=_stat(np.mean, r),
        return_std=_stat(np.std, r),
        value_min=_stat(np.min, v_old),
        value_max=_stat(np.max, v_old),
        return_min=_stat(np.min, r),
        return_max=_stat(np.max, r),
    )


# The token table's real-valued columns (shown as numbers); the others are indices, flags and the region.
TOKEN_NUMBER_COLUMNS = (
    "v_old",
    "v",
    "R",
    "Δ = v − v_old",
    "R − v_old",
    "clip(v)",
    "L_unclip",
    "L_clip",
    "max",
    "dmax/dv",
)


def token_table(batch: Batch, eps: float, max_rows: int | None = 200) -> pd.DataFrame:
    """Per real token: inputs, both terms, who wins, the region and the gradient (verl's bounds clip)."""
    return tokens_of(batch_anatomy(batch, eps), max_rows)


def tokens_of(anatomy: BatchAnatomy, max_rows: int | None = 200) -> pd.DataFrame:
    """The token table read off ``anatomy`` (the first ``max_rows`` real tokens, row-major)."""
    batch = anatomy.batch
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1):
        raise ValueError(f"max_rows must be a positive integer or None, got {max_rows!r}")
    m = batch.mask.bool()
    idx = torch.nonzero(m)
    if max_rows is not None:
        idx = idx[:max_rows]
    rows, ts = idx[:, 0], idx[:, 1]
    v, r, v_old = (x[rows, ts] for x in (batch.vpreds, batch.returns, batch.values))
    terms = ValueLossTerms(**{k: getattr(anatomy.terms, k)[rows, ts] for k in ValueLossTerms.__dataclass_fields__})
    regions = terms.region.numpy()
    return pd.DataFrame(
        {
            "row": rows.numpy(),
            "t": ts.numpy(),
            "v_old": v_old.double().numpy(),
            "v": v.double().numpy(),
            "R": r.double().numpy(),
            "Δ = v − v_old": (v - v_old).double().numpy(),
            "R − v_old": (r - v_old).double().numpy(),
            "clip(v)": terms.v_clipped.double().numpy(),
            "L_unclip": terms.loss_unclipped.double().numpy(),
            "L_clip": terms.loss_clipped.double().numpy(),
            "max": terms.loss_max.double().numpy(),
            "loss clipped": terms.clipped_wins.numpy(),
            "|Δ| > eps": terms.prediction_clipped.numpy(),
            "region": [REGION_LABELS[int(c)] for c in regions],
            "dmax/dv": terms.grad.double().numpy(),
        }
    )


def aggregation_weights(mask: torch.Tensor, loss_agg_mode: str) -> torch.Tensor:
    """d AGG(L, mask) / d L for every cell, by autograd (exact: AGG is linear in L).

    Multiply by 0.5 for verl's ``vf_loss``. Padding gets weight 0.
    """
    check.mask_tensor("mask", mask)
    L = torch.zeros(mask.shape, dtype=torch.float64, requires_grad=True)
    (weights,) = torch.autograd.grad(agg_loss(L, mask.to(torch.float64), loss_agg_mode), L)
    return weights


def aggregation_table(batch: Batch, eps: float) -> pd.DataFrame:
    """Each verl mode's ``vf_loss`` and the weight it gives one token of the shortest and longest row.

    The weights are ``d AGG / d L_token`` (without the 0.5): token-mean gives every token ``1/N``;
    seq-mean-token-mean gives a token of a short sequence ``n_long / n_short`` times the weight of
    a token of a long one, so short answers dominate the critic's gradient.
    """
    return aggregation_of(batch_anatomy(batch, eps))


def aggregation_of(anatomy: BatchAnatomy) -> pd.DataFrame:
    """The aggregation table from ``anatomy``'s per-token max term, one record per verl mode."""
    batch = anatomy.batch
    lengths = batch.lengths
    nonempty = torch.nonzero(lengths > 0).flatten()
    records = []
    for mode in (
        "token-mean",
        "token-sum",
        "seq-mean-token-sum",
        "seq-mean-token-mean",
        "seq-mean-token-sum-norm",
    ):
        loss = anatomy.vf_loss(mode)
        weights = aggregation_weights(batch.mask, mode)
        if len(nonempty):
            short = int(nonempty[torch.argmin(lengths[nonempty])])
            long = int(nonempty[torch.argmax(lengths[nonempty])])
            n_short, n_long = int(lengths[short]), int(lengths[long])
            w_short, w_long = float(weights[short, 0]), float(weights[long, 0])
        else:
            n_short = n_long = 0
            w_short = w_long = float("nan")
        records.append(
            {
                "mode": mode,
                "vf_loss": float(loss.item()),
                "short length": n_short,
                "long length": n_long,
                "weight per token (short)": w_short,
                "weight per token (long)": w_long,
                "short / long per token": w_short / w_long if w_long else float("nan"),
                "weight per sequence (short)": w_short * n_short,
                "weight per sequence (long)": w_long * n_long,
            }
        )
    return pd.DataFrame.from_records(records)


def _loss_units_note(d) -> str:
    return (
        f"{d.library}: {d.param_name} bounds the squared error (loss units), not the value, so eps does not "
        "carry over; shown at its own setting."
    )


def dialect_table(batch: Batch, eps: float, rllib_clip: float | None = None) -> pd.DataFrame:
    """Every library's logged value loss and clip fraction on this batch, at the same eps.

    Clipping is switched on (at ``eps``) for the libraries where it is off by default (SB3, TorchRL).
    Libraries whose parameter is in loss units (RLlib since ray 1.12: ``eps_units == "loss"``) get
    ``rllib_clip`` (default: their own default, ``vf_clip_param = 10.0``). Every registry entry is a
    row, older releases included; ``library`` names the releases. ``clip fraction`` is NaN where the
    library logs none (``logs clip fraction`` is False).
    """
    anatomy = batch_anatomy(batch, eps)
    if rllib_clip is not None:
        check.clip_range("rllib_clip", rllib_clip)
    return dialects_of(anatomy, rllib_clip)


def dialects_of(anatomy: BatchAnatomy, rllib_clip: float | None = None) -> pd.DataFrame:
    """The dialect table at ``anatomy``'s eps; ``rllib_clip`` must already be validated (the boundary's job).

    Each library's own computation runs (its logged number is the point), in token-mean, the mode every
    entry has; the inputs were validated once at the boundary, so ``dialect_loss``'s checks are not repeated.
    """
    batch, eps = anatomy.batch, anatomy.eps
    records = []
    for name, d in DIALECTS.items():
        param = eps if d.eps_units == "return" else (d.default_eps if rllib_clip is None else rllib_clip)
        assert param is not None, f"{name}: an entry whose parameter is not in return units needs a default_eps"
        loss, clipfrac = d.compute(batch.vpreds, batch.returns, batch.values, batch.mask, param, "token-mean")
        records.append(
            {
                "dialect": name,
                "library": d.library,
                "parameter": d.param_name,
                "value": float(param),
                "loss": float(loss.item()),
                "clip fraction": float("nan") if clipfrac is None else float(clipfrac.item()),
                "logs clip fraction": clipfrac is not None,
                "clip fraction logged": d.clipfrac_definition or "not logged",
                "definition": d.sanity_definition if d.clipfrac_definition else None,
                "note": _loss_units_note(d)
                if d.eps_units == "loss"
                else ("default: off; on here" if d.default_eps is None else ""),
                "logged as": d.loss_metric or "",
                "what the logged number is": d.logged,
                "releases": d.versions,
            }
        )
    return pd.DataFrame.from_records(records)


@dataclass(frozen=True)
class BatchReport:
    """Everything the Batch page draws, computed once per (batch, eps) and read in one aggregation mode
    (:func:`for_mode`), its words included: ``metrics`` are (label, value, help), the rest are sentences written
    from these numbers."""

    stats: BatchStats
    delta_hist: Histogram
    gap_hist: Histogram
    vf_loss: float
    vf_clipfrac: float
    loss_agg_mode: str
    tokens: pd.DataFrame
    aggregation: pd.DataFrame
    dialects: pd.DataFrame
    metrics: list[tuple[str, str, str]]
    caption: str
    non_finite: str | None  # the warning about NaN / inf, where there is any
    short_len: int  # tokens of the shortest and the longest non-empty sequence
    long_len: int
    aggregation_reading: str
    token_caption: str


def analyse_batch(
    batch: Batch,
    eps: float,
    loss_agg_mode: str = "token-mean",
    *,
    table_rows: int = 200,
    bins: int = 60,
    rllib_clip: float | None = None,
) -> BatchReport:
    """One call for the page: statistics, histograms, verl's loss in the chosen mode, the tables.

    The inputs are validated here, once; the per-token anatomy is computed once and every table and
    statistic is read off it."""
    anatomy = batch_anatomy(batch, eps)
    check.agg_mode(loss_agg_mode)
    if rllib_clip is not None:
        check.clip_range("rllib_clip", rllib_clip)
    stats = stats_of(anatomy)
    lengths = stats.lengths
    report = BatchReport(
        stats=stats,
        delta_hist=histogram(stats.delta, eps, bins),
        gap_hist=histogram(stats.gap, eps, bins),
        vf_loss=math.nan,  # the mode's own numbers: for_mode below
        vf_clipfrac=float(anatomy.vf_clipfrac().item()),
        loss_agg_mode="",
        tokens=tokens_of(anatomy, table_rows),
        aggregation=aggregation_of(anatomy),
        dialects=dialects_of(anatomy, rllib_clip),
        metrics=[
            ("loss clip fraction", shown("clip", stats.loss_clipfrac), batch_text.METRIC_HELP["loss clip fraction"]),
            (
                "prediction clip fraction",
                shown("prediction", stats.pred_clipfrac),
                batch_text.METRIC_HELP["prediction clip fraction"],
            ),
            (
                "zero-gradient share",
                shown("clip", stats.zero_grad_share),
                batch_text.METRIC_HELP["zero-gradient share"],
            ),
        ],
        caption=batch_text.batch_caption(
            stats.n_tokens,
            stats.n_rows,
            stats.width,
            int(lengths.min()) if lengths.size else 0,
            int(lengths.max()) if lengths.size else 0,
        ),
        non_finite=batch_text.non_finite_warning(stats.nan_real, stats.nan_padding)
        if stats.nan_real or stats.nan_padding
        else None,
        short_len=0,
        long_len=0,
        aggregation_reading="",
        token_caption=batch_text.token_caption(min(table_rows, stats.n_tokens), stats.n_tokens),
    )
    return for_mode(report, loss_agg_mode)


def for_mode(report: BatchReport, loss_agg_mode: str) -> BatchReport:
    """``report`` read in aggregation mode ``loss_agg_mode``: only verl's vf_loss, its metric and the reading of
    the token weights depend on the mode, and the aggregation table already holds every mode's numbers, so a
    mode change recomputes nothing (the page caches one report per batch and eps)."""
    check.agg_mode(loss_agg_mode)
    by_mode = report.aggregation.set_index("mode")
    short_len, long_len = int(by_mode.at[loss_agg_mode, "short length"]), int(by_mode.at[loss_agg_mode, "long length"])
    vf_loss = float(by_mode.at[loss_agg_mode, "vf_loss"])
    vf_metric = (f"vf_loss ({loss_agg_mode})", shown("value_loss", vf_loss), batch_text.METRIC_HELP["vf_loss"])
    return replace(
        report,
        vf_loss=vf_loss,
        loss_agg_mode=loss_agg_mode,
        metrics=[*(m for m in report.metrics if not m[0].startswith("vf_loss")), vf_metric],
        short_len=short_len,
        long_len=long_len,
        aggregation_reading=batch_text.aggregation_reading(
            short_len, long_len, float(by_mode.at["seq-mean-token-mean", "short / long per token"])
        ),
    )


@dataclass(frozen=True)
class DialectView:
    """The library rows the page shows: the current releases and the older ones picked, ready to draw."""

    labels: list[str]
    losses: list[float]
    clip_fractions: list[float | None]  # None where the library logs none
    definitions: list[str | None]
    table: pd.DataFrame  # key columns first, the clip fraction as written
    caption: str


def dialect_view(report: BatchReport, older: Sequence[str] = ()) -> DialectView:
    """The rows of ``report.dialects`` for every current release plus the ``older`` entries named."""
    d = report.dialects
    d = d[[DIALECTS[n].current or n in older for n in d["dialect"]]]
    logs = list(d["logs clip fraction"])
    fractions = [c if logged else None for c, logged in zip(d["clip fraction"], logs, strict=True)]
    columns = ["library", "clip fraction", "loss", "parameter", "value", "clip fraction logged", "logged as"]
    table = d[[*columns, "what the logged number is", "note"]].copy()
    table["clip fraction"] = [shown("clip", c) if c is not None else "not logged" for c in fractions]
    return DialectView(
        labels=[n if DIALECTS[n].current else version_label(n) for n in d["dialect"]],
        losses=list(d["loss"]),
        clip_fractions=fractions,
        definitions=list(d["definition"]),
        table=table,
        caption=batch_text.dialect_caption([DIALECTS[n].library for n in d["dialect"] if not DIALECTS[n].half]),
    )
