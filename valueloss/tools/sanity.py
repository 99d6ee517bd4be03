"""The Sanity check's report: a batch, or the summary statistics from a training log, in; the clip
fractions, the eps for the target, the verdict and the findings out, with the words the page shows.

Clip fractions are computed exactly as the libraries compute them; with summary statistics only they come
from a Gaussian model batch and are labelled as estimates. With a logged clip fraction the verdict, the
curve and the eps for the target are read on the batch or model resized to reproduce the log."""

from __future__ import annotations

from dataclasses import dataclass

from .. import _validate as check
from ..dialects import Dialect, get_dialect
from ..teach import sanity_text
from ..teach.advice import Evidence, Finding
from . import clipfrac
from .batch import Batch
from .batch_anatomy import batch_anatomy
from .findings import Graded, findings_for_summary, findings_of

__all__ = ["SanityReport", "sanity_from_batch", "sanity_from_summary"]


@dataclass(frozen=True)
class SanityReport:
    """Everything the Sanity-check page shows, its words included."""

    source: str  # "batch" or "summary"
    estimate: bool
    library: str  # the registry name: the page reads the entry itself
    eps: float
    summary: clipfrac.SummaryStats
    eps_over_sigma: float | None
    definition: str  # the curve that matters for this library
    at_eps: dict[str, float]  # this batch's (or the estimate's) clip fraction of each definition at eps
    sweep: clipfrac.Sweep  # on the graded evidence (resized to a log, where one is given)
    graded_at_eps: dict[str, float]  # the graded evidence's clip fractions at eps (the curve's markers)
    target: clipfrac.EpsTarget | None  # on the graded evidence; None where no size reproduces the log
    findings: list[Finding]  # the verdict first
    evidence: Evidence | None
    metrics: list[tuple[str, str, str]]  # (label, value, help) of the metric row
    target_note: str
    curve_caption: str | None
    estimate_note: str = ""
    step_note: str = ""
    step: float | None = None  # summary estimates: the assumed update step
    over_steps: tuple[tuple[float, float], ...] = ()  # (step, estimated clip fraction) over PLAUSIBLE_STEPS
    logged: float | None = None  # the clip fraction the user logged, if given

    @property
    def verdict(self) -> Finding:
        return self.findings[0]

    @property
    def dialect(self) -> Dialect:
        return get_dialect(self.library)


def _fractions(sweep: clipfrac.Sweep) -> dict[str, float]:
    return {name: float(sweep.curve(name)[0]) for name in clipfrac.DEFINITIONS}


def _report(source, batch, stats, eps, library, target, findings, evidence, own: Graded, graded: Graded, **extra):
    """The report from inputs validated by the caller; the numbers come from ``own`` and ``graded``."""
    d = get_dialect(library)
    definition = clipfrac.target_definition(library)
    t = graded.target
    grid = clipfrac.eps_grid_of_checked(graded.batch, eps, definition, include=None if t is None else t.eps)
    eps_sigma = clipfrac.eps_in_units_of_checked(eps, stats.return_std) if d.eps_units == "return" else None
    at = _fractions(own.at_eps)
    logged = extra.get("logged")
    reading = evidence.reading if evidence is not None else None
    if t is None:
        note = (
            "No update step reproduces your logged clip fraction on this evidence, so it gives no eps for the target."
        )
    else:
        note = sanity_text.eps_target_note(
            eps=t.eps,
            count=t.count,
            n=t.n,
            below=t.below,
            at_zero=t.at_zero,
            target=target,
            reachable=t.reachable,
            first_step=bool(evidence is not None and evidence.first_step and logged is None),
            log_step=reading.step if reading is not None and reading.source == "log" else None,
        )
    resized = graded.resized
    return SanityReport(
        source=source,
        estimate=source == "summary",
        library=library,
        eps=float(eps),
        summary=stats,
        eps_over_sigma=eps_sigma,
        definition=definition,
        at_eps=at,
        sweep=clipfrac.clipfrac_sweep(graded.batch, grid, graded.thresholds),
        graded_at_eps=_fractions(graded.at_eps),
        target=t,
        findings=findings,
        evidence=evidence,
        metrics=sanity_text.metrics(
            d,
            eps=float(eps),
            eps_sigma=eps_sigma,
            return_std=stats.return_std,
            definition=definition,
            own=at[definition],
            estimate=source == "summary",
            logged=logged,
            target=target,
            eps_for_target=None if t is None else t.eps,
            reachable=None if t is None else t.reachable,
            target_note=note,
        ),
        target_note=note,
        curve_caption=sanity_text.curve_caption(
            step=reading.step if reading is not None and reading.source == "log" else None,
            on=reading.on if reading is not None else "batch",
            unreproduced=resized is not None and resized.size is None,
        ),
        **extra,
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
    target = check.finite_number("target", target, low=0.0, high=1.0)
    if logged is not None:
        logged = check.finite_number("logged", logged, low=0.0, high=1.0)
    stats = clipfrac.summary_from_batch(batch)
    findings, evidence, own, graded = findings_of(anatomy, library, target=target, logged=logged)
    if evidence is None:
        raise ValueError(
            f"no real token has a finite v, R and v_old, so there is nothing to check: {findings[0].title}"
        )
    assert own is not None and graded is not None  # findings_of grades whenever it returns evidence
    return _report("batch", batch, stats, eps, library, target, findings, evidence, own, graded, logged=logged)


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
    the estimate over :data:`PLAUSIBLE_STEPS` too; with ``logged`` the step that reproduces the log is
    found and the verdict reads its eps numbers there."""
    check.clip_range("eps", eps)
    library = get_dialect(library).name
    target = check.finite_number("target", target, low=0.0, high=1.0)
    if logged is not None:
        logged = check.finite_number("logged", logged, low=0.0, high=1.0)
    model = clipfrac.model_batch(stats, step=step, correlation=correlation, n=n, seed=seed)
    over_steps = clipfrac.estimate_over_steps(stats, eps, library, correlation=correlation, n=n, seed=seed)
    findings, evidence, own, graded = findings_for_summary(
        stats,
        eps,
        library,
        model=model,
        target=target,
        logged=logged,
        step=step,
        correlation=correlation,
        n=n,
        seed=seed,
    )
    # a summary always grades the model batch: evidence, its reading and both gradings exist
    assert evidence is not None and evidence.reading is not None and own is not None and graded is not None
    log_step = evidence.reading.step if logged is not None else None
    return _report(
        "summary",
        model,
        stats,
        eps,
        library,
        target,
        findings,
        evidence,
        own,
        graded,
        estimate_note=sanity_text.estimate_note(n, seed, correlation, step),
        step_note=sanity_text.step_assumption(step, over_steps, log_step),
        step=step,
        over_steps=over_steps,
        logged=logged,
    )
