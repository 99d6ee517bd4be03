"""The decision table behind every verdict (valueloss.teach.advice), enumerated over a grid of evidence.

Over the grid: every row is reached; the advice points the way the verdict does (more clipping than the
target -> a larger eps, never a smaller one; 0 % clipped -> "never acts" and the eps where it would); the
numbers in the words are the numbers the screen shows; and no two statements on one page contradict each
other, on the Sanity check (batch, upload, summary, with and without a log) and on the Batch page.
"""

from __future__ import annotations

import functools
import itertools
import math

import pytest

from valueloss.teach import advice as adv
from valueloss.teach.advice import (
    CONDITIONS,
    TABLE,
    Advice,
    ClipReading,
    Evidence,
    Finding,
    Spread,
    advise,
    contradictions,
    shown,
)
from valueloss.tools.batch import synthetic_batch
from valueloss.tools.clipfrac import SummaryStats
from valueloss.tools.findings import batch_verdict
from valueloss.tools.sanity import sanity_from_batch, sanity_from_summary

# ------------------------------------------------------------------------------------------ the table alone

SPREADS = {
    "none": (Spread(), Spread()),
    "normal": (Spread(0.5, 1.0, -2.5, 3.5), Spread(0.0, 0.5, -1.5, 1.5)),
    "offset": (Spread(100.0, 1.0, 96.0, 104.0), Spread(0.0, 1.0, -4.0, 4.0)),
    "wide values": (Spread(0.5, 1.0), Spread(0.0, 5.0)),
    "log ranges": (Spread(mean=0.8, min=-1.0, max=2.5), Spread(mean=0.1, min=-0.4, max=1.9)),
    "log offset": (Spread(mean=0.5, min=0.0, max=1.0), Spread(mean=-6.0, min=-16.0, max=14.0)),
    "tiny returns": (Spread(0.5, 0.05), Spread(0.45, 0.05)),
}


def reading(source: str, fraction: float, eps: float, target: float) -> ClipReading | None:
    """A reading whose eps numbers obey what any real evidence obeys: the fraction never rises with eps."""
    if source == "none":
        return None
    over = fraction > target
    eps_for_target = 2 * eps + 0.1 if over else 0.5 * eps
    acts_below = 0.0 if fraction == 0 else 3 * eps + 0.2
    if fraction == 0:
        acts_below = 0.5 * eps
    if source == "log alone":
        return ClipReading(fraction, "log", on="none")
    if source == "log on batch":
        return ClipReading(fraction, "log", eps_for_target, True, acts_below, on="batch", step=0.3, reproduced=fraction)
    return ClipReading(
        fraction, source, eps_for_target, True, acts_below, on="model" if source == "estimate" else "batch"
    )


def grid():
    for library, eps, fraction, source, spreads, gap, first, loss, explained in itertools.product(
        ("verl", "slime", "sb3", "rllib"),
        (0.0, 0.05, 0.2, 1.0, 10.0),
        (0.0, 0.05, 0.3, 1.0),
        ("batch", "estimate", "log alone", "log on batch", "none"),
        SPREADS,
        (None, 0.1, 2.0),
        (None, True),
        (None, float("nan")),
        (None, -0.2),
    ):
        if explained is not None and (gap is not None or loss is not None or first):
            continue  # the explained variance comes from a log: no batch beside it
        if first and source in ("log alone", "none"):
            continue
        r = reading(source, fraction, eps, 0.1)
        returns, values = SPREADS[spreads]
        yield Evidence(
            library=library,
            eps=eps,
            target=0.1,
            logged=fraction if source.startswith("log") else None,
            reading=None if source == "log alone" else r,
            returns=returns,
            values=values,
            median_gap=gap,
            first_step=first,
            value_loss=loss,
            explained_variance=explained,
        )


@functools.cache
def enumerated() -> tuple[tuple[Evidence, Advice], ...]:
    """Every evidence of the grid with its advice (computed once, by the first test that asks)."""
    return tuple((ev, advise(ev)) for ev in grid())


def text(a: Finding) -> str:
    return f"{a.title} {a.explanation}"


def test_the_grid_reaches_every_row_of_the_table():
    reached = {a.code for _, a in enumerated()}
    assert reached == {row.code for row in TABLE}, {row.code for row in TABLE} - reached


def test_each_row_names_only_known_conditions_and_the_last_rows_need_only_the_clip_fraction():
    for row in TABLE:
        assert {name for name, _ in row.when} <= set(CONDITIONS), row.code
    assert TABLE[-1].when == (("over", True),)  # partial evidence always gets advice
    assert len({row.code for row in TABLE}) == len(TABLE)


def test_the_advice_points_the_way_the_verdict_does():
    for ev, a in enumerated():
        g = ev.graded
        if a.suggested_eps is not None:
            assert g.fraction > ev.target or a.code == "eps-zero", (a.code, ev)
            assert a.suggested_eps > ev.eps, (a.code, ev)  # more clipping than the target -> a larger eps
            assert a.suggested_eps == g.eps_for_target  # read off the evidence the verdict grades
            assert shown("eps_for_target", a.suggested_eps) in a.explanation
        if g is not None and g.fraction > ev.target and a.code not in ("not-finite", "first-step"):
            assert "above" in a.title and a.severity == "warning", (a.code, ev)
            assert ("clipping", "over target") in a.claims or a.code == "eps-zero"
        if g is not None and g.fraction == 0 and a.code in ("never-acts", "clamp-never-acts"):
            assert "never acts" in a.title and "brake" not in a.explanation
            if g.acts_below:  # and what eps would make it act
                assert f"below {'eps' if a.code == 'never-acts' else ev.dialect.param_name} = " in a.explanation
                assert shown("acts_below", g.acts_below) in a.explanation
        if ev.eps == 0 and ev.dialect.eps_units == "return" and a.code == "eps-zero":
            assert "one optimizer step per rollout" in a.title and "inf" not in text(a)
        if a.code == "within-target":
            assert a.suggested_eps is None and g.fraction > 0  # a brake needs something to brake


def test_zero_clipped_is_never_a_brake_on_the_few_that_moved_furthest():
    for ev, a in enumerated():
        g = ev.graded
        if g is not None and g.fraction == 0:
            assert "brake" not in a.explanation, (a.code, ev)


def test_the_words_quote_the_numbers_they_carry_and_one_rounding_per_number():
    for _, a in enumerated():
        for quantity, written in a.numbers:
            assert written in text(a), (a.code, quantity, written)
            assert quantity in adv.FORMATS
    lag = [a for _, a in enumerated() if a.code == "critic-lags"]
    assert lag
    for a in lag:  # issue 20 item 7: "3.5 x eps ... about 3 rollouts" came from two roundings
        n = dict(a.numbers)["offset_lag"]
        assert f"{n} × eps" in a.explanation and f"at least {n} rollouts" in a.explanation


def test_the_offset_leads_when_it_is_what_clips():
    """Issue 20 item 4: returns 100 +- 1 against values 0 +- 1 lead with the offset, never with eps."""
    for _, a in enumerated():
        if a.code == "offset":
            assert ("first fix", "offset") in a.claims and a.suggested_eps is None
            assert "before tuning eps" in a.explanation and "sensible" not in a.explanation


def test_partial_evidence_says_what_it_used_and_what_it_could_not_check():
    log_only = advise(Evidence(eps=0.2, logged=0.31))
    assert log_only.code == "over-cause-unknown" and log_only.suggested_eps is None
    assert any("return stds" in u for u in log_only.unchecked) and any("median gap" in u for u in log_only.unchecked)
    assert "clip fraction" in log_only.used and "log alone" in log_only.basis
    ranges = advise(
        Evidence(eps=0.2, logged=0.31, **dict(zip(("returns", "values"), SPREADS["log ranges"], strict=True)))
    )
    assert ranges.code == "critic-lags"  # the means alone show an offset of 3.5 eps
    full = advise(
        Evidence(eps=0.2, reading=ClipReading(0.3, "batch", 0.5, True, 1.0), returns=Spread(0.5, 1.0), values=Spread(0.4, 1.0), median_gap=0.3)
    )  # fmt: skip
    assert full.code == "large-steps" and not full.unchecked and full.suggested_eps == 0.5
    ev = advise(Evidence(eps=0.2, logged=0.31, explained_variance=-0.2))  # a log: the critic has learned nothing
    assert ev.code == "critic-unexplained" and "-0.20" in ev.explanation and "explained variance" in ev.used


def test_a_log_range_that_rules_out_the_scale_check_is_decided_either_way():
    offset = advise(
        Evidence(eps=0.2, logged=0.5, **dict(zip(("returns", "values"), SPREADS["log offset"], strict=True)))
    )
    assert offset.code == "offset"  # values spread 30x the returns' range: verl#498's pattern, from a log alone


def test_evidence_refuses_a_suggestion_from_other_evidence_than_the_log():
    """Issue 20 item 1, made impossible: a logged fraction is graded with eps numbers of the log's own step."""
    with pytest.raises(ValueError, match="must grade the log"):
        Evidence(logged=0.6, reading=ClipReading(0.028, "batch", 0.153, True, 1.0))
    with pytest.raises(ValueError, match="needs the logged"):
        Evidence(reading=ClipReading(0.6, "log", on="none"))
    with pytest.raises(ValueError, match="eps"):
        Evidence(eps=-1.0)
    with pytest.raises(ValueError, match="target"):
        Evidence(target=1.5)
    with pytest.raises(ValueError, match="unknown dialect"):
        Evidence(library="keras")
    with pytest.raises(TypeError, match="returns"):
        Evidence(returns=(0.5, 1.0))
    with pytest.raises(ValueError, match="min must be at most max"):
        Spread(min=2.0, max=1.0)
    with pytest.raises(ValueError, match="std must be"):
        Spread(std=-1.0)
    with pytest.raises(TypeError, match="mean"):
        Spread(mean="0.5")
    nan = advise(Evidence(logged=0.3, value_loss=float("nan"), returns=Spread(mean=float("inf"))))
    assert nan.code == "not-finite" and "value loss nan" in nan.explanation and "mean return inf" in nan.explanation
    with pytest.raises(TypeError, match="evidence"):
        advise({"eps": 0.2})


def test_the_contradiction_checker_can_fail():
    a = Finding("ok", "A", "", claims=(("clipping", "within target"),))
    b = Finding("info", "B", "", claims=(("clipping", "never acts"),))
    c = Finding("info", "C", "", claims=(("pace", "about eps per rollout"),))
    assert contradictions([a, b]) and "clipping" in contradictions([a, b])[0]
    assert not contradictions([a, c])


# ------------------------------------------------------------------------------------------ real pages

STATS = [
    SummaryStats(0.5, 1.0, 0.0, 0.5),
    SummaryStats(100.0, 1.0, 0.0, 1.0),
    SummaryStats(0.5, 0.05, 0.0, 0.05),
    SummaryStats(5.0, 3.0, 0.0, 1.0),
    SummaryStats(0.0, 100.0, 0.0, 50.0),
]
SMALL = dict(batch_size=16, min_len=4, max_len=48)  # a grid of pages in seconds
BATCHES = {
    "default": synthetic_batch(**SMALL),
    "slow": synthetic_batch(step=0.02, **SMALL),
    "lagging": synthetic_batch(value_noise=1.25, **SMALL),
    "offset": synthetic_batch(value_scale=15.0, value_bias=-1.0, **SMALL),
    "first step": synthetic_batch(step=0.0, pred_noise=0.0, **SMALL),
    "wide returns": synthetic_batch(reward_std=20.0, **SMALL),
}
EPS = (0.0, 0.05, 0.2, 5.0)
LOGS = (None, 0.0, 0.6)


SANITY = [
    *(("batch", name, eps, library, logged) for name, eps, library, logged in itertools.product(BATCHES, EPS, ("verl", "slime"), LOGS)),
    *(("summary", i, eps, "verl", logged) for i, eps, logged in itertools.product(range(len(STATS)), EPS, LOGS)),
]  # fmt: skip
IDS = [" ".join(map(str, case)) for case in SANITY]


@functools.cache
def sanity_page(kind, which, eps, library, logged):
    if kind == "batch":
        return sanity_from_batch(BATCHES[which], eps, library, logged=logged)
    return sanity_from_summary(STATS[which], eps, library, logged=logged, n=4000)


def same_numbers(statements) -> list[str]:
    """Quantities two statements of one page write differently (one number, one way of writing it)."""
    seen, out = {}, []
    for s in statements:
        for quantity, written in s.numbers:
            if seen.setdefault(quantity, written) != written:
                out.append(f"{quantity}: {seen[quantity]} and {written} ({s.title})")
    return out


@pytest.mark.parametrize("case", SANITY, ids=IDS)
def test_no_two_statements_on_a_sanity_page_contradict(case):
    report = sanity_page(*case)
    assert not contradictions(report.findings), contradictions(report.findings)
    assert not same_numbers(report.findings)
    assert isinstance(report.verdict, Advice)


@pytest.mark.parametrize("case", SANITY, ids=IDS)
def test_the_sanity_verdict_quotes_the_metric_row_and_points_the_right_way(case):
    report, name = sanity_page(*case), case
    v = report.verdict
    metrics = {label: value for label, value, _ in report.metrics}
    numbers = dict(v.numbers)
    graded = report.evidence.graded
    target_label = f"eps for ≤ {shown('target', 0.1)} clipped"
    if "eps_for_target" in numbers:  # the verdict's eps is the metric row's
        assert metrics[target_label] == numbers["eps_for_target"], name
    if v.suggested_eps is not None and graded.fraction > 0.1:
        assert v.suggested_eps > report.eps, name  # issue 20 item 1: never a smaller eps for more clipping
    if report.logged is None and "clip" in numbers:
        own = next(value for label, value, _ in report.metrics if label.startswith("clip fraction"))
        assert own == numbers["clip"], name
    if report.logged is not None:
        assert metrics["your logged clip fraction"] == shown("clip", report.logged)
        if "batch_clip" in numbers:
            own = next(value for label, value, _ in report.metrics if label.startswith("clip fraction"))
            assert own == numbers["batch_clip"], name
    if "eps_sigma" in numbers:
        assert metrics["eps / std(R)"] == f"{numbers['eps_sigma']} σ_R"
    if report.target is not None and report.target.eps is not None:
        assert shown("eps_for_target", report.target.eps) in report.target_note


@pytest.mark.parametrize(("name", "eps"), list(itertools.product(BATCHES, EPS)))
def test_no_two_statements_on_a_batch_page_contradict(name, eps):
    """The verdict and the reading of the histograms, from one evidence: the items 2, 3 and 6 cases."""
    page = batch_verdict(BATCHES[name], eps)
    statements = [page.verdict, page.reading]
    assert not contradictions(statements), contradictions(statements)
    assert not same_numbers(statements)
    reading = page.reading.explanation
    if page.verdict.code == "first-step":
        assert "cannot" in reading or "no eps can clip" in reading
    elif page.evidence.eps == 0:
        assert "one optimizer step per rollout" in reading and "inf" not in reading
    elif page.verdict.code == "never-acts":
        assert "never acts" in reading and "rollouts" not in reading
    elif "rollouts" in reading:
        n = dict(page.reading.numbers)["lag"]
        assert f"about {n} × eps" in reading and f"at most about {n} rollouts" in reading
        assert "upper bound" in reading  # item 6: the median gap includes the returns' noise
    for _, written in page.reading.numbers:
        assert written in reading


def test_the_batch_page_reading_separates_the_offset_from_the_noise():
    page = batch_verdict(BATCHES["default"], 0.2)
    numbers = dict(page.reading.numbers)
    ev = page.evidence
    offset = abs(ev.returns.mean - ev.values.mean)
    assert numbers["offset"] == shown("offset", offset) and numbers["median_gap"] == shown("median_gap", ev.median_gap)
    assert offset < ev.median_gap  # the shared, learnable part is below the upper bound
    assert math.isclose(float(numbers["lag"]), ev.median_gap / 0.2, rel_tol=0.05)
