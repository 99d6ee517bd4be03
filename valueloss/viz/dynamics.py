"""Figures of the critic-dynamics page: the moving wall, the training logs, and the eps sweep.

Pure functions of a ``SimResult`` / ``Sweep`` (numpy arrays). The moving wall and the training logs are the data
the app's own browser components draw (``wall_data``, ``log_data``; valueloss/viz/live/wall.js and logs.js, which
share the update shown): as Plotly figures, an animation of every update and four stacked panels were most of a
page re-run's drawing time. The eps sweep is a Plotly figure. Colours, dashes and markers come from
``valueloss.notation`` so the band, v_old, R and the zero-gradient state read the same here as on every other page.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from ..notation import BAND_FILL, COLORS, DASHES, SYMBOLS, WIDTHS
from ..teach.simulate import CLOSE_FRACTION, SimResult, Sweep
from .base import APP_TEMPLATE, FONT, data_revision

__all__ = ["wall_data", "log_data", "LOG_PANELS", "LOG_PANEL_HEIGHT", "sweep_figure", "WALL_FRAME_MS"]

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


def _timeline(result: SimResult) -> dict:
    """What the moving wall and the training logs share: the run they draw (by its revision), the label of every
    state (rollout, epoch, minibatch) and the states where a new rollout starts."""
    cfg = result.config
    per_rollout = cfg.n_epochs * cfg.n_minibatches
    return {
        "revision": data_revision(cfg),  # a run is a function of its settings (bit for bit)
        "labels": [_frame_label(result, u) for u in range(cfg.n_updates + 1)],
        "rolloutStarts": [k * per_rollout for k in range(1, cfg.n_rollouts)],
    }


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
        **_timeline(result),
        "eps": float(cfg.eps),
        "yRange": list(_value_range(result)),
        "tokens": tokens,
        "frameMs": WALL_FRAME_MS,
        "stride": max(1, math.ceil(n_states * WALL_FRAME_MS / (1000 * WALL_PLAY_SECONDS))),
        "colors": COLORS,
        "fills": {"band": BAND_FILL},
        "dashes": DASHES,
        "widths": WIDTHS,
        "symbols": SYMBOLS,
    }


# One training log per panel: (panel title, y axis title). Short titles, so they fit above a phone-wide panel;
# the page's caption says what each one is.
LOG_PANELS = (
    ("Value error: RMSE(v − true value)", "RMSE"),
    ("Explained variance", "explained var."),
    ("vf_loss on each update's minibatch", "vf_loss"),
    ("vf_clipfrac on each minibatch", "share of tokens"),
)
LOG_PANEL_HEIGHT = 150  # px of plot per panel


def _line(
    name: str,
    short: str,
    y: np.ndarray,
    first_x: int,
    color: str,
    width: float,
    dash: str = "solid",
    step: bool = False,
) -> dict:
    """One log line: y at x = first_x, first_x + 1, ... (states start at 0, updates at 1); ``short`` names it in
    the readout of one update."""
    return {
        "name": name,
        "short": short,
        "y": _floats(y),
        "x0": first_x,
        "color": color,
        "width": width,
        "dash": dash,
        "step": step,
    }


def log_data(result: SimResult) -> dict:
    """The four training logs per update (value error, explained variance, vf_loss, clip fraction), one panel
    each on one shared update axis with a dotted line at every new rollout, as a trainer's dashboard lays them
    out; drawn by valueloss/viz/live/logs.js, whose cursor follows the moving wall's update. A panel with one
    line is named by its title; a panel with two has a legend."""
    cfg = result.config
    black = COLORS["max"]
    ev = result.explained_var[np.isfinite(result.explained_var)]
    ev_lo = float(min(0.0, np.percentile(ev, 5))) if ev.size else 0.0
    err_hi = float(np.nanmax(np.concatenate([result.value_error, result.baseline_value_error]), initial=0.0))
    clipfrac = [
        _line(
            "vf_clipfrac (verl: L_clip > L_unclip)",
            "vf_clipfrac",
            result.vf_clipfrac,
            1,
            COLORS["zero_grad"],
            2.5,
            step=True,
        )
    ]
    if cfg.form.combine_rule != "max":  # in a max form vf_clipfrac is exactly the zero-gradient share
        clipfrac.append(
            _line(
                f"zero-gradient share under {cfg.form.short}",
                "zero-gradient share",
                result.zero_grad_frac,
                1,
                COLORS["neutral"],
                2,
                "dash",
                step=True,
            )
        )
    lines = [
        [
            _line(f"this run (eps = {cfg.eps:g})", "RMSE", result.value_error, 0, black, 2.5),
            _line(
                "same run, no clipping",
                "RMSE without clipping",
                result.baseline_value_error,
                0,
                COLORS["unclipped"],
                2,
                DASHES["clipped"],
            ),
        ],
        [_line("explained variance", "explained var.", result.explained_var, 0, black, 2)],
        [_line("vf_loss", "vf_loss", result.vf_loss, 1, black, 2)],
        clipfrac,
    ]
    ranges = [[0.0, 1.08 * err_hi if err_hi > 0 else 1.0], [max(ev_lo, -1.0) - 0.05, 1.05], None, [-0.03, 1.03]]
    return {
        **_timeline(result),  # the moving wall's: the two share the update shown
        "panels": [
            {"title": title, "yTitle": y_title, "log": i == 2, "range": ranges[i], "lines": lines[i]}
            for i, (title, y_title) in enumerate(LOG_PANELS)
        ],
        "panelHeight": LOG_PANEL_HEIGHT,
    }


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
