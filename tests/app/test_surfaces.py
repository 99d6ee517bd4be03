"""Loss surfaces: axes, resolution, eps and the 3-D view change what is drawn; bad resolutions cannot happen.

The heatmaps are drawn in the browser by the live surfaces component (its numbers are checked against
the core in tests/e2e/test_token_pages.py); here: what the page hands it, and the server's text.
"""

from __future__ import annotations

import pytest

from tests.app.helpers import live_component, page_test, plotly_specs, run_page
from valueloss.anatomy import REGION_LABELS
from valueloss.viz.surfaces import SURFACE_TERMS


@pytest.fixture
def at():
    return run_page("surfaces")


def notice(at) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("**What to notice.**"))


def test_renders_four_live_heatmaps_by_default(at):
    assert at.title[0].value == "Loss surfaces"
    assert not at.get("plotly_chart")
    data = live_component(at)
    assert data["state"] == {"eps": 0.2, "fixed": 0.0}
    assert (data["pair"], data["xAxis"], data["yAxis"], data["fixedAxis"]) == ("R", "v", "R", "v_old")
    assert (data["n"], data["halfWidth"], data["conv"]) == (200, 1.5, "bounds")
    assert list(data["titles"].values()) == [label for label, _ in SURFACE_TERMS.values()]
    assert data["labels"] == {str(k): v for k, v in REGION_LABELS.items()}
    assert "28%" in notice(at)


def test_the_live_sliders_have_the_sidebar_sliders_limits(at):
    data = live_component(at)
    for key, limits in (("sf_eps", data["limits"]["eps"]), ("sf_fixed", data["limits"]["fixed"])):
        slider = at.slider(key=key)
        assert limits == [slider.min, slider.max, slider.step], key


def test_switching_axes_to_v_by_v_old(at):
    at.radio(key="sf_axes").set_value("v_old").run()
    assert not at.exception
    assert "With R fixed" in notice(at)
    assert at.slider(key="sf_fixed").label.startswith("R")
    data = live_component(at)
    assert (data["pair"], data["yAxis"], data["fixedAxis"]) == ("v_old", "v_old", "R")
    assert data["axisTitles"]["y"] == "v_old (old value)"


def test_resolution_changes_the_grid(at):
    at.slider(key="sf_n").set_value(50).run()
    assert not at.exception
    assert live_component(at)["n"] == 50


def test_out_of_range_resolution_is_impossible():
    slider_max = page_test("surfaces").run().slider(key="sf_n").max
    assert slider_max == 400
    at = page_test("surfaces")
    at.query_params["sf_n"] = "5000"  # a hand-edited link asking for 25 million cells
    at.run()
    assert not at.exception
    assert at.slider(key="sf_n").value == 200  # ignored: back to the default
    assert live_component(at)["n"] == 200


def test_larger_eps_shrinks_where_clipping_bites(at):
    before = notice(at)
    at.slider(key="sf_eps").set_value(1.0).run()
    assert not at.exception
    assert notice(at) != before
    assert live_component(at)["state"]["eps"] == 1.0
    share = lambda text: int(text.split("**")[-2].rstrip("%"))  # noqa: E731
    assert share(notice(at)) < share(before)


def test_3d_view_from_the_url():
    at = page_test("surfaces")
    at.query_params.update({"sf_view": "3-D surface", "sf_term": "max − unclipped"})
    at.run()
    assert not at.exception
    (spec,) = plotly_specs(at)
    assert spec["data"][0]["type"] == "surface"
    assert spec["layout"]["title"]["text"].startswith("max − unclipped")
