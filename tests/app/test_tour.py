"""The guided tour as a student uses it: answer, get checked, see the live reveal, move on, share the link."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from valueloss import value_loss_terms
from valueloss.tour import STEPS, get_step

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "tour.py")


def fresh() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60)


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def answer(at, step: int, label: str) -> None:
    at.radio(key=f"t_a{step}").set_value(label)
    at.button(key=f"t_check{step}").click()
    at.run()


def test_the_tour_opens_on_step_one_with_nothing_revealed():
    at = fresh().run()
    assert not at.exception
    assert at.title[0].value == "Guided tour"
    assert [t.label for t in at.tabs] == [s.tab for s in STEPS]
    assert len(at.radio) == len(STEPS)
    assert all(r.value is None for r in at.radio)
    assert not at.metric and not at.success and not at.error
    assert f"Answered 0 of {len(STEPS)}" in at.get("progress")[0].proto.text


def test_a_right_answer_is_confirmed_and_the_reveal_is_live():
    at = fresh().run()
    right = get_step("active-term").choice(get_step("active-term").expected).label
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
    wrong = next(c.label for c in step.choices if c.key != step.expected)
    answer(at, 3, wrong)
    assert not at.exception
    assert at.error and at.error[0].value.startswith("Not quite")
    assert f"the answer is {step.choice(step.expected).label}" in at.error[0].value
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


def test_a_shared_link_restores_answers_and_reveals_the_open_step():
    at = fresh()
    step = get_step("zero-gradient")
    at.query_params["t_step"] = step.tab
    at.query_params["t_a2"] = step.choice(step.expected).label
    at.query_params["t_a5"] = "A"  # a wrong answer on another step
    at.run()
    assert not at.exception
    assert at.radio(key="t_a2").value == step.choice(step.expected).label
    assert at.radio(key="t_a5").value == "A"
    assert f"Answered 2 of {len(STEPS)} · 1 right" in at.get("progress")[0].proto.text
    assert metrics(at)["d max / dv (closed form)"] == "0"  # only the open step draws its numbers


def test_a_garbled_link_is_ignored():
    at = fresh()
    at.query_params["t_a1"] = "Z"
    at.query_params["t_step"] = "no such step"
    at.run()
    assert not at.exception
    assert at.radio(key="t_a1").value is None


@pytest.mark.parametrize("index", range(len(STEPS)))
def test_every_step_reveals_without_error(index):
    step = STEPS[index]
    at = fresh()
    at.query_params["t_step"] = step.tab
    at.query_params[f"t_a{index + 1}"] = step.choice(step.expected).label
    at.run()
    assert not at.exception
    assert at.success and at.success[0].value.startswith("Right")
    assert len(at.metric) == len(step.compute().numbers)
