"""Figures over two axes drawn on the server: the loss surface in 3-D (Surfaces) and the gradient maps
(Gradients). The 2-D loss surfaces are drawn in the browser (``viz/live/surfaces.js``)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..anatomy import REGION_NAN, REGION_TIE
from ..notation import (
    COLORS,
    DASHES,
    DIVERGING,
    REGION_COLORS,
    REGION_NAMES,
)
from .base import AXIS_TITLES, FONT, base_layout, figure, legend_box, line_trace, subplot_layout

__all__ = [
    "SURFACE_TERMS",
    "band_edge_lines",
    "surface_3d_figure",
    "gradient_map_figure",
    "dialect_gradients_figure",
]


SURFACE_TERMS = {
    "loss_unclipped": ("unclipped (v − R)²", COLORS["unclipped"]),
    "loss_clipped": ("clipped (clip(v) − R)²", COLORS["clipped"]),
    "loss_max": ("max: the loss", "#333333"),
    "pessimism": ("max − unclipped: where clipping bites", COLORS["zero_grad"]),
}


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


def _at_least_two(start: int, stop: int, size: int) -> tuple[int, int]:
    if stop - start >= 2 or size < 2:
        return start, stop
    return (start, stop + 1) if stop < size else (start - 1, stop)


def _edge_traces(lines, *, axes=("x", "y"), showlegend: bool = True) -> list[dict]:
    return [
        line_trace(
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


def _two_column_grid(titles: list[str], rows: int, x, y, x_axis: str, y_axis: str, height: int):
    """Subplot layout and cells of a two-column panel grid over (x, y), with the axes' titles."""
    return subplot_layout(
        titles,
        rows=rows,
        cols=2,
        x_title=AXIS_TITLES[x_axis],
        y_title=AXIS_TITLES[y_axis],
        x=x,
        y=y,
        height=height,
    )


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
        "font": FONT,
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
    return figure(data, layout)


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
    title: str = "",
    height: int = 540,
) -> go.Figure:
    """The per-token gradient over two axes (blue < 0: descent raises v; orange > 0: lowers it); zeros in purple.

    ``title``: none by default: a page writes it above the figure, where it wraps on a narrow window.
    """
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
        legend_box("gradient exactly 0: the token is frozen", COLORS["zero_grad"]),
        *_edge_traces(edges),
    ]
    overlay = _zero_overlay(x, y, frozen, hover_prefix=hover)
    if overlay is not None:
        data.insert(1, overlay)
    layout = base_layout(title=title, height=height, x_title=AXIS_TITLES[x_axis], y_title=AXIS_TITLES[y_axis])
    if not title:
        layout["margin"]["t"] = 15
    layout["xaxis"]["range"] = [float(x[0]), float(x[-1])]
    layout["yaxis"]["range"] = [float(y[0]), float(y[-1])]
    layout["coloraxis"] = _gradient_colorbar(_abs_max(grad))
    return figure(data, layout)


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
    layout, cells = _two_column_grid([p[0] for p in panels], (len(panels) + 1) // 2, x, y, x_axis, y_axis, height)
    for title in layout["annotations"]:  # two panels side by side on a phone: titles a size smaller
        title["font"] = {"size": 12}
    for xa, _, _, _ in cells[: len(cells) - 2]:  # the bottom row names the shared x axis; above it, the titles
        layout[f"xaxis{xa[1:]}"]["title"] = {"text": ""}  # of the panels below need that room
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
    data.append(legend_box("gradient exactly 0: the token is frozen", COLORS["zero_grad"]))
    layout["coloraxis"] = _gradient_colorbar(_abs_max(*(p[1] for p in panels)))
    return figure(data, layout)
