"""Guided tour: predict, then see. Eight questions from real issue threads, each answered live."""

from __future__ import annotations

import streamlit as st

from pages.common import page_setup, share_link, shows_errors
from pages.live_token import scratch_token_explorer
from valueloss.plots.tour import reveal_figure
from valueloss.tour import STEPS, Reveal, TourStep, check_answer, format_number, reveal

TABS = [s.tab for s in STEPS]
ANSWER_KEYS = [f"t_a{i}" for i in range(1, len(STEPS) + 1)]


@st.cache_data(show_spinner="Computing the answer…", max_entries=32)
def live(step_key: str) -> Reveal:
    """The step's reveal, computed by the core (cached: the inputs are fixed per step)."""
    return reveal(step_key)


def go_to(tab: str) -> None:
    st.session_state["t_step"] = tab


def nav_buttons(i: int) -> None:
    left, _, right = st.columns([1, 3, 1])
    if i > 0:
        left.button(f"← {TABS[i - 1]}", key=f"t_prev{i + 1}", on_click=go_to, args=(TABS[i - 1],), width="stretch")
    if i + 1 < len(STEPS):
        right.button(
            f"{TABS[i + 1]} →",
            key=f"t_next{i + 1}",
            on_click=go_to,
            args=(TABS[i + 1],),
            type="primary",
            width="stretch",
        )


def render_step(i: int, step: TourStep, is_open: bool) -> bool | None:
    """Question, answer form and (once answered) feedback and the live reveal. Returns right/wrong/None."""
    st.markdown(f"##### Step {i + 1} of {len(STEPS)}")
    st.markdown(f"### {step.question}")
    st.caption(step.scenario)
    with st.form(f"t_form{i + 1}", border=True):
        answer = st.radio(
            "Your prediction",
            [c.label for c in step.choices],
            captions=[c.text for c in step.choices],
            index=None,
            key=ANSWER_KEYS[i],
            bind="query-params",
        )
        st.form_submit_button("Check my answer", key=f"t_check{i + 1}", type="primary")
    if answer is None:
        st.caption("Commit to an answer first: the numbers and the figure appear once you check it.")
        nav_buttons(i)
        return None

    correct = None
    with shows_errors(f"Step {i + 1}"):
        result = live(step.key)
        feedback = check_answer(step.key, answer, result)
        correct = feedback.correct
        (st.success if correct else st.error)(
            feedback.message, icon=":material/check_circle:" if correct else ":material/cancel:"
        )
        if is_open:
            cols = st.columns(len(result.numbers))
            for col, (label, value, kind) in zip(cols, result.numbers, strict=True):
                col.metric(label, format_number(value, kind))
            st.plotly_chart(reveal_figure(result), width="stretch", key=f"t_fig{i + 1}")
            if {"v_old", "R", "eps", "current"} <= result.data.keys():
                d = result.data
                with st.expander("Drag it yourself: this token in the live explorer (verl's clip)"):
                    scratch_token_explorer(
                        key=f"t_live{i + 1}", v=d["current"], v_old=d["v_old"], R=d["R"], eps=d["eps"]
                    )
            st.markdown(f"**Why.** {step.explanation}")
            links = " · ".join(f"[{t.label}]({t.url})" + (f" ({t.title})" if t.title else "") for t in step.threads)
            st.markdown(f"**Asked in:** {links}")
    nav_buttons(i)
    return correct


page_setup(
    "Guided tour",
    "Predict, then see: eight questions people asked in real issue threads, each answered live by the same code "
    "that reproduces verl, OpenRLHF, TRL, CleanRL and Stable-Baselines3.",
)
share_link()
summary = st.container()

tabs = st.tabs(TABS, key="t_step", bind="query-params")
outcomes = []
for i, (step, tab) in enumerate(zip(STEPS, tabs, strict=True)):
    with tab:
        outcomes.append(render_step(i, step, bool(tab.open)))

answered = sum(o is not None for o in outcomes)
right = sum(o is True for o in outcomes)
with summary:
    st.progress(answered / len(STEPS), text=f"Answered {answered} of {len(STEPS)} · {right} right")
    if answered == len(STEPS):
        st.success(
            f"Tour complete: {right} of {len(STEPS)} predicted right. The link in your address bar keeps these answers."
        )
