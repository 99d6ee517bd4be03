"""Figures of the Scale page: per-token weights and learning-rate multipliers, colours from ``valueloss.notation``.

One colour, dash and marker per normalisation scheme; the single-batch reference is the grey
dashed line at 1 in both figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ..notation import COLORS
from .base import OPEN_AXIS, TOOL_MARGIN

__all__ = ["SCHEME_STYLE", "weights_figure", "multiplier_figure"]

# scheme key -> (colour, dash, marker)
SCHEME_STYLE = {
    "verl-engine-local": (COLORS["R"], "solid", "circle"),
    "verl-legacy-sample-ratio": (COLORS["clipped"], "dash", "square"),
    "verl-global": (COLORS["max"], "solid", "diamond"),
    "openrlhf-global": (COLORS["unclipped"], "dot", "cross"),
    "grad-accum-mean": (COLORS["v_old"], "dashdot", "triangle-up"),
}
_REFERENCE = dict(color=COLORS["neutral"], dash="longdash", width=2)


_LEGEND_ROW = 21  # px per legend entry: one scheme per row, so the legend's height is known at any width


def _layout(title: str, shapes: list, entries: int, **rest) -> go.Layout:
    """Both Scale figures: the tools' margin, the legend below (one scheme per row, every row inside the figure
    however narrow the window), and the divider lines. A title only when given: a page writes it above the
    figure instead, where it wraps on a narrow window."""
    legend = dict(
        orientation="h", yref="container", yanchor="bottom", y=0, x=0, entrywidth=1, entrywidthmode="fraction"
    )
    rows = _LEGEND_ROW * entries
    margin = {**TOOL_MARGIN, "t": TOOL_MARGIN["t"] if title else 25, "b": 70 + rows}
    return go.Layout(title=dict(text=title), margin=margin, height=380 + rows, legend=legend, shapes=shapes, **rest)


def _style(key: str) -> tuple[str, str, str]:
    return SCHEME_STYLE.get(key, (COLORS["neutral"], "solid", "circle"))


def _hline(y: float) -> dict:
    return dict(type="line", x0=0, x1=1, xref="paper", y0=y, y1=y, line=_REFERENCE)


def weights_figure(
    series: dict[str, tuple[str, np.ndarray]],
    boundaries: Sequence[float],
    rank_boundaries: Sequence[float],
    *,
    title: str = "",
) -> go.Figure:
    """``series``: scheme key -> (label, relative weight per real token in split order).

    Thin dotted lines separate micro-batches, solid ones ranks; the reference weighs every token 1.
    """
    traces = []
    for key, (label, rel) in series.items():
        color, dash, marker = _style(key)
        x = np.arange(len(rel))
        traces.append(
            go.Scatter(
                x=x,
                y=rel,
                mode="lines+markers" if len(rel) <= 80 else "lines",
                line=dict(color=color, dash=dash, width=2, shape="hv"),
                marker=dict(symbol=marker, size=5, color=color),
                name=label,
                hovertemplate="token %{x}: %{y:.4g}× the reference<extra>" + label + "</extra>",
            )
        )
    shapes = [_hline(1.0)]
    shapes += [
        dict(type="line", x0=b, x1=b, y0=0, y1=1, yref="paper", line=dict(color="#bbb", dash="dot", width=1))
        for b in boundaries
    ]
    shapes += [
        dict(type="line", x0=b, x1=b, y0=0, y1=1, yref="paper", line=dict(color="#666", width=1.5))
        for b in rank_boundaries
    ]
    layout = _layout(
        title,
        shapes,
        len(series),
        annotations=[
            dict(x=1, xref="paper", y=1.0, text="reference = 1", showarrow=False, xanchor="right", yanchor="bottom")
        ],
        xaxis=dict(title=dict(text="real tokens, in rank / micro-batch order"), **OPEN_AXIS),
        yaxis=dict(title=dict(text="relative weight (log)"), type="log", **OPEN_AXIS),
    )
    return go.Figure(data=traces, layout=layout)


def multiplier_figure(
    curves: Mapping[str, tuple[str, Sequence[tuple[int, float, float, float]]]],
    current: int | None,
    *,
    title: str = "",
) -> go.Figure:
    """``curves``: scheme key -> (label, rows of (micro-batches per rank, multiplier, min, max weight)).

    The line is the token-weighted mean weight (the multiplier); the band spans the smallest to the
    largest token weight, so a scheme that reweights tokens shows a band even where its mean is 1.
    Log axis: a multiplier of 8 and a token weight of 1/8 are equally far from the reference.
    """
    traces = []
    for key, (label, rows) in curves.items():
        color, dash, marker = _style(key)
        k = [r[0] for r in rows]
        traces.append(
            go.Scatter(
                x=k + k[::-1],
                y=[r[3] for r in rows] + [r[2] for r in rows][::-1],
                fill="toself",
                fillcolor=color,
                opacity=0.12,
                line=dict(width=0),
                hoverinfo="skip",
                showlegend=False,
            )
        )
        traces.append(
            go.Scatter(
                x=k,
                y=[r[1] for r in rows],
                mode="lines+markers",
                line=dict(color=color, dash=dash, width=2),
                marker=dict(symbol=marker, size=8, color=color),
                name=label,
                hovertemplate="%{x} micro-batches per rank: %{y:.4g}×<extra>" + label + "</extra>",
            )
        )
    shapes = [_hline(1.0)]
    if current is not None:
        shapes.append(
            dict(
                type="line",
                x0=current,
                x1=current,
                y0=0,
                y1=1,
                yref="paper",
                line=dict(color=COLORS["current"], dash="dot", width=1),
            )
        )
    layout = _layout(
        title,
        shapes,
        len(curves),
        xaxis=dict(title=dict(text="micro-batches per rank"), dtick=1, **OPEN_AXIS),
        yaxis=dict(title=dict(text="× the single-batch gradient (log)"), type="log", **OPEN_AXIS),
    )
    return go.Figure(data=traces, layout=layout)
