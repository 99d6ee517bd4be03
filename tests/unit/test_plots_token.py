"""Figure builders of the one-token pages: the right traces, in the theme's colours, from the core's numbers."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from valueloss import REGION_INSIDE, REGION_TIE, REGION_ZERO_GRAD, axis_values, evaluate_grid, value_loss_terms
from valueloss.viz.surfaces import (
    SURFACE_TERMS,
    band_edge_lines,
    dialect_gradients_figure,
    gradient_map_figure,
    surface_3d_figure,
    surface_heatmaps_figure,
)
from valueloss.viz.theme import (
    BAND_FILL,
    COLORS,
    DASHES,
    REGION_COLORS,
    REGION_NAMES,
    REGION_SHORT_NAMES,
    WIDTHS,
    ZERO_GRAD_FILL,
)
from valueloss.viz.token import grad_curve_figure, loss_curve_figure, nice_ceil, region_map_figure, view_range


def _curve(v_old=0.0, R=1.0, eps=0.2, n=401):
    lo, hi = view_range(v_old, R, eps, v_old)
    grid = np.unique(np.concatenate([np.linspace(lo, hi, n), [v_old - eps, v_old + eps]]))
    t = value_loss_terms(grid, R, v_old, eps)
    return grid, t


def _trace(fig, name):
    matches = [t for t in fig.data if t.name == name]
    assert matches, f"no trace named {name!r}; have {[t.name for t in fig.data]}"
    return matches[0]


def test_loss_curve_draws_both_terms_their_max_band_and_current_point():
    grid, t = _curve()
    fig = loss_curve_figure(
        grid,
        t.loss_unclipped,
        t.loss_clipped,
        t.loss_max,
        t.region,
        v=0.5,
        v_old=0.0,
        R=1.0,
        eps=0.2,
        current_loss=0.64,
    )
    assert isinstance(fig, go.Figure)
    unclipped = _trace(fig, "(v − R)² unclipped")
    clipped = _trace(fig, "(clip(v) − R)² clipped")
    loss = _trace(fig, "max: the loss")
    assert (unclipped.line.color, unclipped.line.dash) == (COLORS["unclipped"], DASHES["unclipped"])
    assert (clipped.line.color, clipped.line.dash) == (COLORS["clipped"], DASHES["clipped"])
    assert (loss.line.color, loss.line.width) == (COLORS["max"], WIDTHS["max"])
    np.testing.assert_array_equal(loss.y, t.loss_max.numpy())
    current = _trace(fig, "current v")
    assert (current.x[0], current.y[0]) == (0.5, 0.64)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    band = [s for s in rects if s.fillcolor == BAND_FILL]
    assert len(band) == 1 and (band[0].x0, band[0].x1) == (-0.2, 0.2)
    zero = [s for s in rects if s.fillcolor == ZERO_GRAD_FILL]
    # the zero-gradient stretch runs from the band edge to the overshoot point 2R - (v_old + eps) = 1.8
    assert len(zero) == 1 and zero[0].x0 == pytest.approx(0.2, abs=0.01) and zero[0].x1 == pytest.approx(1.8, abs=0.01)
    lines = {s.line.color for s in fig.layout.shapes if s.type == "line"}
    assert {COLORS["v_old"], COLORS["R"]} <= lines
    # every x of the curve is clickable: an invisible marker trace carries the selection
    carrier = [tr for tr in fig.data if tr.mode == "markers" and tr.marker.opacity == 0]
    assert len(carrier) == 1 and len(carrier[0].x) == len(grid)


def test_grad_curve_highlights_the_zero_gradient_stretch_and_ties():
    grid, t = _curve()
    fig = grad_curve_figure(grid, t.grad, t.region, v=0.5, v_old=0.0, R=1.0, eps=0.2, current_grad=0.0)
    zero = _trace(fig, "gradient exactly 0")
    assert zero.line.color == COLORS["zero_grad"]
    zx = np.asarray(zero.x, dtype=float)
    region = t.region.numpy()
    assert np.array_equal(~np.isnan(zx), region == REGION_ZERO_GRAD)
    ties = _trace(fig, "exact tie")
    assert set(np.round(ties.x, 12)) >= {-0.2, 0.2}  # the band edges, included in the grid on purpose
    assert np.all(region[np.isin(grid, ties.x)] == REGION_TIE)
    reference = _trace(fig, "2(v − R) without clipping")
    np.testing.assert_allclose(reference.y, 2 * (grid - 1.0))


def test_region_map_paints_codes_in_theme_colours_and_names_them():
    axis = np.linspace(-1, 1, 81)
    g = evaluate_grid("delta", axis, "gap", axis, eps=0.2)
    region = g.terms.region.numpy()
    fig = region_map_figure(axis, axis, region, eps=0.2, current_delta=0.5, current_gap=1.0)
    heat = fig.data[0]
    assert heat.type == "heatmap"
    np.testing.assert_array_equal(np.asarray(heat.z), region)
    names = {t.name for t in fig.data if t.type == "scatter" and t.mode == "markers" and t.x == (None,)}
    present = {REGION_SHORT_NAMES[c] for c in np.unique(region) if c != REGION_TIE}
    assert present <= names
    # the discrete colour scale paints each code in its theme colour
    scale = heat.colorscale
    for code in (0, 1, 2, 3):
        pos = (code - heat.zmin) / (heat.zmax - heat.zmin)
        below = [c for p, c in scale if p <= pos]
        above = [c for p, c in scale if p >= pos]
        assert below[-1] == above[0] == REGION_COLORS[code]  # a step scale: one colour around each code
    this = _trace(fig, "this token")
    assert (this.x[0], this.y[0]) == (0.5, 1.0)


def _surface_terms(pair=("v", "R"), n=60):
    axis = axis_values(-1.5, 1.5, n)
    g = evaluate_grid(pair[0], axis, pair[1], axis, v_old=0.0, R=0.0, eps=0.2)
    t = g.terms
    terms = {
        "loss_unclipped": t.loss_unclipped.numpy(),
        "loss_clipped": t.loss_clipped.numpy(),
        "loss_max": t.loss_max.numpy(),
        "pessimism": (t.loss_max - t.loss_unclipped).numpy(),
    }
    return axis, terms, t.region.numpy()


def test_surface_heatmaps_split_by_region_cover_every_cell_once_and_name_it():
    axis, terms, region = _surface_terms()
    edges = band_edge_lines("v", "R", axis, axis, v_old=0.0, eps=0.2)
    fig = surface_heatmaps_figure(axis, axis, terms, region, x_axis="v", y_axis="R", edges=edges)
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    for panel, key in enumerate(SURFACE_TERMS):
        xaxis = "x" if panel == 0 else f"x{panel + 1}"
        rebuilt = np.full(region.shape, np.nan)
        for tr in (t for t in heatmaps if t.xaxis == xaxis and t.name != "underlay"):
            assert f"<b>{tr.name}</b>" in tr.hovertemplate
            code = next(c for c, name in REGION_NAMES.items() if name == tr.name)
            cols = np.searchsorted(axis, np.asarray(tr.x))
            rows = np.searchsorted(axis, np.asarray(tr.y))
            block = np.asarray(tr.z, dtype=float)
            filled = ~np.isnan(block)
            sub = rebuilt[np.ix_(rows, cols)]
            assert np.all(np.isnan(sub[filled])), "a cell is painted twice"
            assert np.all(region[np.ix_(rows, cols)][filled] == code)
            sub[filled] = block[filled]
            rebuilt[np.ix_(rows, cols)] = sub
        np.testing.assert_allclose(rebuilt, terms[key].astype(np.float32), rtol=1e-6)
    assert {f"coloraxis{i}" for i in ("", 2, 3, 4)} <= {t.coloraxis for t in heatmaps}
    edge_traces = [t for t in fig.data if t.name == "band edge v = v_old ± ε"]
    assert len(edge_traces) == 8 and sum(bool(t.showlegend) for t in edge_traces) == 1


def test_surfaces_figure_stays_small_enough_for_instant_reruns():
    axis, terms, region = _surface_terms(n=200)
    edges = band_edge_lines("v", "R", axis, axis, v_old=0.0, eps=0.2)
    fig = surface_heatmaps_figure(axis, axis, terms, region, x_axis="v", y_axis="R", edges=edges)
    assert len(pio.to_json(fig, validate=False)) < 3_500_000  # binary float32, no per-cell strings


def test_single_column_region_keeps_two_cells_so_plotly_infers_the_width():
    axis = np.linspace(-1, 1, 5)
    region = np.full((5, 5), REGION_INSIDE, dtype=np.int8)
    region[:, 2] = REGION_TIE
    terms = {k: np.ones((5, 5)) for k in SURFACE_TERMS}
    fig = surface_heatmaps_figure(axis, axis, terms, region, x_axis="v", y_axis="R", edges=[])
    tie = [t for t in fig.data if t.name == REGION_NAMES[REGION_TIE]]
    assert all(len(t.x) >= 2 for t in tie)


def test_surface_3d_is_painted_by_region():
    axis, terms, region = _surface_terms()
    fig = surface_3d_figure(axis, axis, terms["loss_max"], region, x_axis="v", y_axis="R", term_label="max")
    surface = fig.data[0]
    assert surface.type == "surface"
    assert np.asarray(surface.surfacecolor).shape == region.shape
    legend = {t.name for t in fig.data[1:]}
    assert REGION_NAMES[REGION_ZERO_GRAD] in legend


def test_gradient_maps_mark_zeros_and_share_one_symmetric_scale():
    axis = np.linspace(-1, 1, 41)
    g = evaluate_grid("v", axis, "R", axis, v_old=0.0, eps=0.2)
    grad = g.terms.grad.numpy()
    frozen = (g.terms.region == REGION_ZERO_GRAD).numpy()
    edges = band_edge_lines("v", "R", axis, axis, v_old=0.0, eps=0.2)
    fig = gradient_map_figure(axis, axis, grad, frozen, x_axis="v", y_axis="R", edges=edges, title="t")
    overlay = _trace(fig, "zero gradient")
    assert overlay.colorscale[0][1] == COLORS["zero_grad"]
    assert np.nansum(np.asarray(overlay.z, dtype=float)) == frozen.sum()
    assert fig.layout.coloraxis.cmin == -fig.layout.coloraxis.cmax
    nothing = gradient_map_figure(
        axis, axis, grad, np.zeros_like(frozen), x_axis="v", y_axis="R", edges=edges, title="t"
    )
    assert not [t for t in nothing.data if t.name == "zero gradient" and t.type == "heatmap"]

    panels = [("a", grad, frozen), ("b", 3 * grad, frozen), ("c", grad, frozen)]
    side = dialect_gradients_figure(axis, axis, panels, x_axis="v", y_axis="R", edges=edges)
    maps = [t for t in side.data if t.type == "heatmap" and t.name in ("a", "b", "c")]
    assert [t.xaxis for t in maps] == ["x", "x2", "x3"]
    assert side.layout.coloraxis.cmax == pytest.approx(np.abs(3 * grad).max())


@pytest.mark.parametrize(
    ("x_axis", "y_axis", "expected"),
    [
        ("v", "R", [([-0.2, -0.2], [-1, 1]), ([0.2, 0.2], [-1, 1])]),
        ("v", "v_old", [([-1.2, 0.8], [-1, 1]), ([-0.8, 1.2], [-1, 1])]),
        ("v_old", "v", [([-1, 1], [-1.2, 0.8]), ([-1, 1], [-0.8, 1.2])]),
        ("delta", "gap", [([-0.2, -0.2], [-1, 1]), ([0.2, 0.2], [-1, 1])]),
    ],
)
def test_band_edges(x_axis, y_axis, expected):
    axis = np.linspace(-1, 1, 11)
    lines = band_edge_lines(x_axis, y_axis, axis, axis, v_old=0.0, eps=0.2)
    for (xs, ys), (ex, ey) in zip(lines, expected, strict=True):
        np.testing.assert_allclose(xs, ex)
        np.testing.assert_allclose(ys, ey)


def test_view_range_shows_band_target_overshoot_point_and_v_and_is_stable():
    lo, hi = view_range(0.0, 1.0, 0.2, 0.1)
    assert lo < -0.2 and hi > 1.8  # the restoring region beyond R starts at 2R - (v_old + eps) = 1.8
    assert view_range(0.0, 1.0, 0.2, 0.5) == (lo, hi)  # moving v inside does not rescale
    lo2, hi2 = view_range(0.0, 1.0, 0.2, 9.0)
    assert hi2 >= 9.0 and lo2 == lo
    rl, rh = view_range(2.0, 8.0, 0.5, 3.0)
    assert rl < 1.5 and rh > 8.0


def test_nice_ceil():
    assert [nice_ceil(x) for x in (0.3, 1.0, 1.2, 2.5, 7, 11)] == [0.5, 1.0, 2.0, 5.0, 10.0, 20.0]
    assert nice_ceil(0) == 1.0 and nice_ceil(float("nan")) == 1.0


def test_the_five_regions_have_five_distinct_okabe_ito_hues():
    from valueloss.viz.theme import DIVERGING, REGION_COLORS

    okabe_ito = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"}
    five = [REGION_COLORS[c] for c in (0, 1, 2, 3, 4)]
    assert len(set(five)) == 5 and set(five) <= okabe_ito
    # inside (sky blue) and moved away are no longer one family; the zero-gradient purple is not next to red
    assert REGION_COLORS[0] == "#56B4E9" and REGION_COLORS[2] not in ("#0072B2", "#56B4E9")
    assert DIVERGING[-1][1] == "#E69F00" and DIVERGING[0][1] == "#0072B2"
    assert all(len(name) <= 42 for name in REGION_SHORT_NAMES.values())
