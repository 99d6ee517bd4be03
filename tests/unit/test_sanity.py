"""The Sanity check report (valueloss.tools.sanity): its clip fraction, target and sweep agree with the core,
a high clip fraction is never a green light, and a logged fraction is weighed against the batch."""

from __future__ import annotations

import inspect

import pytest

import valueloss as vl
from tests.words import numbers_in
from valueloss.tools.batch import synthetic_batch
from valueloss.tools.clipfrac import PLAUSIBLE_STEPS, SummaryStats, estimate_over_steps
from valueloss.tools.findings import findings_for_batch
from valueloss.tools.sanity import sanity_from_batch, sanity_from_summary

from .conftest import cites

ASSUMED_STEP = inspect.signature(sanity_from_summary).parameters["step"].default


def test_sanity_reports_are_consistent():
    b = synthetic_batch()
    rep = sanity_from_batch(b, 0.2, "verl", 0.15)
    assert not rep.estimate and rep.source == "batch" and rep.definition == "loss"
    _, clipfrac = vl.compute_value_loss(b.vpreds, b.returns, b.values, b.mask, 0.2)
    assert rep.at_eps["loss"] == float(clipfrac)
    assert rep.eps_over_sigma == pytest.approx(0.2 / rep.summary.return_std)
    assert rep.target.reachable and rep.target.achieved <= 0.15
    assert rep.sweep.eps[-1] >= max(0.4, rep.target.eps)
    assert rep.findings == findings_for_batch(b, 0.2, "verl", target=0.15)
    assert rep.verdict == rep.findings[0] and rep.verdict.eps_for_target == rep.target.eps
    rl = sanity_from_batch(b, 10.0, "rllib", 0.1)
    assert rl.definition == "clamp" and rl.eps_over_sigma is None and rl.dialect.eps_units == "loss"
    summ = sanity_from_summary(SummaryStats(0.5, 1.0, 0.0, 0.5), 0.2, "slime", 0.2)
    assert summ.estimate and summ.definition == "prediction" and summ.target.achieved <= 0.2
    with pytest.raises(ValueError, match="unknown dialect"):
        sanity_from_summary(SummaryStats(0.5, 1.0, 0.0, 0.5), 0.2, "keras")


def test_a_high_clip_fraction_is_never_a_green_light():
    b = synthetic_batch(value_noise=1.2)
    rep = sanity_from_batch(b, 0.2, "verl", 0.1)
    clip = rep.at_eps["loss"]
    assert clip > 0.4
    assert rep.verdict.severity == "warning" and rep.verdict.title.startswith(f"{clip:.1%} clipped, above")
    assert numbers_in(rep.verdict.title) == [round(clip, 3), 0.1]  # the clip fraction and the target
    assert not [f for f in rep.findings if f.severity == "ok"]
    summ = sanity_from_summary(SummaryStats(5.0, 3.0, 0.0, 1.0), 0.2, "verl", 0.1)
    assert summ.at_eps["loss"] > 0.8
    assert summ.verdict.severity == "warning" and "eps is too small for this return scale" in summ.verdict.title
    assert cites(summ.verdict, "hill-a/stable-baselines#216")


def test_the_estimate_over_plausible_steps_and_the_logged_value():
    stats = SummaryStats(0.5, 1.0, 0.0, 0.5)
    over = estimate_over_steps(stats, 0.5, "verl")
    assert [s for s, _ in over] == list(PLAUSIBLE_STEPS)
    at = dict(over)
    # the numbers: 0.5 % at the assumed step 0.15, 41 % at 0.5
    assert at[0.15] == pytest.approx(sanity_from_summary(stats, 0.5, "verl").at_eps["loss"], abs=1e-4)
    assert at[0.15] < 0.01 and 0.35 < at[0.5] < 0.45
    rep = sanity_from_summary(stats, 0.5, "verl", 0.1, logged=0.2)
    assert numbers_in(rep.step_note)[0] == ASSUMED_STEP  # the step the estimate assumes comes first
    assert f"{min(at.values()):.1%} to {max(at.values()):.1%}" in rep.step_note
    step = rep.evidence.reading.step
    assert at[0.3] <= 0.2 <= at[0.5] and 0.3 <= step <= 0.5
    found = next(f for f in rep.findings if "matches a step of" in f.title)
    assert f"{step:.3g}" in found.title and f"{step:.3g}" in rep.step_note
    assert rep.verdict.severity == "warning"  # the logged 20 % is weighed, not the 0.5 % estimate
    assert rep.verdict.suggested_eps > 0.5  # ... and the eps comes from the step that reproduces it


def test_a_log_beside_a_batch_is_explained_above_and_below():
    """Issue 20 item 5: a log 21x higher than the batch gets reasons that can produce it."""
    b = synthetic_batch(step=0.02)  # 2.8 % clipped at eps 0.2
    above = [f for f in sanity_from_batch(b, 0.2, logged=0.6).findings if "Your log" in f.title][0]
    assert "is above this batch" in above.title and "earlier mini-step" in above.explanation
    assert "first one clips nothing" not in above.explanation  # that only explains a log below the batch
    below = [f for f in sanity_from_batch(synthetic_batch(), 0.2, logged=0.05).findings if "Your log" in f.title][0]
    assert "sits below this batch" in below.title and cites(below, "verl-project/verl#2642")
    agree = sanity_from_batch(synthetic_batch(), 0.2, logged=0.265).findings
    assert any(f.title == "Your log agrees with this batch" for f in agree)
