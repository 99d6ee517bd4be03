"""Per-token gradients of every library's loss (autograd on broadcast grids) and the tie table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from valueloss import DIALECTS, dialect_loss, value_loss_grad
from valueloss.dialect_grads import TIE_CASES, dialect_token_grad, tie_point, tie_table

H = 1e-6


def _one_token_loss(name, v, R, v_old, eps) -> float:
    t = lambda x: torch.tensor([[float(x)]], dtype=torch.float64)  # noqa: E731
    return float(dialect_loss(name, t(v), t(R), t(v_old), torch.ones(1, 1), eps).loss)


def _random_tokens(n=300, seed=0):
    rng = np.random.default_rng(seed)
    v_old = rng.uniform(-2, 2, n)
    R = rng.uniform(-3, 3, n)
    v = v_old + rng.uniform(-2, 2, n)
    return v, R, v_old


def _kinks(name, v, R, v_old, eps):
    """Where the library's per-token loss is not differentiable in v (or its Huber branch switches)."""
    if DIALECTS[name].eps_units == "loss":
        return [R - np.sqrt(eps), R + np.sqrt(eps)]
    edges = [v_old - eps, v_old + eps]
    ties = [2 * R - e for e in edges]  # where (v - R)^2 == (edge - R)^2
    huber = [R - 1, R + 1]  # smooth L1 switches from quadratic to linear (its derivative is continuous)
    return edges + ties + (huber if DIALECTS[name].combine_rule == "huber-max" else [])


# deepspeed-chat-fp32 rounds float64 inputs to float32 (.float()), as DeepSpeed-Chat does: a step at 1e-6;
# test_deepspeed_chat_fp32_casts_after_the_clamp checks it against the plain entry instead.
@pytest.mark.parametrize("name", [n for n in DIALECTS if n != "deepspeed-chat-fp32"])
def test_matches_finite_differences_away_from_kinks(name):
    eps = 1.5 if DIALECTS[name].eps_units == "loss" else 0.3
    v, R, v_old = _random_tokens()
    grad = dialect_token_grad(name, v, R, v_old, eps).grad
    checked = 0
    for i in range(len(v)):
        if min(abs(v[i] - k[i]) for k in _kinks(name, v, R, v_old, eps)) < 1e-3:
            continue
        up = _one_token_loss(name, v[i] + H, R[i], v_old[i], eps)
        down = _one_token_loss(name, v[i] - H, R[i], v_old[i], eps)
        assert grad[i] == pytest.approx((up - down) / (2 * H), abs=1e-6), (name, v[i], R[i], v_old[i])
        checked += 1
    assert checked > 250


@pytest.mark.parametrize(
    ("name", "convention", "factor"),
    [("verl", "bounds", 0.5), ("trl", "clamp", 0.5), ("openrlhf", "delta", 0.5), ("cleanrl", "delta", 0.5),
     ("slime", "delta", 1.0), ("trlx", "clamp", 0.5), ("deepspeed-chat", "clamp", 0.5), ("rsl_rl", "delta", 1.0),
     ("nemo-aligner", "delta", 0.5), ("rllib-legacy", "delta", 1.0), ("verl-v0.4.0", "bounds", 1.0),
     ("verl-v0.4.1", "bounds", 0.5), ("openrlhf-2025-04", "delta", 0.5), ("slime-per-token", "delta", 1.0)],
)  # fmt: skip
def test_max_form_dialects_are_the_closed_form_times_their_constant(name, convention, factor):
    axis = np.linspace(-1.5, 1.5, 61)
    v, R = axis.reshape(1, -1), axis.reshape(-1, 1)
    d = dialect_token_grad(name, v, R, 0.0, 0.2)
    closed = factor * value_loss_grad(np.broadcast_to(v, d.grad.shape).copy(), R, 0.0, 0.2, convention).numpy()
    np.testing.assert_allclose(d.grad, closed, rtol=1e-10, atol=1e-15)  # old verl: N / (N + 1e-8)
    assert np.array_equal(d.grad == 0, closed == 0)  # zero is exactly zero, not a rounding residue
    assert d.grad.shape == (61, 61)


def test_sb3_freezes_every_token_outside_the_band():
    v = np.linspace(-1, 1, 201)
    d = dialect_token_grad("sb3", v, 0.7, 0.0, 0.2)
    outside = np.abs(v) > 0.2
    assert np.all(d.grad[outside] == 0)
    assert np.all(d.frozen[outside])
    np.testing.assert_allclose(d.grad[~outside], 2 * (v[~outside] - 0.7), rtol=1e-12)
    # off (clip_range_vf=None): plain MSE everywhere
    off = dialect_token_grad("sb3", v, 0.7, 0.0, None)
    np.testing.assert_allclose(off.grad, 2 * (v - 0.7), rtol=1e-12)
    assert not off.frozen.any()


def test_rllib_clamps_the_loss_not_the_value():
    v = np.linspace(-3, 3, 241)
    d = dialect_token_grad("rllib", v, 0.0, 0.0, 1.0)
    clamped = v**2 > 1.0
    assert np.all(d.grad[clamped] == 0) and np.all(d.frozen[clamped])
    np.testing.assert_allclose(d.grad[~clamped], 2 * v[~clamped], rtol=1e-12)


def test_torchrl_huber_gradient_is_bounded_by_one():
    v = np.linspace(-3, 3, 241)
    d = dialect_token_grad("torchrl", v, 0.0, v, 0.2)  # v == v_old: always inside the band
    np.testing.assert_allclose(d.grad, np.clip(v, -1, 1), rtol=1e-12)


def test_frozen_means_zero_gradient_but_not_resting_at_the_target():
    # inside the band at v == R the gradient is 0 because the token is done, not frozen
    inside = dialect_token_grad("verl", 0.1, 0.1, 0.0, 0.2)
    assert inside.grad == 0 and not inside.frozen
    # outside the band at v == R the clipped term wins: frozen (it would be 0 anywhere nearby too)
    outside = dialect_token_grad("verl", 1.0, 1.0, 0.0, 0.2)
    assert outside.grad == 0 and outside.frozen


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown dialect"):
        dialect_token_grad("ppo1", 0.0, 1.0, 0.0, 0.2)
    with pytest.raises(ValueError, match="eps"):
        dialect_token_grad("verl", 0.0, 1.0, 0.0, None)  # verl cannot turn clipping off
    with pytest.raises(ValueError, match="eps"):
        dialect_token_grad("verl", 0.0, 1.0, 0.0, -1.0)
    with pytest.raises(ValueError, match="broadcast"):
        dialect_token_grad("verl", np.zeros(3), np.zeros(4), 0.0, 0.2)
    with pytest.raises(ValueError, match="empty"):
        dialect_token_grad("verl", np.zeros(0), 1.0, 0.0, 0.2)
    with pytest.raises(TypeError, match="v must be"):
        dialect_token_grad("verl", "half", 1.0, 0.0, 0.2)


EXPECTED_SHARES = {
    # case: (bounds, clamp, delta, delta under TensorFlow's tf.maximum) share of 2(v - R) that reaches v
    "upper-edge": (0.75, 1.0, 1.0, 1.0),
    "lower-edge": (0.75, 1.0, 1.0, 1.0),
    "eps-zero": (0.625, 1.0, 1.0, 1.0),  # both edges at once: 1/2 + 1/2 * 1/2 * 1/2
    # outside the band the clipped half never reaches v; TensorFlow gives the whole tie to the unclipped term
    "symmetric-overshoot": (0.5, 0.5, 0.5, 1.0),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", list(TIE_CASES))
def test_tie_table_autograd_equals_closed_form_and_known_shares(case, dtype):
    rows = tie_table(case, 0.0, 1.0, 0.25, dtype=dtype)
    assert [r["convention"] for r in rows] == ["bounds", "clamp", "delta", "delta, tf.maximum"]
    for row, share in zip(rows, EXPECTED_SHARES[case], strict=True):
        assert row["terms equal"]
        assert row["bit-identical"]
        assert row["autograd d max/dv"] == row["closed form"]
        assert row["share of 2(v − R)"] == share


def test_tie_points():
    assert tie_point("upper-edge", 0.0, 1.0, 0.25) == (0.25, 0.25)
    assert tie_point("lower-edge", 0.0, 1.0, 0.25) == (-0.25, 0.25)
    assert tie_point("eps-zero", 0.5, 1.0, 0.25) == (0.5, 0.0)
    assert tie_point("symmetric-overshoot", 0.0, 1.0, 0.25) == (1.75, 0.25)
    assert tie_point("symmetric-overshoot", 0.0, -1.0, 0.25) == (-1.75, 0.25)
    with pytest.raises(ValueError, match="R outside the band"):
        tie_point("symmetric-overshoot", 0.0, 0.2, 0.25)
    with pytest.raises(ValueError, match="unknown tie case"):
        tie_point("middle", 0.0, 1.0, 0.25)


def test_non_dyadic_numbers_can_break_a_tie_in_one_convention():
    # v = 0.1 + 0.2 is the band edge for bounds and clamp, but (v - 0.1) > 0.2 in float64: the delta
    # convention sees v outside the band, so its clipped half is lost (autograd and closed form agree)
    rows = {r["convention"]: r for r in tie_table("upper-edge", 0.1, 1.0, 0.2)}
    assert rows["delta"]["share of 2(v − R)"] == 0.5
    assert rows["clamp"]["share of 2(v − R)"] == 1.0
    assert all(r["bit-identical"] for r in rows.values())


def test_tie_table_names_the_libraries_of_each_convention_with_their_versions():
    rows = {r["convention"]: r["used by"] for r in tie_table("upper-edge")}
    assert "verl v0.7.1" in rows["bounds"] and "trlx" in rows["clamp"] and "DeepSpeed-Chat" in rows["clamp"]
    assert "rsl_rl" in rows["delta"] and "baselines" not in rows["delta"]
    assert rows["delta, tf.maximum"] == "OpenAI baselines ppo2"


def test_baselines_gives_the_whole_tied_max_to_the_unclipped_term():
    """ppo2 at a symmetric overshoot (v_old = 0, eps = 0.25, R = 1, v = 1.75): both terms are 0.5625.
    TensorFlow's Maximum gradient (mask x >= y) keeps 0.5 * 2(v - R) = 0.75; torch splits: 0.375."""
    tf_style = dialect_token_grad("baselines-ppo2", 1.75, 1.0, 0.0, 0.25)
    torch_style = dialect_token_grad("cleanrl", 1.75, 1.0, 0.0, 0.25)
    assert float(tf_style.grad) == 0.75 and float(torch_style.grad) == 0.375
    # away from ties the two are the same function
    v, R, v_old = _random_tokens(seed=3)
    a = dialect_token_grad("baselines-ppo2", v, R, v_old, 0.3).grad
    b = dialect_token_grad("cleanrl", v, R, v_old, 0.3).grad
    tied = np.isclose((v - R) ** 2, (v_old + np.clip(v - v_old, -0.3, 0.3) - R) ** 2, rtol=0, atol=0)
    assert np.array_equal(a[~tied], b[~tied])


def test_off_values_turn_clipping_off():
    v = np.linspace(-3, 3, 61)
    plain = 2 * (v - 0.5)
    np.testing.assert_allclose(dialect_token_grad("rllib", v, 0.5, 0.0, float("inf")).grad, plain, rtol=1e-12)
    np.testing.assert_allclose(dialect_token_grad("nemo-aligner", v, 0.5, 0.0, 0.0).grad, 0.5 * plain, rtol=1e-12)
    assert not dialect_token_grad("torchrl", v, 0.5, 0.0, 0.0).frozen.any()  # clip_value=0 is off
    with pytest.raises(ValueError, match="eps"):
        dialect_token_grad("verl", v, 0.5, 0.0, float("inf"))
