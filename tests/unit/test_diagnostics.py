"""Clip fractions and the Sanity check's evidence: the eps sweep (exact and monotone), the eps for a target in
whole tokens, the model estimate, the update step that reproduces a log, and the findings around the verdict.
The decision table itself is enumerated in tests/unit/test_advice.py."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import valueloss as vl
from valueloss.threads import THREADS, Source, Thread, thread
from valueloss.tools.batch import Batch, synthetic_batch
from valueloss.tools.clipfrac import (
    DEFINITIONS,
    SummaryStats,
    clipfrac_sweep,
    eps_for_clipfrac,
    eps_grid,
    eps_in_units,
    model_batch,
    summary_from_batch,
    target_definition,
)
from valueloss.tools.findings import findings_for_batch, findings_for_summary
from valueloss.tools.sanity import sanity_from_batch, sanity_from_summary

THREAD_URL = re.compile(r"^https://github\.com/[\w.-]+/[\w.-]+/(issues|pull)/\d+$")


def cites(finding, label: str) -> bool:
    return thread(label) in finding.links


def as_batch(v, r, o, m) -> Batch:
    return Batch(vpreds=v, returns=r, values=o, mask=m, rewards=None, advantages=None)


@st.composite
def small_batches(draw, dyadic: bool = False):
    """Random padded batches; with ``dyadic`` all numbers are multiples of 1/8 so float arithmetic is exact."""
    rows, width = draw(st.integers(1, 4)), draw(st.integers(1, 8))
    shape = (rows, width)
    if dyadic:
        ints = st.integers(-40, 40)
        v, r, o = (torch.from_numpy(draw(arrays(np.int64, shape, elements=ints))).double() / 8 for _ in range(3))
    else:
        finite = st.floats(-20, 20, allow_nan=False, width=32)
        v, r, o = (torch.from_numpy(draw(arrays(np.float32, shape, elements=finite))) for _ in range(3))
        # Put some predictions exactly on the band edges and on v_old, where ties live.
        edge = draw(arrays(np.int8, shape, elements=st.integers(0, 3)))
        e = torch.tensor(0.25)
        v = torch.where(torch.from_numpy(edge) == 1, o + e, torch.where(torch.from_numpy(edge) == 2, o, v))
    m = torch.from_numpy(draw(arrays(np.bool_, shape))).to(v.dtype)
    return as_batch(v, r, o, m)


GRID = np.array([0.0, 0.01, 0.1, 0.125, 0.25, 0.3, 0.5, 1.0, 2.0, 5.0, 50.0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sweep_equals_verl_clipfrac_bit_for_bit(dtype):
    b = synthetic_batch(seed=3, dtype=dtype)
    sweep = clipfrac_sweep(b, GRID)
    for eps, got in zip(GRID, sweep.loss, strict=True):
        _, clipfrac = vl.compute_value_loss(b.vpreds, b.returns, b.values, b.mask, float(eps))
        assert got == float(clipfrac), eps


def test_sweep_prediction_and_rllib_definitions():
    b = synthetic_batch(seed=8)
    sweep = clipfrac_sweep(b, GRID)
    real = b.mask.bool()
    v, r, o = b.vpreds[real], b.returns[real], b.values[real]
    for i, eps in enumerate(GRID):
        assert sweep.prediction[i] == pytest.approx(float(((v - o).abs() > eps).double().mean()), rel=1e-6)
        assert sweep.clamp[i] == pytest.approx(float((((v - r) ** 2) > eps).double().mean()), rel=1e-6)
        if eps > 0:  # TorchRL's value_clip_fraction over the real tokens alone (it counts padding; 0 is off)
            torchrl = vl.dialect_loss("torchrl", v[None], r[None], o[None], torch.ones(1, len(v)), float(eps))
            assert sweep.prediction[i] == pytest.approx(float(torchrl.clipfrac), rel=1e-6)


@settings(max_examples=200, deadline=None)
@given(small_batches(), st.lists(st.sampled_from([0.0, 0.1, 0.2, 0.25, 0.3, 1.0, 7.5, 1e-7]), min_size=1, max_size=4))
def test_thresholds_reproduce_the_direct_computation_bit_for_bit(batch, eps_list):
    """The sorted-threshold sweep equals verl's own clip fraction (and the direct counts) at every eps, ties included."""
    sweep = clipfrac_sweep(batch, eps_list)
    real = batch.mask.bool()
    v, r, o = batch.vpreds[real], batch.returns[real], batch.values[real]
    for i, eps in enumerate(eps_list):
        _, clipfrac = vl.compute_value_loss(batch.vpreds, batch.returns, batch.values, batch.mask, eps)
        assert sweep.loss[i] == float(clipfrac)
        denom = batch.mask.sum() + 1e-8
        pred = float(((v - o).abs() > eps).sum().to(batch.mask.dtype) / denom)
        rllib = float((((v - r) ** 2) > eps).sum().to(batch.mask.dtype) / denom)
        assert sweep.prediction[i] == pred and sweep.clamp[i] == rllib


def test_thresholds_handle_nan_and_inf_tokens():
    v = torch.tensor([[0.5, float("nan"), 0.3, 1.0]])
    o = torch.tensor([[0.0, 0.0, float("inf"), 0.0]])
    r = torch.tensor([[1.0, 1.0, 1.0, float("nan")]])
    b = as_batch(v, r, o, torch.ones_like(v))
    sweep = clipfrac_sweep(b, [0.0, 0.1, 0.6, 100.0])
    for i, eps in enumerate([0.0, 0.1, 0.6, 100.0]):
        _, clipfrac = vl.compute_value_loss(b.vpreds, b.returns, b.values, b.mask, eps)
        assert sweep.loss[i] == float(clipfrac)


@settings(max_examples=150, deadline=None)
@given(small_batches())
def test_clip_fraction_never_decreases_as_eps_decreases(batch):
    grid = np.unique(np.concatenate([np.linspace(0, 3, 61), [0.25, 0.125]]))
    sweep = clipfrac_sweep(batch, grid)
    for name in DEFINITIONS:
        assert np.all(np.diff(sweep.curve(name)) <= 0), name


@settings(max_examples=150, deadline=None)
@given(small_batches(dyadic=True), st.sampled_from([0.0, 0.125, 0.25, 0.5, 1.0, 3.0]))
def test_loss_clipped_tokens_are_prediction_clipped_in_exact_arithmetic(batch, eps):
    sweep = clipfrac_sweep(batch, [eps])
    assert sweep.loss[0] <= sweep.prediction[0]


def test_sweep_validates_the_grid():
    b = synthetic_batch(batch_size=2, min_len=2, max_len=3)
    for bad in ([], [[0.1]], [-0.1], [float("nan")], np.zeros(6000)):
        with pytest.raises(ValueError, match="eps_values"):
            clipfrac_sweep(b, bad)


@settings(max_examples=60, deadline=None)
@given(small_batches(), st.floats(0.0, 1.0), st.sampled_from(list(DEFINITIONS)))
def test_eps_for_target_is_the_smallest_eps_at_or_below_target(batch, target, definition):
    """Counted in whole tokens and compared exactly: count / n <= target, and any smaller eps clips more."""
    res = eps_for_clipfrac(batch, target, definition)
    n = int(batch.mask.sum())
    assert res.n == n
    if n == 0:  # no real token: eps = 0 already clips none
        assert res.eps == 0.0 and res.count == 0
        return
    if not res.reachable:
        assert res.eps is None and Fraction(res.at_zero, n) < Fraction(target)
        return
    assert Fraction(res.count, n) <= Fraction(target) and res.achieved == res.count / n
    real = batch.mask.bool()
    v, r, o = batch.vpreds[real], batch.returns[real], batch.values[real]

    def count(eps):
        e = torch.tensor(eps, dtype=batch.values.dtype)
        if definition == "prediction":
            return int(((v - o).abs() > e).sum())
        if definition == "clamp":
            return int((((v - r) ** 2) > e).sum())
        clipped = torch.max(torch.min(v, o + e), o - e)
        return int((((clipped - r) ** 2) > ((v - r) ** 2)).sum())

    assert count(res.eps) == res.count
    if res.eps > 0:  # the next smaller eps (in the batch's dtype, where torch applies it) clips more than the target
        e = torch.tensor(res.eps, dtype=batch.values.dtype)
        below = float(torch.nextafter(e, torch.zeros_like(e)))
        assert count(below) == res.below and Fraction(res.below, n) > Fraction(target)


def test_eps_for_target_counts_tokens_so_ten_percent_meets_a_ten_percent_target():
    """Issue 20 item 7: "any smaller eps gives more than the target (10.000%)" where 2,000 of 20,000 met it."""
    model = model_batch(SummaryStats(0.5, 1.0, 0.0, 0.5), step=0.15)
    res = eps_for_clipfrac(model, 0.1)
    assert (res.count, res.n, res.below) == (2000, 20000, 2001)
    from valueloss.teach.sanity_text import eps_target_note

    note = eps_target_note(
        eps=res.eps, count=res.count, n=res.n, below=res.below, at_zero=res.at_zero, target=0.1,
        reachable=True, first_step=False,
    )  # fmt: skip
    assert "clips 2,000 of 20,000 tokens (10.000%)" in note and "at least 2,001 (10.005%), more than the 10%" in note


def test_eps_for_target_on_the_default_batch():
    b = synthetic_batch()
    res = eps_for_clipfrac(b, 0.1)
    assert res.reachable and 0.2 < res.eps < 0.5 and res.achieved <= 0.1
    _, clipfrac = vl.compute_value_loss(b.vpreds, b.returns, b.values, b.mask, res.eps)
    assert float(clipfrac) == pytest.approx(res.achieved, abs=1e-7)
    zero = eps_for_clipfrac(b, 0.0)
    assert zero.achieved == 0.0 and zero.eps >= res.eps


def test_eps_for_target_unreachable_on_the_first_minibatch():
    b = synthetic_batch(step=0.0, pred_noise=0.0)
    res = eps_for_clipfrac(b, 0.1)
    assert not res.reachable and res.eps is None and res.at_zero == 0
    with pytest.raises(ValueError, match="target"):
        eps_for_clipfrac(b, 1.5)
    with pytest.raises(ValueError, match="definition"):
        eps_for_clipfrac(b, 0.1, "ratio")


def test_eps_in_units_and_grid():
    assert eps_in_units(0.2, 0.5) == pytest.approx(0.4)
    assert eps_in_units(0.2, 0.0) is None
    with pytest.raises(ValueError, match="eps"):
        eps_in_units(-1.0, 1.0)
    b = synthetic_batch()
    grid = eps_grid(b, 0.2, include=3.0)
    assert grid[0] == 0 and grid[-1] >= 3.0 and len(grid) == 201
    with pytest.raises(ValueError, match="n must"):
        eps_grid(b, 0.2, n=1)


def test_summary_stats_validation_and_from_batch():
    with pytest.raises(ValueError, match="return_std"):
        SummaryStats(0.0, -1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="value_mean"):
        SummaryStats(0.0, 1.0, float("nan"), 1.0)
    with pytest.raises(ValueError, match="return_mean"):
        SummaryStats(True, 1.0, 0.0, 1.0)
    b = synthetic_batch(seed=1)
    s = summary_from_batch(b)
    real = b.mask.bool()
    assert s.return_mean == pytest.approx(float(b.returns[real].double().mean()))
    assert s.value_std == pytest.approx(float(b.values[real].double().std(unbiased=False)))


def test_model_batch_has_the_requested_statistics():
    stats = SummaryStats(return_mean=2.0, return_std=3.0, value_mean=-1.0, value_std=0.5)
    m = model_batch(stats, step=0.25, correlation=0.6, n=200_000, seed=1, dtype=torch.float64)
    r, o = m.returns.flatten(), m.values.flatten()
    assert float(r.mean()) == pytest.approx(2.0, abs=0.03) and float(r.std()) == pytest.approx(3.0, rel=0.01)
    assert float(o.mean()) == pytest.approx(-1.0, abs=0.01) and float(o.std()) == pytest.approx(0.5, rel=0.01)
    assert float(torch.corrcoef(torch.stack([r, o]))[0, 1]) == pytest.approx(0.6, abs=0.01)
    torch.testing.assert_close(m.vpreds, o[None] + 0.25 * (r - o)[None])
    with pytest.raises(ValueError, match="correlation"):
        model_batch(stats, correlation=1.5)
    with pytest.raises(ValueError, match="step"):
        model_batch(stats, step=-0.1)
    with pytest.raises(ValueError, match="n must"):
        model_batch(stats, n=0)


def test_model_estimate_matches_the_gaussian_closed_form():
    """With v = v_old + s (R - v_old), s <= 1, a token clips iff s |R - v_old| > eps: P(|N(mu, sd)| > eps / s)."""
    stats = SummaryStats(return_mean=0.5, return_std=1.0, value_mean=0.0, value_std=0.5)
    step, eps, rho = 0.3, 0.2, 0.4
    model = model_batch(stats, step=step, correlation=rho, n=200_000, seed=3)
    estimate = clipfrac_sweep(model, [eps]).loss[0]
    mu = stats.return_mean - stats.value_mean
    sd = math.sqrt(stats.return_std**2 + stats.value_std**2 - 2 * rho * stats.return_std * stats.value_std)

    def cdf(x):
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))

    k = eps / step
    expected = 1 - cdf((k - mu) / sd) + cdf((-k - mu) / sd)
    assert estimate == pytest.approx(expected, abs=0.005)
    report = sanity_from_summary(stats, eps, "verl", step=step, correlation=rho, seed=3)
    assert report.estimate and "Estimated" in report.estimate_note
    assert report.at_eps["loss"] == pytest.approx(expected, abs=0.015)


def test_each_library_grades_the_clip_fraction_it_logs():
    assert [target_definition(n) for n in ("verl", "trl", "slime", "torchrl", "sb3", "rllib", "openrlhf")] == [
        "loss",
        "loss",
        "prediction",
        "prediction",
        "prediction",
        "clamp",
        "loss",
    ]
    assert all(d.sanity_definition in DEFINITIONS for d in vl.DIALECTS.values())
    with pytest.raises(ValueError, match="unknown dialect"):
        target_definition("keras")


# --------------------------------------------------------------------------------------------- findings


def titles(findings):
    return [f.title for f in findings]


def by_link(findings, label):
    return [f for f in findings if cites(f, label)]


def test_every_link_is_a_registered_thread_or_a_source():
    cases = [findings_for_batch(synthetic_batch(), 0.2, name) for name in vl.DIALECTS] + [
        findings_for_batch(synthetic_batch(value_scale=15, padding="nan"), 0.01, "sb3")
    ]
    for findings in cases:
        for f in findings:
            assert f.severity in ("warning", "info", "ok")
            for link in f.links:
                assert isinstance(link, Source) or THREADS[link.label] == link, link
    assert all(THREAD_URL.match(t.url) and isinstance(t, Thread) for t in THREADS.values())
    for d in vl.DIALECTS.values():  # the registry names its threads by label: each one resolves
        assert all(thread(label) for label in d.threads), d.name
    with pytest.raises(ValueError, match="unknown thread"):
        thread("openai/baselines#1")


def test_default_batch_is_all_clear_with_the_two_definitions_explained():
    findings = findings_for_batch(synthetic_batch(), 0.2, "verl", target=0.3)  # 26 % clipped, target 30 %
    assert findings[0].severity == "ok" and "within your 30% target" in findings[0].title
    assert not [f for f in findings if f.severity == "warning"]
    assert by_link(findings, "RLinf/RLinf#1529")
    assert by_link(findings, "openai/baselines#91")  # some tokens moved away and keep their gradient


def test_scale_mismatch_links_verl_498():
    findings = findings_for_batch(synthetic_batch(value_scale=15.0, value_bias=-1.0), 0.2, "verl")
    assert findings[0].code == "offset" and cites(findings[0], "verl-project/verl#498")
    assert findings[0].severity == "warning" and all(f.severity != "ok" for f in findings)
    assert not [f for f in findings[1:] if "different scales" in f.title]  # the verdict says it once
    assert not [f for f in findings_for_batch(synthetic_batch(), 0.2) if "different scales" in f.title]


def test_eps_too_small_zero_and_never_acting():
    b = synthetic_batch()
    small = findings_for_batch(b, 0.01)[0]
    assert small.code == "eps-too-small" and small.severity == "warning"
    assert cites(small, "hill-a/stable-baselines#216") and cites(small, "DLR-RM/stable-baselines3#1426")
    never = findings_for_batch(b, 5.0)[0]  # issue 20 item 2: /batch?b_eps=5 clips nothing
    assert never.code == "never-acts" and "clipping never acts at eps = 5" in never.title
    assert "brake" not in never.explanation and never.numbers and "acts_below" in dict(never.numbers)
    assert float(dict(never.numbers)["acts_below"]) < 5.0
    zero = findings_for_batch(b, 0.0)[0]  # issue 20 item 3: agrees with the Critic dynamics page
    assert zero.code == "eps-zero" and "one optimizer step per rollout" in zero.title


def test_first_minibatch_links_verl_2642_and_says_nothing_about_eps():
    findings = findings_for_batch(synthetic_batch(step=0.0, pred_noise=0.0), 0.2)
    assert findings[0].code == "first-step" and cites(findings[0], "verl-project/verl#2642")
    assert not [f for f in findings if "never acts" in f.title]


def test_nan_in_padding_names_the_poisoned_modes_and_libraries():
    b = synthetic_batch(padding="nan")
    hit = [f for f in findings_for_batch(b, 0.2) if "padded" in f.title]
    assert hit and hit[0].severity == "warning" and cites(hit[0], "verl-project/verl#498")
    text = hit[0].explanation
    for mode in vl.AGG_MODES:
        loss, _ = vl.compute_value_loss(b.vpreds, b.returns, b.values, b.mask, 0.2, mode)
        poisoned_part = text.split("NaN * 0 = NaN, so ")[1].split(" are NaN")[0]
        assert (mode in poisoned_part.split(", ")) == bool(torch.isnan(loss)), mode
    named = text.split("Libraries poisoned on this batch: ")[1]
    for name, entry in vl.DIALECTS.items():
        eps = entry.default_eps if entry.eps_units == "loss" else 0.2
        poisoned = bool(torch.isnan(vl.dialect_loss(name, b.vpreds, b.returns, b.values, b.mask, eps).loss))
        assert (entry.library in named) == poisoned, name
    assert vl.DIALECTS["openrlhf-2025-04"].library in named  # rows averaged first: NaN * 0 reaches the row sums


def test_nan_on_a_real_token_and_all_masked_batch():
    b = synthetic_batch(batch_size=3, min_len=2, max_len=4)
    v = b.vpreds.clone()
    v[0, 0] = float("nan")
    hit = findings_for_batch(as_batch(v, b.returns, b.values, b.mask), 0.2)
    assert any("real token" in f.title and f.severity == "warning" for f in hit)
    empty = as_batch(b.vpreds, b.returns, b.values, torch.zeros_like(b.mask))
    only = findings_for_batch(empty, 0.2)
    assert len(only) == 1 and only[0].severity == "warning" and "NaN" in only[0].explanation
    with pytest.raises(ValueError, match="masked out"):
        sanity_from_batch(empty, 0.2)
    all_nan = as_batch(torch.full_like(b.vpreds, float("nan")), b.returns, b.values, b.mask)
    with pytest.raises(ValueError, match="no real token has a finite"):
        sanity_from_batch(all_nan, 0.2)


def test_library_specific_findings():
    b = synthetic_batch()
    rllib = findings_for_batch(b, 0.2, "rllib")
    assert rllib[0].code == "clamp-over" and cites(rllib[0], "ray-project/ray#19291")
    assert rllib[0].suggested_eps > 0.2
    assert any("clips the loss, not the value" in f.title for f in rllib)
    assert findings_for_batch(b, 1000.0, "rllib")[0].code in ("clamp-within", "clamp-never-acts")
    assert not by_link(rllib, "RLinf/RLinf#1529")  # no value clip: no clip fractions
    for name in ("sb3", "torchrl"):
        assert any("off by default" in f.title for f in findings_for_batch(b, 0.2, name))
    assert [f for f in findings_for_batch(b, 0.2, "sb3") if f.title == "Why max and not min"]
    shared = [f for f in findings_for_batch(b, 0.2, "cleanrl") if "shares one" in f.title]
    assert shared and cites(shared[0], "vwxyzjn/cleanrl#208")
    assert not [f for f in findings_for_batch(b, 0.2, "verl") if "shares one" in f.title]


def test_summary_findings_are_labelled_estimates():
    ok = findings_for_summary(SummaryStats(0.5, 1.0, 0.0, 0.5), 0.5, "verl")[0]
    assert ok[0].severity == "ok" and "estimated" in ok[0].explanation
    off = findings_for_summary(SummaryStats(5.0, 1.0, 20.0, 8.0), 0.2, "verl")[0]
    assert off[0].code == "offset" and cites(off[0], "verl-project/verl#498")
    small = findings_for_summary(SummaryStats(0.0, 100.0, 0.0, 50.0), 0.2, "trl")[0]
    assert small[0].code == "eps-too-small"


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


# ---------------------------------------------------------------------------------------------------
# The verdict weighs the clip fraction against the target (issue: a green light at 44 % and 84 %)

from valueloss.tools.clipfrac import PLAUSIBLE_STEPS, estimate_over_steps, resize_to_clipfrac  # noqa: E402
from valueloss.tools.findings import STEP_SIZES, batch_verdict  # noqa: E402


def test_a_high_clip_fraction_is_never_a_green_light():
    b = synthetic_batch(value_noise=1.2)
    rep = sanity_from_batch(b, 0.2, "verl", 0.1)
    clip = rep.at_eps["loss"]
    assert clip > 0.4
    assert rep.verdict.severity == "warning" and f"{clip:.1%} clipped, above your 10% target" in rep.verdict.title
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
    assert "moves the critic 0.15 of the way to R" in rep.step_note
    assert f"{min(at.values()):.1%} to {max(at.values()):.1%}" in rep.step_note
    step = rep.evidence.reading.step
    assert at[0.3] <= 0.2 <= at[0.5] and 0.3 <= step <= 0.5
    found = next(f for f in rep.findings if "matches a step of" in f.title)
    assert f"{step:.3g}" in found.title and f"{step:.3g}" in rep.step_note
    assert rep.verdict.severity == "warning"  # the logged 20 % is weighed, not the 0.5 % estimate
    assert rep.verdict.suggested_eps > 0.5  # ... and the eps comes from the step that reproduces it


def test_the_step_that_reproduces_a_log_is_on_the_side_the_verdict_needs():
    b = synthetic_batch()
    toward = Batch(vpreds=b.returns, returns=b.returns, values=b.values, mask=b.mask, rewards=None, advantages=None)
    for logged, above in ((0.6, True), (0.05, False), (0.1, True), (0.1, False)):
        r = resize_to_clipfrac(toward, 0.2, logged, "loss", above=above, sizes=STEP_SIZES, start=0.0)
        got = clipfrac_sweep(r.batch, [0.2]).loss[0]
        assert (got >= logged) if above else (got <= logged)
        assert got == pytest.approx(logged, abs=2 / b.n_tokens)
    none = resize_to_clipfrac(toward, 5.0, 0.9, "loss", above=True, sizes=STEP_SIZES, start=0.0)
    assert none.size is None and none.most < 0.9


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


def test_batch_verdict_is_typical_or_alarming_for_a_named_reason():
    typical = batch_verdict(synthetic_batch(), 0.5).verdict
    assert typical.severity == "ok" and typical.title.startswith("Typical:") and "10% yardstick" in typical.title
    lagging = batch_verdict(synthetic_batch(value_noise=1.25), 0.2).verdict
    assert lagging.title.startswith("Alarming:") and lagging.code in ("critic-lags", "gap-mostly-spread")
    scale = batch_verdict(synthetic_batch(reward_std=20.0), 0.2).verdict
    assert "too small for this return scale" in scale.title
    first = batch_verdict(synthetic_batch(step=0.0, pred_noise=0.0), 0.2).verdict
    assert first.title.startswith("Uninformative:")
    inactive = batch_verdict(synthetic_batch(), 5.0)
    assert inactive.verdict.title.startswith("Inactive:") and "never acts" in inactive.reading.explanation
    assert "rollouts" not in inactive.reading.explanation  # issue 20 item 2
    zero = batch_verdict(synthetic_batch(), 0.0)
    assert "one optimizer step per rollout" in zero.reading.explanation and "inf" not in zero.reading.explanation
    with pytest.raises(ValueError, match="eps"):
        batch_verdict(synthetic_batch(), -1.0)
