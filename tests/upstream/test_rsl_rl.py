"""rsl_rl 5.5.1 (PyPI ``rsl-rl-lib``): one real ``PPO.update`` against the value loss we restate.

How the library is loaded: **the real package, imported whole**, with tensordict from the pinned set.
One stand-in: ``torch.utils.tensorboard`` (an empty module with a placeholder ``SummaryWriter`` class) where
the tensorboard package is not installed -- ``rsl_rl.utils`` imports it at module level for its log
writers; ``PPO.update`` never touches it.

Read in the installed ``rsl_rl/algorithms/ppo.py`` (``use_clipped_value_loss=True``, the default): the
prediction is clipped by the delta convention with the **shared** ``clip_param`` (the policy's ratio clip),
the loss is the max of the two squared errors, **no 0.5**, a plain mean over the minibatch; the logged
``value`` is the Python-float average of every minibatch's ``value_loss.item()``.

A real update: tiny ``MLPModel`` actor and critic, a ``RolloutStorage`` filled by ``act`` /
``process_env_step`` / ``compute_returns`` on random observations and rewards, then ``update()`` (two epochs
of two minibatches). Each minibatch's predictions, returns and old values are recorded as rsl_rl feeds
them to its loss, with the gradient its backward sends into the predictions. Checked bit for bit: the
logged ``value`` and that gradient, against ``dialect_loss("rsl_rl", ...)`` and against twice the
``cleanrl`` dialect (the same clip and max with a 0.5: scaling by 2 is exact in binary).
"""

from __future__ import annotations

import pytest
import torch

import valueloss as vl
from tests.batches import assert_bitwise

from ._harness import stand_in, version_of

NUM_ENVS, NUM_STEPS, EPOCHS, MINIBATCHES = 4, 8, 2, 2


@pytest.fixture(scope="module")
def rsl_rl(upstream_site):
    class SummaryWriter:  # stand-in: only the log writers subclass it
        pass

    stand_in("torch.utils.tensorboard", SummaryWriter=SummaryWriter)
    import rsl_rl

    assert rsl_rl.__file__.startswith(str(upstream_site)), rsl_rl.__file__
    assert (upstream_site / f"rsl_rl_lib-{version_of('rsl-rl-lib')}.dist-info").is_dir()
    return rsl_rl


def one_update(rsl_rl, clip_param=0.2):
    from rsl_rl.algorithms import PPO
    from rsl_rl.models import MLPModel
    from rsl_rl.storage import RolloutStorage
    from tensordict import TensorDict

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)

    def observe():
        return TensorDict({"policy": torch.randn(NUM_ENVS, 3, generator=gen)}, batch_size=[NUM_ENVS])

    obs = observe()
    groups = {"actor": ["policy"], "critic": ["policy"]}
    gaussian = {"class_name": "rsl_rl.modules.distribution:GaussianDistribution"}
    actor = MLPModel(obs, groups, "actor", 1, hidden_dims=[8], distribution_cfg=gaussian)
    critic = MLPModel(obs, groups, "critic", 1, hidden_dims=[8])
    storage = RolloutStorage("rl", NUM_ENVS, NUM_STEPS, obs, [1], "cpu")
    alg = PPO(
        actor,
        critic,
        storage,
        num_learning_epochs=EPOCHS,
        num_mini_batches=MINIBATCHES,
        clip_param=clip_param,
        learning_rate=3e-2,
        schedule="fixed",
    )
    for _ in range(NUM_STEPS):
        alg.act(obs)
        obs = observe()
        rewards = torch.randn(NUM_ENVS, generator=gen) * 3
        alg.process_env_step(obs, rewards, torch.zeros(NUM_ENVS, dtype=torch.bool), {})
    alg.compute_returns(obs)

    seen = []
    generator, forward = storage.mini_batch_generator, critic.forward

    def recording_generator(*args, **kwargs):
        for batch in generator(*args, **kwargs):
            seen.append({"returns": batch.returns.detach().clone(), "old_values": batch.values.detach().clone()})
            yield batch

    def recording_forward(*args, **kwargs):
        values = forward(*args, **kwargs)
        record = seen[-1]
        record["values"] = values.detach().clone()
        values.register_hook(lambda g: record.__setitem__("grad", g.clone()))
        return values

    storage.mini_batch_generator = recording_generator
    critic.forward = recording_forward
    logged = alg.update()
    assert alg.use_clipped_value_loss and alg.value_loss_coef == 1.0
    return logged, seen


def replay(seen, name, eps, scale=1.0):
    """Our loss on every recorded minibatch, averaged as rsl_rl logs it; gradients checked on the way."""
    total = 0.0
    for s in seen:
        leaf = s["values"].T.clone().requires_grad_(True)  # (N, 1) -> (1, N): one row of N real tokens
        r, o = s["returns"].T, s["old_values"].T
        loss = scale * vl.dialect_loss(name, leaf, r, o, torch.ones_like(leaf, dtype=torch.bool), eps).loss
        loss.backward()
        assert_bitwise(leaf.grad.T, s["grad"], f"{name}: d value_loss / d values")
        total += loss.item()
    return total / len(seen)


def test_a_real_update_hits_the_band(rsl_rl):
    logged, seen = one_update(rsl_rl)
    assert len(seen) == EPOCHS * MINIBATCHES and all("grad" in s for s in seen)
    outside = sum(int(((s["values"] - s["old_values"]).abs() > 0.2).sum()) for s in seen)
    assert outside > 0, "no prediction left the band; the clipped branch went untested"


def test_logged_value_is_twice_the_cleanrl_form(rsl_rl):
    logged, seen = one_update(rsl_rl)
    assert logged["value"] == replay(seen, "cleanrl", 0.2, scale=2.0)


def test_logged_value_and_gradient_bit_for_bit(rsl_rl):
    logged, seen = one_update(rsl_rl)
    assert logged["value"] == replay(seen, "rsl_rl", 0.2)
