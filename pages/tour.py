"""Guided tour: predict, then see. Eight questions from real issue threads, each answered live."""

from __future__ import annotations

import secrets

import streamlit as st

from pages.common import page_setup, share_link, shows_errors
from pages.live_token import scratch_token_explorer
from valueloss.teach.tour import (
    STEPS,
    Reveal,
    TourStep,
    check_answer,
    format_number,
    live_links,
    progress_code,
    read_progress,
    reveal,
    shuffled_choices,
)
from valueloss.viz.tour import reveal_figure

TABS = [s.tab for s in STEPS]
ANSWER_KEYS = [f"t_a{i}" for i in range(1, len(STEPS) + 1)]
LOCKED_KEYS = [f"t_locked{i}" for i in range(1, len(STEPS) + 1)]
PROGRESS_PARAM = "t_progress"


@st.cache_data(show_spinner="Computing the answer…", max_entries=32)
def live(step_key: str) -> Reveal:
    """The step's reveal, computed by the core (cached: the inputs are fixed per step)."""
    return reveal(step_key)


def go_to(tab: str) -> None:
    st.session_state["t_step"] = tab


def lock_answer(i: int, step_key: str) -> None:
    """Runs when "Check my answer" is pressed: the chosen answer is kept for the session, and can no longer change."""
    label = st.session_state.get(ANSWER_KEYS[i])
    if label is None:
        return
    order = shuffled_choices(step_key, st.session_state["t_seed"])
    st.session_state[LOCKED_KEYS[i]] = next(c.key for c in order if c.label == label)


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
    order = shuffled_choices(step.key, st.session_state["t_seed"])
    labels, captions = [c.label for c in order], [c.text for c in order]
    locked = st.session_state.get(LOCKED_KEYS[i])
    if locked is None:
        with st.form(f"t_form{i + 1}", border=True):
            st.radio("Your prediction", labels, captions=captions, index=None, key=ANSWER_KEYS[i])
            st.form_submit_button(
                "Check my answer", key=f"t_check{i + 1}", type="primary", on_click=lock_answer, args=(i, step.key)
            )
        st.caption("Commit to an answer first: the numbers and the figure appear once you check it.")
        nav_buttons(i)
        return None

    shown = next(c.label for c in order if c.key == locked)
    st.radio(
        "Your prediction (locked once revealed)",
        labels,
        captions=captions,
        index=labels.index(shown),
        key=f"t_shown{i + 1}",
        disabled=True,
    )
    correct = None
    with shows_errors(f"Step {i + 1}"):
        result = live(step.key)
        feedback = check_answer(step.key, locked, result, order)
        correct = feedback.correct
        (st.success if correct else st.error)(
            feedback.message, icon=":material/check_circle:" if correct else ":material/cancel:"
        )
        if is_open:
            row = st.container(horizontal=True, gap="small")  # wraps on a narrow window, labels stay whole
            for label, value, kind in result.numbers:
                row.metric(label, format_number(value, kind), width=220)
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
            pages = " · ".join(f"[{title} →]({url})" for title, url in live_links(step.key))
            if pages:
                st.markdown(f"**See it live, with this scenario:** {pages}")
    nav_buttons(i)
    return correct


def shared_summary(code: str) -> str | None:
    """What a shared progress link says (no answers in it); None for a malformed code."""
    try:
        outcomes = read_progress(code)
    except ValueError:
        return None
    answered = [n for n, o in enumerate(outcomes, 1) if o is not None]
    right = [n for n, o in enumerate(outcomes, 1) if o is True]
    wrong = [n for n, o in enumerate(outcomes, 1) if o is False]
    if not answered:
        return None
    return (
        f"This link shares someone's progress: {len(answered)} of {len(STEPS)} answered, {len(right)} right"
        + (f" (right: step {', '.join(map(str, right))}" if right else " (")
        + (f"; wrong: step {', '.join(map(str, wrong))})" if wrong else ")")
        + ". Their answers are not in the link: make your own predictions below."
    )


page_setup(
    "Guided tour",
    "Predict, then see: nine questions people asked in real issue threads, each answered live by the same code "
    "that reproduces verl, OpenRLHF, TRL, CleanRL and Stable-Baselines3.",
)
# One order of choices per visitor, stable for the session.
st.session_state.setdefault("t_seed", secrets.randbelow(2**31))
st.session_state.setdefault("t_shared", st.query_params.get(PROGRESS_PARAM))
share_link()
summary = st.container()

tabs = st.tabs(TABS, key="t_step", bind="query-params")
outcomes = []
for i, (step, tab) in enumerate(zip(STEPS, tabs, strict=True)):
    with tab:
        outcomes.append(render_step(i, step, bool(tab.open)))

answered = sum(o is not None for o in outcomes)
right = sum(o is True for o in outcomes)
if answered:
    st.query_params[PROGRESS_PARAM] = progress_code(outcomes)
with summary:
    shared = st.session_state.get("t_shared")
    text = shared_summary(shared) if shared and not answered else None
    if text:
        st.info(text, icon=":material/share:")
    st.progress(answered / len(STEPS), text=f"Answered {answered} of {len(STEPS)} · {right} right")
    if answered == len(STEPS):
        st.success(
            f"Tour complete: {right} of {len(STEPS)} predicted right. The link in your address bar shares this "
            "progress, not your answers."
        )
