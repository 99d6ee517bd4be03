"""The PPO trainer of the clipping ablation: deterministic per seed, its critic trains with exactly the
dialect's value loss, every logged number means what its column says, and bad settings are refused."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch

from valueloss import DIALECTS, dialect_loss
from valueloss.tools.ppo import (
    ENVS,
    MAX_TOTAL_STEPS,
    UPDATE_COLUMNS,
    PPOConfig,
    explained_variance,
    off_eps,
    train,
)

TINY = dict(total_steps=1024)  # 2 updates of CleanRL's CartPole batch (4 envs x 128 steps)


def tiny(env="CartPole-v1", **kw) -> PPOConfig:
    return PPOConfig.for_env(env, **{**TINY, **kw})


def bits(rows: list[dict]) -> list[bytes]:
    """Every logged number as its float64 bytes: equal lists are the same curve bit for bit (NaN included)."""
    return [struct.pack(f"{len(r)}d", *r.values()) for r in rows]


def test_same_seed_same_curve_bit_for_bit_other_seed_differs():
    a = train(tiny(eps=0.2, seed=7)).rows
    b = train(tiny(eps=0.2, seed=7)).rows
    c = train(tiny(eps=0.2, seed=8)).rows
    assert bits(a) == bits(b)
    assert bits(a) != bits(c)
    assert [list(r) for r in a] == [list(UPDATE_COLUMNS)] * len(a)


def test_determinism_does_not_depend_on_torch_threads_or_global_rng():
    before = torch.get_num_threads()
    torch.manual_seed(0)
    a = train(tiny(seed=3)).rows
    torch.set_num_threads(2)
    torch.manual_seed(123)
    np.random.seed(5)
    try:
        b = train(tiny(seed=3)).rows
    finally:
        torch.set_num_threads(before)
    assert bits(a) == bits(b)
    assert torch.get_num_threads() == before  # the run restores the caller's thread count


@pytest.mark.parametrize("eps", [None, 0.2, 1.0])
def test_the_value_loss_used_in_training_is_the_dialects_on_every_logged_minibatch(eps):
    logged = []
    train(tiny(eps=eps, seed=2), on_minibatch=logged.append)
    assert len(logged) == 2 * 4 * 4  # updates x epochs x minibatches
    for mb in logged[:: len(logged) // 4]:
        v, R, o = mb["vpreds"], mb["returns"], mb["values"]
        expected = dialect_loss("verl", v[None], R[None], o[None], torch.ones(1, v.numel()), mb["eps"])
        assert torch.equal(mb["loss"], expected.loss)
        # and it is PPO2's formula (CleanRL's clip_vloss branch), written out independently here
        e = math.inf if eps is None else eps
        ppo2 = 0.5 * torch.max((v - R) ** 2, (o + torch.clamp(v - o, -e, e) - R) ** 2).mean()
        torch.testing.assert_close(mb["loss"], ppo2, rtol=1e-6, atol=0)
        if eps is None:
            assert float(mb["clipfrac"]) == 0.0


def test_the_critic_gradient_is_the_dialects(monkeypatch):
    """The critic's parameters get d(vf_coef * dialect loss)/d(theta): swap the dialect, the step changes."""
    from valueloss.tools import ppo

    seen = []
    original = ppo.value_loss

    def spy(config, eps, vpreds, returns, values):
        out = original(config, eps, vpreds, returns, values)
        seen.append((vpreds, out.loss))
        return out

    monkeypatch.setattr(ppo, "value_loss", spy)
    train(tiny(eps=0.2, seed=1, total_steps=512))
    vpreds, loss = seen[0]
    assert vpreds.requires_grad and loss.requires_grad and loss.grad_fn is not None


def test_value_normalisation_clips_normalised_values():
    logged = []
    result = train(tiny(eps=0.2, seed=4, value_norm=True), on_minibatch=logged.append)
    # the loss sees returns of about unit spread, not CartPole's returns of tens
    assert all(0.3 < row["return_std"] < 3 for row in result.rows)
    plain = train(tiny(eps=0.2, seed=4)).rows
    assert plain[-1]["return_std"] > 3


def test_logged_columns_mean_what_they_say():
    rows = train(tiny(eps=0.5, seed=5, total_steps=2048)).rows
    assert [r["update"] for r in rows] == [1, 2, 3, 4]
    assert [r["global_step"] for r in rows] == [512, 1024, 1536, 2048]
    for r in rows:
        assert r["episodes"] > 0 and r["episodic_return"] >= 8  # CartPole returns 1 per step, >= 8 steps
        assert 0 <= r["vf_clipfrac"] <= 1
        assert r["gap_over_eps"] > 0 and r["return_std"] > 0
        assert r["explained_variance"] <= 1
    off = train(tiny(seed=5)).rows
    assert all(math.isnan(r["gap_over_eps"]) for r in off)
    assert all(r["vf_clipfrac"] == 0 for r in off)


def test_explained_variance():
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(y, y) == 1.0
    assert explained_variance(0.5 * y, y) == pytest.approx(0.75)  # Var(y - y/2) = Var(y) / 4
    assert explained_variance(-y, y) == pytest.approx(-3.0)  # Var(2y) = 4 Var(y)
    assert explained_variance(y.mean().expand(4), y) == pytest.approx(0.0)
    assert math.isnan(explained_variance(y, torch.ones(4)))


WITHOUT_OFF_SWITCH = sorted(n for n, d in DIALECTS.items() if not d.supports_off and not d.off_values)


def test_off_uses_the_librarys_own_switch_where_it_has_one():
    assert "verl" in WITHOUT_OFF_SWITCH
    assert off_eps("cleanrl") is None and off_eps("sb3") is None
    assert off_eps("rllib") == math.inf


@pytest.mark.parametrize("name", WITHOUT_OFF_SWITCH)
def test_off_is_the_unclipped_loss_where_the_library_always_clips(name):
    """verl and the others without an off switch: off is an eps so wide it never binds, so the loss and its
    gradient are the unclipped ones (exactly where the clip is by bounds, as verl's; to rounding elsewhere)."""
    d = DIALECTS[name]
    if d.reduce is None:
        pytest.skip(f"{name} has no max-form reduce to build the unclipped loss from")
    g = torch.Generator().manual_seed(0)
    v = torch.randn(1, 64, generator=g, dtype=torch.float64).requires_grad_()
    R = torch.randn(1, 64, generator=g, dtype=torch.float64) * 5
    o = torch.randn(1, 64, generator=g, dtype=torch.float64)
    mask = torch.ones(1, 64)
    off = dialect_loss(name, v, R, o, mask, off_eps(name))
    (grad_off,) = torch.autograd.grad(off.loss, v)
    per_token = (v - R) ** 2
    unclipped = d.reduce(per_token.reshape(-1) if d.indexed else per_token, mask, "token-mean")
    (grad_unclipped,) = torch.autograd.grad(unclipped, v)
    exact = d.clip_convention == "bounds"
    torch.testing.assert_close(off.loss, unclipped, rtol=0 if exact else 1e-12, atol=0)
    torch.testing.assert_close(grad_off, grad_unclipped, rtol=0 if exact else 1e-12, atol=0 if exact else 1e-15)
    assert off.clipfrac is None or float(off.clipfrac) == 0.0


@pytest.mark.slow
def test_hopper_runs_when_mujoco_is_installed():
    pytest.importorskip("mujoco")
    config = PPOConfig.for_env("Hopper-v5", total_steps=2048, num_minibatches=8, update_epochs=1, eps=0.2, seed=1)
    rows = train(config).rows
    assert len(rows) == 1 and 0 <= rows[0]["vf_clipfrac"] <= 1
    assert bits(rows) == bits(train(config).rows)


def test_cleanrl_presets():
    classic = PPOConfig.for_env("CartPole-v1")
    assert (classic.num_envs, classic.num_steps, classic.learning_rate, classic.total_steps) == (
        4,
        128,
        2.5e-4,
        500_000,
    )
    mujoco = PPOConfig.for_env("Hopper-v5")
    assert (mujoco.num_envs, mujoco.num_steps, mujoco.num_minibatches, mujoco.update_epochs) == (1, 2048, 32, 10)
    assert mujoco.normalize_env and not classic.normalize_env
    assert set(ENVS) == {"CartPole-v1", "Acrobot-v1", "Hopper-v5", "Walker2d-v5", "HalfCheetah-v5"}


@pytest.mark.parametrize(
    ("overrides", "error", "words"),
    [
        (dict(env_id="Pong-v5"), ValueError, "unknown environment 'Pong-v5'"),
        (dict(eps=-0.1), ValueError, "eps must be a finite number >= 0"),
        (dict(eps=float("nan")), ValueError, "eps must be a finite number >= 0"),
        (dict(total_steps=10**9), ValueError, f"total_steps must be between 512 and {MAX_TOTAL_STEPS:,}"),
        (dict(total_steps=100), ValueError, "total_steps must be between 512"),
        (dict(total_steps=1.5e4), TypeError, "total_steps must be a whole number"),
        (dict(seed=-1), ValueError, "seed must be between 0"),
        (dict(seed=True), TypeError, "seed must be a whole number"),
        (dict(dialect="nope"), ValueError, "unknown dialect 'nope'"),
        (dict(num_minibatches=3), ValueError, "must divide the batch"),
        (dict(loss_agg_mode="seq-mean"), ValueError, "loss_agg_mode"),
        (dict(learning_rate=float("inf")), ValueError, "learning_rate must be a finite number"),
        (dict(gamma=1.5), ValueError, "gamma and gae_lambda must be at most 1"),
        (dict(value_norm="yes"), TypeError, "value_norm must be True or False"),
    ],
)
def test_bad_settings_are_refused_with_the_name(overrides, error, words):
    base = dict(env_id="CartPole-v1", total_steps=512)
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        PPOConfig(**{**base, **overrides}).validated()
