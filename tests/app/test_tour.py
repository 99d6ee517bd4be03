"""The guided tour as a student uses it: answer, get checked, see the live reveal, move on, share the link."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.helpers import page_test
from valueloss import value_loss_terms
from valueloss.teach.tour import STEPS, get_step, live_links, progress_code, reveal, shuffled_choices
from valueloss.tools.batch import synthetic_batch

SEED = 0


def fresh(seed: int = SEED) -> AppTest:
    at = page_test("tour")
    at.session_state["t_seed"] = seed  # the visitor's shuffle, fixed for the test
    return at


def label_of(step_key: str, choice_key: str, seed: int = SEED) -> str:
    return next(c.label for c in shuffled_choices(step_key, seed) if c.key == choice_key)


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def open_step(at, step: int) -> None:
    """Click the tab of step ``step`` (1-based): only the open step is drawn."""
    at.session_state["t_step"] = STEPS[step - 1].tab
    at.run()


def answer(at, step: int, label: str) -> None:
    if at.session_state["t_step"] != STEPS[step - 1].tab:
        open_step(at, step)
    at.radio(key=f"t_a{step}").set_value(label)
    at.button(key=f"t_check{step}").click()
    at.run()


def test_the_tour_opens_on_step_one_with_nothing_revealed():
    at = fresh().run()
    assert not at.exception
    assert at.title[0].value == "Guided tour"
    assert [t.label for t in at.tabs] == [s.tab for s in STEPS]
    assert [r.key for r in at.radio] == ["t_a1"]  # only the open step is drawn: a check redraws one step
    assert at.radio(key="t_a1").value is None
    assert not at.metric and not at.success and not at.error
    assert f"Answered 0 of {len(STEPS)}" in at.get("progress")[0].proto.text


def test_a_right_answer_is_confirmed_and_the_reveal_is_live():
    at = fresh().run()
    right = label_of("active-term", get_step("active-term").expected)
    answer(at, 1, right)
    assert not at.exception
    assert at.success and at.success[0].value.startswith("Right")
    t = value_loss_terms(1.0, 10.0, 5.0, 0.2)
    assert metrics(at)["(v − R)²"] == f"{t.loss_unclipped.item():.4g}"
    assert metrics(at)["(clip(v) − R)²"] == f"{t.loss_clipped.item():.4g}"
    assert any(
        "openai/baselines#765" in m.value and "https://github.com/openai/baselines/issues/765" in m.value
        for m in at.markdown
    )
    assert f"Answered 1 of {len(STEPS)} · 1 right" in at.get("progress")[0].proto.text


def test_a_wrong_answer_is_corrected():
    at = fresh().run()
    step = get_step("max-not-min")
    wrong = next(label_of(step.key, c.key) for c in step.choices if c.key != step.expected)
    answer(at, 3, wrong)
    assert not at.exception
    assert at.error and at.error[0].value.startswith("Not quite")
    assert f"the answer is {label_of(step.key, step.expected)}" in at.error[0].value
    assert f"Answered 1 of {len(STEPS)} · 0 right" in at.get("progress")[0].proto.text


def test_next_and_previous_move_between_steps():
    at = fresh().run()
    at.button(key="t_next1").click().run()
    assert at.session_state["t_step"] == STEPS[1].tab
    at.button(key="t_next2").click().run()
    assert at.session_state["t_step"] == STEPS[2].tab
    at.button(key="t_prev3").click().run()
    assert at.session_state["t_step"] == STEPS[1].tab
    assert not at.exception


def test_any_step_can_be_opened_from_the_link():
    at = fresh()
    at.query_params["t_step"] = STEPS[6].tab
    at.run()
    assert not at.exception
    assert at.session_state["t_step"] == STEPS[6].tab


def test_a_shared_link_carries_progress_not_answers():
    at = fresh().run()
    step = get_step("zero-gradient")
    answer(at, 2, label_of(step.key, step.expected))
    wrong = next(c.key for c in get_step("clipfrac-counts").choices if c.key != "zero-grad")
    answer(at, 5, label_of("clipfrac-counts", wrong))
    code = at.query_params["t_progress"]
    code = code[0] if isinstance(code, list) else code
    assert code == progress_code([None, True, None, None, False] + [None] * (len(STEPS) - 5))
    assert not any(k.startswith("t_a") for k in at.query_params), "no answer may travel in the link"
    assert "vf_clipfrac (verl)" in metrics(at)  # the open step draws its numbers, the others none
    assert "d max / dv (closed form)" not in metrics(at)
    # Someone else opens the link: they see the progress, and fresh questions.
    other = fresh(seed=1)
    other.query_params["t_progress"] = code
    other.run()
    assert not other.exception
    assert any(f"2 of {len(STEPS)} answered, 1 right (right: step 2; wrong: step 5)" in i.value for i in other.info)
    assert all(r.value is None for r in other.radio)
    assert not other.success and not other.error


def test_a_link_with_only_wrong_answers_reads_cleanly():
    """The banner once read "0 right (; wrong: step 1": each part is said only when it has steps."""
    at = fresh()
    at.query_params["t_progress"] = progress_code([False] + [None] * (len(STEPS) - 2) + [False])
    at.run()
    (info,) = at.info
    assert f"2 of {len(STEPS)} answered, 0 right (wrong: steps 1, {len(STEPS)})." in info.value
    assert "(;" not in info.value and "right:" not in info.value


def test_an_answer_is_locked_once_revealed():
    at = fresh().run()
    step = get_step("active-term")
    wrong = next(c.key for c in step.choices if c.key != step.expected)
    answer(at, 1, label_of(step.key, wrong))
    assert at.error and at.error[0].value.startswith("Not quite")
    shown = at.radio(key="t_shown1")
    assert shown.disabled and shown.value == label_of(step.key, wrong)
    assert not [r for r in at.radio if r.key == "t_a1"]  # the form is gone: the answer cannot change
    at.run()  # the lock is session state: it survives reruns
    assert at.radio(key="t_shown1").value == label_of(step.key, wrong)


def test_choices_are_shuffled_per_visitor_and_stable_in_a_session():
    a, b = fresh(seed=1).run(), fresh(seed=2).run()

    def shown(at):
        out = []
        for i in range(1, len(STEPS) + 1):
            open_step(at, i)
            out.append(tuple(at.radio(key=f"t_a{i}").proto.captions))
        return out

    assert shown(a) == [tuple(c.text for c in shuffled_choices(s.key, 1)) for s in STEPS]
    assert shown(b) == [tuple(c.text for c in shuffled_choices(s.key, 2)) for s in STEPS]
    assert shown(a) != shown(b)
    assert shown(a) == [tuple(c.text for c in shuffled_choices(s.key, 1)) for s in STEPS]


def test_a_garbled_link_is_ignored():
    at = fresh()
    at.query_params["t_progress"] = "zz"
    at.query_params["t_step"] = "no such step"
    at.run()
    assert not at.exception
    assert at.radio(key="t_a1").value is None
    assert not at.info


@pytest.mark.parametrize("index", range(len(STEPS)))
def test_every_step_reveals_without_error(index):
    step = STEPS[index]
    at = fresh()
    at.query_params["t_step"] = step.tab
    at.run()
    answer(at, index + 1, label_of(step.key, step.expected))
    assert not at.exception
    assert at.success and at.success[0].value.startswith("Right")
    assert len(at.metric) == len(reveal(step.key, make_batch=synthetic_batch).numbers)
    live = [m.value for m in at.markdown if m.value.startswith("**See it live")]
    assert live and all(f"({url})" in live[0] for _, url in live_links(step.key))
