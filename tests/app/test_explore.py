"""Explore (one token): sliders, presets and URL parameters drive the live explorer and its explanation.

The explorer's own numbers (metrics, equation, curves) are computed in the browser; the browser tests
(tests/e2e/test_live_math.py, tests/e2e/test_token_pages.py) check them against the core. Here: what
Python hands the component, and what it does with a released state.
"""

from __future__ import annotations

import pytest

import pages.live_token as live_token
from pages.common import EPS_MAX
from tests.app.helpers import live_component, page_test, run_page
from valueloss.notation import BAND_FILL, COLORS, REGION_COLORS, ZERO_GRAD_FILL
from valueloss.teach.explain import REGION_LABELS, token_readout
from valueloss.teach.presets import PRESETS


@pytest.fixture
def at():
    return run_page("explore")


def test_renders_the_default_token(at):
    assert at.title[0].value == "One token"
    data = live_component(at)
    assert data["state"] == {"v": 0.1, "v_old": 0.0, "R": 1.0, "eps": 0.2, "conv": "bounds"}
    assert data["limits"] == {"value": [-10.0, 10.0], "eps": [0.0, EPS_MAX], "step": 0.01}
    assert "|Δ| = |v − v_old| = 0.1 < ε = 0.2" in data["why"]


def test_the_component_gets_the_cores_labels_and_the_themes_colours(at):
    data = live_component(at)
    assert data["labels"] == {str(k): v for k, v in REGION_LABELS.items()}
    assert data["regionColors"] == {str(k): v for k, v in REGION_COLORS.items()}
    assert data["colors"] == COLORS
    assert data["fills"] == {"band": BAND_FILL, "zero_grad": ZERO_GRAD_FILL}


def test_moving_the_v_slider_moves_the_explorer(at):
    at.slider(key="v").set_value(0.5).run()
    assert not at.exception
    data = live_component(at)
    assert data["state"]["v"] == 0.5
    assert data["why"] == _why(0.5, 1.0, 0.0, 0.2, "bounds")
    assert "exactly 0" in data["why"]


def _why(v, R, v_old, eps, conv) -> str:
    r = token_readout(v, R, v_old, eps, conv)
    return f"{r.why_winner} Gradient: {r.why_grad}"


@pytest.mark.parametrize("key", ["rlhf-verl", "past-band-toward-R", "eps-zero"])
def test_a_preset_button_sets_all_four_values_and_shows_its_notice(at, key):
    p = PRESETS[key]
    at.button(key=f"preset_{key}").click().run()
    assert not at.exception
    values = {k: at.session_state[k] for k in ("v_old", "R", "eps", "v")}
    assert values == {"v_old": p.v_old, "R": p.R, "eps": p.eps, "v": p.v}
    assert p.notice in at.info[0].value


def test_query_params_set_the_scenario():
    at = page_test("explore")
    at.query_params.update({"v_old": "0", "R": "1", "eps": "0.2", "v": "0.5"})
    at.run()
    assert not at.exception
    assert at.slider(key="v").value == 0.5
    assert live_component(at)["state"] == {"v": 0.5, "v_old": 0.0, "R": 1.0, "eps": 0.2, "conv": "bounds"}


def test_convention_from_the_url_changes_the_gradient_at_a_tie():
    grads = {}
    for conv in ("bounds", "clamp"):
        at = page_test("explore")
        at.query_params.update({"v_old": "0", "R": "1", "eps": "0.25", "v": "0.25", "conv": conv})
        at.run()
        assert not at.exception
        assert live_component(at)["state"]["conv"] == conv
        grads[conv] = live_component(at)["why"]
    assert "Gradient −1.125 = 3/4 × 2(v − R)" in grads["bounds"]  # 3/4 of 2(v - R) = -1.5
    assert "Gradient −1.5 = 1 × 2(v − R)" in grads["clamp"]


def test_out_of_range_url_value_is_ignored_not_an_error():
    at = page_test("explore")
    at.query_params["v"] = "50"
    at.run()
    assert not at.exception
    assert at.slider(key="v").value == PRESETS["inside"].v


def test_rlhf_scale_returns_fit_the_sliders(at):
    at.slider(key="R").set_value(9.5).run()
    at.slider(key="v_old").set_value(-9.0).run()
    assert not at.exception
    data = live_component(at)
    assert data["state"]["R"] == 9.5 and data["state"]["v_old"] == -9.0
    assert "exactly 0" in data["why"]  # v = 0.1 moved 9.1 toward R = 9.5: far past eps = 0.2


def test_scenario_variables_are_left_for_the_code_export(at):
    at.slider(key="v").set_value(0.5).run()
    assert at.slider(key="v").value == 0.5
    assert at.radio(key="conv").value == "bounds"


def test_a_released_state_goes_into_the_sliders_and_bad_values_are_ignored(monkeypatch):
    state = {"live": {"release": {"v": 0.57, "v_old": 11.0, "R": True, "eps": float("nan")}}, "v": 0.1}
    monkeypatch.setattr(live_token.st, "session_state", state)
    limits = {k: (-10.0, 10.0) for k in ("v", "v_old", "R")} | {"eps": (0.0, 2.0)}
    live_token.release_to_widgets("live", {k: k for k in live_token.STATE_KEYS}, limits)()
    # v in range: written; v_old out of range, R not a number, eps NaN: left alone
    assert state == {"live": state["live"], "v": 0.57}
    state["live"] = {"release": None}
    live_token.release_to_widgets("live", {"v": "v"}, limits)()
    assert state["v"] == 0.57


def test_a_typed_eps_goes_as_far_as_the_batch_pages_take_it():
    """/?eps=5 fell back to 0.2 (the slider stopped at 2): eps is typed up to the Batch and Sanity pages' limit,
    the live explorer's band edges drag that far, and a link beyond it is said to be out of range."""
    from tests.app.helpers import link_notice, run_link

    at = run_link("", {"eps": "5", "v": "0.5"})
    assert at.number_input(key="eps").value == 5.0 and link_notice(at) is None
    assert live_component(at)["state"]["eps"] == 5.0 and live_component(at)["limits"]["eps"] == [0.0, EPS_MAX]
    too_far = run_link("", {"eps": f"{2 * EPS_MAX:g}"})
    assert too_far.number_input(key="eps").value == PRESETS["inside"].eps
    assert f"eps = {2 * EPS_MAX:g}: outside the range its control allows; using {PRESETS['inside'].eps:g}" in (
        link_notice(too_far) or ""
    )
