"""Loss surfaces: axes, resolution, eps and the 3-D view change what is drawn; bad resolutions cannot happen."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "surfaces.py")


def charts(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def heatmap_width(spec: dict) -> int:
    """Grid points along x in the first panel: the union of the region traces' x values."""
    xs = set()
    for trace in spec["data"]:
        if trace["type"] == "heatmap" and trace.get("xaxis", "x") == "x":
            x = trace["x"]
            if isinstance(x, dict):  # plotly's binary encoding
                x = np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"])
            xs.update(np.round(np.asarray(x, dtype=float), 9))
    return len(xs)


def notice(at) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("**What to notice.**"))


@pytest.fixture
def at():
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.run()
    assert not app.exception
    return app


def test_renders_four_heatmaps_by_default(at):
    assert at.title[0].value == "Loss surfaces"
    (spec,) = charts(at)
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert titles == [
        "<b>unclipped (v − R)²</b>",
        "<b>clipped (clip(v) − R)²</b>",
        "<b>max: the loss</b>",
        "<b>max − unclipped: where clipping bites</b>",
    ]
    assert heatmap_width(spec) == 200
    hovers = {t.get("hovertemplate", "") for t in spec["data"] if t["type"] == "heatmap"}
    assert any("zero gradient" in h for h in hovers) and any("inside the band" in h for h in hovers)
    assert "28%" in notice(at)


def test_switching_axes_to_v_by_v_old(at):
    at.radio(key="s_axes").set_value("v_old").run()
    assert not at.exception
    assert "With R fixed" in notice(at)
    assert at.slider(key="s_fixed").label.startswith("R")
    (spec,) = charts(at)
    assert spec["layout"]["yaxis"]["title"]["text"] == "v_old (old value)"
    # the band edges are the diagonals v = v_old ± eps
    edges = [t for t in spec["data"] if t.get("name") == "band edge v = v_old ± ε" and t.get("xaxis") == "x"]
    assert len(edges) == 2


def test_resolution_changes_the_grid(at):
    at.slider(key="s_n").set_value(50).run()
    assert not at.exception
    assert heatmap_width(charts(at)[0]) == 50


def test_out_of_range_resolution_is_impossible():
    slider_max = AppTest.from_file(PAGE, default_timeout=60).run().slider(key="s_n").max
    assert slider_max == 400
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["s_n"] = "5000"  # a hand-edited link asking for 25 million cells
    at.run()
    assert not at.exception
    assert at.slider(key="s_n").value == 200  # ignored: back to the default
    assert heatmap_width(charts(at)[0]) == 200


def test_larger_eps_shrinks_where_clipping_bites(at):
    before = notice(at)
    at.slider(key="s_eps").set_value(1.0).run()
    assert not at.exception
    assert notice(at) != before
    share = lambda text: int(text.split("**")[-2].rstrip("%"))  # noqa: E731
    assert share(notice(at)) < share(before)


def test_3d_view_from_the_url():
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"s_view": "3-D surface", "s_term": "max − unclipped"})
    at.run()
    assert not at.exception
    (spec,) = charts(at)
    assert spec["data"][0]["type"] == "surface"
    assert spec["layout"]["title"]["text"].startswith("max − unclipped")
