"""Drive TorchRL's real ``ClipPPOLoss`` on a given padded batch (the value path, logged numbers and gradient)."""

from __future__ import annotations

import torch


def clip_ppo_loss(batch_vpreds, returns, values, bool_mask, clip_value, critic_coeff=1.0, loss_critic_type=None):
    """One forward and backward of ``ClipPPOLoss`` with the critic predicting exactly ``batch_vpreds``.

    The critic is a ``ValueOperator`` whose module returns a parameter holding the predictions (so the
    gradient TorchRL produces is d loss_critic / d v); the actor is a fixed unit Normal with zero
    advantages, so the policy terms cannot reach the critic. Padding is given the way TorchRL's collectors
    mark it, a boolean ``("collector", "mask")`` entry, which ``_reduce_loss`` picks up.

    Returns ``(logged: dict of float tensors, grad of loss_critic w.r.t. v)``.
    """
    from tensordict import TensorDict
    from tensordict.nn import TensorDictModule
    from torchrl.modules import ProbabilisticActor, ValueOperator
    from torchrl.objectives import ClipPPOLoss

    rows, length = batch_vpreds.shape

    class Predictions(torch.nn.Module):
        def __init__(self, v):
            super().__init__()
            self.v = torch.nn.Parameter(v.detach().clone())

        def forward(self, observation):
            return self.v.unsqueeze(-1)

    class UnitNormal(torch.nn.Module):
        def forward(self, observation):
            return observation, torch.ones_like(observation)

    critic = ValueOperator(Predictions(batch_vpreds), in_keys=["observation"])
    actor = ProbabilisticActor(
        TensorDictModule(UnitNormal(), in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        distribution_class=torch.distributions.Normal,
        return_log_prob=True,
    )
    kwargs = {} if loss_critic_type is None else {"loss_critic_type": loss_critic_type}
    module = ClipPPOLoss(actor, critic, clip_value=clip_value, entropy_bonus=False, critic_coeff=critic_coeff, **kwargs)
    zeros = torch.zeros(rows, length, 1)
    td = TensorDict(
        {
            "observation": zeros,
            "action": zeros,
            "action_log_prob": zeros,
            "advantage": zeros,
            "value_target": returns.unsqueeze(-1),
            "state_value": values.unsqueeze(-1),
            ("collector", "mask"): bool_mask,
        },
        batch_size=[rows, length],
    )
    out = module(td)
    out["loss_critic"].backward()
    (grad,) = [p.grad for name, p in module.named_parameters() if name.endswith("v") and p.shape == batch_vpreds.shape]
    logged = {k: out[k] for k in ("loss_critic", "value_clip_fraction") if k in out.keys()}  # noqa: SIM118 - TensorDict has no `in`
    return logged, grad
