"""Figures of the Batch and Sanity-check pages: arrays in, ``go.Figure`` out, colours from ``valueloss.notation``.

Each figure is built in one constructor call with its shapes and annotations as plain dicts: plotly's
``add_vline`` / ``make_subplots`` helpers cost ~10 ms each, more than the whole page's arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ..notation import BAND_FILL, COLORS, DASHES, WIDTHS
from ..teach.sanity_text import CURVE_WORDS
from .base import OPEN_AXIS, TOOL_MARGIN

__all__ = ["DEFINITION_STYLE", "histogram_figure", "clipfrac_curve", "aggregation_weights_figure", "dialect_figure"]

_LEGEND = dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0)

# The clip-fraction definitions: loss-clipped tokens are the zero-gradient ones, hence that colour.
DEFINITION_STYLE = {
    "loss": (COLORS["zero_grad"], "solid", CURVE_WORDS["loss"]),
    "prediction": (COLORS["band"], "dash", CURVE_WORDS["prediction"]),
    "clamp": (COLORS["R"], "dashdot", CURVE_WORDS["clamp"]),
}


def _vline(x: float, color: str, dash: str, width: float) -> dict:
    return dict(type="line", x0=x, x1=x, y0=0, y1=1, yref="paper", line=dict(color=color, dash=dash, width=width))


def _hline(y: float, color: str, dash: str, width: float) -> dict:
    return dict(type="line", x0=0, x1=1, xref="paper", y0=y, y1=y, line=dict(color=color, dash=dash, width=width))


def _band_shapes(eps: float) -> list[dict]:
    """The trust band [-eps, eps] around v_old: shaded, with dashed edges."""
    edge = COLORS["band"], DASHES["band_edge"], WIDTHS["band_edge"] + 1
    return [
        dict(type="rect", x0=-eps, x1=eps, y0=0, y1=1, yref="paper", fillcolor=BAND_FILL, line_width=0, layer="below"),
        _vline(-eps, *edge),
        _vline(eps, *edge),
    ]


def histogram_figure(
    edges: np.ndarray, counts: np.ndarray, eps: float, *, title: str, x_title: str, color_key: str
) -> go.Figure:
    """Pre-binned histogram (bars) with the ±eps band: the tokens outside it are the ones that can clip."""
    edges, counts = np.asarray(edges, dtype=float), np.asarray(counts)
    bar = go.Bar(
        x=0.5 * (edges[:-1] + edges[1:]),
        y=counts,
        width=np.diff(edges),
        marker=dict(color=COLORS[color_key], line=dict(width=0)),
        opacity=0.85,
        name="tokens",
        hovertemplate="%{x:.3g}: %{y} tokens<extra></extra>",
    )
    layout = dict(
        title=dict(text=title),
        height=330,
        margin=TOOL_MARGIN,
        plot_bgcolor="white",
        bargap=0,
        showlegend=False,
        shapes=_band_shapes(eps),
        annotations=[
            dict(x=eps, y=1, yref="paper", text=f"±eps = {eps:.3g}", showarrow=False, xanchor="left", yanchor="top")
        ],
        xaxis=dict(title=dict(text=x_title), **OPEN_AXIS),
        yaxis=dict(title=dict(text="tokens"), **OPEN_AXIS),
    )
    return go.Figure(data=[bar], layout=layout)


def clipfrac_curve(
    eps_grid: np.ndarray,
    curves: dict[str, np.ndarray],
    *,
    eps: float,
    at_eps: dict[str, float],
    emphasise: str,
    target: float | None = None,
    target_eps: float | None = None,
    x_title: str = "eps (return units)",
    estimate: bool = False,
    reproduces_log: bool = False,
) -> go.Figure:
    """Clip fraction against eps for each definition (steps), the chosen eps, the target and its eps.

    ``estimate``: the curves come from a model batch; ``reproduces_log``: from the evidence resized to a log."""
    suffix = " (your log's step)" if reproduces_log else " (estimate)" if estimate else ""
    traces = []
    for name, y in curves.items():
        color, dash, label = DEFINITION_STYLE[name]
        traces.append(
            go.Scatter(
                x=eps_grid,
                y=y,
                mode="lines",
                name=label + suffix,
                line=dict(color=color, dash=dash, width=4 if name == emphasise else 2),
                hovertemplate="eps %{x:.4g}: %{y:.2%}<extra></extra>",
            )
        )
    names = [n for n in curves if n in at_eps]
    traces.append(
        go.Scatter(
            x=[eps] * len(names),
            y=[at_eps[n] for n in names],
            mode="markers",
            marker=dict(
                color=COLORS["current"],
                symbol=[("circle" if n == emphasise else "circle-open") for n in names],
                size=10,
            ),
            name=f"chosen eps = {eps:.3g}",
            hovertemplate="chosen eps: %{y:.2%}<extra></extra>",
        )
    )
    shapes = [_vline(eps, COLORS["current"], "dot", 1)]
    annotations = []
    if target is not None:
        shapes.append(_hline(target, COLORS["neutral"], "dash", 1))
        annotations.append(
            dict(
                x=1,
                xref="paper",
                y=target,
                text=f"target {target:.0%}",
                showarrow=False,
                xanchor="right",
                yanchor="bottom",
            )
        )
        if target_eps is not None:
            traces.append(
                go.Scatter(
                    x=[target_eps],
                    y=[target],
                    mode="markers",
                    marker=dict(color=COLORS["neutral"], symbol="x", size=12),
                    name=f"eps for the target = {target_eps:.3g}",
                    hovertemplate="eps for the target: %{x:.4g}<extra></extra>",
                )
            )
    layout = dict(
        height=400,
        margin=TOOL_MARGIN,
        plot_bgcolor="white",
        legend=_LEGEND,
        shapes=shapes,
        annotations=annotations,
        xaxis=dict(title=dict(text=x_title), rangemode="tozero", **OPEN_AXIS),
        yaxis=dict(title=dict(text="share of real tokens"), tickformat=".0%", rangemode="tozero", **OPEN_AXIS),
    )
    return go.Figure(data=traces, layout=layout)


def aggregation_weights_figure(
    modes: Sequence[str],
    short_weight: Sequence[float],
    long_weight: Sequence[float],
    *,
    short_len: int,
    long_len: int,
    current: str | None = None,
) -> go.Figure:
    """Per-token weight d AGG / d L in each verl mode: a token of the shortest vs of the longest sequence.

    Log scale, because the modes differ by orders of magnitude (token-sum gives 1, token-mean 1/N);
    the label above each pair is the short / long ratio.
    """
    labels = [f"<b>{m}</b>" if m == current else m for m in modes]
    traces = [
        go.Bar(
            x=labels,
            y=list(short_weight),
            name=f"a token of the shortest sequence ({short_len} tokens)",
            marker=dict(color=COLORS["unclipped"]),
            hovertemplate="%{x}: %{y:.3g} per token<extra>short</extra>",
        ),
        go.Bar(
            x=labels,
            y=list(long_weight),
            name=f"a token of the longest sequence ({long_len} tokens)",
            marker=dict(color=COLORS["clipped"], pattern=dict(shape="/")),
            hovertemplate="%{x}: %{y:.3g} per token<extra>long</extra>",
        ),
    ]
    annotations = []
    for label, s, lw in zip(labels, short_weight, long_weight, strict=True):
        if s > 0 and lw > 0 and math.isfinite(s / lw):
            annotations.append(
                dict(x=label, y=math.log10(max(s, lw)), text=f"×{s / lw:.3g}", showarrow=False, yshift=12)
            )
    layout = dict(
        height=360,
        margin=TOOL_MARGIN,
        plot_bgcolor="white",
        legend=_LEGEND,
        barmode="group",
        annotations=annotations,
        xaxis=dict(**OPEN_AXIS),
        yaxis=dict(title=dict(text="weight per token (log scale)"), type="log", **OPEN_AXIS),
    )
    return go.Figure(data=traces, layout=layout)


def dialect_figure(
    names: Sequence[str],
    losses: Sequence[float],
    clipfracs: Sequence[float | None],
    definitions: Sequence[str | None],
) -> go.Figure:
    """Each library's logged loss (left) and clip fraction (right) on one batch; 'not logged' is marked."""
    finite = [v is not None and math.isfinite(v) for v in losses]
    loss_bar = go.Bar(
        x=list(names),
        y=[v if ok else 0 for v, ok in zip(losses, finite, strict=True)],
        marker=dict(color=COLORS["max"]),
        text=[f"{v:.3g}" if ok else "NaN" for v, ok in zip(losses, finite, strict=True)],
        textposition="outside",
        cliponaxis=False,
        hovertemplate="%{x}: %{text}<extra>loss</extra>",
        showlegend=False,
    )
    clip_bar = go.Bar(
        x=list(names),
        y=[c if c is not None and math.isfinite(c) else 0 for c in clipfracs],
        marker=dict(color=[DEFINITION_STYLE.get(d or "", (COLORS["neutral"],))[0] for d in definitions]),
        text=["not logged" if c is None else ("NaN" if not math.isfinite(c) else f"{c:.1%}") for c in clipfracs],
        textposition="outside",
        cliponaxis=False,
        hovertemplate="%{x}: %{text}<extra>clip fraction</extra>",
        showlegend=False,
        xaxis="x2",
        yaxis="y2",
    )
    # centred over each panel: plotly's "auto" anchor pushed the two titles into each other on a narrow window
    title = dict(
        y=1.0,
        yref="paper",
        xref="paper",
        showarrow=False,
        xanchor="center",
        yanchor="bottom",
        yshift=18,
        font=dict(size=14),
    )
    layout = dict(
        height=360,
        margin=TOOL_MARGIN,
        plot_bgcolor="white",
        annotations=[
            dict(x=0.225, text="value loss, as logged", **title),
            dict(x=0.775, text="clip fraction, as logged", **title),
        ],
        xaxis=dict(domain=[0, 0.45], **OPEN_AXIS),
        yaxis=dict(rangemode="tozero", **OPEN_AXIS),
        xaxis2=dict(domain=[0.55, 1], anchor="y2", **OPEN_AXIS),
        yaxis2=dict(anchor="x2", tickformat=".0%", rangemode="tozero", **OPEN_AXIS),
    )
    return go.Figure(data=[loss_bar, clip_bar], layout=layout)
