"""Figures of "Does clipping help?": learning curves with 95 % bootstrap bands over seeds, final return and
area under the curve per eps, and the critic's clip fraction and explained variance over training.

Pure functions: a ``SweepSummary`` (computed by ``valueloss.tools.ablate_stats``, defined in ``valueloss.teach.ablation``) in, a ``go.Figure`` out. "off" is
always black and solid; each eps keeps its Okabe-Ito colour and dash in every figure.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..notation import COLORS
from ..teach.ablation import Band, EpsSummary, SweepSummary
from .base import AXIS, FONT, base_layout

__all__ = ["eps_style", "learning_curves", "final_and_auc", "critic_curves"]

# Okabe-Ito, in order after black ("off"); dashes tell them apart in greyscale too.
_CYCLE = [COLORS["unclipped"], COLORS["clipped"], COLORS["v_old"], COLORS["R"], COLORS["zero_grad"], COLORS["band"]]
_DASHES = ["dash", "dot", "dashdot", "longdash", "longdashdot", "solid"]


def eps_style(summary: SweepSummary) -> dict[str, tuple[str, str]]:
    """(colour, dash) per legend name, fixed by the order of the sweep's eps values."""
    styles: dict[str, tuple[str, str]] = {}
    i = 0
    for e in summary.per_eps:
        name = legend_name(e)
        if e.label == "off":
            styles[name] = (COLORS["max"], "solid")
        else:
            styles[name] = (_CYCLE[i % len(_CYCLE)], _DASHES[i % len(_DASHES)])
            i += 1
    return styles


def legend_name(e: EpsSummary) -> str:
    base = "off" if e.label == "off" else f"eps {e.label}"
    return base + (" · value norm" if e.value_norm else "")


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _band_traces(band: Band, name: str, color: str, dash: str, *, showlegend: bool, group: str) -> list[dict]:
    ok = np.isfinite(band.low) & np.isfinite(band.high)
    traces = []
    if ok.any():
        x = band.steps[ok]
        traces.append(
            {
                "type": "scatter",
                "x": np.concatenate([x, x[::-1]]).tolist(),
                "y": np.concatenate([band.high[ok], band.low[ok][::-1]]).tolist(),
                "fill": "toself",
                "fillcolor": _rgba(color, 0.15),
                "line": {"width": 0},
                "hoverinfo": "skip",
                "showlegend": False,
                "legendgroup": group,
                "name": f"{name} 95% band",
            }
        )
    traces.append(
        {
            "type": "scatter",
            "x": band.steps.tolist(),
            "y": band.mean.tolist(),
            "mode": "lines",
            "name": name,
            "legendgroup": group,
            "showlegend": showlegend,
            "line": {"color": color, "dash": dash, "width": 3 if dash == "solid" and color == COLORS["max"] else 2},
            "hovertemplate": f"{name}<br>step %{{x:,}}<br>%{{y:.3g}}<extra></extra>",
        }
    )
    return traces


def _legend() -> dict:
    """Under the axis titles, at the foot of the figure (a fraction of the plot would move with its height)."""
    return {"orientation": "h", "yref": "container", "yanchor": "bottom", "y": 0.0, "x": 0.0, "font": {"size": 12}}


def learning_curves(summary: SweepSummary) -> go.Figure:
    """Episodic return over training: the mean over seeds and its 95 % bootstrap band, per eps."""
    styles = eps_style(summary)
    data = []
    for e in summary.per_eps:
        name = legend_name(e)
        color, dash = styles[name]
        data += _band_traces(e.returns, name, color, dash, showlegend=True, group=name)
    layout = base_layout(
        title=f"{summary.env_id}: episodic return, {summary.n_seeds} seeds",
        height=430,
        x_title="environment steps",
        y_title="episodic return",
    )
    return go.Figure(data=data, layout=layout)


def _interval_trace(summary: SweepSummary, which: str, styles, *, axis: tuple[str, str]) -> list[dict]:
    traces = []
    for e in summary.per_eps:
        name = legend_name(e)
        iv = getattr(e, which)
        color, _ = styles[name]
        has_interval = np.isfinite(iv.low) and np.isfinite(iv.high)
        traces.append(
            {
                "type": "scatter",
                "x": [name],
                "y": [iv.mean],
                "mode": "markers",
                "name": name,
                "legendgroup": name,
                "showlegend": False,
                "marker": {"color": color, "size": 11, "symbol": "circle" if e.label == "off" else "diamond"},
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [iv.high - iv.mean if has_interval else 0],
                    "arrayminus": [iv.mean - iv.low if has_interval else 0],
                    "color": color,
                    "thickness": 2,
                    "width": 8,
                },
                "xaxis": axis[0],
                "yaxis": axis[1],
                "hovertemplate": f"{name}<br>%{{y:.4g}} (95 % CI {iv.low:.4g} to {iv.high:.4g}, {iv.n} seeds)"
                "<extra></extra>",
            }
        )
    return traces


_OPEN = {k: v for k, v in AXIS.items() if k != "mirror"}


def _two_panels(titles: tuple[str, str], data: list[dict], *, height: int, bottom: int, legend: bool) -> go.Figure:
    """Two panels side by side, the app's font and axes; the legend (if any) under them."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles, horizontal_spacing=0.13)
    fig.add_traces(data)
    fig.update_layout(
        height=height,
        margin={"l": 60, "r": 20, "t": 50, "b": bottom},
        font=FONT,
        plot_bgcolor="white",
        hovermode="closest",
        showlegend=legend,
        legend=_legend(),
    )
    return fig


def final_and_auc(summary: SweepSummary) -> go.Figure:
    """Final return and area under the curve per eps: the mean over seeds with its 95 % bootstrap interval."""
    styles = eps_style(summary)
    data = _interval_trace(summary, "final", styles, axis=("x", "y"))
    data += _interval_trace(summary, "auc", styles, axis=("x2", "y2"))
    fig = _two_panels(("final return", "AUC (mean return)"), data, height=360, bottom=40, legend=False)
    fig.update_xaxes(**_OPEN, type="category")
    fig.update_yaxes(**_OPEN, title_text="episodic return", col=1)
    fig.update_yaxes(**_OPEN, col=2)
    return fig


def critic_curves(summary: SweepSummary) -> go.Figure:
    """The critic over training: the dialect's clip fraction (clipped settings) and the explained variance
    of its old values (every setting), each the mean over seeds with its 95 % bootstrap band."""
    styles = eps_style(summary)
    data = []
    for e in summary.per_eps:
        name = legend_name(e)
        color, dash = styles[name]
        if e.label != "off":
            for t in _band_traces(e.clipfrac, name, color, dash, showlegend=False, group=name):
                data.append({**t, "xaxis": "x", "yaxis": "y"})
        for t in _band_traces(e.explained_variance, name, color, dash, showlegend=True, group=name):
            data.append({**t, "xaxis": "x2", "yaxis": "y2"})
    fig = _two_panels(("vf_clipfrac", "explained variance"), data, height=400, bottom=110, legend=True)
    fig.update_xaxes(**_OPEN, title_text="environment steps")
    fig.update_yaxes(**_OPEN, title_text="share of transitions", range=[0, 1], col=1)
    fig.update_yaxes(**_OPEN, range=[-1, 1], col=2)
    return fig
