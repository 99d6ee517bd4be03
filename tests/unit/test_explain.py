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
from valueloss.explain import equation_latex, fmt, token_readout
from valueloss.presets import PRESETS
from valueloss.theme import COLORS


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
    assert "past it" in over.why_winner


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
