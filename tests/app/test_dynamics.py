"""The critic-dynamics page: runs on load and on "Run simulation", follows its link, explains what it shows."""

from __future__ import annotations

import base64
import json

import numpy as np
from streamlit.testing.v1 import AppTest

from tests.app.helpers import page_test
from valueloss.teach.simulate import SimConfig, same_step_twin, simulate, sweep_eps
from valueloss.viz.dynamics import log_data, wall_data


def fresh() -> AppTest:
    return page_test("dynamics", timeout=90)


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_default_run_shows_the_wall_the_logs_and_the_sweep():
    at = fresh().run()
    assert not at.exception
    assert at.title[0].value == "Critic dynamics"
    expected = simulate(SimConfig())
    m = metrics(at)
    assert m["rollouts to close 90% of the gap"] == str(expected.rollouts_to_close)
    assert m["rule of thumb: rollouts"] == "8.0"
    assert m["same run without clipping"] == str(expected.baseline_rollouts_to_close)
    assert m["max move with own gradient 0"] == "0"
    assert not at.get("plotly_chart")  # the eps sweep is run and drawn only once its expander is opened
    # the moving wall and the training logs are the app's own components, drawing exactly this run
    drawn = [json.loads(c.proto.json) for c in at.get("bidi_component")]
    assert drawn == [json.loads(json.dumps(wall_data(expected))), json.loads(json.dumps(log_data(expected)))]
    assert any("Frozen means frozen here" in s.value for s in at.success)


def test_the_eps_sweep_runs_when_opened_and_marks_the_eps_in_use():
    at = fresh().run()
    at.session_state["d_sweep_open"] = True
    at.run()
    assert not at.exception
    (sweep,) = at.get("plotly_chart")
    assert sweep.proto.theme == ""  # drawn as sent: the figure carries the app's look
    spec = json.loads(sweep.proto.spec)
    expected = sweep_eps(SimConfig())
    measured = next(t for t in spec["data"] if t["name"] == "measured")
    eps = measured["customdata"]  # plotly sends arrays as {dtype, bdata (base64)}
    np.testing.assert_array_equal(
        np.frombuffer(base64.b64decode(eps["bdata"]), dtype=eps["dtype"]), expected.eps[np.isfinite(expected.rollouts)]
    )
    assert any(a["text"] == "your eps = 0.5" for a in spec["layout"]["annotations"])
    assert any("Same targets, shuffles and optimizer for every eps" in c.value for c in at.caption)


def test_changing_eps_and_running_updates_the_readout():
    at = fresh().run()
    at.slider(key="d_eps").set_value(0.25)
    at.button(key="d_run").click().run()
    assert not at.exception
    assert metrics(at)["rule of thumb: rollouts"] == "16.0"
    expected = simulate(SimConfig(eps=0.25))
    assert metrics(at)["rollouts to close 90% of the gap"] == str(expected.rollouts_to_close)


def test_widgets_inside_the_form_wait_for_the_run_button():
    at = fresh().run()
    at.slider(key="d_eps").set_value(0.25).run()  # moved but not submitted
    assert metrics(at)["rule of thumb: rollouts"] == "8.0"


def test_shared_network_scenario_shows_a_token_pushed_while_frozen():
    at = fresh().run()
    at.button(key="d_scn_1").click().run()  # "Shared net"
    assert not at.exception
    assert at.radio(key="d_critic").value == "shared"
    assert any("Pushed while frozen" in i.value and "shared weights" in i.value for i in at.info)
    assert float(metrics(at)["max move with own gradient 0"]) > 0


def test_the_link_reproduces_a_run():
    at = fresh()
    at.query_params.update({"d_critic": "shared", "d_lr": "0.03", "d_eps": "0.3", "d_seed": "3"})
    at.run()
    assert not at.exception
    expected = simulate(SimConfig(critic="shared", lr=0.03, eps=0.3, seed=3))
    closed = expected.rollouts_to_close
    assert metrics(at)["rollouts to close 90% of the gap"] == ("—" if closed is None else str(closed))
    assert metrics(at)["max move with own gradient 0"] == f"{expected.max_moved_while_frozen:.4g}"


def test_adam_scenario_explains_momentum():
    at = fresh().run()
    at.button(key="d_scn_2").click().run()  # "Table + Adam"
    assert not at.exception
    assert any("momentum" in i.value for i in at.info)


def test_a_diverging_setup_is_an_error_and_the_page_stays_alive():
    at = fresh()
    at.query_params.update({"d_critic": "shared", "d_lr": "3.0"})
    at.run()
    assert not at.exception
    assert at.error and "diverged" in at.error[0].value and "lower lr" in at.error[0].value
    assert at.title[0].value == "Critic dynamics"
    assert at.button(key="d_run")  # the controls are still there to fix it


def test_unclipped_loss_has_no_sweep():
    at = fresh()
    at.query_params["d_loss"] = "unclipped"
    at.run()
    assert not at.exception
    assert not at.get("plotly_chart")  # no sweep
    assert len(at.get("bidi_component")) == 2  # the wall and the training logs
    assert any("needs a clipped loss" in c.value for c in at.caption)


def test_sb3_is_compared_like_with_like():
    at = fresh().run()
    at.button(key="d_scn_4").click().run()  # "SB3 form"
    assert not at.exception
    sb3 = simulate(SimConfig(loss="sb3"))
    twin = same_step_twin(sb3.config)
    same_step = simulate(twin)
    note = next(i.value for i in at.info if "no ½" in i.value)
    assert f"Stable-Baselines3 2.x at lr 0.5 closed 90% of the gap in {sb3.rollouts_to_close} rollouts" in note
    assert f"{twin.form.short} at lr 1, the same step size, in {same_step.rollouts_to_close} rollouts" in note
    assert metrics(at)["rollouts to close 90% of the gap"] == str(sb3.rollouts_to_close)


def test_eps_zero_says_one_step_per_rollout_not_infinity():
    at = fresh().run()
    at.button(key="d_scn_5").click().run()  # "eps = 0"
    assert not at.exception
    assert metrics(at)["rule of thumb: per rollout"] == "1 step"
    assert any("verl v0.7.1 – v0.9.1" in i.value and "passes 5/8 of its gradient" in i.value for i in at.info)
    assert "∞" not in metrics(at).values()


def test_eps_zero_with_a_delta_clip_says_the_whole_gradient():
    """verl's 5/8 is its bounds clip: a library whose clip passes the tie whole is not credited with 5/8."""
    at = fresh()
    at.query_params["d_eps"] = "0"
    at.query_params["d_loss"] = "baselines-ppo2"
    at.run()
    assert not at.exception
    (info,) = [i.value for i in at.info if "passes" in i.value]
    assert "OpenAI baselines ppo2" in info and "the whole gradient" in info and "5/8" not in info
