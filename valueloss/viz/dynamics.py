"""Figures of the critic-dynamics page: the moving wall, the training logs, and the eps sweep.

Pure functions of a ``SimResult`` / ``Sweep`` (numpy arrays): the training logs and the sweep are Plotly
figures; the moving wall is the data its own browser component draws (``wall_data``, drawn by
valueloss/viz/live/wall.js: a Plotly animation of every update cost most of a page re-run to draw). Colours,
dashes and markers come from ``valueloss.notation`` so the band, v_old, R and the zero-gradient state read the
same here as on every other page.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from ..notation import BAND_FILL, COLORS, DASHES, SYMBOLS, WIDTHS
from ..teach.simulate import CLOSE_FRACTION, SimResult, Sweep
from .base import APP_TEMPLATE, FONT, data_revision, stacked_panels

__all__ = ["wall_data", "training_figure", "LOG_PANELS", "LOG_PANEL_HEIGHT", "sweep_figure", "WALL_FRAME_MS"]

WALL_FRAME_MS = 90  # Play's pace: one state per frame, so a default run (193 states) plays in about 17 s
WALL_PLAY_SECONDS = 20  # longer runs play at a stride, so none takes much longer than this


def _frame_label(result: SimResult, u: int) -> str:
    if u == 0:
        return "start"
    k = int(result.rollout[u - 1])
    return f"r{k + 1}·e{int(result.epoch[u - 1]) + 1}·mb{int(result.minibatch[u - 1]) + 1}"


def _value_range(result: SimResult) -> tuple[float, float]:
    eps = float(result.config.eps)
    cols = list(result.tracked)
    stack = [
        result.values[:, cols].ravel(),
        (result.v_old[:, cols] - eps).ravel(),
        (result.v_old[:, cols] + eps).ravel(),
        result.targets[:, cols].ravel(),
        result.v_true[cols],
    ]
    data = np.concatenate(stack)
    lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
    pad = 0.06 * (hi - lo if hi > lo else 1.0)
    return lo - pad, hi + pad


def _floats(values) -> list[float | None]:
    """Plain floats for the browser's JSON (which has no NaN or infinity: those become null, a gap in a line)."""
    return [float(x) if math.isfinite(x) else None for x in np.asarray(values, dtype=float).tolist()]


def wall_data(result: SimResult) -> dict:
    """What the moving wall draws (valueloss/viz/live/wall.js), as plain JSON: for each tracked token (the
    smallest, the median and the largest gap) its v_old, R and v at every state of the run, whether its own
    gradient is zero there, and the states reached by an update made with its own gradient zero.

    State 0 is the start; state u >= 1 is after update u - 1 and belongs to that update's rollout (v_old, R).
    The browser draws these numbers and nothing else, so what it shows is the run the metrics describe.
    """
    cfg = result.config
    cols = list(result.tracked)
    n_states = result.values.shape[0]
    state_rollout = np.concatenate([[0], result.rollout]).astype(int)
    zero_now = np.vstack([np.zeros((1, result.values.shape[1]), dtype=bool), result.frozen_after])
    per_rollout = cfg.n_epochs * cfg.n_minibatches
    tokens = [
        {
            "label": str(c),
            "title": f"token {c}, gap {float(result.v_true[c] - result.values[0, c]):+.2f}",
            "vOld": _floats(result.v_old[state_rollout, c]),
            "R": _floats(result.targets[state_rollout, c]),
            "v": _floats(result.values[:, c]),
            "true": float(result.v_true[c]),
            "frozenNow": [bool(z) for z in zero_now[:, c]],
            "frozenStates": [int(u) + 1 for u in np.flatnonzero(result.frozen[:, c])],
        }
        for c in cols
    ]
    return {
        "revision": data_revision(cfg),  # a run is a function of its settings (bit for bit)
        "eps": float(cfg.eps),
        "yRange": list(_value_range(result)),
        "labels": [_frame_label(result, u) for u in range(n_states)],
        "rolloutStarts": [k * per_rollout for k in range(1, cfg.n_rollouts)],
        "tokens": tokens,
        "frameMs": WALL_FRAME_MS,
        "stride": max(1, math.ceil(n_states * WALL_FRAME_MS / (1000 * WALL_PLAY_SECONDS))),
        "colors": COLORS,
        "fills": {"band": BAND_FILL},
        "dashes": DASHES,
        "widths": WIDTHS,
        "symbols": SYMBOLS,
    }


def _rollout_lines(result: SimResult, xref: str, yref: str) -> list[dict]:
    """Dotted vertical lines where a new rollout starts (v_old jumps) on one panel, as layout shapes."""
    per_rollout = result.config.n_epochs * result.config.n_minibatches
    line = dict(color=COLORS["neutral"], width=1, dash="dot")
    return [
        dict(type="line", xref=xref, yref=yref, x0=x, x1=x, y0=0, y1=1, line=line, layer="below")
        for x in (k * per_rollout for k in range(1, result.config.n_rollouts))
    ]


# One training log per panel: (panel title, y axis title). Short titles, so they fit above a phone-wide panel;
# the page's caption says what each one is.
LOG_PANELS = (
    ("Value error: RMSE(v − true value)", "RMSE"),
    ("Explained variance", "explained var."),
    ("vf_loss on each update's minibatch", "vf_loss"),
    ("vf_clipfrac on each minibatch", "share of tokens"),
)
LOG_PANEL_HEIGHT = 150  # px of plot per panel
LOG_LEGEND_ROW = 21  # px per legend entry: one entry per row under the update axis, so its height is known


def training_figure(result: SimResult) -> go.Figure:
    """The four training logs per update (value error, explained variance, vf_loss, clip fraction), one panel
    each, stacked on one shared update axis with a dotted line at every new rollout, as a trainer's dashboard
    lays them out. One figure, not four: the browser draws a figure at a fixed cost of its own, and the panels
    stack the same at any width. Built as plain dicts (no per-trace validation)."""
    cfg = result.config
    u_states = np.arange(result.values.shape[0])
    u_updates = np.arange(1, cfg.n_updates + 1)
    max_line = dict(color=COLORS["max"], width=2)
    ev = result.explained_var[np.isfinite(result.explained_var)]
    ev_lo = float(min(0.0, np.percentile(ev, 5))) if ev.size else 0.0
    panels: list[tuple[list[dict], dict]] = [  # (lines, y axis settings) in LOG_PANELS order
        (
            [
                dict(
                    x=u_states,
                    y=result.value_error,
                    name=f"this run (eps = {cfg.eps:g})",
                    line={**max_line, "width": 2.5},
                ),
                dict(
                    x=u_states,
                    y=result.baseline_value_error,
                    name="same run, no clipping",
                    line=dict(color=COLORS["unclipped"], width=2, dash=DASHES["clipped"]),
                ),
            ],
            {},
        ),
        (
            [dict(x=u_states, y=result.explained_var, name="explained variance", line=max_line)],
            {"range": [max(ev_lo, -1.0) - 0.05, 1.05]},
        ),
        (
            [dict(x=u_updates, y=result.vf_loss, name="vf_loss", line=max_line)],
            {"type": "log", "dtick": 1},  # a label per decade: the 2 and 5 between them crowd a short axis
        ),
        (
            [
                dict(
                    x=u_updates,
                    y=result.vf_clipfrac,
                    name="vf_clipfrac (verl: L_clip > L_unclip)",
                    line=dict(color=COLORS["zero_grad"], width=2.5, shape="hv"),
                )
            ],
            {"range": [-0.03, 1.03]},
        ),
    ]
    if cfg.form.combine_rule != "max":  # in a max form vf_clipfrac is exactly the zero-gradient share
        panels[3][0].append(
            dict(
                x=u_updates,
                y=result.zero_grad_frac,
                name=f"zero-gradient share under {cfg.form.short}",
                line=dict(color=COLORS["neutral"], width=2, dash="dash", shape="hv"),
            )
        )
    gap = 0.09  # of the plot height, between panels: room for the next panel's title
    layout, annotations = stacked_panels(
        [(title, y_title, yaxis) for (title, y_title), (_, yaxis) in zip(LOG_PANELS, panels, strict=True)],
        gap=gap,
        x_title="update",
    )
    data: list[dict] = []
    shapes: list[dict] = []
    legend_rows = 0
    for i, (lines, _) in enumerate(panels):
        x, y = ("x", "y") if i == 0 else (f"x{i + 1}", f"y{i + 1}")
        shapes += _rollout_lines(result, x, f"{y} domain")
        legend = len(lines) > 1  # a panel's single line is named by its title
        legend_rows += len(lines) if legend else 0
        data += [dict(type="scatter", mode="lines", xaxis=x, yaxis=y, showlegend=legend, **line) for line in lines]
    rows = LOG_LEGEND_ROW * legend_rows
    layout.update(
        template=APP_TEMPLATE,  # drawn with theme=None: Streamlit's look without its theming pass
        datarevision=data_revision(cfg),
        height=round(LOG_PANEL_HEIGHT * len(panels) / (1 - gap * (len(panels) - 1))) + 30 + 50 + rows,  # plot, t, b
        font=FONT,
        plot_bgcolor="white",
        margin=dict(l=60, r=15, t=30, b=50 + rows),
        hovermode="x unified",
        showlegend=legend_rows > 0,
        legend=dict(
            orientation="h", yref="container", yanchor="bottom", y=0, x=0, entrywidth=1, entrywidthmode="fraction"
        ),
        shapes=shapes,
        annotations=annotations,
    )
    return go.Figure(data=data, layout=layout)


def sweep_figure(sweep: Sweep, current_eps: float | None = None) -> go.Figure:
    """Rollouts to close the gap against gap / eps, with the ~gap / eps rule and the unclipped run."""
    ratios = sweep.ratios
    closed = np.isfinite(sweep.rollouts)
    fig = go.Figure()
    x_max = float(ratios.max()) * 1.08
    fig.add_trace(
        go.Scatter(
            x=[0, x_max],
            y=[0, x_max],
            mode="lines",
            name="rule: rollouts ≈ gap / eps",
            line=dict(color=COLORS["neutral"], dash="dash", width=2),
        )
    )
    if np.isfinite(sweep.unclipped_rollouts):
        fig.add_trace(
            go.Scatter(
                x=[0, x_max],
                y=[sweep.unclipped_rollouts] * 2,
                mode="lines",
                name=f"no clipping: {sweep.unclipped_rollouts:g} rollouts",
                line=dict(color=COLORS["unclipped"], dash=DASHES["clipped"], width=2),
            )
        )
    fig.add_trace(
        go.Scatter(
            x=ratios[closed],
            y=sweep.rollouts[closed],
            mode="markers+lines",
            name="measured",
            marker=dict(color=COLORS["max"], size=10, symbol=SYMBOLS["current"]),
            line=dict(color=COLORS["max"], width=1.5),
            customdata=sweep.eps[closed],
            hovertemplate="gap/eps = %{x:g} (eps = %{customdata:.3g}): %{y:g} rollouts<extra></extra>",
        )
    )
    if (~closed).any():
        fig.add_trace(
            go.Scatter(
                x=ratios[~closed],
                y=np.full((~closed).sum(), sweep.max_rollouts),
                mode="markers",
                name=f"not closed within {sweep.max_rollouts} rollouts",
                marker=dict(color=COLORS["neutral"], size=11, symbol="triangle-up"),
            )
        )
    if current_eps is not None and current_eps > 0:
        ratio = abs(sweep.config.gap) / float(current_eps)
        if ratio <= x_max:
            fig.add_vline(
                x=ratio,
                line=dict(color=COLORS["band"], width=2, dash=DASHES["band_edge"]),
                annotation_text=f"your eps = {current_eps:g}",
                annotation_position="top left",
            )
    y_max = max(x_max, sweep.max_rollouts * 1.05 if (~closed).any() else np.nanmax(sweep.rollouts, initial=1) * 1.1)
    fig.update_layout(
        template=APP_TEMPLATE,  # drawn with theme=None: Streamlit's look without its theming pass
        datarevision=data_revision(sweep.config),  # the sweep is a function of the run's settings
        height=420,
        font=FONT,
        margin=dict(l=60, r=20, t=40, b=65),
        xaxis=dict(title=dict(text=f"gap / eps   (gap = {sweep.config.gap:g})", standoff=6), range=[0, x_max]),
        yaxis=dict(title=f"rollouts to close {CLOSE_FRACTION:.0%} of the gap", range=[0, y_max]),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, font=dict(size=12)),
    )
    return fig
