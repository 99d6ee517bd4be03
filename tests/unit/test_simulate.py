"""The critic-dynamics simulator: its invariants, its numbers against the libraries, reproducibility."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import torch

from valueloss import ValueLoss, clip_bounds, dialect_loss
from valueloss.dialects import DIALECTS
from valueloss.teach.explain import tie_split
from valueloss.teach.simulate import (
    CLOSE_FRACTION,
    LOSS_FORMS,
    SimConfig,
    first_step_share,
    loss_form,
    loss_rows,
    rule_of_thumb,
    simulate,
    sweep_eps,
    training_logs_caption,
)
from valueloss.viz.base import APP_TEMPLATE
from valueloss.viz.dynamics import (
    LOG_PANEL_HEIGHT,
    LOG_PANELS,
    WALL_FRAME_MS,
    log_data,
    sweep_figure,
    wall_data,
)

# A configuration where each step is small against eps but the optimizer could go much further
# within a rollout: the regime the ~gap / eps rule describes.
RULE_REGIME = SimConfig(lr=0.15, n_epochs=16, noise=0.0)


def _arrays(result):
    return {k: v for k, v in vars(result).items() if isinstance(v, np.ndarray)}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        pytest.param({"critic": "shared", "lr": 0.03}, marks=pytest.mark.slow),  # a network critic: ~10 s
        {"optimizer": "adam", "lr": 0.1},
        {"loss": "sb3"},
        {"loss": "unclipped"},
    ],
)
def test_seeded_runs_repeat_exactly(overrides):
    a, b = simulate(**overrides), simulate(**overrides)
    for name, array in _arrays(a).items():
        np.testing.assert_array_equal(array, _arrays(b)[name], err_msg=name)
    assert a.tracked == b.tracked
    c = simulate(seed=1, **overrides)
    assert not np.array_equal(a.values, c.values), "a different seed should give a different run"


def test_shapes_and_bookkeeping():
    cfg = SimConfig(n_tokens=10, n_rollouts=3, n_epochs=2, n_minibatches=5)
    r = simulate(cfg)
    u, t, k = cfg.n_updates, cfg.n_tokens, cfg.n_rollouts
    assert r.values.shape == (u + 1, t)
    assert r.v_old.shape == r.targets.shape == (k, t)
    assert r.frozen.shape == r.frozen_after.shape == r.moved_while_frozen.shape == (u, t)
    assert r.vf_loss.shape == r.vf_clipfrac.shape == r.zero_grad_frac.shape == (u,)
    assert r.value_error.shape == r.explained_var.shape == (u + 1,)
    assert r.remaining_gap.shape == (k + 1,)
    np.testing.assert_array_equal(r.rollout, np.repeat(np.arange(k), 10))
    np.testing.assert_array_equal(r.epoch[:10], np.repeat([0, 1], 5))
    # v_old of each rollout is the critic at the end of the previous one
    ends = np.arange(1, k) * cfg.n_epochs * cfg.n_minibatches
    np.testing.assert_array_equal(r.v_old[1:], r.values[ends])
    np.testing.assert_array_equal(r.v_old[0], r.values[0])
    assert r.remaining_gap[0] == pytest.approx(1.0)


def test_no_clipping_when_eps_is_huge():
    huge = simulate(eps=1e6)
    plain = simulate(loss="unclipped")
    assert huge.vf_clipfrac.max() == 0.0
    assert huge.zero_grad_frac.max() == 0.0
    assert not huge.frozen.any()
    # max(L, L) has the gradient of L exactly: the run is the unclipped run, bit for bit
    np.testing.assert_array_equal(huge.values, plain.values)
    np.testing.assert_array_equal(huge.baseline_value_error, huge.value_error)


def test_first_minibatch_of_every_rollout_clips_nothing():
    r = simulate()
    first = (r.epoch == 0) & (r.minibatch == 0)
    assert np.all(r.vf_clipfrac[first] == 0.0)
    assert r.vf_clipfrac[~first].max() > 0.5  # and clipping does happen later, so the check is not vacuous


def test_table_and_sgd_a_token_past_its_band_never_moves_again_within_the_rollout():
    cfg = SimConfig()  # per-token table, plain SGD, verl's max form
    r = simulate(cfg)
    per_rollout = cfg.n_epochs * cfg.n_minibatches
    frozen_events = 0
    for u, t in zip(*np.nonzero(r.frozen), strict=True):
        end = (r.rollout[u] + 1) * per_rollout  # last state of this rollout
        stuck = r.values[u : end + 1, t]
        assert np.all(stuck == stuck[0]), f"token {t} moved after update {u} although its gradient was 0"
        frozen_events += 1
    assert frozen_events > 20
    assert r.max_moved_while_frozen == 0.0
    # frozen here means: moved more than eps toward R (the clipped term wins)
    u, t = np.argwhere(r.frozen)[0]
    k = r.rollout[u]
    delta, gap = r.values[u, t] - r.v_old[k, t], r.targets[k, t] - r.v_old[k, t]
    assert abs(delta) > cfg.eps and np.sign(delta) == np.sign(gap)


def test_adam_keeps_moving_a_token_whose_gradient_is_zero():
    r = simulate(optimizer="adam", lr=0.1)
    assert r.max_moved_while_frozen > 1e-3
    u, t = np.unravel_index(np.argmax(r.moved_while_frozen), r.moved_while_frozen.shape)
    assert r.frozen[u, t]


def test_shared_parameters_push_a_frozen_token_further_past_its_band():
    r = simulate(critic="shared", lr=0.03)
    v_old = r.v_old[r.rollout]  # (U, T): the band centre of each update
    before = np.abs(r.values[:-1] - v_old)
    after = np.abs(r.values[1:] - v_old)
    pushed = r.frozen & (after > before + 1e-6) & (before > r.config.eps)
    assert pushed.any(), "expected a token with zero own gradient to be pushed further past its band"
    assert r.max_beyond_band.max() > 0.1


def test_sgd_table_closes_the_gap_in_about_gap_over_eps_rollouts():
    s = sweep_eps(RULE_REGIME)
    assert np.all(np.isfinite(s.rollouts))
    assert np.all(np.diff(s.rollouts) >= 0), "a smaller eps never closes the gap faster"
    big = s.ratios >= 8
    ratio = s.rollouts[big] / s.ratios[big]
    assert np.all((ratio > 0.8) & (ratio < 1.3)), (s.ratios, s.rollouts)
    # with a wide band the optimizer, not the clip, sets the pace
    assert s.rollouts[0] == s.unclipped_rollouts


def test_main_run_agrees_with_the_sweep_row_of_the_same_eps():
    cfg = SimConfig(n_rollouts=20)
    s = sweep_eps(cfg, ratios=[cfg.gap / cfg.eps], max_rollouts=20)
    assert s.rollouts[0] == simulate(cfg).rollouts_to_close


def test_the_zero_gap_is_closed_from_the_start():
    r = simulate(gap=0.0, noise=0.0)
    assert r.rollouts_to_close == 0
    with pytest.raises(ValueError, match="gap must be nonzero"):
        sweep_eps(r.config)


SIMULATED = [name for name in LOSS_FORMS if name != "unclipped"]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", SIMULATED)
def test_loss_rows_are_each_librarys_loss_and_gradient(name, seed):
    """Row by row, the simulator's loss and its autograd gradient equal the registry's ``dialect_loss``."""
    g = torch.Generator().manual_seed(seed)
    v, R, o = (torch.randn(3, 7, generator=g, dtype=torch.float64) for _ in range(3))
    v[0] = o[0]  # eps = 0 on this row: every token an exact tie, where the conventions and tie rules differ
    eps = [0.0, 0.3, 1.0]
    mask = torch.ones(1, 7, dtype=torch.float64)
    eps_col = torch.tensor(eps, dtype=torch.float64)[:, None]
    v = v.requires_grad_(True)
    loss, frac, zero = loss_rows(name, v, R, o, eps_col)
    (grad,) = torch.autograd.grad(loss.sum(), v)
    for i, e in enumerate(eps):
        vi = v[i : i + 1].detach().clone().requires_grad_(True)
        ref = dialect_loss(name, vi, R[i : i + 1], o[i : i + 1], mask, e).loss
        (ref_grad,) = torch.autograd.grad(ref, vi)
        assert loss[i].item() == pytest.approx(ref.item(), rel=1e-15, abs=1e-15)
        assert torch.allclose(grad[i], ref_grad[0], rtol=1e-14, atol=1e-15)
        clipped_wins = (clip_bounds(v[i], o[i], e) - R[i]) ** 2 > (v[i] - R[i]) ** 2
        assert frac[i].item() == pytest.approx(clipped_wins.double().mean().item(), abs=1e-12)  # verl's vf_clipfrac
        # a frozen token's gradient is exactly 0
        assert (ref_grad[0][zero[i]] == 0).all()


def test_the_unclipped_form_is_the_plain_squared_error():
    g = torch.Generator().manual_seed(0)
    v, R, o = (torch.randn(2, 5, generator=g, dtype=torch.float64) for _ in range(3))
    plain, _, zero = loss_rows("unclipped", v, R, o, torch.tensor([[0.0], [0.5]], dtype=torch.float64))
    mask = torch.ones(1, 5, dtype=torch.float64)
    for i in range(2):
        assert plain[i].item() == ValueLoss(clip_eps=None)(v[i : i + 1], o[i : i + 1], R[i : i + 1], mask).item()
    assert not zero.any()


def test_loss_forms_are_the_registrys_max_and_clip_only_entries():
    """Which forms the simulator offers, and what each computes, come from the registry's typed fields."""
    offered = {name for name, d in DIALECTS.items() if d.current and d.combine_rule in ("max", "clip-only")}
    offered -= {name for name, d in DIALECTS.items() if d.eps_units != "return"}
    assert set(SIMULATED) == offered and LOSS_FORMS[0] == SimConfig().loss == "verl"
    for name in SIMULATED:
        f, d = loss_form(name), DIALECTS[name]
        assert (f.combine_rule, f.clip_convention, f.tie_rule, f.half) == (
            d.combine_rule,
            d.clip_convention,
            d.tie_rule,
            d.half,
        )
    with pytest.raises(ValueError, match="loss"):
        loss_form("torchrl")  # Huber: not a form the simulator trains with


def test_no_branch_on_a_library_name():
    """The simulator and its figures decide on typed fields (combine_rule, clip_convention, tie_rule, half)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    names = "|".join(re.escape(n) for n in DIALECTS)
    branch = re.compile(rf"(==|!=|\bin)\s*\(?[\"']({names})[\"']")
    for path in ("valueloss/teach/simulate.py", "valueloss/viz/dynamics.py", "pages/dynamics.py"):
        found = branch.findall((root / path).read_text(encoding="utf-8"))
        assert not found, (path, found)


@pytest.mark.parametrize("name", SIMULATED)
def test_the_first_step_share_at_eps_zero_is_what_the_form_passes(name):
    """verl's bounds clip passes 5/8 at the eps = 0 tie; clamp, delta and TensorFlow's tie rule pass it all."""
    f = loss_form(name)
    share = first_step_share(name)
    if f.combine_rule == "max":
        assert share == tie_split(f.clip_convention, 0.0, 0.0, 0.0, f.tie_rule).share
    expected = Fraction(5, 8) if (f.clip_convention, f.tie_rule) == ("bounds", "torch") else Fraction(1)
    assert share == expected
    why = rule_of_thumb(SimConfig(eps=0.0, loss=name))[2]
    assert f.label in why and ("5/8 of its gradient" if expected != 1 else "the whole gradient") in why


@pytest.mark.parametrize(
    ("field", "value", "exc", "match"),
    [
        ("critic", "lstm", ValueError, "critic"),
        ("loss", "huber", ValueError, "loss"),
        ("optimizer", "rmsprop", ValueError, "optimizer"),
        ("eps", -0.1, ValueError, "eps"),
        ("eps", float("nan"), ValueError, "eps"),
        ("lr", 0.0, ValueError, "lr"),
        ("gap", float("inf"), ValueError, "gap"),
        ("noise", -1.0, ValueError, "noise"),
        ("n_tokens", 1, ValueError, "n_tokens"),
        ("n_minibatches", 17, ValueError, "n_minibatches"),
        ("n_rollouts", 2.5, TypeError, "n_rollouts"),
        ("lr", "fast", TypeError, "lr"),
        ("n_rollouts", 500, ValueError, "capped"),
    ],
)
def test_bad_configuration_is_a_clear_error(field, value, exc, match):
    overrides = {field: value}
    if field == "n_rollouts" and value == 500:
        overrides.update(n_epochs=16, n_minibatches=16)
    with pytest.raises(exc, match=match):
        SimConfig(**overrides)


def test_a_diverging_critic_is_reported_not_drawn():
    with pytest.raises(ValueError, match="diverged.*lower lr"):
        simulate(critic="shared", lr=3.0)


def test_the_global_random_state_is_left_alone():
    before = torch.random.get_rng_state()
    simulate(critic="shared", lr=0.03, n_rollouts=2)
    assert torch.equal(before, torch.random.get_rng_state())


def test_progress_is_reported_per_rollout():
    seen = []
    simulate(n_rollouts=4, progress=lambda f, msg: seen.append((f, msg)))
    assert [f for f, _ in seen] == [0.25, 0.5, 0.75, 1.0]
    assert seen[-1][1] == "rollout 4 of 4"


def test_the_wall_draws_the_runs_own_numbers_at_every_state():
    """The moving wall's browser component draws what wall_data sends and nothing else: for each tracked
    token, v at every state, and v_old and R of the rollout each state belongs to (state u >= 1 is after
    update u - 1), pink where its own gradient is zero, as plain JSON (no NaN: the browser cannot parse it)."""
    r = simulate(critic="shared", lr=0.03)
    data = wall_data(r)
    json.dumps(data, allow_nan=False)
    n_states = r.config.n_updates + 1
    assert len(data["labels"]) == n_states and data["labels"][0] == "start"
    assert data["labels"][-1] == f"r{r.config.n_rollouts}·e{r.config.n_epochs}·mb{r.config.n_minibatches}"
    per_rollout = r.config.n_epochs * r.config.n_minibatches
    assert data["rolloutStarts"] == [k * per_rollout for k in range(1, r.config.n_rollouts)]
    assert [t["label"] for t in data["tokens"]] == [str(c) for c in r.tracked]
    for token, c in zip(data["tokens"], r.tracked, strict=True):
        np.testing.assert_array_equal(token["v"], r.values[:, c])
        for u in (0, 1, per_rollout, per_rollout + 1, n_states - 1):
            k = 0 if u == 0 else int(r.rollout[u - 1])
            assert token["vOld"][u] == r.v_old[k, c] and token["R"][u] == r.targets[k, c]
            assert token["frozenNow"][u] == (u > 0 and bool(r.frozen_after[u - 1, c]))
        assert token["frozenStates"] == [u + 1 for u in np.flatnonzero(r.frozen[:, c])]
        assert token["title"] == f"token {c}, gap {r.v_true[c] - r.values[0, c]:+.2f}"
    lo, hi = data["yRange"]
    every = np.concatenate([[t["true"]] + t["v"] + t["R"] for t in data["tokens"]])
    assert lo < every.min() and every.max() < hi  # fixed axes hold the whole run
    same, other = simulate(critic="shared", lr=0.03), simulate(critic="shared", lr=0.03, seed=1)
    assert data["revision"] == wall_data(same)["revision"] != wall_data(other)["revision"]


def test_play_shows_every_state_of_a_default_run_and_long_runs_at_a_stride():
    """Play advances ``stride`` states per frame: every state of a default run, about 20 s at most for long ones."""
    assert wall_data(simulate())["stride"] == 1
    long = wall_data(simulate(n_rollouts=60, n_epochs=10, n_minibatches=8))  # 4,801 states
    n = len(long["labels"])
    assert long["stride"] > 1 and n / long["stride"] * WALL_FRAME_MS / 1000 <= 20


def test_the_training_logs_are_four_panels_of_the_runs_own_logs_on_one_update_axis():
    """What logs.js draws: one panel per log in LOG_PANELS order, each line the run's array as it is (states
    from update 0, per-update logs from update 1), vf_loss on a log axis, a dotted line per new rollout."""
    r = simulate(loss="sb3")
    data = log_data(r)
    json.dumps(data, allow_nan=False)
    assert [(p["title"], p["yTitle"]) for p in data["panels"]] == list(LOG_PANELS)
    assert [p["log"] for p in data["panels"]] == [False, False, True, False]
    lines = {line["name"]: line for p in data["panels"] for line in p["lines"]}
    run, base = lines[f"this run (eps = {r.config.eps:g})"], lines["same run, no clipping"]
    np.testing.assert_array_equal(run["y"], r.value_error)
    np.testing.assert_array_equal(base["y"], r.baseline_value_error)
    np.testing.assert_array_equal(lines["vf_loss"]["y"], r.vf_loss)
    np.testing.assert_array_equal(lines["vf_clipfrac (verl: L_clip > L_unclip)"]["y"], r.vf_clipfrac)
    assert run["x0"] == 0 and len(run["y"]) == len(data["labels"]) == r.config.n_updates + 1
    assert lines["vf_loss"]["x0"] == 1 and len(lines["vf_loss"]["y"]) == r.config.n_updates
    np.testing.assert_array_equal(lines["zero-gradient share under Stable-Baselines3 2.x"]["y"], r.zero_grad_frac)
    per_rollout = r.config.n_epochs * r.config.n_minibatches
    assert data["rolloutStarts"] == [k * per_rollout for k in range(1, r.config.n_rollouts)]
    assert data["panelHeight"] == LOG_PANEL_HEIGHT
    # the two panels with two lines get the legend (logs.js names a single line by its panel's title)
    assert [len(p["lines"]) for p in data["panels"]] == [2, 1, 1, 2]
    # in a max form the clip fraction is the zero-gradient share: one line, not two
    plain = log_data(simulate())
    assert [len(p["lines"]) for p in plain["panels"]] == [2, 1, 1, 1]
    # the logs' cursor follows the wall of the same run: they name it alike
    assert data["revision"] == wall_data(r)["revision"] and data["labels"] == wall_data(r)["labels"]


@pytest.mark.parametrize(
    "config",
    [SimConfig(loss=loss, n_rollouts=6) for loss in LOSS_FORMS]
    + [SimConfig(loss="sb3", optimizer="adam", n_rollouts=6), SimConfig(eps=1000.0, n_rollouts=6)],
    ids=[*LOSS_FORMS, "sb3-adam", "eps-wider-than-any-move"],
)
def test_the_training_logs_caption_says_what_the_clip_fraction_panel_shows(config):
    r = simulate(config)
    caption = training_logs_caption(r)
    assert ("climbs as tokens cross their band" in caption) == bool(r.vf_clipfrac.any())
    assert ("stays at 0 in this run" in caption) == (not r.vf_clipfrac.any())
    differ = int((r.vf_clipfrac != r.zero_grad_frac).sum())
    if "equals the share of tokens with zero gradient" in caption:
        assert differ == 0 and r.config.form.combine_rule == "max"
    elif "no gradient is ever zeroed" in caption:
        assert r.config.form.combine_rule is None and not r.zero_grad_frac.any() and r.vf_clipfrac.any()
    elif "the two lines coincide" in caption:
        assert differ == 0
    else:
        assert f"the two differ at {differ} of {r.config.n_updates} updates" in caption and differ > 0


def test_each_dynamics_figure_names_its_data_by_the_settings_that_made_it():
    """Plotly redraws a figure's traces only when its datarevision changes (pages hand it each figure twice):
    the revision must change with every setting and only with them, since a run is a function of its settings."""
    config = SimConfig(n_rollouts=4)
    run, again, other = simulate(config), simulate(SimConfig(n_rollouts=4)), simulate(SimConfig(n_rollouts=4, seed=1))
    np.testing.assert_array_equal(run.values, again.values)  # what makes the settings a valid revision
    revisions = [log_data(r)["revision"] for r in (run, again, other)]
    assert revisions[0] == revisions[1] != revisions[2]
    sweeps = [
        sweep_figure(sweep_eps(c), 0.2) for c in (config, SimConfig(n_rollouts=4), SimConfig(n_rollouts=4, gap=3.0))
    ]
    assert sweeps[0].layout.datarevision == sweeps[1].layout.datarevision != sweeps[2].layout.datarevision


def test_the_dynamics_figures_carry_the_apps_look():
    """The page draws them with theme=None (Streamlit's theming pass redrew each one): the look travels in the
    figure, as the app's template (Streamlit's light chart theme), not Plotly's default template."""
    config = SimConfig(n_rollouts=4)
    fig = sweep_figure(sweep_eps(config), 0.5)
    assert fig.layout.template == APP_TEMPLATE
    assert fig.layout.template.layout.font.family == '"Source Sans", sans-serif'


def test_closed_fraction_is_what_the_docs_say():
    assert CLOSE_FRACTION == 0.9


def test_rule_of_thumb_and_the_eps_zero_case():
    from valueloss.teach.simulate import rule_of_thumb

    assert rule_of_thumb(SimConfig(eps=0.5, gap=4.0))[:2] == ("rule of thumb: rollouts", "8.0")
    label, shown, why = rule_of_thumb(SimConfig(eps=0.0))
    assert (label, shown) == ("rule of thumb: per rollout", "1 step") and "5/8" in why and "verl" in why
    assert "whole gradient" in rule_of_thumb(SimConfig(eps=0.0, loss="sb3"))[2]
    assert "tf.maximum" in rule_of_thumb(SimConfig(eps=0.0, loss="baselines-ppo2"))[2]
    assert rule_of_thumb(SimConfig(loss="unclipped"))[1] == "no clip"
    # The claim "it still learns, one step per rollout": with eps = 0 the gap shrinks every rollout,
    # and within a rollout only the first minibatch moves a token (table critic, plain SGD).
    r = simulate(SimConfig(eps=0.0, n_rollouts=4))
    assert np.all(np.diff(r.remaining_gap) < 0)
    moved = np.abs(np.diff(r.values, axis=0)).sum(axis=1) > 0
    first_of_rollout = (r.epoch == 0) & (r.minibatch == 0)
    assert moved[first_of_rollout].all() and moved.sum() <= r.config.n_rollouts * r.config.n_minibatches
    with pytest.raises(TypeError, match="SimConfig"):
        rule_of_thumb({"eps": 0.0})


def test_a_clip_only_run_against_the_max_form_of_the_same_clip_with_the_same_step():
    from dataclasses import replace

    from valueloss.teach.simulate import same_step_note, same_step_twin

    cfg = SimConfig(loss="sb3")
    twin = same_step_twin(cfg)
    # SB3: delta clip, torch ties, no ½ -> the registry's first max form with a delta clip and torch ties, at 2 x lr
    first_delta_max = next(
        n for n in SIMULATED if (loss_form(n).combine_rule, loss_form(n).clip_convention) == ("max", "delta")
    )
    assert twin == replace(cfg, loss=first_delta_max, lr=1.0) and loss_form(first_delta_max).half
    assert same_step_twin(SimConfig()) is None and same_step_twin(SimConfig(loss="unclipped")) is None
    a, b = simulate(cfg), simulate(twin)
    note = same_step_note(a, b)
    assert f"in {a.rollouts_to_close} rollouts" in note and f"in {b.rollouts_to_close} rollouts" in note
    assert "has no ½ where" in note and "steps are twice" in note
    assert (a.rollouts_to_close == b.rollouts_to_close) == ("is the step size, not the clip" in note)
    assert a.rollouts_to_close < simulate(SimConfig(loss="verl")).rollouts_to_close  # the 6 against 8
    with pytest.raises(ValueError, match="twin"):
        same_step_note(a, a)


def test_the_wall_caption_and_the_pushed_note_state_the_runs_numbers():
    from valueloss.teach.simulate import pushed_while_frozen_note, wall_caption

    table = simulate(SimConfig())
    assert f"Tokens spent {float(table.frozen.mean()):.0%} of the updates" in wall_caption(table)
    assert "nearer R than the band edge" in wall_caption(table)
    assert "outside the band" in wall_caption(simulate(SimConfig(loss="sb3")))
    kind, text = pushed_while_frozen_note(table)
    assert kind == "frozen" and table.max_moved_while_frozen == 0.0
    shared = simulate(SimConfig(critic="shared", lr=0.03))
    kind, text = pushed_while_frozen_note(shared)
    u, t = np.unravel_index(int(np.argmax(shared.moved_while_frozen)), shared.moved_while_frozen.shape)
    assert kind == "pushed" and f"At update {u + 1} token {t}" in text
    assert f"it moved {shared.moved_while_frozen[u, t]:.3f}" in text and shared.frozen[u, t]
    assert pushed_while_frozen_note(simulate(SimConfig(loss="unclipped"))) is None
