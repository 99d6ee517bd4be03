"""Guided tour: predict, then see. Questions from real issue threads, each answered live.

Only the open step is drawn (the tabs are bound to the URL, so switching one reruns the page): a check of an
answer redraws one step, not all of them.
"""

from __future__ import annotations

import secrets

import streamlit as st

from pages.common import explain_terms, explain_terms_afresh, page_setup, share_link, shows_errors
from pages.live_token import scratch_token_explorer
from valueloss.teach.tour import (
    STEPS,
    Reveal,
    TourStep,
    check_answer,
    format_number,
    live_links,
    progress_code,
    reveal,
    shared_progress_words,
    shuffled_choices,
)
from valueloss.tools.batch import synthetic_batch
from valueloss.viz.tour import reveal_figure

TABS = [s.tab for s in STEPS]
ANSWER_KEYS = [f"t_a{i}" for i in range(1, len(STEPS) + 1)]
LOCKED_KEYS = [f"t_locked{i}" for i in range(1, len(STEPS) + 1)]
PROGRESS_PARAM = "t_progress"


@st.cache_data(show_spinner="Computing the answer…", max_entries=32)
def live(step_key: str) -> Reveal:
    """The step's reveal, computed by the core (cached: the inputs are fixed per step)."""
    return reveal(step_key, make_batch=synthetic_batch)


@st.cache_resource(max_entries=32, show_spinner=False)
def figure(step_key: str):
    """The reveal's figure, built once per step (every visitor sees the same one)."""
    return reveal_figure(live(step_key))


def go_to(tab: str) -> None:
    st.session_state["t_step"] = tab


def lock_answer(i: int, step_key: str) -> None:
    """Runs when "Check my answer" is pressed: the chosen answer is kept for the session, and can no longer change."""
    label = st.session_state.get(ANSWER_KEYS[i])
    if label is None:
        return
    order = shuffled_choices(step_key, st.session_state["t_seed"])
    st.session_state[LOCKED_KEYS[i]] = next(c.key for c in order if c.label == label)


def outcome(i: int, step: TourStep) -> bool | None:
    """Whether this visitor's locked answer to step ``i`` is right (None: not answered yet)."""
    locked = st.session_state.get(LOCKED_KEYS[i])
    if locked is None:
        return None
    order = shuffled_choices(step.key, st.session_state["t_seed"])
    return check_answer(step.key, locked, live(step.key), order).correct


def nav_buttons(i: int) -> None:
    """Previous and next step, each as wide as its label (the row wraps on a phone, no label is cut)."""
    row = st.container(horizontal=True, horizontal_alignment="distribute" if i > 0 else "right")
    if i > 0:
        row.button(f"← {TABS[i - 1]}", key=f"t_prev{i + 1}", on_click=go_to, args=(TABS[i - 1],))
    if i + 1 < len(STEPS):
        row.button(f"{TABS[i + 1]} →", key=f"t_next{i + 1}", on_click=go_to, args=(TABS[i + 1],), type="primary")


def render_step(i: int, step: TourStep) -> None:
    """Question, answer form and (once answered) feedback and the live reveal."""
    st.markdown(f"##### Step {i + 1} of {len(STEPS)}")
    st.markdown(f"### {step.question}")
    st.caption(step.scenario)
    explain_terms(step.question, step.scenario)
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
        return

    shown = next(c.label for c in order if c.key == locked)
    st.radio(
        "Your prediction (locked once revealed)",
        labels,
        captions=captions,
        index=labels.index(shown),
        key=f"t_shown{i + 1}",
        disabled=True,
    )
    with shows_errors(f"Step {i + 1}"):
        result = live(step.key)
        feedback = check_answer(step.key, locked, result, order)
        (st.success if feedback.correct else st.error)(
            feedback.message, icon=":material/check_circle:" if feedback.correct else ":material/cancel:"
        )
        row = st.container(horizontal=True, gap="small")  # wraps on a narrow window, labels stay whole
        for label, value, kind in result.numbers:
            row.metric(label, format_number(value, kind), width=220)
        st.plotly_chart(figure(step.key), width="stretch", key=f"t_fig{i + 1}")
        if {"v_old", "R", "eps", "current"} <= result.data.keys():
            d = result.data
            # mounted when opened: the explorer draws a region map and two plots, work a check need not wait for
            drag = st.expander(
                "Drag it yourself: this token in the live explorer (verl's clip)",
                key=f"t_drag{i + 1}",
                on_change="rerun",
            )
            if drag.open:
                with drag:
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


@st.fragment
def tour() -> None:
    """The progress, the tabs and the open step. A fragment: checking an answer or moving between steps reruns
    this part only, not the page's title, legend, share link and navigation."""
    explain_terms_afresh()
    summary = st.container()

    # Bound to the URL, the tabs rerun the page when switched and say which one is open: only that step is drawn.
    tabs = st.tabs(TABS, key="t_step", bind="query-params")
    for i, (step, tab) in enumerate(zip(STEPS, tabs, strict=True)):
        if tab.open:
            with tab:
                render_step(i, step)

    outcomes = []
    with shows_errors("Tour progress"):
        outcomes = [outcome(i, step) for i, step in enumerate(STEPS)]
    answered = sum(o is not None for o in outcomes)
    right = sum(o is True for o in outcomes)
    if answered:
        st.query_params[PROGRESS_PARAM] = progress_code(outcomes)
    with summary:
        shared = st.session_state.get("t_shared")
        text = shared_progress_words(shared) if shared and not answered else None
        if text:
            st.info(text, icon=":material/share:")
        st.progress(answered / len(STEPS), text=f"Answered {answered} of {len(STEPS)} · {right} right")
        if answered == len(STEPS):
            st.success(
                f"Tour complete: {right} of {len(STEPS)} predicted right. The link in your address bar shares this "
                "progress, not your answers."
            )


page_setup(
    "Guided tour",
    f"Predict, then see: {len(STEPS)} questions people asked in real issue threads, each answered live by the same "
    "code that reproduces verl, OpenRLHF, TRL, CleanRL and Stable-Baselines3.",
)
# One order of choices per visitor, stable for the session.
st.session_state.setdefault("t_seed", secrets.randbelow(2**31))
st.session_state.setdefault("t_shared", st.query_params.get(PROGRESS_PARAM))
share_link()
tour()
