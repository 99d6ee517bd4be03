"""Figures for the one-token pages (Explore, Surfaces, Gradients): arrays in, ``go.Figure`` out.

Colours, dashes and widths come from ``valueloss.theme`` so a concept looks the same on every figure.

Two choices keep every rerun fast:

- figures are assembled as plain dicts and validated once by ``go.Figure(data, layout)``
  (``add_trace`` / ``add_vline`` re-validate on every call and cost tens of milliseconds per figure);
- region names reach the hover without per-cell strings: each region gets its own heatmap trace,
  cropped to its bounding box and empty outside the region, whose fixed hover template names it.
  The four 200 x 200 surface panels then ship as binary float32 (about 3 MB, ~50 ms to build and
  serialise) instead of per-cell name strings (about 5 MB and ~160 ms).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..anatomy import REGION_NAN, REGION_TIE, REGION_ZERO_GRAD
from ..theme import (
    BAND_FILL,
    COLORS,
    DASHES,
    DIVERGING,
    REGION_COLORS,
    REGION_NAMES,
    REGION_SHORT_NAMES,
    SYMBOLS,
    WIDTHS,
    ZERO_GRAD_FILL,
)

__all__ = [
    "AXIS_TITLES",
    "SURFACE_TERMS",
    "nice_ceil",
    "view_range",
    "band_edge_lines",
    "loss_curve_figure",
    "grad_curve_figure",
    "region_map_figure",
    "surface_heatmaps_figure",
    "surface_3d_figure",
    "gradient_map_figure",
    "dialect_gradients_figure",
]

AXIS_TITLES = {
    "v": "v (prediction)",
    "v_old": "v_old (old value)",
    "R": "R (return)",
    "delta": "Δ = v − v_old",
    "gap": "R − v_old",
}

SURFACE_TERMS = {
    "loss_unclipped": ("unclipped (v − R)²", COLORS["unclipped"]),
    "loss_clipped": ("clipped (clip(v) − R)²", COLORS["clipped"]),
    "loss_max": ("max: the loss", "#333333"),
    "pessimism": ("max − unclipped: where clipping bites", COLORS["zero_grad"]),
}

_FONT = {"family": "sans-serif", "size": 13}
_AXIS = {"showgrid": True, "gridcolor": "#e6e6e6", "zeroline": False, "linecolor": "#999", "mirror": True}


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


def band_edge_lines(x_axis: str, y_axis: str, x, y, *, v_old: float, eps: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """The lines v = v_old − eps and v = v_old + eps on a plot over two of the grid axes (drawing only)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    xs, ys = np.array([x[0], x[-1]]), np.array([y[0], y[-1]])
    lines = []
    for sign in (-1.0, 1.0):
        if (x_axis, y_axis) == ("v", "v_old"):
            lines.append((ys + sign * eps, ys))
        elif (x_axis, y_axis) == ("v_old", "v"):
            lines.append((xs, xs + sign * eps))
        elif x_axis == "v":
            lines.append((np.full(2, v_old + sign * eps), ys))
        elif y_axis == "v":
            lines.append((xs, np.full(2, v_old + sign * eps)))
        elif x_axis == "delta":
            lines.append((np.full(2, sign * eps), ys))
        elif y_axis == "delta":
            lines.append((xs, np.full(2, sign * eps)))
    return lines


# ---------------------------------------------------------------- small dict builders


def _figure(data: list[dict], layout: dict) -> go.Figure:
    return go.Figure(data=data, layout=layout)


def _base_layout(*, title: str, height: int, x_title: str, y_title: str, legend_rows: int = 2) -> dict:
    """Title top left, legend under the plot (it never covers the title or the data)."""
    bottom = 55 + 22 * legend_rows
    return {
        "title": {"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 15}},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 45, "b": bottom},
        "font": _FONT,
        "plot_bgcolor": "white",
        "hovermode": "closest",
        "legend": {
            "orientation": "h",
            "yref": "container",
            "yanchor": "bottom",
            "y": 0.0,
            "xanchor": "left",
            "x": 0.0,
            "font": {"size": 12},
        },
        "xaxis": {**_AXIS, "title": {"text": x_title, "standoff": 6}},
        "yaxis": {**_AXIS, "title": {"text": y_title}},
    }


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


def _legend_box(name: str, color: str, **extra) -> dict:
    marker = {"symbol": "square", "size": 13, "color": color, "line": {"color": "#666", "width": 0.5}}
    return {
        "type": "scatter",
        "x": [None],
        "y": [None],
        "mode": "markers",
        "name": name,
        "marker": marker,
        "hoverinfo": "skip",
        **extra,
    }


def _line(x, y, name: str, color: str, *, dash: str = "solid", width: float = 2, **extra) -> dict:
    return {
        "type": "scatter",
        "x": x,
        "y": y,
        "mode": "lines",
        "name": name,
        "hoverinfo": "skip",
        "line": {"color": color, "dash": dash, "width": width},
        **extra,
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


def _current(x: float, y: float, label: str, name: str = "current v") -> dict:
    marker = {
        "symbol": SYMBOLS["current"],
        "size": 14,
        "color": "white",
        "line": {"color": COLORS["current"], "width": 3},
    }
    return {
        "type": "scatter",
        "x": [x],
        "y": [y],
        "mode": "markers+text",
        "name": name,
        "text": [label],
        "textposition": "top center",
        "textfont": {"size": 13, "color": COLORS["current"]},
        "marker": marker,
        "hoverinfo": "skip",
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


# ---------------------------------------------------------------- Explore: one token


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
        _line(x, lu, "(v − R)² unclipped", COLORS["unclipped"], dash=DASHES["unclipped"], width=WIDTHS["unclipped"]),
        _line(x, lc, "(clip(v) − R)² clipped", COLORS["clipped"], dash=DASHES["clipped"], width=WIDTHS["clipped"]),
        _line(x, lm, "max: the loss", COLORS["max"], width=WIDTHS["max"], opacity=0.85),
        _legend_box("trust band v_old ± ε", BAND_FILL),
        _legend_box("zero gradient", ZERO_GRAD_FILL),
        _click_carrier(
            x,
            lm,
            np.stack([lu, lc], axis=-1),
            "v = %{x:.3f}<br>(v − R)² = %{customdata[0]:.4g}<br>(clip(v) − R)² = %{customdata[1]:.4g}"
            "<br>max = %{y:.4g}<extra>click to move v here</extra>",
        ),
        _current(v, current_loss, f"v = {v:.3g}"),
    ]
    layout = _base_layout(title="Loss of one token as a function of v", height=height, x_title="v", y_title="loss term")
    layout["hovermode"] = "x"  # a click anywhere above a v selects the nearest point: v moves there
    top = float(np.nanmax(lm)) if np.isfinite(lm).any() else 1.0
    top = top if top > 0 else 1.0
    layout["xaxis"]["range"] = [float(x[0]), float(x[-1])]
    layout["yaxis"]["range"] = [-0.04 * top, 1.15 * top]
    layout["shapes"] = _band_shapes(x, region, v_old=v_old, R=R, eps=eps)
    layout["annotations"] = _line_labels(v_old, R)
    return _figure(data, layout)


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
        _line(x, 2.0 * (x - R), "2(v − R) without clipping", COLORS["unclipped"], dash="dot", width=1.5),
        _line(line_x, line_y, "d max / dv", COLORS["max"], width=3, connectgaps=False),
        _line(
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
        _current(v, current_grad, f"{current_grad:.3g}"),
    ]
    layout = _base_layout(
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
    return _figure(data, layout)


def _at_least_two(start: int, stop: int, size: int) -> tuple[int, int]:
    if stop - start >= 2 or size < 2:
        return start, stop
    return (start, stop + 1) if stop < size else (start - 1, stop)


def _region_traces(x, y, z, region, *, hover: str, axes: tuple[str, str] = ("x", "y"), coloraxis=None):
    """One heatmap trace per region present, cropped to its bounding box and empty outside the region.

    The trace's fixed hover template names the region, so no per-cell strings are shipped.
    """
    region = np.asarray(region)
    z = np.asarray(z, dtype=np.float32)
    x = np.asarray(x)
    y = np.asarray(y)
    traces = []
    for code, name in REGION_NAMES.items():
        cells = region == code
        if not cells.any():
            continue
        rows = np.flatnonzero(cells.any(axis=1))
        cols = np.flatnonzero(cells.any(axis=0))
        # at least two cells each way, so plotly infers the cell size from the axis instead of guessing
        r0, r1 = _at_least_two(rows[0], rows[-1] + 1, len(y))
        c0, c1 = _at_least_two(cols[0], cols[-1] + 1, len(x))
        block = np.where(cells[r0:r1, c0:c1], z[r0:r1, c0:c1], np.float32(np.nan))
        traces.append(
            {
                "type": "heatmap",
                "x": x[c0:c1],
                "y": y[r0:r1],
                "z": block,
                "xaxis": axes[0],
                "yaxis": axes[1],
                "coloraxis": coloraxis,
                "hoverongaps": False,
                "name": name,
                "hovertemplate": hover + f"<br><b>{name}</b><extra></extra>",
            }
        )
    return traces


def _underlay(x, y, z, *, axes, coloraxis) -> dict:
    """A half-resolution copy under the region traces: fills the hairline seams where two traces meet."""
    step = 2 if min(len(x), len(y)) > 40 else 1
    return {
        "type": "heatmap",
        "x": np.asarray(x)[::step],
        "y": np.asarray(y)[::step],
        "z": np.asarray(z, dtype=np.float32)[::step, ::step],
        "xaxis": axes[0],
        "yaxis": axes[1],
        "coloraxis": coloraxis,
        "hoverinfo": "skip",
        "name": "underlay",
        "showlegend": False,
    }


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
        _legend_box(name, REGION_COLORS[code])
        for code, name in REGION_SHORT_NAMES.items()
        if code not in (REGION_NAN, REGION_TIE) and (region == code).any()
    ]
    lo, hi = float(min(dx[0], gy[0])), float(max(dx[-1], gy[-1]))
    data.append(_line([lo, hi], [lo, hi], "v = R", COLORS["R"], dash=DASHES["R"], width=1.5))
    data.append(_current(current_delta, current_gap, "this token", name="this token"))
    layout = _base_layout(
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
    return _figure(data, layout)


# ---------------------------------------------------------------- Surfaces and Gradients: two axes


def _grid_axes(rows: int, cols: int, *, hspace: float, vspace: float) -> list[tuple[str, str, list, list]]:
    """(xaxis name, yaxis name, x domain, y domain) for each cell of a rows x cols grid, row-major."""
    width = (1 - hspace * (cols - 1)) / cols
    height = (1 - vspace * (rows - 1)) / rows
    cells = []
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        x0 = c * (width + hspace)
        y1 = 1 - r * (height + vspace)
        suffix = "" if i == 0 else str(i + 1)
        cells.append((f"x{suffix}", f"y{suffix}", [x0, x0 + width], [y1 - height, y1]))
    return cells


def _subplot_layout(titles: list[str], *, rows: int, cols: int, x_title: str, y_title: str, x, y, height: int):
    cells = _grid_axes(rows, cols, hspace=0.13, vspace=0.16)
    layout = {
        "height": height,
        "margin": {"l": 60, "r": 30, "t": 90, "b": 50},
        "font": _FONT,
        "plot_bgcolor": "white",
        "hovermode": "closest",
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.07, "x": 0.0, "font": {"size": 12}},
        "annotations": [],
    }
    for i, ((xa, ya, xd, yd), title) in enumerate(zip(cells, titles, strict=False)):
        layout[f"xaxis{xa[1:]}"] = {
            **_AXIS,
            "domain": xd,
            "anchor": ya,
            "range": [float(x[0]), float(x[-1])],
            "title": {"text": x_title},
        }
        layout[f"yaxis{ya[1:]}"] = {
            **_AXIS,
            "domain": yd,
            "anchor": xa,
            "range": [float(y[0]), float(y[-1])],
            "title": {"text": y_title if i % cols == 0 else ""},
            # Every panel shares the y range: only the left column labels it, so a colour bar between two
            # columns never sits on the next panel's tick labels (they collided at 820 px).
            "showticklabels": i % cols == 0,
        }
        layout["annotations"].append(
            {
                "text": f"<b>{title}</b>",
                "x": (xd[0] + xd[1]) / 2,
                "y": yd[1],
                "xref": "paper",
                "yref": "paper",
                "xanchor": "center",
                "yanchor": "bottom",
                "yshift": 4,
                "showarrow": False,
                "font": {"size": 14},
            }
        )
    return layout, cells


def _edge_traces(lines, *, axes=("x", "y"), showlegend: bool = True) -> list[dict]:
    return [
        _line(
            xs,
            ys,
            "band edge v = v_old ± ε",
            COLORS["band"],
            dash=DASHES["band_edge"],
            width=2,
            xaxis=axes[0],
            yaxis=axes[1],
            legendgroup="edge",
            showlegend=showlegend and i == 0,
        )
        for i, (xs, ys) in enumerate(lines)
    ]


def surface_heatmaps_figure(
    x,
    y,
    terms: dict[str, np.ndarray],
    region,
    *,
    x_axis: str,
    y_axis: str,
    edges,
    height: int = 800,
) -> go.Figure:
    """2 x 2 heatmaps: unclipped, clipped, max and max − unclipped; band edges drawn; hover names the region.

    ``terms`` maps the keys of ``SURFACE_TERMS`` to (len(y), len(x)) arrays. Each term has its own
    colour axis, white to the term's colour, so a panel reads in the colour of its curve.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keys = list(SURFACE_TERMS)
    layout, cells = _subplot_layout(
        [SURFACE_TERMS[k][0] for k in keys],
        rows=2,
        cols=2,
        x_title=AXIS_TITLES[x_axis],
        y_title=AXIS_TITLES[y_axis],
        x=x,
        y=y,
        height=height,
    )
    hover = f"{x_axis} = %{{x:.3f}}<br>{y_axis} = %{{y:.3f}}<br>value = %{{z:.4g}}"
    data = []
    for i, (key, (xa, ya, xd, yd)) in enumerate(zip(keys, cells, strict=True)):
        axis = "coloraxis" if i == 0 else f"coloraxis{i + 1}"
        z = np.asarray(terms[key], dtype=float)
        data.append(_underlay(x, y, z, axes=(xa, ya), coloraxis=axis))
        data += _region_traces(x, y, z, region, hover=hover, axes=(xa, ya), coloraxis=axis)
        data += _edge_traces(edges, axes=(xa, ya), showlegend=i == 0)
        finite = z[np.isfinite(z)]
        top = float(finite.max()) if finite.size else 1.0
        layout[axis] = {
            "colorscale": [[0.0, "#ffffff"], [1.0, SURFACE_TERMS[key][1]]],
            "cmin": 0.0,
            "cmax": top if top > 0 else 1.0,
            "colorbar": {"len": yd[1] - yd[0], "y": (yd[0] + yd[1]) / 2, "x": xd[1] + 0.01, "thickness": 12},
        }
    return _figure(data, layout)


def surface_3d_figure(
    x,
    y,
    z,
    region,
    *,
    x_axis: str,
    y_axis: str,
    term_label: str,
    height: int = 640,
) -> go.Figure:
    """One loss term as a 3-D surface, painted by region (the legend names the colours)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    region = np.asarray(region)
    codes = sorted(REGION_NAMES)
    n = len(codes)
    scale = []
    for i, code in enumerate(codes):
        color = REGION_COLORS.get(code, REGION_COLORS[REGION_NAN])
        scale += [[i / n, color], [(i + 1) / n, color]]
    index = np.searchsorted(np.array(codes), region).astype(np.float32) + np.float32(0.5)
    data = [
        {
            "type": "surface",
            "x": x,
            "y": y,
            "z": np.asarray(z, dtype=np.float32),
            "surfacecolor": index,
            "cmin": 0,
            "cmax": n,
            "colorscale": scale,
            "showscale": False,
            "hovertemplate": f"{x_axis} = %{{x:.3f}}<br>{y_axis} = %{{y:.3f}}<br>{term_label} = %{{z:.4g}}<extra></extra>",
            "lighting": {"ambient": 0.8, "diffuse": 0.5, "specular": 0.05},
        }
    ]
    data += [
        {
            "type": "scatter3d",
            "x": [None],
            "y": [None],
            "z": [None],
            "mode": "markers",
            "name": REGION_NAMES[c],
            "marker": {"symbol": "square", "size": 8, "color": REGION_COLORS[c]},
        }
        for c in codes
        if c not in (REGION_NAN, REGION_TIE) and (region == c).any()
    ]
    layout = {
        "height": height,
        "margin": {"l": 0, "r": 0, "t": 40, "b": 0},
        "font": _FONT,
        "title": {"text": f"{term_label}, coloured by region", "x": 0.0, "font": {"size": 15}},
        "scene": {
            "xaxis": {"title": {"text": AXIS_TITLES[x_axis]}},
            "yaxis": {"title": {"text": AXIS_TITLES[y_axis]}},
            "zaxis": {"title": {"text": "loss"}},
            "aspectmode": "manual",
            "aspectratio": {"x": 1.0, "y": 1.0, "z": 0.6},
            "camera": {"eye": {"x": -0.6, "y": -1.9, "z": 1.5}},
        },
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 0.0, "x": 0.0},
    }
    return _figure(data, layout)


def _zero_overlay(x, y, frozen, *, axes=("x", "y"), hover_prefix: str) -> dict | None:
    """Purple cells where the gradient is exactly 0, cropped to their bounding box (None if there are none)."""
    frozen = np.asarray(frozen, dtype=bool)
    if not frozen.any():
        return None
    x, y = np.asarray(x), np.asarray(y)
    rows, cols = np.flatnonzero(frozen.any(axis=1)), np.flatnonzero(frozen.any(axis=0))
    r0, r1 = _at_least_two(rows[0], rows[-1] + 1, len(y))
    c0, c1 = _at_least_two(cols[0], cols[-1] + 1, len(x))
    values = np.where(frozen[r0:r1, c0:c1], np.float32(1), np.float32(np.nan))
    return {
        "type": "heatmap",
        "x": x[c0:c1],
        "y": y[r0:r1],
        "z": values,
        "xaxis": axes[0],
        "yaxis": axes[1],
        "colorscale": [[0, COLORS["zero_grad"]], [1, COLORS["zero_grad"]]],
        "showscale": False,
        "opacity": 0.8,
        "hoverongaps": False,
        "name": "zero gradient",
        "hovertemplate": hover_prefix + "<br><b>gradient exactly 0</b><extra></extra>",
    }


def _gradient_colorbar(zmax: float, **colorbar) -> dict:
    return {
        "colorscale": DIVERGING,
        "cmin": -zmax,
        "cmax": zmax,
        "colorbar": {"title": {"text": "gradient"}, "thickness": 14, **colorbar},
    }


def _abs_max(*arrays) -> float:
    top = 0.0
    for a in arrays:
        a = np.abs(np.asarray(a, dtype=float))
        a = a[np.isfinite(a)]
        if a.size:
            top = max(top, float(a.max()))
    return top or 1.0


def gradient_map_figure(
    x,
    y,
    grad,
    frozen,
    *,
    x_axis: str,
    y_axis: str,
    edges,
    title: str,
    height: int = 540,
) -> go.Figure:
    """The per-token gradient over two axes (blue < 0: descent raises v; orange > 0: lowers it); zeros in purple."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    hover = f"{x_axis} = %{{x:.3f}}<br>{y_axis} = %{{y:.3f}}"
    data = [
        {
            "type": "heatmap",
            "x": x,
            "y": y,
            "z": np.asarray(grad, dtype=np.float32),
            "coloraxis": "coloraxis",
            "name": "gradient",
            "hovertemplate": hover + "<br>gradient = %{z:.4g}<extra></extra>",
        },
        _legend_box("gradient exactly 0: the token is frozen", COLORS["zero_grad"]),
        *_edge_traces(edges),
    ]
    overlay = _zero_overlay(x, y, frozen, hover_prefix=hover)
    if overlay is not None:
        data.insert(1, overlay)
    layout = _base_layout(title=title, height=height, x_title=AXIS_TITLES[x_axis], y_title=AXIS_TITLES[y_axis])
    layout["xaxis"]["range"] = [float(x[0]), float(x[-1])]
    layout["yaxis"]["range"] = [float(y[0]), float(y[-1])]
    layout["coloraxis"] = _gradient_colorbar(_abs_max(grad))
    return _figure(data, layout)


def dialect_gradients_figure(
    x,
    y,
    panels: list[tuple[str, np.ndarray, np.ndarray]],
    *,
    x_axis: str,
    y_axis: str,
    edges,
    height: int = 800,
) -> go.Figure:
    """Side-by-side gradient maps, one per dialect; ``panels`` holds (title, grad, frozen).

    One shared symmetric colour scale, so the panels compare in magnitude too.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    layout, cells = _subplot_layout(
        [p[0] for p in panels],
        rows=rows,
        cols=cols,
        x_title=AXIS_TITLES[x_axis],
        y_title=AXIS_TITLES[y_axis],
        x=x,
        y=y,
        height=height,
    )
    hover = f"{x_axis} = %{{x:.3f}}<br>{y_axis} = %{{y:.3f}}"
    data = []
    for i, ((title, g, frozen), (xa, ya, _, _)) in enumerate(zip(panels, cells, strict=False)):
        data.append(
            {
                "type": "heatmap",
                "x": x,
                "y": y,
                "z": np.asarray(g, dtype=np.float32),
                "coloraxis": "coloraxis",
                "xaxis": xa,
                "yaxis": ya,
                "name": title,
                "hovertemplate": hover + f"<br>gradient = %{{z:.4g}}<extra>{title}</extra>",
            }
        )
        overlay = _zero_overlay(x, y, frozen, axes=(xa, ya), hover_prefix=hover)
        if overlay is not None:
            data.append(overlay)
        data += _edge_traces(edges, axes=(xa, ya), showlegend=i == 0)
    data.append(_legend_box("gradient exactly 0: the token is frozen", COLORS["zero_grad"]))
    layout["coloraxis"] = _gradient_colorbar(_abs_max(*(p[1] for p in panels)))
    return _figure(data, layout)
