"""Stable-Baselines3 2.9.2 (PyPI): one real ``PPO.learn`` update against the ``sb3`` dialect.

How the library is loaded: **the real package, imported whole**, with gymnasium 1.4.0 (its CartPole)
and cloudpickle pinned beside it; no stand-ins. A tiny MLP policy runs one rollout and one ``train()``
(two epochs of several minibatches, so the critic moves and the clip band is hit). Each minibatch's
predictions, returns and old values are recorded as SB3 feeds them to its loss, with the gradient SB3's
own backward sends into the predictions. Checked, bit for bit:

- the logged ``train/value_loss`` (``np.mean`` of every minibatch's ``value_loss.item()``) equals the same
  mean of ``dialect_loss("sb3", ...)`` over those minibatches;
- the gradient SB3 produces on the predictions equals ``vf_coef *`` the gradient of our loss (the policy
  and entropy terms do not depend on the value head's output).

Both with ``clip_range_vf=0.2`` and with ``None`` (SB3's default: no value clipping).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import valueloss as vl
from tests.batches import assert_bitwise

from ._harness import version_of


@pytest.fixture(scope="module")
def sb3(upstream_site):
    import stable_baselines3

    assert stable_baselines3.__file__.startswith(str(upstream_site)), stable_baselines3.__file__
    assert stable_baselines3.__version__ == version_of("stable-baselines3")
    return stable_baselines3


def one_update(sb3, clip_range_vf):
    """Run one real PPO update; return the model and what each minibatch fed its value loss."""
    import gymnasium as gym

    torch.manual_seed(0)
    model = sb3.PPO(
        "MlpPolicy",
        gym.make("CartPole-v1"),
        n_steps=64,
        batch_size=16,
        n_epochs=2,
        learning_rate=3e-2,
        clip_range_vf=clip_range_vf,
        policy_kwargs={"net_arch": [8]},
        seed=0,
        device="cpu",
    )
    seen = []
    evaluate, get = model.policy.evaluate_actions, model.rollout_buffer.get

    def recording_get(batch_size=None):
        for data in get(batch_size):
            seen.append({"returns": data.returns.clone(), "old_values": data.old_values.clone()})
            yield data

    def recording_evaluate(obs, actions):
        values, log_prob, entropy = evaluate(obs, actions)
        record = seen[-1]
        record["values"] = values.detach().flatten().clone()
        values.register_hook(lambda g: record.__setitem__("grad", g.flatten().clone()))
        return values, log_prob, entropy

    model.policy.evaluate_actions = recording_evaluate
    model.rollout_buffer.get = recording_get
    model.learn(total_timesteps=64)
    return model, seen


@pytest.mark.parametrize("clip_range_vf", [0.2, None])
def test_one_real_update(sb3, clip_range_vf):
    model, seen = one_update(sb3, clip_range_vf)
    assert len(seen) == 2 * 64 // 16 and all("grad" in s for s in seen)
    ours = []
    for s in seen:
        leaf = s["values"][None, :].clone().requires_grad_(True)
        r, o = s["returns"][None, :], s["old_values"][None, :]
        result = vl.dialect_loss("sb3", leaf, r, o, torch.ones_like(leaf, dtype=torch.bool), clip_range_vf)
        result.loss.backward()
        ours.append(result.loss.item())
        assert_bitwise(model.vf_coef * leaf.grad[0], s["grad"], "d loss / d values")
    logged = model.logger.name_to_value["train/value_loss"]
    assert logged == np.mean(ours), f"SB3 logged {logged!r}, ours {np.mean(ours)!r}"
    if clip_range_vf is not None:  # the band was really hit: some minibatch clips a prediction
        moved = [((s["values"] - s["old_values"]).abs() > clip_range_vf).any() for s in seen]
        assert any(moved), "no prediction left the band; the clipped branch went untested"
