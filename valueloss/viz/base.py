"""The one plotting base of every figure: font, axes, the single-panel and the grid-of-panels layouts,
and the small trace builders the one-token and surface figures share.

Figures are assembled as plain dicts and validated once by ``go.Figure(data, layout)`` (``add_trace`` /
``add_vline`` re-validate on every call and cost tens of milliseconds per figure)."""

from __future__ import annotations

import hashlib

import plotly.graph_objects as go

from ..notation import (
    COLORS,
    SYMBOLS,
)

__all__ = [
    "OPEN_AXIS",
    "TOOL_MARGIN",
    "AXIS_TITLES",
    "FONT",
    "AXIS",
    "figure",
    "panel_layout",
    "base_layout",
    "legend_box",
    "line_trace",
    "current_marker",
    "grid_axes",
    "subplot_layout",
    "data_revision",
    "stacked_panels",
    "APP_TEMPLATE",
]


AXIS_TITLES = {
    "v": "v (prediction)",
    "v_old": "v_old (old value)",
    "R": "R (return)",
    "delta": "Δ = v − v_old",
    "gap": "R − v_old",
}


# No family: figures drawn with Streamlit's theme take the app's font, the others Plotly's default list.
FONT = {"size": 13}


# Streamlit's light chart theme (1.67, read from a themed figure in the browser) as a Plotly template. A figure
# that carries it is drawn with theme=None and looks the same: Streamlit's theming re-processes the whole
# figure in the browser and draws it again after mounting, which was a third of a Critic dynamics re-run.
_MUTED, _GRID, _FAMILY = "#808495", "#e6eaf1", '"Source Sans", sans-serif'
_THEMED_AXIS = {
    "gridcolor": _GRID,
    "zerolinecolor": _GRID,
    "tickcolor": _GRID,
    "minor": {"gridcolor": _GRID},
    "tickfont": {"color": _MUTED, "size": 12},
    "automargin": True,
}
APP_TEMPLATE = go.layout.Template(
    layout={
        "font": {"family": _FAMILY, "size": 12, "color": _MUTED},
        "paper_bgcolor": "#FFFFFF",
        "plot_bgcolor": "#FFFFFF",
        "colorway": [
            "#0068c9",
            "#83c9ff",
            "#ff2b2b",
            "#ffabab",
            "#29b09d",
            "#7defa1",
            "#ff8700",
            "#ffd16a",
            "#6d3fc0",
            "#d5dae5",
        ],  # fmt: skip
        "title": {"font": {"size": 16, "color": "#2F2D2B"}, "x": 0, "xanchor": "left", "pad": {"l": 4}},
        "legend": {
            "borderwidth": 0,
            "valign": "top",
            "font": {"size": 12, "color": "#262730"},
        },
        "hoverlabel": {"bgcolor": "#FFFFFF", "bordercolor": "#DCD8D4", "font": {"color": _MUTED, "size": 12}},
        "margin": {"pad": 8, "r": 0, "l": 0},
        "xaxis": {
            **_THEMED_AXIS,
            "showgrid": False,
            "zeroline": False,
            "title": {"font": {"color": _MUTED, "size": 14}, "standoff": 20},
        },
        "yaxis": {
            **_THEMED_AXIS,
            "ticklabelposition": "outside",
            "title": {"font": {"color": _MUTED, "size": 14}, "standoff": 24},
        },
    }
)


# Axes: framed (grid, mirrored frame line) on the teaching figures; open (axis line, light grid) and a tight
# margin on the tools' figures (Batch, Sanity check, Timing, Scale).
AXIS = {"showgrid": True, "gridcolor": "#e6e6e6", "zeroline": False, "linecolor": "#999", "mirror": True}
OPEN_AXIS = {"showline": True, "linecolor": "#bbb", "gridcolor": "#eee", "zeroline": False}
TOOL_MARGIN = {"l": 10, "r": 10, "t": 60, "b": 10}


def figure(data: list[dict], layout: dict) -> go.Figure:
    return go.Figure(data=data, layout=layout)


def panel_layout(*, height: int, margin: dict, legend: dict) -> dict:
    """The layout keys every 2-D teaching figure starts from: its size and margin, the font, a white plot,
    hover on the closest point, and where its legend goes."""
    return {
        "height": height,
        "margin": margin,
        "font": FONT,
        "plot_bgcolor": "white",
        "hovermode": "closest",
        "legend": legend,
    }


def base_layout(*, title: str, height: int, x_title: str, y_title: str, legend_rows: int = 2) -> dict:
    """Title top left, legend under the plot (it never covers the title or the data)."""
    bottom = 55 + 22 * legend_rows
    legend = {
        "orientation": "h",
        "yref": "container",
        "yanchor": "bottom",
        "y": 0.0,
        "xanchor": "left",
        "x": 0.0,
        "font": {"size": 12},
    }
    return {
        "title": {"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 15}},
        **panel_layout(height=height, margin={"l": 60, "r": 20, "t": 45, "b": bottom}, legend=legend),
        "xaxis": {**AXIS, "title": {"text": x_title, "standoff": 6}},
        "yaxis": {**AXIS, "title": {"text": y_title}},
    }


def legend_box(name: str, color: str, **extra) -> dict:
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


def line_trace(x, y, name: str, color: str, *, dash: str = "solid", width: float = 2, **extra) -> dict:
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


def current_marker(x: float, y: float, label: str, name: str = "current v") -> dict:
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


def grid_axes(rows: int, cols: int, *, hspace: float, vspace: float) -> list[tuple[str, str, list, list]]:
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


def subplot_layout(titles: list[str], *, rows: int, cols: int, x_title: str, y_title: str, x, y, height: int):
    cells = grid_axes(rows, cols, hspace=0.13, vspace=0.16)
    layout = panel_layout(
        height=height,
        margin={"l": 60, "r": 30, "t": 90, "b": 50},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.07, "x": 0.0, "font": {"size": 12}},
    )
    layout["annotations"] = []
    for i, ((xa, ya, xd, yd), title) in enumerate(zip(cells, titles, strict=False)):
        layout[f"xaxis{xa[1:]}"] = {
            **AXIS,
            "domain": xd,
            "anchor": ya,
            "range": [float(x[0]), float(x[-1])],
            "title": {"text": x_title},
        }
        layout[f"yaxis{ya[1:]}"] = {
            **AXIS,
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


def data_revision(source: object) -> str:
    """``layout.datarevision`` from what a figure's data is a function of (its repr must say all of it).

    Streamlit hands Plotly an equal copy of each figure right after its first draw; without a revision
    Plotly.react takes the copied arrays for new data and recalculates and redraws every trace (each figure
    was drawn twice per re-run). With the same revision it sees no new data and the second pass is cheap."""
    return hashlib.blake2b(repr(source).encode(), digest_size=8).hexdigest()


def stacked_panels(panels: list[tuple[str, str, dict]], *, gap: float, x_title: str) -> tuple[dict, list[dict]]:
    """Axes and bold title annotations for panels stacked on one shared x axis (one zoom for all, tick labels
    on the last): ``panels`` is (title, y axis title, extra y axis settings) top to bottom, ``gap`` the share
    of the plot height between two panels. Returns the layout's axes and the titles; panel i draws on
    ``x{i+1}`` / ``y{i+1}`` (the first on ``x`` / ``y``)."""
    n = len(panels)
    height_each = (1 - gap * (n - 1)) / n
    axes: dict = {}
    titles: list[dict] = []
    for i, (title, y_title, yaxis) in enumerate(panels):
        suffix = "" if i == 0 else str(i + 1)
        top = 1 - i * (height_each + gap)
        axes[f"yaxis{suffix}"] = {
            **OPEN_AXIS,
            "domain": [max(0.0, top - height_each), min(1.0, top)],
            "title": {"text": y_title, "font": {"size": 12}},
            "anchor": f"x{suffix}",
            **yaxis,
        }
        axes[f"xaxis{suffix}"] = {
            **OPEN_AXIS,
            "anchor": f"y{suffix}",
            "matches": "x" if i else None,
            "showticklabels": i == n - 1,
            "title": {"text": x_title if i == n - 1 else ""},
        }
        titles.append(
            {
                "text": f"<b>{title}</b>",
                "xref": "paper",
                "yref": f"y{suffix} domain",
                "x": 0,
                "y": 1.02,
                "xanchor": "left",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 13},
            }
        )
    return axes, titles
