"""The guided tour reuses the live one-token explorer: a revealed step offers its token to drag."""

from __future__ import annotations

import json

from tests.app.helpers import page_test
from valueloss.teach.tour import STEPS, reveal, shuffled_choices


def reveal_step_one(at) -> None:
    """Answer step 1 right (the visitor's shuffle is fixed by t_seed), which reveals it, then open the explorer."""
    step = STEPS[0]
    right = next(c.label for c in shuffled_choices(step.key, at.session_state["t_seed"]) if c.key == step.expected)
    at.radio(key="t_a1").set_value(right)
    at.button(key="t_check1").click()
    at.run()
    assert not at.get("bidi_component")  # mounted only once its expander is opened
    at.session_state["t_drag1"] = True
    at.run()


def test_a_revealed_step_mounts_the_explorer_on_its_own_token():
    at = page_test("tour")
    at.session_state["t_seed"] = 7
    at.run()
    assert not at.get("bidi_component")  # nothing before an answer
    step = STEPS[0]
    reveal_step_one(at)
    assert not at.exception
    (component,) = at.get("bidi_component")
    data = json.loads(component.proto.json)
    token = reveal(step.key).data
    assert data["state"] == {
        "v": token["current"],
        "v_old": token["v_old"],
        "R": token["R"],
        "eps": token["eps"],
        "conv": "bounds",
    }
    assert any("live explorer" in e.label for e in at.expander)


def test_a_dragged_token_is_kept_for_the_step():
    at = page_test("tour")
    at.session_state["t_seed"] = 7
    at.session_state["t_live1_state"] = {"v": 4.5, "v_old": 5.0, "R": 10.0, "eps": 0.2}
    at.run()
    reveal_step_one(at)
    assert not at.exception
    (component,) = at.get("bidi_component")
    assert json.loads(component.proto.json)["state"]["v"] == 4.5
