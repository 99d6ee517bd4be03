"""Loss surfaces: the two terms, their max and the extra loss from clipping over a whole plane.

The heatmaps are drawn in the browser (pages/live_token.py): moving their ε or fixed-value slider
redraws all four panels every frame, and on release the sidebar sliders, the link and the text follow.
The 3-D view is drawn by the server.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import streamlit as st

from pages.common import AXIS_PAIRS, page_setup, plane_controls, share_link, shows_errors
from pages.live_token import live_surfaces, release_to_widgets
from valueloss import axis_values, evaluate_grid
from valueloss.viz.surfaces import SURFACE_TERMS, surface_3d_figure

# (low, high, step) of the plane's ε and fixed-value sliders (pages/common.py plane_controls)
EPS_LIMITS = (0.0, 2.0, 0.01)
FIXED_LIMITS = (-10.0, 10.0, 0.05)

TERM_CHOICES = {
    "max": "loss_max",
    "max − unclipped": "pessimism",
    "unclipped": "loss_unclipped",
    "clipped": "loss_clipped",
}


@st.cache_data(max_entries=32, show_spinner=False)
def surfaces(pair: str, fixed: float, eps: float, half_width: float, n: int, convention: str) -> dict[str, np.ndarray]:
    """Every term over the chosen plane, centred on the fixed value (cached on the numbers)."""
    x_axis, y_axis, fixed_axis = AXIS_PAIRS[pair]
    axis = axis_values(fixed - half_width, fixed + half_width, n)
    g = evaluate_grid(x_axis, axis, y_axis, axis, eps=eps, convention=convention, **{fixed_axis: fixed})  # type: ignore[arg-type]  # the key is v, v_old or R, known only at run time
    t = g.terms
    return {
        "x": g.x,
        "y": g.y,
        "loss_unclipped": t.loss_unclipped.numpy(),
        "loss_clipped": t.loss_clipped.numpy(),
        "loss_max": t.loss_max.numpy(),
        "pessimism": (t.loss_max - t.loss_unclipped).numpy(),
        "region": t.region.numpy(),
    }


page_setup(
    "Loss surfaces",
    "Over a whole plane of predictions and targets, where does the clipped loss differ from the plain squared error?",
)
share_link()

with st.sidebar:
    plane = plane_controls("sf_")

with shows_errors("Could not evaluate this plane"):
    s = surfaces(plane.pair, plane.fixed, plane.eps, plane.half_width, plane.n, plane.convention)
    heat_tab, surface_tab = st.tabs(
        ["Heatmaps", "3-D surface"], key="sf_view", bind="query-params", on_change="rerun", default="Heatmaps"
    )
    if heat_tab.open:
        with heat_tab:
            live_surfaces(
                key="sf_live",
                **asdict(plane),
                eps_limits=EPS_LIMITS,
                fixed_limits=FIXED_LIMITS,
                on_release=release_to_widgets(
                    "sf_live",
                    {"eps": "sf_eps", "fixed": "sf_fixed"},
                    {"eps": EPS_LIMITS[:2], "fixed": FIXED_LIMITS[:2]},
                ),
            )
    if surface_tab.open:
        with surface_tab:
            term = TERM_CHOICES[st.selectbox("Surface", list(TERM_CHOICES), key="sf_term", bind="query-params")]
            st.plotly_chart(
                surface_3d_figure(
                    s["x"],
                    s["y"],
                    s[term],
                    s["region"],
                    x_axis=plane.x_axis,
                    y_axis=plane.y_axis,
                    term_label=SURFACE_TERMS[term][0],
                ),
                width="stretch",
                theme=None,
                key="sf_surface",
            )
    bites = float(np.mean(s["pessimism"] > 0))
    if plane.pair == "R":
        st.markdown(
            f"**What to notice.** The clipped term is flat in v outside the band (dashed lines at v = v_old ± ε): "
            f"it only depends on R. Where it is larger, max() keeps it, so the loss is *above* the plain squared "
            f"error: that is the pessimism of the clipped loss, and it sits exactly where the token moved more "
            f"than ε toward R and is still nearer R than the band edge (overshoots of R included). Here the clipped term wins on **{bites:.0%}** of the plane."
        )
    else:
        st.markdown(
            f"**What to notice.** With R fixed, the band is the diagonal strip |v − v_old| ≤ ε. The clipped "
            f"term wins (max − unclipped > 0) only on the side of the strip that faces R: a critic that moved "
            f"toward R by more than ε is charged as if it had stopped at the band edge, until it is farther from "
            f"R than that edge. Here the clipped term "
            f"wins on **{bites:.0%}** of the plane."
        )
    st.caption("Hover any cell: the label names its region (inside the band, zero gradient, restoring, tie).")
