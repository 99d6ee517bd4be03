"""Explore one token: move v, v_old, R and eps and watch both terms, their max and the gradient."""

from __future__ import annotations

from functools import partial

import numpy as np
import streamlit as st

from pages.common import page_setup, share_link, shows_errors
from pages.export_panel import render_export_token
from valueloss import CONVENTIONS, evaluate_grid, value_loss_terms
from valueloss.explain import CONVENTION_LABELS, fmt, token_readout
from valueloss.explain import equation_latex as equation
from valueloss.plots.token import grad_curve_figure, loss_curve_figure, nice_ceil, region_map_figure, view_range
from valueloss.presets import PRESETS
from valueloss.theme import REGION_COLORS

V_MIN, V_MAX = -10.0, 10.0  # RLHF-scale returns fit
EPS_MAX = 2.0
CURVE_POINTS = 801
MAP_POINTS = 201
DEFAULT = PRESETS["inside"]


def apply_preset(key: str) -> None:
    """Runs before the script, so the sliders are created with the preset's numbers."""
    p = PRESETS[key]
    st.session_state.update(v_old=p.v_old, R=p.R, eps=p.eps, v=p.v)


def move_v_to_click(chart_key: str) -> None:
    """A click on a curve moves v there (rounded to the slider's step, kept in its range)."""
    state = st.session_state.get(chart_key)
    points = state["selection"]["points"] if state else []
    xs = [p["x"] for p in points if isinstance(p.get("x"), (int, float))]
    if xs:
        st.session_state["v"] = float(np.clip(round(xs[0], 2), V_MIN, V_MAX))


@st.cache_data(max_entries=128, show_spinner=False)
def curve(v_old: float, R: float, eps: float, convention: str, lo: float, hi: float) -> dict[str, np.ndarray]:
    """The loss anatomy along v, with the band edges, R and the tie points hit exactly."""
    special = [v_old - eps, v_old + eps, R, 2 * R - (v_old + eps), 2 * R - (v_old - eps)]
    grid = np.linspace(lo, hi, CURVE_POINTS)
    grid = np.unique(np.concatenate([grid, [s for s in special if lo <= s <= hi]]))
    t = value_loss_terms(grid, R, v_old, eps, convention)
    return {
        "v": grid,
        "loss_unclipped": t.loss_unclipped.numpy(),
        "loss_clipped": t.loss_clipped.numpy(),
        "loss_max": t.loss_max.numpy(),
        "region": t.region.numpy(),
        "grad": t.grad.numpy(),
    }


@st.cache_data(max_entries=64, show_spinner=False)
def region_map(eps: float, convention: str, half_width: float) -> dict[str, np.ndarray]:
    """Regions over (Δ, R − v_old): shift-invariant, so only eps and the convention matter."""
    axis = np.linspace(-half_width, half_width, MAP_POINTS)
    g = evaluate_grid("delta", axis, "gap", axis, v_old=0.0, eps=eps, convention=convention)
    return {"delta": g.x, "gap": g.y, "region": g.terms.region.numpy()}


page_setup("One token", "How does the clipped value loss treat one token, and when does its gradient vanish?")
share_link()

with st.sidebar:
    st.subheader("Scenario")
    v_old = st.slider(
        "v_old: old value, stored at rollout",
        V_MIN,
        V_MAX,
        DEFAULT.v_old,
        0.01,
        key="v_old",
        bind="query-params",
        help="The critic's value when the rollout was collected. Fixed for every epoch of this PPO update.",
    )
    R = st.slider(
        "R: return target",
        V_MIN,
        V_MAX,
        DEFAULT.R,
        0.01,
        key="R",
        bind="query-params",
        help="GAE advantage + v_old: what the critic is trained toward.",
    )
    eps = st.slider(
        "ε: clip range (cliprange_value)",
        0.0,
        EPS_MAX,
        DEFAULT.eps,
        0.01,
        key="eps",
        bind="query-params",
        help="In return units: how far v may move from v_old before the clipped term can take over.",
    )
    v = st.slider(
        "v: current prediction",
        V_MIN,
        V_MAX,
        DEFAULT.v,
        0.01,
        key="v",
        bind="query-params",
        help="The critic's prediction now, during the update. You can also click either curve.",
    )
    convention = st.radio(
        "Clip convention",
        CONVENTIONS,
        captions=[CONVENTION_LABELS[c] for c in CONVENTIONS],
        key="conv",
        bind="query-params",
        help="Equal values, different gradients at exact ties (v exactly on a band edge).",
    )

st.markdown("**Try a scenario**: each button sets all four numbers.")
with st.container(horizontal=True, gap="small"):
    for p in PRESETS.values():
        st.button(p.title, key=f"preset_{p.key}", on_click=apply_preset, args=(p.key,), help=p.notice)
active = [p for p in PRESETS.values() if (p.v_old, p.R, p.eps, p.v) == (v_old, R, eps, v)]
if active:
    st.info(f"**{active[0].title}.** {active[0].notice}", icon=":material/visibility:")

with shows_errors("Could not evaluate this token"):
    r = token_readout(v, R, v_old, eps, convention)
    winner = {"clipped": "clipped", "unclipped": "unclipped", "equal": "both equal"}[r.winner]

    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Unclipped (v − R)²", fmt(r.loss_unclipped), border=True)
    m2.metric("Clipped (clip(v) − R)²", fmt(r.loss_clipped), border=True, help=f"clip(v) = {fmt(r.v_clipped)}")
    m3.metric(
        "max() picks", winner, border=True, help=f"max = {fmt(r.loss_max)}; verl's loss ½·max = {fmt(0.5 * r.loss_max)}"
    )
    m4.metric(
        "Gradient d max/dv",
        fmt(r.grad),
        border=True,
        help=f"Before verl's ½ (verl's gradient for this token alone is {fmt(r.half_grad)}). "
        f"Without clipping it would be 2(v − R) = {fmt(r.unclipped_grad)}.",
    )
    color = REGION_COLORS.get(r.region, "#999999")
    st.html(
        f'<div style="border-left:6px solid {color};padding:6px 12px;background:#fafafa;font-size:0.95rem">'
        f"<b>Region: {r.region_label}.</b> {r.why_winner}<br><b>Gradient:</b> {r.why_grad}</div>"
    )
    st.latex(equation(r))

    lo, hi = view_range(v_old, R, eps, v)
    c = curve(v_old, R, eps, convention, lo, hi)
    current = value_loss_terms(v, R, v_old, eps, convention)
    left, right = st.columns([3, 2], gap="medium")
    with left:
        st.plotly_chart(
            loss_curve_figure(
                c["v"],
                c["loss_unclipped"],
                c["loss_clipped"],
                c["loss_max"],
                c["region"],
                v=v,
                v_old=v_old,
                R=R,
                eps=eps,
                current_loss=float(current.loss_max),
            ),
            key="click_loss",
            on_select=partial(move_v_to_click, "click_loss"),
            selection_mode="points",
            width="stretch",
            theme=None,
        )
        st.plotly_chart(
            grad_curve_figure(
                c["v"],
                c["grad"],
                c["region"],
                v=v,
                v_old=v_old,
                R=R,
                eps=eps,
                current_grad=float(current.grad),
            ),
            key="click_grad",
            on_select=partial(move_v_to_click, "click_grad"),
            selection_mode="points",
            width="stretch",
            theme=None,
        )
        st.caption("Click either curve to move v there. Purple: the stretch where the gradient is exactly 0.")
    with right:
        half_width = nice_ceil(max(3 * eps, 1.15 * abs(v - v_old), 1.15 * abs(R - v_old), 0.5))
        m = region_map(eps, convention, half_width)
        st.plotly_chart(
            region_map_figure(
                m["delta"], m["gap"], m["region"], eps=eps, current_delta=v - v_old, current_gap=R - v_old
            ),
            key="region_map",
            width="stretch",
            theme=None,
        )
        st.caption(
            "Every token of a batch is one point here. Inside the band (between the dashed lines) every token "
            "learns. Outside it, a token that moved toward R by more than ε but not past it is frozen (purple); "
            "one that moved away from R, or overshot it, is pulled back."
        )

render_export_token(v_old, R, eps, v, convention)
