"""Figures of the guided tour: one builder per reveal kind, all from ``valueloss.teach.tour.Reveal`` data.

Figures are assembled as plain dicts and validated once by ``go.Figure`` (cheap reruns); colours,
dashes and markers come from ``valueloss.notation``.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..notation import BAND_FILL, COLORS, DASHES, SYMBOLS, WIDTHS, ZERO_GRAD_FILL
from .base import AXIS, panel_layout
from .scale import multiplier_figure

__all__ = ["reveal_figure", "FIGURE_KINDS"]


def _layout(*, height: int, x_title: str, y_title: str, **extra) -> dict:
    return {
        **panel_layout(
            height=height,
            margin={"l": 60, "r": 20, "t": 30, "b": 95},
            legend={"orientation": "h", "yref": "container", "y": 0.0, "yanchor": "bottom", "x": 0.0},
        ),
        "xaxis": {**AXIS, "title": {"text": x_title, "standoff": 4}},
        "yaxis": {**AXIS, "title": {"text": y_title}},
        **extra,
    }


def _line(x, y, name: str, key: str, *, dash: str | None = None, width: float | None = None, **extra) -> dict:
    return {
        "type": "scatter",
        "mode": "lines",
        "x": np.asarray(x).tolist(),
        "y": np.asarray(y).tolist(),
        "name": name,
        "line": {
            "color": COLORS[key],
            "dash": dash if dash is not None else DASHES.get(key, "solid"),
            "width": width if width is not None else WIDTHS.get(key, 2),
        },
        **extra,
    }


def _point(x: float, y: float, name: str, *, color: str = COLORS["current"], symbol: str = SYMBOLS["current"]) -> dict:
    return {
        "type": "scatter",
        "mode": "markers",
        "x": [x],
        "y": [y],
        "name": name,
        "marker": {"color": color, "size": 13, "symbol": symbol, "line": {"color": "white", "width": 1.5}},
        "hovertemplate": f"{name}: v = %{{x:.3g}}, %{{y:.4g}}<extra></extra>",
    }


def _spans(x: np.ndarray, mask: np.ndarray) -> list[tuple[float, float]]:
    """Contiguous x-intervals where ``mask`` holds."""
    if not mask.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    return [(float(x[a]), float(x[b - 1])) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _v_shapes(d: dict, *, yref: str = "y domain", xref: str = "x", zero_spans=True) -> list[dict]:
    """Band, zero-gradient stretches, v_old and R lines for a figure whose x axis is v."""
    lo, hi = d["v_old"] - d["eps"], d["v_old"] + d["eps"]
    shapes = [
        {
            "type": "rect",
            "xref": xref,
            "yref": yref,
            "x0": lo,
            "x1": hi,
            "y0": 0,
            "y1": 1,
            "fillcolor": BAND_FILL,
            "line": {"width": 0},
            "layer": "below",
        },
    ]
    if zero_spans and "zero_grad" in d:
        for a, b in _spans(np.asarray(d["v"]), np.asarray(d["zero_grad"])):
            shapes.append(
                {
                    "type": "rect",
                    "xref": xref,
                    "yref": yref,
                    "x0": a,
                    "x1": b,
                    "y0": 0,
                    "y1": 1,
                    "fillcolor": ZERO_GRAD_FILL,
                    "line": {"width": 0},
                    "layer": "below",
                }
            )
    for key, x in (("v_old", d["v_old"]), ("R", d["R"])):
        shapes.append(
            {
                "type": "line",
                "xref": xref,
                "yref": yref,
                "x0": x,
                "x1": x,
                "y0": 0,
                "y1": 1,
                "line": {"color": COLORS[key], "dash": DASHES[key], "width": WIDTHS[key]},
            }
        )
    return shapes


def _legend_box(name: str, color: str) -> dict:
    return {
        "type": "scatter",
        "mode": "markers",
        "x": [None],
        "y": [None],
        "name": name,
        "marker": {"symbol": "square", "size": 13, "color": color},
    }


def _v_legend(d: dict, *, zero: bool = True) -> list[dict]:
    entries = [
        _legend_box(f"band v_old ± eps = [{d['v_old'] - d['eps']:g}, {d['v_old'] + d['eps']:g}]", BAND_FILL),
        {
            "type": "scatter",
            "mode": "lines",
            "x": [None],
            "y": [None],
            "name": f"v_old = {d['v_old']:g}",
            "line": {"color": COLORS["v_old"], "dash": DASHES["v_old"], "width": WIDTHS["v_old"]},
        },
        {
            "type": "scatter",
            "mode": "lines",
            "x": [None],
            "y": [None],
            "name": f"R = {d['R']:g}",
            "line": {"color": COLORS["R"], "dash": DASHES["R"], "width": WIDTHS["R"]},
        },
    ]
    if zero and np.asarray(d.get("zero_grad", [])).any():
        entries.append(_legend_box("zero gradient", ZERO_GRAD_FILL))
    return entries


def _at(d: dict, key: str, x: float) -> float:
    return float(np.interp(x, d["v"], d[key]))


def _branches(d: dict) -> go.Figure:
    data = [
        _line(d["v"], d["loss_unclipped"], "(v − R)²", "unclipped"),
        _line(d["v"], d["loss_clipped"], "(clip(v) − R)²", "clipped"),
        _line(d["v"], d["loss_max"], "max: the loss", "max", opacity=0.55),
        _point(d["current"], _at(d, "loss_max", d["current"]), "current v"),
        *_v_legend(d),
    ]
    layout = _layout(height=400, x_title="v (prediction)", y_title="per-token loss", shapes=_v_shapes(d))
    return go.Figure(data=data, layout=layout)


def _gradient(d: dict) -> go.Figure:
    data = [
        _line(d["v"], 2 * (np.asarray(d["v"]) - d["R"]), "2(v − R): unclipped gradient", "unclipped", dash="dot"),
        _line(d["v"], d["grad"], "d max / dv", "max"),
        _point(d["current"], _at(d, "grad", d["current"]), "current v"),
        *_v_legend(d),
    ]
    layout = _layout(height=400, x_title="v (prediction)", y_title="gradient d max / dv", shapes=_v_shapes(d))
    return go.Figure(data=data, layout=layout)


def _max_min(d: dict) -> go.Figure:
    shapes = _v_shapes(d, yref="y domain", zero_spans=False) + _v_shapes(
        d, yref="y2 domain", xref="x2", zero_spans=False
    )
    data = [
        _line(d["v"], d["loss_max"], "max (PPO2, verl)", "max"),
        _line(d["v"], d["loss_min"], "min (proposed in the threads)", "neutral", dash="dash", width=3),
        _point(d["current"], _at(d, "loss_max", d["current"]), "current v, max"),
        {**_line(d["v"], d["grad"], "gradient with max", "max", showlegend=False), "xaxis": "x2", "yaxis": "y2"},
        {
            **_line(d["v"], d["grad_min"], "gradient with min", "neutral", dash="dash", width=3, showlegend=False),
            "xaxis": "x2",
            "yaxis": "y2",
        },
        {
            **_point(d["current"], _at(d, "grad", d["current"]), "gradient with max"),
            "xaxis": "x2",
            "yaxis": "y2",
            "showlegend": False,
        },
        {
            **_point(d["current"], _at(d, "grad_min", d["current"]), "gradient with min", color=COLORS["neutral"]),
            "xaxis": "x2",
            "yaxis": "y2",
            "showlegend": False,
        },
        *_v_legend(d, zero=False),
    ]
    layout = _layout(height=440, x_title="", y_title="per-token loss", shapes=shapes)
    layout["xaxis"].update(domain=[0, 0.47], title={"text": "v"})
    layout["xaxis2"] = {**AXIS, "domain": [0.55, 1], "title": {"text": "v"}, "anchor": "y2"}
    layout["yaxis2"] = {**AXIS, "anchor": "x2", "title": {"text": "gradient"}}
    return go.Figure(data=data, layout=layout)


def _eps_zero(d: dict) -> go.Figure:
    names = {"start": "v = v_old (first minibatch)", "toward": "a step toward R", "away": "a step away from R"}
    symbols = {"start": SYMBOLS["v_old"], "toward": SYMBOLS["current"], "away": "square"}
    data = [
        _line(d["v"], 2 * (np.asarray(d["v"]) - d["R"]), "2(v − R): unclipped gradient", "unclipped", dash="dot"),
        _line(d["v"], d["grad"], "d max / dv with eps = 0", "max"),
    ]
    for key, x in d["points"].items():
        color = COLORS["zero_grad"] if d["point_grads"][key] == 0 else COLORS["current"]
        data.append(_point(x, d["point_grads"][key], names[key], color=color, symbol=symbols[key]))
    data += _v_legend(d)[1:]
    layout = _layout(height=400, x_title="v (prediction)", y_title="gradient d max / dv", shapes=_v_shapes(d)[1:])
    return go.Figure(data=data, layout=layout)


def _fractions(d: dict) -> go.Figure:
    colors = {"zero_grad": COLORS["zero_grad"], "band": COLORS["band"], "neutral": COLORS["neutral"]}
    values = np.asarray(d["values"], dtype=float)
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "y": list(d["labels"]),
            "x": values.tolist(),
            "marker": {"color": [colors[k] for k in d["kinds"]]},
            "text": [f"{v:.1%}" for v in values],
            "textposition": "outside",
            "hovertemplate": "%{y}: %{x:.2%}<extra></extra>",
            "showlegend": False,
        }
    ]
    layout = _layout(height=320, x_title="share of tokens", y_title="")
    layout["xaxis"].update(range=[0, max(1.0, float(values.max()) * 1.15)], tickformat=".0%")
    layout["yaxis"].update(autorange="reversed")
    layout["margin"] = {"l": 250, "r": 30, "t": 20, "b": 50}
    return go.Figure(data=data, layout=layout)


def _clipfrac_updates(d: dict) -> go.Figure:
    first = np.asarray(d["first"], dtype=bool)
    update = np.asarray(d["update"])
    clipfrac = np.asarray(d["clipfrac"], dtype=float)
    data = [
        {
            "type": "bar",
            "x": update[~first].tolist(),
            "y": clipfrac[~first].tolist(),
            "name": "later minibatches",
            "marker": {"color": COLORS["zero_grad"]},
            "hovertemplate": "update %{x}: %{y:.0%}<extra></extra>",
        },
        {
            "type": "bar",
            "x": update[first].tolist(),
            "y": np.maximum(clipfrac[first], 0.012).tolist(),
            "name": "first minibatch of a rollout (v = v_old)",
            "marker": {"color": COLORS["v_old"]},
            "customdata": clipfrac[first].tolist(),
            "hovertemplate": "update %{x}: %{customdata:.0%}<extra></extra>",
        },
    ]
    shapes = [
        {
            "type": "line",
            "xref": "x",
            "yref": "y domain",
            "x0": x + 0.5,
            "x1": x + 0.5,
            "y0": 0,
            "y1": 1,
            "line": {"color": COLORS["neutral"], "dash": "dot", "width": 1},
        }
        for x in range(d["per_rollout"], int(update.max()), d["per_rollout"])
    ]
    layout = _layout(
        height=360,
        x_title="update (3 rollouts × 4 epochs × 4 minibatches)",
        y_title="vf_clipfrac",
        shapes=shapes,
        bargap=0.15,
    )
    layout["yaxis"].update(range=[0, 1.05], tickformat=".0%")
    return go.Figure(data=data, layout=layout)


def _scale(d: dict) -> go.Figure:
    scale = np.asarray(d["scale"], dtype=float)
    clipfrac = np.asarray(d["clipfrac"], dtype=float)
    data = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": scale.tolist(),
            "y": clipfrac.tolist(),
            "name": f"vf_clipfrac at eps = {d['eps']:g}",
            "line": {"color": COLORS["zero_grad"], "width": 3},
            "marker": {"size": 10, "color": COLORS["zero_grad"]},
            "hovertemplate": "returns × %{x:g}: %{y:.1%}<extra></extra>",
        },
    ]
    for s in (1.0, 10.0):
        hit = np.flatnonzero(scale == s)
        if hit.size:
            data.append(_point(s, float(clipfrac[hit[0]]), f"scale {s:g}"))
    layout = _layout(height=380, x_title="reward scale (returns and values multiplied by)", y_title="vf_clipfrac")
    layout["xaxis"].update(type="log")
    layout["yaxis"].update(range=[0, 1.05], tickformat=".0%")
    return go.Figure(data=data, layout=layout)


def _dialect_grad(d: dict) -> go.Figure:
    data = [
        _line(d["v"], d["grad_ppo2"], "PPO2 / CleanRL: 0.5·max(…)", "max"),
        _line(d["v"], d["grad_sb3"], "SB3: (R − clip(v))², no max", "clipped", width=3),
        _point(d["current"], _at(d, "grad_ppo2", d["current"]), "current v, PPO2"),
        _point(d["current"], _at(d, "grad_sb3", d["current"]), "current v, SB3", color=COLORS["clipped"]),
        *_v_legend(d, zero=False),
    ]
    shapes = _v_shapes(d, zero_spans=False)
    layout = _layout(height=400, x_title="v (prediction)", y_title="dL/dv (per token)", shapes=shapes)
    return go.Figure(data=data, layout=layout)


FIGURE_KINDS = {
    "branches": _branches,
    "gradient": _gradient,
    "max-min": _max_min,
    "eps-zero": _eps_zero,
    "fractions": _fractions,
    "clipfrac-updates": _clipfrac_updates,
    "scale": _scale,
    "dialect-grad": _dialect_grad,
    "multiplier": lambda d: multiplier_figure(d["curves"], d["current"]),
}


def reveal_figure(reveal) -> go.Figure:
    """The figure that answers a tour step, from its ``Reveal`` (kind + data)."""
    if reveal.figure not in FIGURE_KINDS:
        raise ValueError(f"unknown tour figure {reveal.figure!r}; known kinds: {', '.join(FIGURE_KINDS)}")
    return FIGURE_KINDS[reveal.figure](reveal.data)
