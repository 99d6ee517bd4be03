"""Figures of one token (Explore): the loss and gradient curves over v and the region map, arrays in,
``go.Figure`` out. Colours, dashes and widths come from ``theme`` so a concept looks the same everywhere."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..anatomy import REGION_NAN, REGION_TIE, REGION_ZERO_GRAD
from .base import AXIS_TITLES, base_layout, current_marker, figure, legend_box, line_trace
from .theme import (
    BAND_FILL,
    COLORS,
    DASHES,
    REGION_COLORS,
    REGION_NAMES,
    REGION_SHORT_NAMES,
    SYMBOLS,
    WIDTHS,
    ZERO_GRAD_FILL,
)

__all__ = ["nice_ceil", "view_range", "loss_curve_figure", "grad_curve_figure", "region_map_figure"]


def nice_ceil(x: float) -> float:
    """The next number of the form 1, 2 or 5 times a power of ten: stable plot ranges, few cache keys."""
    if not np.isfinite(x) or x <= 0:
        return 1.0
    power = 10.0 ** np.floor(np.log10(x))
    for step in (1.0, 2.0, 5.0, 10.0):
        if x <= step * power * (1 + 1e-12):
            return float(step * power)
    return float(10 * power)


def view_range(v_old: float, R: float, eps: float, v: float) -> tuple[float, float]:
    """The v-axis range for a one-token plot: band, R and the overshoot point, stretched to show v.

    The overshoot point 2R − (v_old ± eps) is where the restoring region starts beyond R. The range
    depends on v only when v leaves it, so dragging v does not rescale the plot under the cursor.
    """
    marks = [v_old - eps, v_old + eps, R]
    if abs(R - v_old) > eps:
        marks.append(2 * R - (v_old + np.sign(R - v_old) * eps))
    lo, hi = min(marks), max(marks)
    span = max(hi - lo, 4 * eps, 1.0)
    lo, hi = lo - 0.2 * span, hi + 0.2 * span
    if v < lo:
        lo = v - 0.1 * span
    if v > hi:
        hi = v + 0.1 * span
    step = nice_ceil(span) / 10
    return float(np.floor(lo / step) * step), float(np.ceil(hi / step) * step)


def _line_labels(v_old: float, R: float) -> list[dict]:
    """Name the v_old and R lines where they are drawn, instead of in the legend."""
    return [
        {
            "x": x,
            "y": 1.0,
            "xref": "x",
            "yref": "paper",
            "text": f"<b>{text}</b>",
            "showarrow": False,
            "yanchor": "bottom",
            "xanchor": anchor,
            "font": {"color": COLORS[key], "size": 13},
        }
        for x, text, key, anchor in (
            (v_old, "v_old", "v_old", "right" if v_old <= R else "left"),
            (R, "R", "R", "left" if v_old <= R else "right"),
        )
    ]


def _spans(x: np.ndarray, mask: np.ndarray) -> list[tuple[float, float]]:
    """Contiguous stretches of ``x`` where ``mask`` holds, as (start, end) pairs."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return []
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(float(x[s]), float(x[e])) for s, e in zip(starts, ends, strict=True)]


def _vrect(x0: float, x1: float, fill: str) -> dict:
    return {
        "type": "rect",
        "xref": "x",
        "yref": "paper",
        "x0": x0,
        "x1": x1,
        "y0": 0,
        "y1": 1,
        "fillcolor": fill,
        "line": {"width": 0},
        "layer": "below",
    }


def _vline(x: float, key: str) -> dict:
    return {
        "type": "line",
        "xref": "x",
        "yref": "paper",
        "x0": x,
        "x1": x,
        "y0": 0,
        "y1": 1,
        "line": {"color": COLORS[key], "dash": DASHES[key], "width": WIDTHS[key]},
    }


def _click_carrier(x: np.ndarray, y: np.ndarray, customdata: np.ndarray, hovertemplate: str) -> dict:
    """Invisible markers along a curve: they carry the hover and make every x clickable."""
    return {
        "type": "scatter",
        "x": x,
        "y": y,
        "mode": "markers",
        "name": "click to move v",
        "showlegend": False,
        "marker": {"size": 9, "color": COLORS["max"], "opacity": 0},
        "selected": {"marker": {"opacity": 0}},
        "unselected": {"marker": {"opacity": 0}},
        "customdata": customdata,
        "hovertemplate": hovertemplate,
    }


def _break_at(x: np.ndarray, y: np.ndarray, cut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert gaps after the indices in ``cut`` so a line is not drawn across a jump."""
    if not len(cut):
        return x, y
    return np.insert(x.astype(float), cut + 1, np.nan), np.insert(y.astype(float), cut + 1, np.nan)


def _band_shapes(x: np.ndarray, region: np.ndarray, *, v_old: float, R: float, eps: float) -> list[dict]:
    shapes = [_vrect(v_old - eps, v_old + eps, BAND_FILL)]
    shapes += [_vrect(a, b, ZERO_GRAD_FILL) for a, b in _spans(x, region == REGION_ZERO_GRAD)]
    return shapes + [_vline(v_old, "v_old"), _vline(R, "R")]


def loss_curve_figure(
    v_grid,
    loss_unclipped,
    loss_clipped,
    loss_max,
    region,
    *,
    v: float,
    v_old: float,
    R: float,
    eps: float,
    current_loss: float,
    height: int = 380,
) -> go.Figure:
    """L(v) for one token: both terms, their max (thick), the trust band, v_old, R and the current v."""
    x = np.asarray(v_grid, dtype=float)
    lu, lc, lm = (np.asarray(a, dtype=float) for a in (loss_unclipped, loss_clipped, loss_max))
    region = np.asarray(region)
    data = [
        line_trace(
            x, lu, "(v − R)² unclipped", COLORS["unclipped"], dash=DASHES["unclipped"], width=WIDTHS["unclipped"]
        ),
        line_trace(x, lc, "(clip(v) − R)² clipped", COLORS["clipped"], dash=DASHES["clipped"], width=WIDTHS["clipped"]),
        line_trace(x, lm, "max: the loss", COLORS["max"], width=WIDTHS["max"], opacity=0.85),
        legend_box("trust band v_old ± ε", BAND_FILL),
        legend_box("zero gradient", ZERO_GRAD_FILL),
        _click_carrier(
            x,
            lm,
            np.stack([lu, lc], axis=-1),
            "v = %{x:.3f}<br>(v − R)² = %{customdata[0]:.4g}<br>(clip(v) − R)² = %{customdata[1]:.4g}"
            "<br>max = %{y:.4g}<extra>click to move v here</extra>",
        ),
        current_marker(v, current_loss, f"v = {v:.3g}"),
    ]
    layout = base_layout(title="Loss of one token as a function of v", height=height, x_title="v", y_title="loss term")
    layout["hovermode"] = "x"  # a click anywhere above a v selects the nearest point: v moves there
    top = float(np.nanmax(lm)) if np.isfinite(lm).any() else 1.0
    top = top if top > 0 else 1.0
    layout["xaxis"]["range"] = [float(x[0]), float(x[-1])]
    layout["yaxis"]["range"] = [-0.04 * top, 1.15 * top]
    layout["shapes"] = _band_shapes(x, region, v_old=v_old, R=R, eps=eps)
    layout["annotations"] = _line_labels(v_old, R)
    return figure(data, layout)


def grad_curve_figure(
    v_grid,
    grad,
    region,
    *,
    v: float,
    v_old: float,
    R: float,
    eps: float,
    current_grad: float,
    height: int = 320,
) -> go.Figure:
    """d max/dv against v: the zero-gradient stretch in purple, the unclipped 2(v − R) for reference."""
    x = np.asarray(v_grid, dtype=float)
    g = np.asarray(grad, dtype=float)
    region = np.asarray(region)
    zero = region == REGION_ZERO_GRAD
    ties = region == REGION_TIE
    jumps = np.flatnonzero(region[1:] != region[:-1])
    line_x, line_y = _break_at(np.where(ties, np.nan, x), np.where(ties, np.nan, g), jumps)
    data = [
        line_trace(x, 2.0 * (x - R), "2(v − R) without clipping", COLORS["unclipped"], dash="dot", width=1.5),
        line_trace(line_x, line_y, "d max / dv", COLORS["max"], width=3, connectgaps=False),
        line_trace(
            np.where(zero, x, np.nan), np.where(zero, 0.0, np.nan), "gradient exactly 0", COLORS["zero_grad"], width=7
        ),
    ]
    if ties.any():
        tie_marker = {
            "symbol": SYMBOLS["tie"],
            "size": 11,
            "color": COLORS["tie"],
            "line": {"color": "#333", "width": 1.5},
        }
        data.append(
            {
                "type": "scatter",
                "x": x[ties],
                "y": g[ties],
                "mode": "markers",
                "name": "exact tie",
                "marker": tie_marker,
                "hovertemplate": "exact tie at v = %{x:.4g}<br>d max/dv = %{y:.4g}<extra></extra>",
            }
        )
    data += [
        _click_carrier(
            x,
            g,
            np.stack([2.0 * (x - R)], axis=-1),
            "v = %{x:.3f}<br>d max/dv = %{y:.4g}<br>without clipping: %{customdata[0]:.4g}"
            "<extra>click to move v here</extra>",
        ),
        current_marker(v, current_grad, f"{current_grad:.3g}"),
    ]
    layout = base_layout(
        title="Gradient d max(L_unclip, L_clip)/dv (verl's ½ halves it)",
        height=height,
        x_title="v",
        y_title="d max / dv",
    )
    layout["xaxis"]["range"] = [float(x[0]), float(x[-1])]
    layout["hovermode"] = "x"
    zero_line = {"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": 0, "y1": 0}
    layout["shapes"] = _band_shapes(x, region, v_old=v_old, R=R, eps=eps) + [
        {**zero_line, "line": {"color": COLORS["neutral"], "width": 1}}
    ]
    layout["annotations"] = _line_labels(v_old, R)
    return figure(data, layout)


def _discrete_region_scale() -> dict:
    """A colour scale that paints integer region codes in their theme colours."""
    codes = sorted(REGION_NAMES)
    lo, hi = codes[0] - 0.5, codes[-1] + 0.5
    scale = []
    for code in codes:
        color = REGION_COLORS.get(code, REGION_COLORS[REGION_NAN])
        scale += [[(code - 0.5 - lo) / (hi - lo), color], [(code + 0.5 - lo) / (hi - lo), color]]
    return {"colorscale": scale, "zmin": lo, "zmax": hi, "showscale": False}


def region_map_figure(
    delta,
    gap,
    region,
    *,
    eps: float,
    current_delta: float,
    current_gap: float,
    height: int = 560,
) -> go.Figure:
    """Which region a token is in, over (Δ = v − v_old, R − v_old), with the current token marked.

    One small uint8 heatmap of region codes; the legend names the colours.
    """
    dx = np.asarray(delta, dtype=float)
    gy = np.asarray(gap, dtype=float)
    region = np.asarray(region)
    data = [
        {
            "type": "heatmap",
            "x": dx,
            "y": gy,
            "z": region.astype(np.uint8),
            **_discrete_region_scale(),
            "hovertemplate": "Δ = %{x:.3f}<br>R − v_old = %{y:.3f}<extra></extra>",
        }
    ]
    data += [
        legend_box(name, REGION_COLORS[code])
        for code, name in REGION_SHORT_NAMES.items()
        if code not in (REGION_NAN, REGION_TIE) and (region == code).any()
    ]
    lo, hi = float(min(dx[0], gy[0])), float(max(dx[-1], gy[-1]))
    data.append(line_trace([lo, hi], [lo, hi], "v = R", COLORS["R"], dash=DASHES["R"], width=1.5))
    data.append(current_marker(current_delta, current_gap, "this token", name="this token"))
    layout = base_layout(
        title="Region map: where does this token sit?",
        height=height,
        legend_rows=6,
        x_title=AXIS_TITLES["delta"],
        y_title=AXIS_TITLES["gap"],
    )
    layout["xaxis"].update(range=[float(dx[0]), float(dx[-1])], constrain="domain")
    layout["yaxis"].update(range=[float(gy[0]), float(gy[-1])], scaleanchor="x", scaleratio=1, constrain="domain")
    edge = {"color": COLORS["band"], "dash": DASHES["band_edge"], "width": 2}
    layout["shapes"] = [
        {"type": "line", "xref": "x", "yref": "paper", "x0": s * eps, "x1": s * eps, "y0": 0, "y1": 1, "line": edge}
        for s in (-1, 1)
    ]
    return figure(data, layout)
