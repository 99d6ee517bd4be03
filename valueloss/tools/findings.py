"""The evidence behind the advice: a batch, or the summary statistics of a training log, turned into the
:class:`~valueloss.teach.advice.Evidence` the decision table reads, and the findings shown around its verdict.

The verdict weighs one clip fraction and reads its eps numbers off the same evidence (:class:`Graded`):
this batch, the Gaussian model batch of the statistics, or, for a logged clip fraction, the batch or
model with its updates resized until it reproduces the log. The words live in ``valueloss.teach``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from .. import _validate as check
from ..dialects import DIALECTS, get_dialect
from ..teach import batch_text, checks
from ..teach.advice import (
    Advice,
    ClipReading,
    ClipSource,
    Evidence,
    Finding,
    Spread,
    advise,
    beside_warnings,
    scale_finding,
)
from .batch import Batch
from .batch_anatomy import BatchAnatomy, batch_anatomy
from .clipfrac import (
    MAX_STEP,
    ClipThresholds,
    EpsTarget,
    Resized,
    SummaryStats,
    Sweep,
    acts_below,
    clip_thresholds,
    clipfrac_sweep,
    eps_for_clipfrac,
    model_batch,
    real_tokens,
    resize_to_clipfrac,
    target_definition,
)

__all__ = [
    "AGG_MODES_ORDER",
    "Graded",
    "batch_evidence",
    "summary_evidence",
    "findings_for_batch",
    "findings_of",
    "findings_for_summary",
    "REFERENCE_CLIPFRAC",
    "BatchVerdict",
    "batch_verdict",
    "STEP_SIZES",
]

AGG_MODES_ORDER = check.AGG_MODES
REFERENCE_CLIPFRAC = 0.1  # the Batch page's yardstick: the Sanity check's default target

# Update steps tried when a logged clip fraction is reproduced: v = v_old + step * (R - v_old), 0 to MAX_STEP.
STEP_SIZES = np.linspace(0.0, MAX_STEP, 121)


@dataclass(frozen=True)
class Graded:
    """The evidence the verdict's eps numbers were read on, kept for the page's curve and metrics.

    ``batch`` is this batch, the model batch, or one of them resized to reproduce a log (``resized``);
    ``target`` and ``at_eps`` are read on it. With a log that no size reproduces, ``resized.size`` is
    None and ``target`` is None: there is no evidence for an eps number."""

    batch: Batch
    thresholds: ClipThresholds
    at_eps: Sweep
    target: EpsTarget | None
    resized: Resized | None = None


def _spread(x: torch.Tensor) -> Spread:
    x = x[torch.isfinite(x)].double()
    if not x.numel():
        return Spread()
    return Spread(float(x.mean()), float(x.std(unbiased=False)), float(x.min()), float(x.max()))


def _grade(batch: Batch, eps: float, definition: str, target: float) -> Graded:
    """``batch``'s clip fractions at eps and its eps for the target, from one set of thresholds."""
    th = clip_thresholds(batch)
    return Graded(batch, th, clipfrac_sweep(batch, [eps], th), eps_for_clipfrac(batch, target, definition, th))


def _reading(graded: Graded, definition: str, source: ClipSource, **fields) -> ClipReading:
    t = graded.target
    return ClipReading(
        fraction=float(graded.at_eps.curve(definition)[0]),
        source=source,
        eps_for_target=None if t is None else t.eps,
        reachable=None if t is None else t.reachable,
        acts_below=acts_below(graded.thresholds, definition),
        **fields,
    )


def _log_reading(
    own: Graded,
    toward: Batch,
    eps: float,
    definition: str,
    target: float,
    logged: float,
    on: Literal["batch", "model"],
) -> tuple[ClipReading, Graded]:
    """The log graded, its eps numbers read where a critic that closes a share of each gap per update
    reproduces it (``toward``: the evidence's R and v_old with v = R); nothing, if no step does."""
    above = logged > target
    resized = resize_to_clipfrac(toward, eps, logged, definition, above=above, sizes=STEP_SIZES, start=0.0)
    if resized.size is None:
        reading = ClipReading(logged, "log", on=on, most=resized.most)
        return reading, Graded(own.batch, own.thresholds, own.at_eps, None, resized)
    assert resized.batch is not None  # a size was found, so is its batch
    g = _grade(resized.batch, eps, definition, target)
    g = Graded(g.batch, g.thresholds, g.at_eps, g.target, resized)
    reading = _reading(g, definition, "log", on=on, step=resized.size, reproduced=float(g.at_eps.curve(definition)[0]))
    return replace(reading, fraction=logged), g


def _toward(batch: Batch) -> Batch:
    """``batch`` with every prediction at its return: step 1 of :func:`resize_to_clipfrac`'s path."""
    return Batch(
        vpreds=batch.returns, returns=batch.returns, values=batch.values, mask=batch.mask, rewards=None, advantages=None
    )


def _evidence(
    batch: Batch, eps: float, library: str, target: float, logged: float | None, step: float | None, **facts
) -> tuple[Evidence, Graded, Graded]:
    """Grade ``batch`` (a model batch at ``step`` when step is given), read the log on it if there is one,
    and put the ``facts`` (spreads, median gap, first step) beside: (evidence, batch graded, evidence graded)."""
    eps = float(eps)
    definition = target_definition(library)
    on: Literal["batch", "model"] = "batch" if step is None else "model"
    own = _grade(batch, eps, definition, target)
    if logged is None:
        source: ClipSource = "batch" if step is None else "estimate"
        reading, graded = _reading(own, definition, source, on=on, step=step), own
    else:
        reading, graded = _log_reading(own, _toward(batch), eps, definition, target, logged, on)
    fraction = float(own.at_eps.curve(definition)[0])
    evidence = Evidence(
        library=library,
        eps=eps,
        target=target,
        logged=logged,
        reading=reading,
        batch_fraction=fraction if logged is not None else None,
        **facts,
    )
    return evidence, own, graded


def batch_evidence(
    batch: Batch, eps: float, library: str, *, target: float = 0.1, logged: float | None = None
) -> tuple[Evidence, Graded, Graded]:
    """The evidence of one batch (finite real tokens) at an ``eps`` validated by the caller: (evidence, this
    batch graded, the evidence graded).

    Without ``logged`` both graded records are this batch; with it the second is this batch's R and v_old
    with a critic that closes the share of each gap per update that reproduces the log."""
    v, r, v_old, _ = real_tokens(batch)
    finite = torch.isfinite(v) & torch.isfinite(r) & torch.isfinite(v_old)
    return _evidence(
        batch,
        eps,
        library,
        target,
        logged,
        None,
        returns=_spread(r),
        values=_spread(v_old),
        median_gap=float(np.median((r - v_old)[finite].abs().double().numpy())),
        first_step=bool(((v - v_old)[finite] == 0).all()),
    )


def summary_evidence(
    stats: SummaryStats, eps: float, library: str, *, model: Batch, step: float, target: float = 0.1, logged=None
) -> tuple[Evidence, Graded, Graded]:
    """The evidence of four logged statistics, from ``model`` (a :func:`model_batch` at ``step``).

    With ``logged`` the graded evidence is the model batch at the step that reproduces the log."""
    _, r, v_old, _ = real_tokens(model)
    return _evidence(
        model,
        eps,
        library,
        target,
        logged,
        float(step),
        returns=Spread(stats.return_mean, stats.return_std),
        values=Spread(stats.value_mean, stats.value_std),
        median_gap=float((r - v_old).abs().median()),
        first_step=float(step) == 0.0,
    )


def _not_finite(anatomy: BatchAnatomy) -> list[Finding]:
    batch, eps = anatomy.batch, anatomy.eps
    m = batch.mask.bool()
    finite = torch.isfinite(batch.vpreds) & torch.isfinite(batch.returns) & torch.isfinite(batch.values)
    n_real, n_pad = int((~finite & m).sum()), int((~finite & ~m).sum())
    if n_real:
        return [checks.not_finite_real(n_real)]
    if not n_pad:
        return []
    nan_modes = [mode for mode in AGG_MODES_ORDER if torch.isnan(anatomy.vf_loss(mode))]
    ok_modes = [mode for mode in AGG_MODES_ORDER if mode not in nan_modes]
    nan_libs = []
    for d in DIALECTS.values():
        param = d.default_eps if d.eps_units == "loss" else eps
        loss, _ = d.compute(batch.vpreds, batch.returns, batch.values, batch.mask, param, "token-mean")
        if torch.isnan(loss):
            nan_libs.append(d.library)
    return [checks.not_finite_padding(n_pad, ok_modes, nan_modes, nan_libs)]


def _around(evidence: Evidence, verdict: Advice, own: Graded, *, estimate: bool) -> list[Finding]:
    """The findings beside the verdict, from the same evidence."""
    d = evidence.dialect
    out = []
    if verdict.code not in ("offset", "not-finite"):
        scale = scale_finding(evidence)
        if scale is not None:
            out.append(scale)
    if evidence.first_step and verdict.code != "first-step":
        out.append(checks.first_step())
    loss, pred = float(own.at_eps.loss[0]), float(own.at_eps.prediction[0])
    if d.eps_units == "return":
        out.append(checks.definitions(loss, pred, d, estimate=estimate))
        why = checks.why_max(loss, pred, d, estimate=estimate)
        if why is not None:
            out.append(why)
    out.extend(checks.library_notes(d, evidence.eps, pred, estimate=estimate))
    return out


def _log_finding(evidence: Evidence, graded: Graded, own: Graded, *, step: float | None) -> Finding:
    g = evidence.reading
    # a graded log carries its reading and both fractions (Evidence.__post_init__ checks them)
    assert g is not None and evidence.logged is not None and evidence.batch_fraction is not None
    resized = graded.resized
    most = resized.most if resized is not None else 0.0
    if step is None:
        other = own.at_eps.prediction if evidence.dialect.sanity_definition == "loss" else own.at_eps.loss
        return checks.log_beside_batch(
            evidence.logged, evidence.batch_fraction, float(other[0]), g.step, most, evidence.dialect
        )
    return checks.log_beside_estimate(evidence.logged, g.step, step, evidence.batch_fraction, most)


def _with_verdict(verdict: Advice, others: list[Finding]) -> list[Finding]:
    """The verdict first (information, not an all-clear, beside a warning), then warnings, then the rest."""
    if any(f.severity == "warning" for f in others):
        verdict = beside_warnings(verdict)
    order = {"warning": 0, "ok": 1, "info": 2}
    return [verdict, *sorted(others, key=lambda f: order[f.severity])]


def findings_for_batch(
    batch: Batch, eps: float, library: str = "verl", *, target: float = 0.1, logged: float | None = None
) -> list[Finding]:
    """Every check that applies to this batch: the verdict on the clip fraction against ``target`` first,
    then warnings (``logged``: the user's logged fraction, which the verdict weighs)."""
    anatomy = batch_anatomy(batch, eps)
    return findings_of(anatomy, get_dialect(library).name, target=target, logged=logged)[0]


def findings_of(
    anatomy: BatchAnatomy, library: str, *, target: float = 0.1, logged: float | None = None
) -> tuple[list[Finding], Evidence | None, Graded | None, Graded | None]:
    """(findings, evidence, this batch graded, the evidence graded) of an anatomy validated at the caller's
    boundary (``library`` a known name). The evidence is None where no real token is finite (or none is
    real): then the findings say why and there is no verdict."""
    batch = anatomy.batch
    if batch.n_tokens == 0:
        return [checks.all_masked(DIALECTS["verl"])], None, None, None
    problems = _not_finite(anatomy)
    v, r, v_old, _ = real_tokens(batch)
    if not bool((torch.isfinite(v) & torch.isfinite(r) & torch.isfinite(v_old)).any()):
        return problems, None, None, None
    evidence, own, graded = batch_evidence(batch, anatomy.eps, library, target=target, logged=logged)
    verdict = advise(evidence)
    others = problems + _around(evidence, verdict, own, estimate=False)
    if logged is not None:
        others.append(_log_finding(evidence, graded, own, step=None))
    return _with_verdict(verdict, others), evidence, own, graded


def findings_for_summary(
    stats: SummaryStats,
    eps: float,
    library: str = "verl",
    *,
    model: Batch | None = None,
    target: float = 0.1,
    logged: float | None = None,
    step: float = 0.15,
    correlation: float = 0.0,
    n: int = 20_000,
    seed: int = 0,
) -> tuple[list[Finding], Evidence, Graded, Graded]:
    """(findings, evidence, the model graded, the evidence graded) from the four logged statistics; clip
    fractions come from ``model`` (a :func:`model_batch` moved ``step`` of the way to R). With ``logged``
    the verdict's eps numbers come from the model at the step that reproduces the log."""
    check.clip_range("eps", eps)
    library = get_dialect(library).name
    model = model if model is not None else model_batch(stats, step=step, correlation=correlation, n=n, seed=seed)
    evidence, own, graded = summary_evidence(stats, eps, library, model=model, step=step, target=target, logged=logged)
    verdict = advise(evidence)
    others = _around(evidence, verdict, own, estimate=True)
    if logged is not None:
        others.append(_log_finding(evidence, graded, own, step=step))
    return _with_verdict(verdict, others), evidence, own, graded


@dataclass(frozen=True)
class BatchVerdict:
    """The Batch page's verdict on its clip fraction and its reading of the histograms, from one evidence."""

    verdict: Advice
    reading: Finding
    evidence: Evidence


def batch_verdict(
    batch: Batch, eps: float, library: str = "verl", reference: float = REFERENCE_CLIPFRAC
) -> BatchVerdict:
    """Is this batch's clip fraction typical or alarming, and why: the advice against the ``reference``
    yardstick, titled for the Batch page, with what the histograms show (never contradicting it)."""
    check.clip_range("eps", eps)
    library = get_dialect(library).name
    if batch.n_tokens == 0:
        raise ValueError("every token of the batch is masked out, so it has no clip fraction to judge")
    v, r, v_old, _ = real_tokens(batch)
    finite = torch.isfinite(v) & torch.isfinite(r) & torch.isfinite(v_old)
    if not bool(finite.any()):
        raise ValueError("no real token of the batch is finite, so it has no clip fraction to judge")
    evidence, own, _ = batch_evidence(batch, eps, library, target=reference)
    verdict = advise(evidence, target_name=batch_text.yardstick_name(reference))
    largest = float((v - v_old)[finite].abs().max())
    loss, pred = float(own.at_eps.loss[0]), float(own.at_eps.prediction[0])
    reading = batch_text.histogram_reading(evidence, loss, pred, largest)
    return BatchVerdict(batch_text.labelled(verdict), reading, evidence)
