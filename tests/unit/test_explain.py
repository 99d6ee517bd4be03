"""The one-token readout and equation: right numbers, right region, right words, valid coloured LaTeX."""

from __future__ import annotations

import math

import pytest

from valueloss import (
    REGION_AWAY,
    REGION_INSIDE,
    REGION_OVERSHOT,
    REGION_TIE,
    REGION_ZERO_GRAD,
    value_loss_terms,
)
from valueloss.notation import COLORS
from valueloss.teach.explain import equation_latex, fmt, token_readout
from valueloss.teach.presets import PRESETS


def test_inside_the_band_both_terms_equal_and_full_gradient():
    r = token_readout(0.1, 1.0, 0.0, 0.2)
    assert r.region == REGION_INSIDE
    assert r.winner == "equal"
    assert r.loss_unclipped == r.loss_clipped == pytest.approx(0.81)
    assert r.grad == pytest.approx(-1.8)
    assert r.half_grad == pytest.approx(-0.9)  # verl's ½
    assert "2(v − R) = −1.8" in r.why_grad


def test_past_the_band_toward_R_has_exactly_zero_gradient():
    r = token_readout(0.5, 1.0, 0.0, 0.2)
    assert r.region == REGION_ZERO_GRAD
    assert r.winner == "clipped"
    assert r.grad == 0.0 and fmt(r.grad) == "0"
    assert r.v_clipped == pytest.approx(0.2)
    assert "exactly 0" in r.why_grad
    assert r.unclipped_grad == pytest.approx(-1.0)  # what it would be without clipping


def test_moved_away_and_overshot_keep_the_unclipped_gradient():
    away = token_readout(-0.5, 1.0, 0.0, 0.2)
    assert (away.region, away.winner) == (REGION_AWAY, "unclipped")
    assert away.grad == pytest.approx(-3.0)
    assert "away from R" in away.why_winner
    over = token_readout(0.9, 0.3, 0.0, 0.2)
    assert (over.region, over.winner) == (REGION_OVERSHOT, "unclipped")
    assert over.grad == pytest.approx(1.2)
    assert "overshot it" in over.why_winner


@pytest.mark.parametrize(("convention", "ratio"), [("bounds", 0.75), ("clamp", 1.0), ("delta", 1.0)])
def test_tie_on_the_band_edge_depends_on_the_convention(convention, ratio):
    r = token_readout(0.25, 1.0, 0.0, 0.25, convention)
    assert r.region == REGION_TIE
    assert r.winner == "equal"
    assert r.grad_ratio == ratio
    assert convention in r.why_grad


def test_readout_numbers_are_the_cores_numbers():
    for p in PRESETS.values():
        for convention in ("bounds", "clamp", "delta"):
            r = token_readout(p.v, p.R, p.v_old, p.eps, convention)
            t = value_loss_terms(p.v, p.R, p.v_old, p.eps, convention)
            assert r.loss_unclipped == float(t.loss_unclipped)
            assert r.loss_clipped == float(t.loss_clipped)
            assert r.loss_max == float(t.loss_max)
            assert r.grad == float(t.grad)
            assert r.region == int(t.region)


def test_delta_convention_rounding_inside_the_band_is_explained():
    # o + (v - o) is not v in float64 here: the delta clip moves v by one ulp inside the band
    r = token_readout(-0.11, 1.0, -0.24, 0.2, "delta")
    assert r.region == REGION_INSIDE
    assert r.loss_unclipped != r.loss_clipped
    assert "last digit" in r.why_winner


def _balanced(tex: str) -> bool:
    depth = 0
    for ch in tex:
        depth += ch == "{"
        depth -= ch == "}"
        if depth < 0:
            return False
    return depth == 0


@pytest.mark.parametrize("preset", list(PRESETS))
def test_equation_substitutes_the_numbers_in_the_plot_colours(preset):
    p = PRESETS[preset]
    r = token_readout(p.v, p.R, p.v_old, p.eps)
    tex = equation_latex(r)
    assert _balanced(tex)
    assert tex.startswith(r"\begin{aligned}") and tex.endswith(r"\end{aligned}")
    assert rf"\textcolor{{{COLORS['unclipped']}}}" in tex
    assert rf"\textcolor{{{COLORS['clipped']}}}" in tex
    assert fmt(0.5 * r.loss_max).replace("−", "-") in tex  # verl's ½·max for this token
    assert "−" not in tex  # LaTeX gets ASCII minus signs


def test_equation_marks_the_winner_and_the_zero_gradient():
    tex = equation_latex(token_readout(0.5, 1.0, 0.0, 0.2))
    assert r"\underbrace{\textcolor{" + COLORS["clipped"] + "}{0.64}}_{\\text{wins}}" in tex
    assert r"\textcolor{" + COLORS["zero_grad"] + r"}{\mathbf{0}}" in tex
    assert "(0.5 - 1)^2" in tex and "(0.2 - 1)^2" in tex


def test_equation_parenthesises_a_negative_return():
    tex = equation_latex(token_readout(0.0, -2.0, 0.0, 0.2))
    assert "(0 - (-2))^2" in tex


def test_fmt():
    assert fmt(0.0) == "0" and fmt(-0.0) == "0"
    assert fmt(1.23456) == "1.235"
    assert fmt(-2.0) == "−2"
    assert fmt(math.nan) == "NaN"


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="cliprange"):
        token_readout(0.0, 1.0, 0.0, -0.1)
    with pytest.raises(ValueError, match="convention"):
        token_readout(0.0, 1.0, 0.0, 0.2, "nearest")


# ------------------------------------------------------------------------------------------------
# The zero-gradient rule and the tie split: the words are checked against the core's numbers

from fractions import Fraction  # noqa: E402

import numpy as np  # noqa: E402

from valueloss.dialect_grads import TIE_CASES, tie_point, tie_table  # noqa: E402
from valueloss.teach.explain import (  # noqa: E402
    gradient_map_caption,
    region_map_caption,
    tie_caption,
    tie_split,
    zero_gradient_interval,
    zero_gradient_rule,
)

RULE_CASES = [
    (0.0, 1.0, 0.2),  # the case: v = 1.3 overshot R and still has zero gradient
    (0.0, -1.0, 0.2),  # gap below
    (2.0, 8.0, 0.5),
    (0.0, 1.0, 0.0),  # eps = 0
    (0.0, 0.3, 0.2),  # |gap| > eps, narrow wedge
    (0.0, 0.1, 0.2),  # R inside the band: no zero gradient anywhere
    (0.5, 0.5, 0.2),  # no gap
]


@pytest.mark.parametrize(("v_old", "R", "eps"), RULE_CASES)
@pytest.mark.parametrize("convention", ["bounds", "clamp", "delta"])
def test_the_zero_gradient_interval_is_exactly_where_the_core_gives_zero(v_old, R, eps, convention):
    v = np.linspace(v_old - 4, v_old + 4, 4001)
    t = value_loss_terms(v, R, v_old, eps, convention)
    zero = (t.grad == 0).numpy() & t.clipped_wins.numpy()
    span = zero_gradient_interval(v_old, R, eps)
    if span is None:
        assert not zero.any()
        return
    lo, hi = span
    inside = (v > lo + 1e-9) & (v < hi - 1e-9)
    outside = (v < lo - 1e-9) | (v > hi + 1e-9)
    assert zero[inside].all() and inside.any()
    assert not zero[outside].any()
    assert (t.region.numpy()[inside] == REGION_ZERO_GRAD).all()


@pytest.mark.parametrize(("v_old", "R", "eps"), RULE_CASES)
def test_the_rule_sentence_states_the_interval_of_these_numbers(v_old, R, eps):
    text = zero_gradient_rule(v_old, R, eps)
    span = zero_gradient_interval(v_old, R, eps)
    if span is None:
        assert "no v has zero gradient" in text
    else:
        lo, hi = span
        assert f"{fmt(lo)} < v < {fmt(hi)}" in text
        assert f"2|R − v_old| − ε = {fmt(2 * abs(R - v_old) - eps)}" in text
        mirror = hi if v_old < R else lo
        assert f"Only v {'above' if v_old < R else 'below'} {fmt(mirror)}" in text


def test_an_overshoot_inside_the_wedge_is_explained_as_frozen_not_pulled_back():
    """/?v=1.3 with v_old 0, R 1, eps 0.2: max picks the clipped term and the gradient is 0."""
    r = token_readout(1.3, 1.0, 0.0, 0.2)
    assert r.region == REGION_ZERO_GRAD and r.grad == 0.0
    assert "went past R by 0.3" in r.why_winner and "nearer R than the band edge" in r.why_winner
    assert "v moved 1.3 toward R" not in r.why_winner
    assert "0.2 < v < 1.8" in r.why_grad and "Only v above 1.8" in r.why_grad
    assert "nearer R than the band edge" in r.region_label
    beyond = token_readout(1.85, 1.0, 0.0, 0.2)
    assert beyond.region == REGION_OVERSHOT and beyond.grad == pytest.approx(1.7)
    assert "farther than the band edge" in beyond.why_winner


def test_captions_carry_the_rule_and_the_share():
    assert "0.2 < v < 1.8" in region_map_caption(0.0, 1.0, 0.2)
    assert "crosses the line v = R" in region_map_caption(0.0, 1.0, 0.2)
    text = gradient_map_caption(0.375)
    assert "**38%**" in text and "always pulled back" not in text
    with pytest.raises(ValueError, match="frozen_share"):
        gradient_map_caption(1.5)


@pytest.mark.parametrize("case", list(TIE_CASES))
@pytest.mark.parametrize("eps_in", [0.25, 0.5])
def test_the_tie_split_equals_autograd_share(case, eps_in):
    v, eps = tie_point(case, 0.0, 1.0, eps_in)
    rows = tie_table(case, 0.0, 1.0, eps_in)
    for row in rows:
        assert row["terms equal"]
        split = tie_split(row["clip convention"], v, 0.0, eps, row["tie rule"])
        assert float(split.share) == row["share of 2(v − R)"]
    caption = tie_caption(rows, 0.0, eps)
    for row in rows:
        share = Fraction(row["share of 2(v − R)"]).limit_denominator(64)
        assert f"= {share.numerator}/{share.denominator} of 2(v − R)" in caption or (
            share == 1 and "= 1 of 2(v − R)" in caption
        )


def test_eps_zero_is_five_eighths_in_verl_and_explained_as_such():
    v, eps = tie_point("eps-zero", 0.0, 1.0, 0.25)
    assert eps == 0.0
    rows = tie_table("eps-zero", 0.0, 1.0, 0.25)
    verl = next(r for r in rows if r["convention"] == "bounds")
    assert verl["share of 2(v − R)"] == 0.625
    caption = tie_caption(rows, 0.0, eps)
    assert "1/2 + 1/8 = 5/8" in caption and "3/4" not in caption
    r = token_readout(0.0, 1.0, 0.0, 0.0)
    assert r.region == REGION_TIE and r.grad_ratio == 0.625
    assert "5/8 × 2(v − R)" in r.why_grad
    # A caption that disagrees with its table raises instead of teaching the wrong number.
    with pytest.raises(ValueError, match="explanation gives"):
        tie_caption(rows, 0.0, 0.25)


# What each preset's notice claims, checked against the core for that preset's numbers.
PRESET_REGIONS = {
    "inside": REGION_INSIDE,
    "past-band-toward-R": REGION_ZERO_GRAD,
    "moved-away": REGION_AWAY,
    "overshot-frozen": REGION_ZERO_GRAD,
    "overshot": REGION_OVERSHOT,
    "eps-zero": REGION_ZERO_GRAD,
}


@pytest.mark.parametrize(("key", "region"), list(PRESET_REGIONS.items()))
def test_each_preset_notice_matches_its_numbers(key, region):
    p = PRESETS[key]
    t = value_loss_terms(p.v, p.R, p.v_old, p.eps)
    assert int(t.region) == region
    if region == REGION_ZERO_GRAD:
        assert float(t.grad) == 0.0
    if key.startswith("overshot"):
        past, short = abs(p.v - p.R), abs(p.R - (p.v_old + p.eps))
        assert f"by {fmt(past)}" in p.notice and f"({fmt(short)})" in p.notice
        assert ("less than" in p.notice) == (past < short) and ("more than" in p.notice) == (past > short)
    if key == "overshot-frozen":
        lo, hi = zero_gradient_interval(p.v_old, p.R, p.eps)
        assert f"= {fmt(hi)} is pulled back" in p.notice
