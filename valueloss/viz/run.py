"""The timeline of one or more runs: the critic's quantities over training steps, one panel each, sharing x.

It draws what ``valueloss.tools.runlogs.analyse_run`` returns (viz sits beside tools, so it reads those records
by their fields and imports nothing from there): ``quantities.series`` (quantity -> a series with ``steps``
and ``values`` arrays), ``scale`` (the return scale, such a series or None), ``phases`` (each with ``start``)
and ``findings`` (each with ``start``, ``kind`` and ``title``). Long runs are drawn min/max-decimated (every spike stays visible) and non-finite values as markers on the
panel's top edge, so a 100,000-step run draws as fast as a short one.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..notation import BAND_FILL, COLORS
from .base import FONT, stacked_panels

__all__ = ["MAX_DRAWN", "RUN_COLORS", "decimate", "timeline_figure", "PANELS"]

NON_FINITE_FILL = "rgba(213, 94, 0, 0.22)"  # vermillion: where a quantity is NaN or inf
MAX_DRAWN = 300  # buckets per trace (two points each: its min and max), about one per 4 px of a wide panel
# One Okabe-Ito colour per run (runs overlaid to compare eps), also told apart by dash.
RUN_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
RUN_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "solid", "dash")

# panel key -> (title, y axis title, log y)
PANELS = {
    "clipfrac": ("Value clip fraction and your band", "clip fraction", False),
    "value_loss": ("Value loss (log)", "value loss", True),
    "explained_variance": ("Explained variance", "explained var.", False),
    "values": ("Values v_old and returns R", "return units", False),
    "eps_scale": ("eps / return scale", "eps / scale", False),
    "grad_norm": ("Critic grad norm (log)", "grad norm", True),
}


def decimate(steps: np.ndarray, values: np.ndarray, max_points: int = MAX_DRAWN) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2 * max_points`` points: each bucket of consecutive points keeps its min and its max (in
    step order), so a spike or a dip is never averaged away. Non-finite values are left out (drawn apart)."""
    finite = np.isfinite(values)
    steps, values = steps[finite], values[finite]
    n = len(steps)
    if n <= 2 * max_points:
        return steps, values
    edges = np.linspace(0, n, max_points + 1).astype(np.int64)
    bucket = np.repeat(np.arange(max_points), np.diff(edges))
    keep = []
    for reduce in (np.minimum, np.maximum):
        extreme = reduce.reduceat(values, edges[:-1])
        hits = np.flatnonzero(values == extreme[bucket])
        _, first = np.unique(bucket[hits], return_index=True)  # the first point of each bucket at its extreme
        keep.append(hits[first])
    both = np.unique(np.concatenate(keep))
    return steps[both], values[both]


def _xy(steps: np.ndarray, values: np.ndarray):
    return decimate(
        steps, values
    )  # numpy arrays: plotly validates and serialises them whole (lists cost a call per point)


def _non_finite_spans(steps: np.ndarray, values: np.ndarray, most: int = 50) -> list[tuple[int, int]]:
    """(first, last) step of each stretch of NaN / inf values, the first ``most`` of them."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return []
    edges = np.diff(np.concatenate([[0], bad.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(int(steps[a]), int(steps[b])) for a, b in zip(starts[:most], ends[:most], strict=True)]


def timeline_figure(
    analyses: dict,
    eps: dict[str, float | None],
    band: tuple[float, float],
    *,
    phase_of: str | None = None,
    panels: tuple[str, ...] = tuple(PANELS),
) -> go.Figure:
    """Every panel of ``panels`` that some run has data for, runs overlaid in their own colour; the band shaded
    on the clip-fraction panel; the phases of ``phase_of`` (a run name) and its findings' start steps marked.
    Only the "eps_scale" panel reads ``eps``: the page draws it as its own figure, so typing eps redraws it
    alone."""
    unknown = set(panels) - set(PANELS)
    if unknown:
        raise ValueError(f"unknown panel(s) {sorted(unknown)}; the panels are {', '.join(PANELS)}")
    panels = tuple(p for p in PANELS if p in panels and any(_has(a, p, eps.get(r)) for r, a in analyses.items()))
    if not panels:
        raise ValueError("none of the runs has a critic quantity to draw: map the metrics first")
    n = len(panels)
    several = len(analyses) > 1
    axes, titles = stacked_panels(
        [(PANELS[p][0], PANELS[p][1], {"type": "log" if PANELS[p][2] else "linear"}) for p in panels],
        gap=0.045,
        x_title="step",
    )
    layout: dict = {
        **axes,
        "height": 190 * n + (110 if several else 70),
        "margin": {"l": 60, "r": 20, "t": 70 if several else 30, "b": 40},
        "font": FONT,
        "plot_bgcolor": "white",
        "hovermode": "x unified",
        "showlegend": several,
        "legend": {
            "orientation": "h",
            "yref": "container",
            "yanchor": "top",
            "y": 1.0,
            "x": 0.0,
            "font": {"size": 12},
            "title": {"text": "runs "},
        },
        "annotations": titles,
        "shapes": [],
    }
    data: list[dict] = []
    axis_of = {panel: ("x", "y") if i == 0 else (f"x{i + 1}", f"y{i + 1}") for i, panel in enumerate(panels)}
    if "clipfrac" in axis_of:
        xa, ya = axis_of["clipfrac"]
        layout["shapes"].append(
            {
                "type": "rect",
                "xref": f"{xa} domain",
                "yref": ya,
                "x0": 0,
                "x1": 1,
                "y0": band[0],
                "y1": band[1],
                "fillcolor": BAND_FILL,
                "line": {"width": 0},
                "layer": "below",
            }
        )
    for k, (run, analysis) in enumerate(analyses.items()):
        color, dash = RUN_COLORS[k % len(RUN_COLORS)], RUN_DASHES[k % len(RUN_DASHES)]
        data += _run_traces(run, analysis, eps.get(run), axis_of, color, dash, layout["shapes"])
    if phase_of in analyses:
        analysis = analyses[phase_of]
        for p in analysis.phases[1:]:
            for xa, ya in axis_of.values():
                layout["shapes"].append(
                    {
                        "type": "line",
                        "xref": xa,
                        "yref": f"{ya} domain",
                        "x0": p.start,
                        "x1": p.start,
                        "y0": 0,
                        "y1": 1,
                        "line": {"color": "#777", "width": 1, "dash": "dot"},
                    }
                )
        for f in analysis.findings:
            if _panel_of(f.kind) not in axis_of:  # its panel is not drawn here: marked elsewhere it would sit on
                continue  # another finding's marker (the empty page's preview draws two panels)
            xa, ya = axis_of[_panel_of(f.kind)]
            layout["annotations"].append(
                {
                    "x": f.start,
                    "y": 1,
                    "xref": xa,
                    "yref": f"{ya} domain",
                    "yanchor": "top",
                    "text": "▼",
                    "showarrow": False,
                    "font": {"color": COLORS["R"], "size": 14},
                    "hovertext": f.title,
                }
            )
    return go.Figure(data=data, layout=layout)


def _panel_of(kind: str) -> str:
    return {"explained_variance": "explained_variance", "values_drift": "values"}.get(kind, "value_loss")


def _has(analysis, panel: str, eps) -> bool:
    q = analysis.quantities.series
    if panel == "values":
        return any(k in q for k in ("values_mean", "returns_mean", "values_min", "returns_min"))
    if panel == "eps_scale":
        return analysis.scale is not None and eps is not None
    return panel in q


def _run_traces(run, analysis, eps, axis_of, color, dash, spans: list) -> list[dict]:
    """The run's traces; the stretches where a quantity is NaN / inf go to ``spans`` (shaded rectangles)."""
    q = analysis.quantities.series
    traces = []
    shown = False

    def line(steps, values, panel: str, name: str, *, width=1.6, line_dash=None, opacity=1.0):
        nonlocal shown
        xa, ya = axis_of[panel]
        x, y = _xy(steps, values)
        trace = {
            "type": "scatter",
            "x": x,
            "y": y,
            "xaxis": xa,
            "yaxis": ya,
            "mode": "lines",
            "name": run,
            "legendgroup": run,
            "showlegend": not shown,
            "line": {"color": color, "dash": line_dash or dash, "width": width},
            "opacity": opacity,
            "hovertemplate": f"{name}: %{{y:.4g}}<extra>{run[:30]}</extra>",
        }
        shown = True
        traces.append(trace)
        for x0, x1 in _non_finite_spans(steps, values):
            spans.append(
                {
                    "type": "rect",
                    "xref": xa,
                    "yref": f"{ya} domain",
                    "x0": x0 - 0.5,
                    "x1": x1 + 0.5,
                    "y0": 0,
                    "y1": 1,
                    "fillcolor": NON_FINITE_FILL,
                    "line": {"width": 0},
                    "layer": "below",
                }
            )

    for panel in ("clipfrac", "value_loss", "explained_variance", "grad_norm"):
        if panel in q and panel in axis_of:
            line(q[panel].steps, q[panel].values, panel, PANELS[panel][1])
    if "values" in axis_of:
        for stat, width, opacity in (("mean", 2.0, 1.0), ("min", 0.8, 0.5), ("max", 0.8, 0.5)):
            for who, line_dash in (("values", None), ("returns", "dot")):
                series = q.get(f"{who}_{stat}")
                if series is not None:
                    line(
                        series.steps,
                        series.values,
                        "values",
                        f"{who} {stat}",
                        width=width,
                        line_dash=line_dash,
                        opacity=opacity,
                    )
    if "eps_scale" in axis_of and analysis.scale is not None and eps is not None:
        scale = analysis.scale
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(scale.values > 0, eps / scale.values, np.nan)
        line(scale.steps, ratio, "eps_scale", "eps / scale")
    return traces
