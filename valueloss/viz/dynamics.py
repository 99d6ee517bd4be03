"""Figures of the critic-dynamics page: the moving wall, the training logs, and the eps sweep.

Pure functions: a ``SimResult`` / ``Sweep`` (numpy arrays) in, a ``go.Figure`` out. Colours, dashes
and markers come from ``valueloss.notation`` so the band, v_old, R and the zero-gradient state read
the same here as on every other page.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..notation import BAND_FILL, COLORS, DASHES, SYMBOLS, WIDTHS
from ..teach.simulate import CLOSE_FRACTION, SimResult, Sweep
from .base import FONT, data_revision, stacked_panels

__all__ = [
    "wall_animation",
    "training_figure",
    "LOG_PANELS",
    "LOG_PANEL_HEIGHT",
    "sweep_figure",
    "MAX_FRAMES",
    "MAX_SLIDER_STEPS",
]

MAX_FRAMES = 240  # longer runs are animated with a stride, so the figure stays light
# Plotly draws a tick and a measured label for every slider step: 193 steps were half of the figure's drawing
# time in the browser. Play still shows every frame; the slider scrubs at a stride over them.
MAX_SLIDER_STEPS = 64


def _frame_indices(n_states: int, most: int = MAX_FRAMES) -> np.ndarray:
    """At most about ``most`` of ``range(n_states)`` at an even stride, the first and the last always."""
    stride = max(1, int(np.ceil(n_states / most)))
    idx = np.arange(0, n_states, stride)
    if idx[-1] != n_states - 1:
        idx = np.append(idx, n_states - 1)
    return idx


def _state_context(result: SimResult, u: int):
    """The rollout (v_old, R) a state belongs to and whether each token's own gradient is zero there.

    State 0 is the start (before any update); state u >= 1 is after update u - 1.
    """
    if u == 0:
        return 0, np.zeros(result.values.shape[1], dtype=bool)
    return int(result.rollout[u - 1]), result.frozen_after[u - 1]


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


_LANE_ROLES = ("v_old", "R", "true", "v")


def _lane_state(result: SimResult, u: int) -> tuple[list[float], list[float], list[str], list[str]]:
    """What the lanes show at state ``u``: the band's lower edges, then the y, colour and hover text of the
    v_old, R, true-value and v markers (v pink where its own gradient is zero)."""
    cols = list(result.tracked)
    k, frozen = _state_context(result, u)
    eps = float(result.config.eps)
    v_old = result.v_old[k, cols]
    ys = {"v_old": v_old, "R": result.targets[k, cols], "true": result.v_true[cols], "v": result.values[u, cols]}
    colors = {
        "v_old": [COLORS["v_old"]] * len(cols),
        "R": [COLORS["R"]] * len(cols),
        "true": [COLORS["neutral"]] * len(cols),
        "v": [COLORS["zero_grad"] if z else COLORS["current"] for z in frozen[cols]],
    }
    names = {"v_old": "v_old", "R": "R", "true": "true value"}
    y, color, text = [], [], []
    for role in _LANE_ROLES:
        y += [float(val) for val in ys[role]]
        color += colors[role]
        text += (
            [f"v (own gradient {'0' if z else '≠ 0'})" for z in frozen[cols]]
            if role == "v"
            else [names[role]] * len(cols)
        )
    return [float(b) for b in v_old - eps], y, color, text


def _lane_traces(result: SimResult, labels: list[str]) -> list[dict]:
    """The two lane traces at the start: the band (bar) and one marker trace holding v_old, R, the true
    value and v of every tracked token."""
    n = len(labels)
    eps = float(result.config.eps)
    base, y, color, text = _lane_state(result, 0)
    symbols = {
        "v_old": (SYMBOLS["v_old"], 12),
        "R": (SYMBOLS["R"], 15),
        "true": ("line-ew-open", 34),
        "v": (SYMBOLS["current"], 16),
    }
    return [
        dict(
            type="bar",
            x=labels,
            y=[2 * eps] * n,
            base=base,
            width=0.5,
            marker=dict(color=BAND_FILL, line=dict(color=COLORS["band"], width=1)),
            showlegend=False,
            hovertemplate="band v_old ± eps: [%{base:.3f}, %{base:.3f} + %{y:.3f}]<extra></extra>",
        ),
        dict(
            type="scatter",
            x=labels * len(_LANE_ROLES),
            y=y,
            mode="markers",
            marker=dict(
                symbol=[symbols[r][0] for r in _LANE_ROLES for _ in labels],
                size=[symbols[r][1] for r in _LANE_ROLES for _ in labels],
                color=color,
                line=dict(color="white", width=1),
            ),
            text=text,
            showlegend=False,
            hovertemplate="%{text} = %{y:.3f}<extra></extra>",
        ),
    ]


def _lane_frame(result: SimResult, u: int) -> list[dict]:
    """The lane traces' changes at state ``u``: a frame carries only what moves (plotly merges it into the
    traces), so the animation's frames are small to build, validate and send."""
    base, y, color, text = _lane_state(result, u)
    return [dict(type="bar", base=base), dict(type="scatter", y=y, marker=dict(color=color), text=text)]


def _legend_entries() -> list[go.Scatter]:
    """Legend-only traces for the lane markers (the lanes themselves are one trace)."""
    entries = [
        ("band v_old ± eps", dict(symbol="square", size=14, color=BAND_FILL, line=dict(color=COLORS["band"], width=1))),
        ("v_old (this rollout)", dict(symbol=SYMBOLS["v_old"], size=11, color=COLORS["v_old"])),
        ("R (noisy target)", dict(symbol=SYMBOLS["R"], size=13, color=COLORS["R"])),
        ("true value", dict(symbol="line-ew-open", size=16, color=COLORS["neutral"], line=dict(width=2))),
        ("v", dict(symbol=SYMBOLS["current"], size=12, color=COLORS["current"])),
        ("v, own gradient = 0", dict(symbol=SYMBOLS["current"], size=12, color=COLORS["zero_grad"])),
    ]
    return [go.Scatter(x=[None], y=[None], mode="markers", marker=m, name=name) for name, m in entries]


def _add_line(fig: go.Figure, row: int, col: int, x, y, **kwargs) -> None:
    """Add one `mode="lines"` scatter trace of x against y to the subplot at (row, col)."""
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", **kwargs), row=row, col=col)


def _hv_line(role: str) -> dict:
    """The legend's line style for `role` (colour, dash, width), drawn as steps between updates."""
    return dict(color=COLORS[role], dash=DASHES[role], width=WIDTHS[role], shape="hv")


def wall_animation(result: SimResult) -> go.Figure:
    """Tracked tokens against the moving wall ``v_old ± eps``, animated over updates (Play / Pause).

    Left: one lane per tracked token at the current update (band, v_old, R, v). Right: each token's
    whole run (band and v_old step at each rollout; v; pink markers where its own gradient was zero
    during the update) with a marker at the current update. Axes are fixed across frames.
    """
    cols = list(result.tracked)
    n = len(cols)
    gaps = result.v_true[cols] - result.values[0, cols]
    labels = [str(c) for c in cols]  # short: the lanes share a third of a phone's width
    titles = [f"token {c}, gap {g:+.2f}" for c, g in zip(cols, gaps, strict=True)]
    eps = float(result.config.eps)
    n_states = result.values.shape[0]
    x_states = np.arange(n_states)
    frames_u = _frame_indices(n_states)
    y_lo, y_hi = _value_range(result)

    fig = make_subplots(
        rows=n,
        cols=2,
        column_widths=[0.38, 0.62],
        specs=[[{"rowspan": n}, {}]] + [[None, {}] for _ in range(n - 1)],
        shared_xaxes=False,
        horizontal_spacing=0.08,
        vertical_spacing=0.06,
        subplot_titles=["now"] + titles,
    )
    for trace in _lane_traces(result, labels):
        fig.add_trace(trace, row=1, col=1)
    n_lane = len(fig.data)
    for trace in _legend_entries():
        fig.add_trace(trace, row=1, col=1)

    # Right column: static history per token, then one animated "now" marker per token.
    # Each state u >= 1 belongs to the rollout of update u - 1; state 0 to rollout 0.
    state_rollout = np.concatenate([[0], result.rollout])
    for i, c in enumerate(cols, start=1):
        v_old_u = result.v_old[state_rollout, c]
        first = i == 1
        history = [  # (y, trace settings): lower band edge, upper band edge filled to it, v_old, R, v
            (v_old_u - eps, dict(line=dict(width=0, shape="hv"), hoverinfo="skip")),
            (
                v_old_u + eps,
                dict(
                    fill="tonexty",
                    fillcolor=BAND_FILL,
                    line=dict(width=WIDTHS["band_edge"], color=COLORS["band"], dash=DASHES["band_edge"], shape="hv"),
                    name="band",
                    hoverinfo="skip",
                ),
            ),
            (v_old_u, dict(line=_hv_line("v_old"), name="v_old", hovertemplate="v_old = %{y:.3f}<extra></extra>")),
            (
                result.targets[state_rollout, c],
                dict(line=_hv_line("R"), name="R", hovertemplate="R = %{y:.3f}<extra></extra>"),
            ),
            (
                result.values[:, c],
                dict(
                    line=dict(color=COLORS["max"], width=2),
                    name="v",
                    hovertemplate="update %{x}: v = %{y:.3f}<extra></extra>",
                ),
            ),
        ]
        for y, settings in history:
            _add_line(fig, i, 2, x=x_states, y=y, showlegend=False, **settings)
        frozen_u = np.flatnonzero(result.frozen[:, c])  # own gradient zero during update u: state u -> u + 1
        fig.add_trace(
            go.Scatter(
                x=frozen_u + 1,
                y=result.values[frozen_u + 1, c],
                mode="markers",
                marker=dict(color=COLORS["zero_grad"], size=6, symbol="circle"),
                name="update made with its own gradient = 0",
                showlegend=first,
                hovertemplate="update %{x}: own gradient 0, v = %{y:.3f}<extra></extra>",
            ),
            row=i,
            col=2,
        )
    now_index = []
    for i, c in enumerate(cols, start=1):
        now_index.append(len(fig.data))
        fig.add_trace(
            go.Scatter(
                x=[0],
                y=[result.values[0, c]],
                mode="markers",
                marker=dict(
                    symbol=SYMBOLS["current"], size=12, color=COLORS["current"], line=dict(color="white", width=1)
                ),
                showlegend=False,
                hovertemplate="now: v = %{y:.3f}<extra></extra>",
            ),
            row=i,
            col=2,
        )

    frames = []
    for u in frames_u:
        data = _lane_frame(result, int(u))
        data += [dict(type="scatter", x=[int(u)], y=[float(result.values[u, c])]) for c in cols]
        frames.append(dict(data=data, traces=list(range(n_lane)) + now_index, name=str(int(u))))
    fig.frames = frames

    play = dict(frame=dict(duration=90, redraw=True), fromcurrent=True, transition=dict(duration=0), mode="immediate")
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    plot_height = 170 * n  # the buttons and the slider sit below the plots, one above the other at any width
    fig.update_layout(
        datarevision=data_revision(result.config),  # a run is a function of its settings (bit for bit)
        height=plot_height + 300,
        font=FONT,
        barmode="overlay",
        bargap=0.5,
        margin=dict(l=60, r=20, t=50, b=190),
        legend=dict(orientation="h", yanchor="bottom", y=1.04, x=0, font=dict(size=12)),
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0.0,
                y=-65 / plot_height,
                xanchor="left",
                yanchor="top",
                pad=dict(r=10, t=0),
                showactive=False,
                buttons=[
                    dict(label="▶ Play", method="animate", args=[None, play]),
                    dict(label="❚❚ Pause", method="animate", args=[[None], pause]),
                ],
            )
        ],
        sliders=[
            dict(
                active=0,
                x=0.0,
                y=-105 / plot_height,
                len=1.0,
                xanchor="left",
                yanchor="top",
                pad=dict(t=10, b=0),
                currentvalue=dict(prefix="update: ", font=dict(size=12)),
                steps=[
                    dict(
                        method="animate",
                        label=_frame_label(result, int(u)),
                        args=[[str(int(u))], dict(frame=dict(duration=0, redraw=True), mode="immediate")],
                    )
                    for u in frames_u[_frame_indices(len(frames_u), MAX_SLIDER_STEPS)]
                ],
            )
        ],
    )
    fig.update_yaxes(range=[y_lo, y_hi], title_text="value", row=1, col=1)
    fig.update_xaxes(type="category", range=[-0.5, n - 0.5], tickangle=0, title_text="token", row=1, col=1)
    for i in range(1, n + 1):
        fig.update_yaxes(range=[y_lo, y_hi], row=i, col=2)
        fig.update_xaxes(range=[-0.5, n_states - 0.5], row=i, col=2, showticklabels=i == n)
    fig.update_xaxes(title_text="update", row=n, col=2)
    return fig


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
        datarevision=data_revision(sweep.config),  # the sweep is a function of the run's settings
        height=420,
        font=FONT,
        margin=dict(l=60, r=20, t=40, b=65),
        xaxis=dict(title=dict(text=f"gap / eps   (gap = {sweep.config.gap:g})", standoff=6), range=[0, x_max]),
        yaxis=dict(title=f"rollouts to close {CLOSE_FRACTION:.0%} of the gap", range=[0, y_max]),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, font=dict(size=12)),
    )
    return fig
