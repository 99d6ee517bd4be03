"""Synthetic batches and GAE (valueloss.tools.batch): shape, padding and lengths, the reward and KL terms,
GAE against a textbook loop and bit for bit against verl's torch loop, and every parameter validated by name."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import valueloss as vl
from valueloss.tools.batch import SYNTHETIC_PARAMS, gae_advantages_returns, synthetic_batch
from valueloss.tools.batch_reports import (
    batch_stats,
)

SMALL = dict(batch_size=6, min_len=2, max_len=9)


def reference_gae(rewards, values, lengths, gamma, lam):
    """Textbook GAE, one sequence and one token at a time: A_t = sum_l (gamma lam)^l delta_{t+l}, V = 0 past the end."""
    B, T = len(rewards), len(rewards[0])
    adv = [[0.0] * T for _ in range(B)]
    for i in range(B):
        n = lengths[i]
        for t in range(n):
            total = 0.0
            for k in range(t, n):
                next_v = values[i][k + 1] if k + 1 < n else 0.0
                delta = rewards[i][k] + gamma * next_v - values[i][k]
                total += (gamma * lam) ** (k - t) * delta
            adv[i][t] = total
    return adv


def test_default_batch_shape_padding_and_lengths():
    b = synthetic_batch()
    assert b.shape == (64, 256)
    for t in (b.vpreds, b.returns, b.values, b.mask, b.rewards, b.advantages):
        assert t.dtype == torch.float32 and t.shape == (64, 256)
    lengths = b.lengths
    assert int(lengths.min()) >= 16 and int(lengths.max()) <= 256
    positions = torch.arange(256)[None, :]
    assert torch.equal(b.mask, (positions < lengths[:, None]).float())  # padding only after the end
    pad = ~b.mask.bool()
    for t in (b.vpreds, b.returns, b.values, b.rewards, b.advantages):
        assert torch.all(t[pad] == 0)
    assert torch.isfinite(b.vpreds).all()


def test_same_seed_same_batch_other_seed_other_batch():
    a, b, c = synthetic_batch(seed=3, **SMALL), synthetic_batch(seed=3, **SMALL), synthetic_batch(seed=4, **SMALL)
    for name in ("vpreds", "returns", "values", "mask", "rewards"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.vpreds, c.vpreds)


def test_reward_at_last_token_plus_kl_penalty():
    b = synthetic_batch(seed=0, kl_coef=0.0, **SMALL)
    last = b.lengths - 1
    nonzero = b.rewards != 0
    assert int(nonzero.sum()) == b.shape[0]  # only the last real token has a reward without KL
    assert torch.all(nonzero[torch.arange(b.shape[0]), last])
    with_kl = synthetic_batch(seed=0, kl_coef=0.5, **SMALL)
    real = with_kl.mask.bool()
    assert torch.all(with_kl.rewards[real & ~nonzero] < 0)  # -beta * KL with KL >= 0


def test_returns_are_advantages_plus_values():
    b = synthetic_batch(seed=2, lam=0.9, gamma=0.97, **SMALL)
    assert torch.equal(b.returns, b.advantages + b.values)


def test_lambda_one_gives_monte_carlo_returns_independent_of_the_critic():
    a = synthetic_batch(seed=5, gamma=1.0, lam=1.0, value_noise=0.0, dtype=torch.float64, **SMALL)
    b = synthetic_batch(seed=5, gamma=1.0, lam=1.0, value_noise=3.0, value_bias=2.0, dtype=torch.float64, **SMALL)
    mc = torch.flip(torch.cumsum(torch.flip(a.rewards, [1]), 1), [1]) * a.mask
    torch.testing.assert_close(a.returns, mc, rtol=0, atol=1e-12)
    torch.testing.assert_close(b.returns, mc, rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    gamma=st.floats(0.0, 1.0),
    lam=st.floats(0.0, 1.0),
    rows=st.integers(1, 4),
    width=st.integers(1, 8),
)
def test_gae_equals_the_slow_reference_loop(seed, gamma, lam, rows, width):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, width + 1, (rows,), generator=g)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).double()
    rewards = torch.randn(rows, width, generator=g, dtype=torch.float64) * mask
    values = torch.randn(rows, width, generator=g, dtype=torch.float64) * mask
    adv, ret = gae_advantages_returns(rewards, values, mask, gamma, lam)
    expected = torch.tensor(
        reference_gae(rewards.tolist(), values.tolist(), lengths.tolist(), gamma, lam), dtype=torch.float64
    )
    torch.testing.assert_close(adv * mask, expected, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ret, adv + values, rtol=0, atol=0)


def test_step_zero_is_the_first_minibatch():
    b = synthetic_batch(step=0.0, pred_noise=0.0, **SMALL)
    assert torch.equal(b.vpreds, b.values)
    _, clipfrac = vl.compute_value_loss(b.vpreds, b.returns, b.values, b.mask, 0.0)
    assert float(clipfrac) == 0.0


def test_step_one_without_noise_lands_on_the_returns():
    b = synthetic_batch(step=1.0, pred_noise=0.0, dtype=torch.float64, **SMALL)
    torch.testing.assert_close(b.vpreds, b.returns, rtol=0, atol=1e-12)


def test_critic_scale_reproduces_a_verl_498_mismatch():
    b = synthetic_batch(value_scale=15.0, value_bias=-1.0, value_noise=4.0)
    s = batch_stats(b, 0.2)
    assert s.value_std > 3 * s.return_std


def test_nan_padding_only_in_vpreds_padding():
    b = synthetic_batch(padding="nan", **SMALL)
    pad = ~b.mask.bool()
    assert torch.isnan(b.vpreds[pad]).all() and torch.isfinite(b.vpreds[~pad]).all()
    assert torch.isfinite(b.returns).all() and torch.isfinite(b.values).all()


@pytest.mark.parametrize("param", SYNTHETIC_PARAMS, ids=lambda p: p.name)
def test_every_parameter_is_validated_by_name(param):
    with pytest.raises(ValueError, match=param.name):
        synthetic_batch(**{param.name: param.high + (1 if param.integer else 0.5)})
    with pytest.raises(ValueError, match=param.name):
        synthetic_batch(**{param.name: param.low - 1})
    with pytest.raises(TypeError, match=param.name):
        synthetic_batch(**{param.name: True})
    with pytest.raises((TypeError, ValueError), match=param.name):
        synthetic_batch(**{param.name: float("nan")})


def test_defaults_of_the_specs_are_the_function_defaults():
    import inspect

    sig = inspect.signature(synthetic_batch)
    for p in SYNTHETIC_PARAMS:
        assert sig.parameters[p.name].default == p.default, p.name
        assert p.low <= p.default <= p.high


def test_cross_parameter_checks():
    with pytest.raises(ValueError, match="min_len"):
        synthetic_batch(min_len=10, max_len=5)
    with pytest.raises(ValueError, match="cap"):
        synthetic_batch(batch_size=4096, max_len=8192)
    with pytest.raises(ValueError, match="padding"):
        synthetic_batch(padding="garbage")
    with pytest.raises(TypeError, match="dtype"):
        synthetic_batch(dtype=torch.int64)
    with pytest.raises(ValueError, match="whole number"):
        synthetic_batch(batch_size=2.5)


def torch_gae_loop(rewards, values, mask, gamma, lam):
    """verl's loop written with torch ops (the form of compute_gae_advantage_return), for a bit-level comparison."""
    nextvalues = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    lastgaelam = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    out = []
    for t in reversed(range(rewards.shape[-1])):
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam_ = delta + gamma * lam * lastgaelam
        nextvalues = values[:, t] * mask[:, t] + (1 - mask[:, t]) * nextvalues
        lastgaelam = lastgaelam_ * mask[:, t] + (1 - mask[:, t]) * lastgaelam
        out.append(lastgaelam)
    advantages = torch.stack(out[::-1], dim=1)
    return advantages, advantages + values


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gae_is_bit_identical_to_the_torch_loop(dtype):
    b = synthetic_batch(seed=12, gamma=0.99, lam=0.95, dtype=dtype)
    adv, ret = gae_advantages_returns(b.rewards, b.values, b.mask, 0.99, 0.95)
    ref_adv, ref_ret = torch_gae_loop(b.rewards, b.values, b.mask, 0.99, 0.95)
    assert torch.equal(adv, ref_adv) and torch.equal(ret, ref_ret)
    with pytest.raises(TypeError, match="rewards"):
        gae_advantages_returns(b.rewards.half(), b.values, b.mask, 0.99, 0.95)
