"""Explore (one token): sliders, presets and URL parameters drive the readouts, the equation and the charts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from valueloss.presets import PRESETS

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "explore.py")


def metric(at, label_start: str) -> str:
    matches = [m for m in at.metric if m.label.startswith(label_start)]
    assert matches, f"no metric starting with {label_start!r}: {[m.label for m in at.metric]}"
    return matches[0].value


def charts(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


@pytest.fixture
def at():
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.run()
    assert not app.exception
    return app


def test_renders_the_default_token(at):
    assert at.title[0].value == "One token"
    assert metric(at, "Gradient") == "−1.8"
    assert metric(at, "max() picks") == "both equal"
    assert r"\textcolor" in at.latex[0].value
    assert len(at.get("plotly_chart")) == 3
    assert "inside the band" in at.get("html")[0].proto.body


def test_moving_v_past_the_band_toward_R_zeroes_the_gradient(at):
    at.slider(key="v").set_value(0.5).run()
    assert not at.exception
    assert metric(at, "Gradient") == "0"
    assert metric(at, "max() picks") == "clipped"
    assert metric(at, "Clipped") == "0.64"
    assert "zero gradient" in at.get("html")[0].proto.body
    assert r"\mathbf{0}" in at.latex[0].value
    # the current point on the L(v) chart moved with the slider
    current = next(t for t in charts(at)[0]["data"] if t.get("name") == "current v")
    assert current["x"] == [0.5]


def test_moving_v_away_from_R_keeps_the_full_gradient(at):
    at.slider(key="v").set_value(-0.5).run()
    assert metric(at, "Gradient") == "−3"
    assert metric(at, "max() picks") == "unclipped"


@pytest.mark.parametrize("key", ["rlhf-verl", "past-band-toward-R", "eps-zero"])
def test_a_preset_button_sets_all_four_values_and_shows_its_notice(at, key):
    p = PRESETS[key]
    at.button(key=f"preset_{key}").click().run()
    assert not at.exception
    values = {k: at.slider(key=k).value for k in ("v_old", "R", "eps", "v")}
    assert values == {"v_old": p.v_old, "R": p.R, "eps": p.eps, "v": p.v}
    assert p.notice in at.info[0].value


def test_query_params_set_the_scenario():
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"v_old": "0", "R": "1", "eps": "0.2", "v": "0.5"})
    at.run()
    assert not at.exception
    assert at.slider(key="v").value == 0.5
    assert metric(at, "Gradient") == "0"


def test_convention_from_the_url_changes_the_gradient_at_a_tie():
    grads = {}
    for conv in ("bounds", "clamp"):
        at = AppTest.from_file(PAGE, default_timeout=60)
        at.query_params.update({"v_old": "0", "R": "1", "eps": "0.25", "v": "0.25", "conv": conv})
        at.run()
        assert not at.exception
        grads[conv] = metric(at, "Gradient")
    assert grads == {"bounds": "−1.125", "clamp": "−1.5"}  # 3/4 and all of 2(v - R) = -1.5


def test_out_of_range_url_value_is_ignored_not_an_error():
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["v"] = "50"
    at.run()
    assert not at.exception
    assert at.slider(key="v").value == PRESETS["inside"].v


def test_rlhf_scale_returns_fit_the_sliders(at):
    at.slider(key="R").set_value(9.5).run()
    at.slider(key="v_old").set_value(-9.0).run()
    assert not at.exception
    assert metric(at, "Gradient") == "0"  # v = 0.1 moved 9.1 toward R = 9.5: far past eps = 0.2
    loss = charts(at)[0]
    assert loss["layout"]["xaxis"]["range"][0] <= -9.2 and loss["layout"]["xaxis"]["range"][1] >= 9.5


def test_scenario_variables_are_left_for_the_code_export(at):
    at.slider(key="v").set_value(0.5).run()
    assert at.slider(key="v").value == 0.5
    assert at.radio(key="conv").value == "bounds"
