"""The app's own browser components (Streamlit custom components v2: inline HTML/CSS/JS, no iframe).

The live one-token explorer and the live loss surfaces send what the user dragged back to Python; the moving
wall and the training logs of Critic dynamics only draw a simulated run (they send nothing). The explorer's browser redraws the curves, the gradient, the region map, the four numbers and the equation on
every animation frame while a handle is dragged (valueloss/viz/live/tokenmath.js computes what
``value_loss_terms`` computes, bit for bit); on release it sends the four numbers back, and the
callback here writes them into the URL-bound sliders, so the link and the rest of the page follow.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import streamlit as st

from pages.common import EPS_MAX
from valueloss.notation import BAND_FILL, COLORS, DASHES, REGION_COLORS, WIDTHS, ZERO_GRAD_FILL
from valueloss.teach.explain import REGION_LABELS, token_readout
from valueloss.viz.base import AXIS_TITLES
from valueloss.viz.live import (
    DYNAMICS_CSS,
    EXPLORER_CSS,
    SURFACES_CSS,
    component_js,
    logs_component_js,
    surfaces_component_js,
    wall_component_js,
)
from valueloss.viz.surfaces import SURFACE_TERMS

__all__ = [
    "STATE_KEYS",
    "live_token_explorer",
    "live_surfaces",
    "moving_wall",
    "training_logs",
    "release_to_widgets",
    "scratch_token_explorer",
]

STATE_KEYS = ("v", "v_old", "R", "eps")

_explorer = st.components.v2.component("valueloss.live_token", js=component_js(), css=EXPLORER_CSS)
_surfaces = st.components.v2.component("valueloss.live_surfaces", js=surfaces_component_js(), css=SURFACES_CSS)
_wall = st.components.v2.component("valueloss.moving_wall", js=wall_component_js(), css=DYNAMICS_CSS)
_logs = st.components.v2.component("valueloss.training_logs", js=logs_component_js(), css=DYNAMICS_CSS)


def moving_wall(*, key: str, data: dict):
    """Mount the moving wall of one simulated run (``valueloss.viz.dynamics.wall_data``)."""
    return _wall(key=key, data=data)


def training_logs(*, key: str, data: dict):
    """Mount the training logs of one simulated run (``valueloss.viz.dynamics.log_data``); their cursor follows
    the moving wall of the same run."""
    return _logs(key=key, data=data)


def release_to_widgets(component_key: str, widget_keys: dict[str, str], limits: dict[str, tuple[float, float]]):
    """A callback that copies a released state into the widgets ``widget_keys`` (state name -> widget key).

    Values outside a widget's range, or not numbers, are ignored (the widget keeps its value).
    """

    def callback() -> None:
        released = (st.session_state.get(component_key) or {}).get("release")
        if not isinstance(released, dict):
            return
        for name, widget in widget_keys.items():
            value = released.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            lo, hi = limits[name]
            if lo <= value <= hi:
                st.session_state[widget] = float(value)

    return callback


def live_token_explorer(
    *,
    key: str,
    v: float,
    v_old: float,
    R: float,
    eps: float,
    convention: str,
    value_range: tuple[float, float],
    eps_range: tuple[float, float],
    step: float,
    why: str,
    on_release: Callable[[], None],
):
    """Mount the explorer for one token; ``on_release`` runs when the user lets go of a handle."""
    data = {
        "state": {"v": v, "v_old": v_old, "R": R, "eps": eps, "conv": convention},
        "limits": {"value": list(value_range), "eps": list(eps_range), "step": step},
        "labels": {str(code): label for code, label in REGION_LABELS.items()},
        "regionColors": {str(code): color for code, color in REGION_COLORS.items()},
        "colors": COLORS,
        "fills": {"band": BAND_FILL, "zero_grad": ZERO_GRAD_FILL},
        "dashes": DASHES,
        "widths": WIDTHS,
        "why": why,
    }
    return _explorer(key=key, data=data, on_release_change=on_release)


def live_surfaces(
    *,
    key: str,
    pair: str,
    x_axis: str,
    y_axis: str,
    fixed_axis: str,
    fixed: float,
    eps: float,
    half_width: float,
    n: int,
    convention: str,
    eps_limits: tuple[float, float, float],
    fixed_limits: tuple[float, float, float],
    on_release: Callable[[], None],
):
    """Mount the four live surface panels; ε and the fixed value move in the browser, ``on_release`` follows.

    ``*_limits`` are (low, high, step) of the matching sidebar sliders.
    """
    data = {
        "state": {"eps": eps, "fixed": fixed},
        "pair": pair,
        "xAxis": x_axis,
        "yAxis": y_axis,
        "fixedAxis": fixed_axis,
        "axisTitles": {"x": AXIS_TITLES[x_axis], "y": AXIS_TITLES[y_axis]},
        "halfWidth": half_width,
        "n": n,
        "conv": convention,
        "limits": {"eps": list(eps_limits), "fixed": list(fixed_limits)},
        "titles": {k: label for k, (label, _) in SURFACE_TERMS.items()},
        "colors": {k: color for k, (_, color) in SURFACE_TERMS.items()},
        "labels": {str(code): label for code, label in REGION_LABELS.items()},
    }
    return _surfaces(key=key, data=data, on_release_change=on_release)


def scratch_token_explorer(*, key: str, v: float, v_old: float, R: float, eps: float, convention: str = "bounds"):
    """The explorer on a token of its own (no sidebar, no URL): a released state is kept in session state.

    The tour mounts one per step with the step's token; the user can drag it and come back to it.
    """
    state_key = f"{key}_state"
    state = st.session_state.get(state_key) or {"v": v, "v_old": v_old, "R": R, "eps": eps}

    def keep_release() -> None:
        released = (st.session_state.get(key) or {}).get("release")
        if not isinstance(released, dict):
            return
        new = dict(st.session_state.get(state_key) or state)
        for name, value in released.items():
            lo, hi = (0.0, EPS_MAX) if name == "eps" else (-10.0, 10.0)
            if (
                name in STATE_KEYS
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
                and lo <= value <= hi
            ):
                new[name] = float(value)
        st.session_state[state_key] = new

    r = token_readout(state["v"], state["R"], state["v_old"], state["eps"], convention)
    return live_token_explorer(
        key=key,
        v=state["v"],
        v_old=state["v_old"],
        R=state["R"],
        eps=state["eps"],
        convention=convention,
        value_range=(-10.0, 10.0),
        eps_range=(0.0, EPS_MAX),
        step=0.01,
        why=f"{r.why_winner} Gradient: {r.why_grad}",
        on_release=keep_release,
    )
