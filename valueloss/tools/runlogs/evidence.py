"""A phase of a run as the decision table's evidence (``valueloss.teach.advice``), and its advice.

The log gives a clip fraction (the library's own definition), the returns' and old values' mean, min and max,
the explained variance and the value loss; no batch. The advice therefore grades the logged fraction alone
(its eps numbers come from the Sanity check, which the phase links to with the same numbers) and says which
checks the log could not decide.
"""

from __future__ import annotations

import math

from ...teach.advice import Advice, Evidence, Spread, advise
from .analysis import PhaseEvidence

__all__ = ["phase_evidence_for_advice", "phase_advice"]


def _spread(mean, low, high) -> Spread:
    """A Spread of the phase's medians; min and max are left out where their medians cross (a run whose range
    collapsed to a point in some steps can give median(min) > median(max))."""
    if low is not None and high is not None and low > high:
        low = high = None
    return Spread(mean=mean, min=low, max=high)


def phase_evidence_for_advice(p: PhaseEvidence, library: str, target: float, *, logs_clipfrac: bool) -> Evidence:
    """The decision table's evidence for one phase. ``logs_clipfrac``: the run's clip fraction is the library's
    own value clip fraction (mapped from its registry name), so it is graded as a log."""
    if p.eps is None:
        raise ValueError("eps is needed for advice: give the eps the run used")
    logged = p.clipfrac if logs_clipfrac and p.clipfrac is not None and 0.0 <= p.clipfrac <= 1.0 else None
    loss = p.loss_last
    if p.non_finite_loss:
        loss = math.nan  # the table judges only whether the logged loss is finite
    return Evidence(
        library=library,
        eps=p.eps,
        target=target,
        logged=logged,
        returns=_spread(p.return_mean, p.return_min, p.return_max),
        values=_spread(p.value_mean, p.value_min, p.value_max),
        explained_variance=p.explained_variance,
        value_loss=loss,
    )


def phase_advice(p: PhaseEvidence, library: str, target: float, *, logs_clipfrac: bool) -> Advice:
    """The Sanity check's decision table applied to this phase."""
    return advise(phase_evidence_for_advice(p, library, target, logs_clipfrac=logs_clipfrac))
