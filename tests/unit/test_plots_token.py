"""Figure builders of the one-token pages: the right traces, in the theme's colours, from the core's numbers."""

from __future__ import annotations

import numpy as np
import pytest

from valueloss import REGION_ZERO_GRAD, axis_values, evaluate_grid, value_loss_terms
from valueloss.notation import (
    COLORS,
    REGION_COLORS,
    REGION_NAMES,
)
from valueloss.viz.surfaces import (
    band_edge_lines,
    dialect_gradients_figure,
    gradient_map_figure,
    surface_3d_figure,
)
from valueloss.viz.token import nice_ceil, view_range


def _curve(v_old=0.0, R=1.0, eps=0.2, n=401):
    lo, hi = view_range(v_old, R, eps, v_old)
    grid = np.unique(np.concatenate([np.linspace(lo, hi, n), [v_old - eps, v_old + eps]]))
    t = value_loss_terms(grid, R, v_old, eps)
    return grid, t


def _trace(fig, name):
    matches = [t for t in fig.data if t.name == name]
    assert matches, f"no trace named {name!r}; have {[t.name for t in fig.data]}"
    return matches[0]


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
    from valueloss.notation import DIVERGING

    okabe_ito = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"}
    five = [REGION_COLORS[c] for c in (0, 1, 2, 3, 4)]
    assert len(set(five)) == 5 and set(five) <= okabe_ito
    # inside (sky blue) and moved away are no longer one family; the zero-gradient purple is not next to red
    assert REGION_COLORS[0] == "#56B4E9" and REGION_COLORS[2] not in ("#0072B2", "#56B4E9")
    assert DIVERGING[-1][1] == "#E69F00" and DIVERGING[0][1] == "#0072B2"
