"""Gradients: where each library's value loss stops teaching the critic, and what autograd does at ties."""

from __future__ import annotations

import textwrap

import numpy as np
import streamlit as st
import torch

from pages.common import AXIS_PAIRS, number_table, page_setup, plane_controls, share_link, shows_errors
from valueloss import DIALECTS, REGION_ZERO_GRAD, axis_values, evaluate_grid
from valueloss.dialect_grads import TIE_CASES, dialect_token_grad, tie_point, tie_table
from valueloss.teach.explain import CONVENTION_WORDS, TIE_WORDS, gradient_map_caption, tie_caption
from valueloss.viz.surfaces import band_edge_lines, dialect_gradients_figure, gradient_map_figure

DEFAULT_DIALECTS = ["verl", "sb3", "torchrl", "rllib"]
DTYPES = {"float64": torch.float64, "float32": torch.float32}
PANEL_POINTS = 100  # points per axis the four side-by-side panels draw, at most
PANEL_TITLE_CHARS = 14  # a panel's title per line: two panels side by side on a 390 px phone


def plane(pair: str, fixed: float, half_width: float, n: int) -> tuple[str, str, str, np.ndarray]:
    x_axis, y_axis, fixed_axis = AXIS_PAIRS[pair]
    return x_axis, y_axis, fixed_axis, axis_values(fixed - half_width, fixed + half_width, n)


@st.cache_data(max_entries=32, show_spinner=False)
def max_form(pair: str, fixed: float, eps: float, half_width: float, n: int, convention: str) -> dict[str, np.ndarray]:
    """d max/dv from the core's closed form, and where it is exactly zero (the clipped term wins)."""
    x_axis, y_axis, fixed_axis, axis = plane(pair, fixed, half_width, n)
    g = evaluate_grid(x_axis, axis, y_axis, axis, eps=eps, convention=convention, **{fixed_axis: fixed})  # type: ignore[arg-type]  # the key is v, v_old or R, known only at run time
    return {"axis": axis, "grad": g.terms.grad.numpy(), "frozen": (g.terms.region == REGION_ZERO_GRAD).numpy()}


@st.cache_data(max_entries=64, show_spinner=False)
def dialect_grid(name: str, pair: str, fixed: float, eps: float, half_width: float, n: int) -> dict[str, np.ndarray]:
    """Autograd of library ``name``'s own loss over the plane (one backward pass for the whole grid)."""
    x_axis, y_axis, fixed_axis, axis = plane(pair, fixed, half_width, n)
    coords = {x_axis: axis.reshape(1, -1), y_axis: axis.reshape(-1, 1), fixed_axis: fixed}
    d = dialect_token_grad(name, coords["v"], coords["R"], coords["v_old"], eps)
    return {"grad": d.grad, "frozen": d.frozen}


@st.cache_data(max_entries=64, show_spinner=False)
def ties(case: str, v_old: float, R: float, eps: float, dtype: str) -> list[dict]:
    return tie_table(case, v_old, R, eps, dtype=DTYPES[dtype])


page_setup(
    "Gradients",
    "Where does the value loss stop teaching the critic, in each library, and what does autograd do at exact ties?",
)
share_link()

with st.sidebar:
    p = plane_controls(
        "g_",
        "Clip convention (max form)",
        "The three conventions give the same gradient everywhere except at exact ties (see the tie inspector).",
    )
    pair, x_axis, y_axis, fixed_axis = p.pair, p.x_axis, p.y_axis, p.fixed_axis
    fixed, eps, half_width, n, convention = p.fixed, p.eps, p.half_width, p.n, p.convention

st.subheader("The gradient of max(L_unclip, L_clip)")
with shows_errors("Could not evaluate the gradient on this plane"):
    m = max_form(pair, fixed, eps, half_width, n, convention)
    axis = m["axis"]
    edges = band_edge_lines(x_axis, y_axis, axis, axis, v_old=fixed, eps=eps)
    st.markdown(f"**d max/dv per token**, before verl's ½ ({convention} convention)")
    st.plotly_chart(
        gradient_map_figure(axis, axis, m["grad"], m["frozen"], x_axis=x_axis, y_axis=y_axis, edges=edges),
        width="stretch",
        theme=None,
        key="g_main",
    )
    st.markdown(gradient_map_caption(float(m["frozen"].mean())))
    st.caption(CONVENTION_WORDS)

st.subheader("The same view in other libraries")
chosen = st.multiselect(
    "Libraries",
    list(DIALECTS),
    default=DEFAULT_DIALECTS,
    key="g_dialects",
    bind="query-params",
    max_selections=4,
)
RLLIB = DIALECTS["rllib"]
assert RLLIB.default_eps is not None  # RLlib bounds the squared error by default (vf_clip_param)
rllib_bound = st.number_input(
    f"{RLLIB.param_name} of {RLLIB.library.split(' (')[0]} (bounds the squared error; its default is "
    f"{RLLIB.default_eps:g})",
    min_value=0.0,
    max_value=1000.0,
    value=float(RLLIB.default_eps),
    step=0.5,
    key="g_rllib",
    bind="query-params",
    help=f"RLlib clamps the squared error (v − R)² at {RLLIB.param_name} instead of clipping v, so this is in "
    f"squared return units and eps does not carry over. At the default {RLLIB.default_eps:g} a token is frozen only "
    f"where |v − R| > {RLLIB.default_eps**0.5:.3g}: widen the plane, or lower the bound (1: |v − R| > 1), to see it.",
)
if not chosen:
    st.info("Pick at least one library to compare.")
else:
    with shows_errors("Could not evaluate the libraries' gradients"):
        panels = []
        rows = []
        # The grid of the map above: the table's shares and the caption's are counted on the same points. The four
        # panels draw every ``stride``-th of those points (each is a quarter of the width), the counts use them all.
        stride = max(1, n // PANEL_POINTS)
        for name in chosen:
            entry = DIALECTS[name]
            d = dialect_grid(name, pair, fixed, eps if entry.eps_units == "return" else rllib_bound, half_width, n)
            shown = (d["grad"][::stride, ::stride], d["frozen"][::stride, ::stride])
            # the library in lines of a panel's width on a phone; its formula is in the table below
            lines = textwrap.wrap(entry.library, PANEL_TITLE_CHARS, break_long_words=False, break_on_hyphens=False)
            panels.append(("<br>".join(lines), *shown))
            rows.append(  # key columns first: on a narrow window the table scrolls, the share stays in view
                {
                    "library": entry.library,
                    "share of this plane with zero gradient": float(d["frozen"].mean()),
                    "loss for one token": entry.formula_text,
                }
            )
        st.plotly_chart(
            dialect_gradients_figure(axis[::stride], axis[::stride], panels, x_axis=x_axis, y_axis=y_axis, edges=edges),
            width="stretch",
            theme=None,
            key="g_dialect_maps",
        )
        st.dataframe(
            rows,
            hide_index=True,
            column_config={
                "share of this plane with zero gradient": st.column_config.ProgressColumn(
                    format="percent", min_value=0.0, max_value=1.0
                )
            },
        )
        st.caption(
            "Each panel is autograd of that library's own loss for a batch of one token, constant factors included "
            "(verl's ½, none in SB3), on one shared colour scale. SB3's clip-only form freezes every token outside "
            "the band, even one that moved away from R; RLlib clips the loss, not the value, so it freezes tokens "
            f"whose squared error exceeds vf_clip_param wherever they sit. The shares are counted on the {n} × {n} "
            "points of the map above, like its caption"
            + (f"; the panels draw one point in {stride} along each axis." if stride > 1 else ".")
        )

st.subheader("Tie inspector: autograd at exact boundaries")
st.caption(TIE_WORDS)
st.markdown(
    "At an exact tie `torch.maximum` and `torch.minimum` split the gradient half and half, while `torch.clamp` "
    "passes it all on its closed interval. So the three clip conventions, equal in value, give different "
    "gradients on the band edge. The closed form in `valueloss` reproduces autograd bit for bit. TensorFlow "
    "(OpenAI baselines ppo2) differs: its `tf.maximum` gradient goes wholly to the first argument at a tie "
    "(last row)."
)
t1, t2, t3, t4, t5 = st.columns([2, 1, 1, 1, 1])
case = t1.selectbox("Tie case", list(TIE_CASES), key="g_tie", bind="query-params")
t1.caption(TIE_CASES[case])

tie_v_old = t2.number_input("v_old", -10.0, 10.0, 0.0, 0.25, key="g_tvold", bind="query-params")
tie_R = t3.number_input("R", -10.0, 10.0, 1.0, 0.25, key="g_tR", bind="query-params")
if case == "eps-zero":
    # This case is defined by eps = 0: show the 0 the table uses, not the eps typed for the other cases.
    t4.number_input("ε (this case: 0)", value=0.0, disabled=True, key="g_teps_zero", help="eps = 0 by definition.")
    tie_eps = float(st.session_state.get("g_teps", 0.25))
else:
    tie_eps = t4.number_input("ε", 0.0, 2.0, 0.25, 0.25, key="g_teps", bind="query-params")
dtype = t5.selectbox("dtype", list(DTYPES), key="g_dtype", bind="query-params")
with shows_errors("Could not build this tie"):
    table = ties(case, tie_v_old, tie_R, tie_eps, dtype)
    shares_first = ["convention", "share of 2(v − R)", "autograd d max/dv", "closed form", "bit-identical"]
    number_table(  # the answer next to the row's name: on a phone the other columns scroll
        table,
        {"share of 2(v − R)": "%.4g", "autograd d max/dv": "%.6g", "closed form": "%.6g"},
        order=shares_first + [c for c in table[0] if c not in shares_first],
    )
    if not all(row["terms equal"] for row in table):
        st.warning(
            "With these numbers the two terms are not exactly equal in floating point for every convention, so "
            "that row is not a tie at all. Dyadic numbers (0.25, 0.5, 1) keep ties exact."
        )
    st.caption(tie_caption(table, tie_v_old, tie_point(case, tie_v_old, tie_R, tie_eps)[1]))
