"""Explore one token: drag v, v_old, R and eps on the plot and watch both terms, their max and the gradient.

The plot, the numbers and the equation are the live explorer (pages/live_token.py): they follow a drag
frame by frame in the browser; the sidebar sliders hold the same four numbers (bound to the URL) and
follow on release.
"""

from __future__ import annotations

import streamlit as st

from pages.common import EPS_MAX, eps_input, page_setup, share_link, shows_errors
from pages.export_panel import render_export_token
from pages.live_token import STATE_KEYS, live_token_explorer, release_to_widgets
from valueloss import CONVENTIONS
from valueloss.teach.explain import CONVENTION_LABELS, region_map_caption, token_readout
from valueloss.teach.presets import PRESETS

V_MIN, V_MAX = -10.0, 10.0  # RLHF-scale returns fit
STEP = 0.01
LIMITS = {"v": (V_MIN, V_MAX), "v_old": (V_MIN, V_MAX), "R": (V_MIN, V_MAX), "eps": (0.0, EPS_MAX)}
DEFAULT = PRESETS["inside"]


def apply_preset(key: str) -> None:
    """Runs before the script, so the sliders are created with the preset's numbers."""
    p = PRESETS[key]
    st.session_state.update(v_old=p.v_old, R=p.R, eps=p.eps, v=p.v)


def number_slider(key: str, label: str, help_text: str) -> float:
    """v, v_old or R as a sidebar slider over LIMITS[key], starting at the default preset, bound to the URL."""
    lo, hi = LIMITS[key]
    return st.slider(label, lo, hi, getattr(DEFAULT, key), STEP, key=key, bind="query-params", help=help_text)


page_setup("One token", "How does the clipped value loss treat one token, and when does its gradient vanish?")
share_link()

with st.sidebar:
    st.subheader("Scenario")
    v_old = number_slider(
        "v_old",
        "v_old: old value, stored at rollout",
        "The critic's value when the rollout was collected. Fixed for every epoch of this PPO update.",
    )
    R = number_slider("R", "R: return target", "GAE advantage + v_old: what the critic is trained toward.")
    eps = eps_input(  # typed, as far as Batch and Sanity check take it; the plot's band edges drag it too
        "ε: clip range (cliprange_value)",
        "eps",
        DEFAULT.eps,
        f"In return units: how far v may move from v_old before the clipped term can take over. 0 to {EPS_MAX:g}; "
        "drag a band edge on the plot to move it.",
    )
    v = number_slider(
        "v",
        "v: current prediction",
        "The critic's prediction now, during the update. You can also drag the black dot on the plot.",
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
    live_token_explorer(
        key="live",
        v=v,
        v_old=v_old,
        R=R,
        eps=eps,
        convention=convention,
        value_range=(V_MIN, V_MAX),
        eps_range=(0.0, EPS_MAX),
        step=STEP,
        why=f"{r.why_winner} Gradient: {r.why_grad}",
        on_release=release_to_widgets("live", {k: k for k in STATE_KEYS}, LIMITS),
    )
    st.caption(region_map_caption(v_old, R, eps) + " The sidebar controls hold the same numbers.")

render_export_token(v_old, R, eps, v, convention)
