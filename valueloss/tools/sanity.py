"""The Sanity check's report: a batch, or the summary statistics from a training log, in; the clip
fractions, the eps for the target and the findings out.

Clip fractions are computed exactly as the libraries compute them; with summary statistics only they come
from a Gaussian model batch and are labelled as estimates."""

from __future__ import annotations

from dataclasses import dataclass

from .. import _validate as check
from ..dialects import get_dialect
from . import clipfrac
from .batch import Batch
from .batch_anatomy import batch_anatomy
from .findings import Finding, LibraryInfo, findings_for_summary, findings_of, library_info

__all__ = ["SanityReport", "step_assumption_text", "sanity_from_batch", "sanity_from_summary"]


@dataclass(frozen=True)
class SanityReport:
    """Everything the Sanity-check page shows."""

    source: str  # "batch" or "summary"
    estimate: bool
    estimate_note: str
    library: LibraryInfo
    eps: float
    summary: clipfrac.SummaryStats
    eps_over_sigma: float | None
    definition: str  # the curve that matters for this library
    at_eps: dict[str, float]  # clip fraction of each definition at eps
    sweep: clipfrac.Sweep
    target: clipfrac.EpsTarget
    findings: list[Finding]
    verdict: Finding | None = None  # the clip fraction weighed against the target (also findings[0])
    step: float | None = None  # summary estimates: the assumed update step
    over_steps: tuple[tuple[float, float], ...] = ()  # (step, estimated clip fraction) over PLAUSIBLE_STEPS
    logged: float | None = None  # the clip fraction the user logged, if given


def step_assumption_text(report: SanityReport) -> str:
    """The summary estimate's key assumption, beside the result: the step used and the range over plausible steps."""
    if not report.estimate or report.step is None or not report.over_steps:
        raise ValueError("only a summary-statistics report (an estimate with over_steps) has a step assumption")
    fracs = [c for _, c in report.over_steps]
    lo, hi = min(fracs), max(fracs)
    s_lo, s_hi = report.over_steps[0][0], report.over_steps[-1][0]
    each = ", ".join(f"{s:g}: {c:.1%}" for s, c in report.over_steps)
    return (
        f"**This estimate assumes one update moves the critic {report.step:g} of the way to R.** Over plausible "
        f"steps from {s_lo:g} to {s_hi:g} the same statistics give **{lo:.1%} to {hi:.1%}** ({each}). Enter the "
        "clip fraction your log shows to see which step your run takes, or upload a batch for exact numbers."
    )


def _report(
    source,
    estimate,
    note,
    batch,
    stats,
    eps,
    library,
    target,
    th,
    findings,
    step=None,
    over_steps=(),
    logged=None,
    *,
    tgt=None,
    at=None,
) -> SanityReport:
    """The report from inputs validated by the caller; ``tgt`` and ``at`` are reused when the caller has them."""
    info = library_info(library)
    definition = clipfrac.target_definition(library)
    tgt = tgt if tgt is not None else clipfrac.eps_for_clipfrac(batch, target, definition, th)
    grid = clipfrac.eps_grid_of_checked(batch, eps, definition, include=tgt.eps)
    sweep = clipfrac.clipfrac_sweep(batch, grid, th)
    at = at if at is not None else clipfrac.clipfrac_sweep(batch, [eps], th)
    return SanityReport(
        source=source,
        estimate=estimate,
        estimate_note=note,
        library=info,
        eps=float(eps),
        summary=stats,
        eps_over_sigma=clipfrac.eps_in_units_of_checked(eps, stats.return_std) if info.units == "return" else None,
        definition=definition,
        at_eps={"loss": float(at.loss[0]), "prediction": float(at.prediction[0]), "rllib": float(at.rllib[0])},
        sweep=sweep,
        target=tgt,
        findings=findings,
        verdict=findings[0],
        step=step,
        over_steps=tuple(over_steps),
        logged=logged,
    )


def sanity_from_batch(
    batch: Batch, eps: float, library: str = "verl", target: float = 0.1, *, logged: float | None = None
) -> SanityReport:
    """All sanity numbers and findings for a real (or synthetic) batch: exact, no model.

    ``logged``: the clip fraction the user's training log shows (compared with this batch's, and weighed).

    The boundary: eps is validated and the per-token anatomy computed once; the findings, the target eps
    and the clip fractions at eps are computed once and passed down."""
    anatomy = batch_anatomy(batch, eps)
    library = get_dialect(library).name
    if batch.n_tokens == 0:
        raise ValueError(
            "every token of the batch is masked out (the mask has no 1), so there is nothing to check. On such a "
            "batch verl's token-mean vf_loss is 0/0 = NaN and vf_clipfrac is 0. Fix the response mask"
        )
    stats = clipfrac.summary_from_batch(batch)
    th = clipfrac.clip_thresholds(batch)
    tgt = clipfrac.eps_for_clipfrac(batch, target, clipfrac.target_definition(library), th)
    at = clipfrac.clipfrac_sweep(batch, [float(eps)], th)
    findings = findings_of(anatomy, library, th, target=target, logged=logged, at_eps=at, eps_target=tgt)
    return _report("batch", False, "", batch, stats, eps, library, target, th, findings, logged=logged, tgt=tgt, at=at)


def sanity_from_summary(
    stats: clipfrac.SummaryStats,
    eps: float,
    library: str = "verl",
    target: float = 0.1,
    *,
    step: float = 0.15,
    correlation: float = 0.0,
    n: int = 20_000,
    seed: int = 0,
    logged: float | None = None,
) -> SanityReport:
    """Sanity numbers from four logged statistics; clip fractions are model-based estimates.

    The estimate depends on ``step`` (how far one update moves the critic toward R): the report carries
    the estimate over :data:`PLAUSIBLE_STEPS` too, and places ``logged`` (the user's log) among them."""
    check.clip_range("eps", eps)
    get_dialect(library)
    model = clipfrac.model_batch(stats, step=step, correlation=correlation, n=n, seed=seed)
    note = (
        f"Estimated: clip fractions come from a Gaussian model batch of {n:,} tokens (seed {seed}) with these "
        f"statistics, correlation {correlation:g} between v_old and R, and a critic that moved {step:g} of the way "
        "toward R. A real batch's numbers depend on how far your critic moves per update: upload one for exact values."
    )
    th = clipfrac.clip_thresholds(model)
    over_steps = clipfrac.estimate_over_steps(stats, eps, library, correlation=correlation, n=n, seed=seed)
    findings = findings_for_summary(
        stats, eps, library, model=model, thresholds=th, target=target, logged=logged, step=step, over_steps=over_steps
    )
    return _report("summary", True, note, model, stats, eps, library, target, th, findings, step, over_steps, logged)
