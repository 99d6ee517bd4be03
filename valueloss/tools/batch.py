"""One batch as the critic update sees it, and a synthetic RLHF-like rollout to fill one.

The synthetic batch follows the path a PPO-with-critic trainer takes (verl with ``adv_estimator=gae``):
variable-length responses padded to one width, a reward at the last real token, an optional per-token
KL penalty, returns by GAE (``returns = advantages + values``), old values from a noisy (possibly
mis-scaled) critic, and new predictions after one update of chosen size.

Shapes: every tensor is ``(batch, response_length)``; the mask is 1 on real tokens, 0 on padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import _validate as check

__all__ = [
    "Batch",
    "Param",
    "SYNTHETIC_PARAMS",
    "PADDING_CHOICES",
    "MAX_TOKENS",
    "MAX_ROWS",
    "REQUIRED",
    "synthetic_batch",
    "gae_advantages_returns",
]

MAX_TOKENS = 2_000_000  # batch x response_length cells (padding included): what the dense tensors hold
# Sequences per batch: several reports loop or reduce per row, so 2,000,000 rows of one token cost far more
# than 2,000 rows of 1,000 (it pinned a 2-core server for minutes); a minibatch of responses fits easily.
MAX_ROWS = 4096
REQUIRED = ("vpreds", "returns", "values")
PADDING_CHOICES = ("zeros", "nan")


@dataclass(frozen=True)
class Batch:
    """One minibatch as the critic update sees it (all tensors ``(B, T)``, one dtype).

    ``rewards`` (token-level, KL penalty included) and ``advantages`` (GAE, before whitening) are
    known for synthetic batches; an uploaded batch has ``rewards=None`` and ``advantages = returns -
    values`` on real tokens, which is how verl defines returns.
    """

    vpreds: torch.Tensor
    returns: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor
    rewards: torch.Tensor | None
    advantages: torch.Tensor | None

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(dim=-1).to(torch.int64)

    @property
    def n_tokens(self) -> int:
        return int(self.mask.sum().item())

    @property
    def shape(self) -> tuple[int, int]:
        rows, width = self.vpreds.shape
        return rows, width


@dataclass(frozen=True)
class Param:
    """One knob of the synthetic batch: the range here is also what ``synthetic_batch`` accepts.

    The app builds its widgets from these specs, so the page, the URL and the core agree on limits.
    """

    name: str
    label: str
    default: float | int
    low: float | int
    high: float | int
    step: float | int
    integer: bool
    help: str
    slider: bool = False  # a bounded fraction reads better as a slider


SYNTHETIC_PARAMS: tuple[Param, ...] = (
    Param(
        "seed", "seed", 0, 0, 2**31 - 1, 1, True, "Random seed (torch.Generator): the same seed gives the same batch."
    ),
    Param("batch_size", "sequences", 64, 1, MAX_ROWS, 1, True, "Number of responses in the batch (rows)."),
    Param("min_len", "min length", 16, 1, 8192, 1, True, "Shortest response, in tokens."),
    Param(
        "max_len",
        "max length",
        256,
        1,
        8192,
        1,
        True,
        "Longest response; also the padded width T (verl's response_length).",
    ),
    Param(
        "reward_mean",
        "reward mean",
        0.5,
        -1000.0,
        1000.0,
        0.1,
        False,
        "Mean of the reward given at the last real token of each response.",
    ),
    Param("reward_std", "reward std", 1.0, 0.0, 1000.0, 0.1, False, "Spread of the final reward across responses."),
    Param(
        "kl_coef",
        "KL coefficient",
        0.05,
        0.0,
        100.0,
        0.01,
        False,
        "beta in reward_t = score_t - beta * KL_t (verl's in-reward KL penalty); 0 turns it off.",
    ),
    Param(
        "kl_mean",
        "mean per-token KL",
        0.1,
        0.0,
        100.0,
        0.01,
        False,
        "Synthetic per-token KL(pi || pi_ref), drawn from an exponential distribution with this mean.",
    ),
    Param("gamma", "gamma", 1.0, 0.0, 1.0, 0.01, False, "Discount factor (verl's default is 1.0).", True),
    Param(
        "lam", "lambda", 1.0, 0.0, 1.0, 0.01, False, "GAE lambda (verl's default is 1.0: Monte-Carlo returns).", True
    ),
    Param(
        "value_noise",
        "critic noise",
        0.3,
        0.0,
        1000.0,
        0.05,
        False,
        "Std of the old critic's error around the true value.",
    ),
    Param(
        "value_scale",
        "critic scale",
        1.0,
        -1000.0,
        1000.0,
        0.1,
        False,
        "Old values = scale * true value + bias + noise. A scale far from 1 reproduces verl#498.",
    ),
    Param(
        "value_bias",
        "critic bias",
        0.0,
        -1000.0,
        1000.0,
        0.1,
        False,
        "Constant offset of the old critic (return units).",
    ),
    Param(
        "step",
        "update step",
        0.15,
        0.0,
        3.0,
        0.05,
        False,
        "vpreds = values + step * (returns - values) + noise: 0 = first minibatch (v == v_old), 1 = all the way to R, >1 overshoots.",
        True,
    ),
    Param(
        "pred_noise",
        "update noise",
        0.1,
        0.0,
        1000.0,
        0.05,
        False,
        "Std of the noise added to the new predictions.",
    ),
)


def gae_advantages_returns(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and returns as verl's ``compute_gae_advantage_return`` defines them.

    Walks the response backwards; on padded (mask 0) slots the running next-value and GAE are carried
    through unchanged, so padding is skipped. ``returns = advantages + values``. The advantages are
    returned before whitening (the critic only sees the returns).
    """
    # The backward walk runs in numpy: the same IEEE float ops in the same dtype and order as the torch
    # loop, without torch's per-call overhead on 256 tiny steps.
    if rewards.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"rewards must be float32 or float64, got {rewards.dtype}")
    r, v = rewards.detach().cpu().numpy(), values.detach().cpu().to(rewards.dtype).numpy()
    m = mask.detach().cpu().to(rewards.dtype).numpy()
    next_value = np.zeros(r.shape[0], dtype=r.dtype)
    last_gae = np.zeros(r.shape[0], dtype=r.dtype)
    adv = np.empty_like(r)
    for t in range(r.shape[1] - 1, -1, -1):
        delta = r[:, t] + gamma * next_value - v[:, t]
        gae = delta + gamma * lam * last_gae
        next_value = v[:, t] * m[:, t] + (1 - m[:, t]) * next_value
        last_gae = gae * m[:, t] + (1 - m[:, t]) * last_gae
        adv[:, t] = last_gae
    advantages = torch.from_numpy(adv).to(rewards.device)
    return advantages, advantages + values


def synthetic_batch(
    seed: int = 0,
    batch_size: int = 64,
    min_len: int = 16,
    max_len: int = 256,
    reward_mean: float = 0.5,
    reward_std: float = 1.0,
    kl_coef: float = 0.05,
    kl_mean: float = 0.1,
    gamma: float = 1.0,
    lam: float = 1.0,
    value_noise: float = 0.3,
    value_scale: float = 1.0,
    value_bias: float = 0.0,
    step: float = 0.15,
    pred_noise: float = 0.1,
    padding: str = "zeros",
    dtype: torch.dtype = torch.float32,
) -> Batch:
    """An RLHF-like minibatch, reproducible from ``seed``.

    - lengths uniform in ``[min_len, max_len]``, padded to ``T = max_len``;
    - score ``~ Normal(reward_mean, reward_std)`` at the last real token, minus ``kl_coef * KL_t`` on
      every token (``KL_t ~ Exponential(mean kl_mean)``);
    - true value ``V_t = E[sum_k gamma^(k-t) reward_k]``; old values
      ``= value_scale * V_t + value_bias + Normal(0, value_noise)``;
    - returns by GAE from those old values (``gamma``, ``lam``);
    - new predictions ``vpreds = values + step * (returns - values) + Normal(0, pred_noise)``.

    Padding is 0 in every tensor (as verl, which masks the critic output); ``padding="nan"`` puts NaN
    in the padded slots of ``vpreds``, as an unmasked critic output might, to show which aggregation
    modes it poisons.
    """
    arguments = locals()  # first statement: exactly the parameters, as passed
    p = {
        spec.name: check.finite_number(
            spec.name, arguments[spec.name], low=spec.low, high=spec.high, integer=spec.integer
        )
        for spec in SYNTHETIC_PARAMS
    }
    if p["min_len"] > p["max_len"]:
        raise ValueError(f"min_len ({p['min_len']}) must be <= max_len ({p['max_len']})")
    if p["batch_size"] * p["max_len"] > MAX_TOKENS:
        raise ValueError(
            f"batch_size x max_len = {p['batch_size'] * p['max_len']:,} cells exceeds the cap of {MAX_TOKENS:,}; "
            "use fewer sequences or a shorter max_len"
        )
    check.choice("padding", padding, PADDING_CHOICES)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")

    B, T = p["batch_size"], p["max_len"]
    g = torch.Generator().manual_seed(p["seed"])
    f64 = torch.float64
    lengths = torch.randint(p["min_len"], p["max_len"] + 1, (B,), generator=g)
    pos = torch.arange(T)
    mask = (pos[None, :] < lengths[:, None]).to(f64)
    last = pos[None, :] == (lengths[:, None] - 1)

    score = p["reward_mean"] + p["reward_std"] * torch.randn(B, 1, generator=g, dtype=f64)
    kl = torch.empty(B, T, dtype=f64).exponential_(1.0, generator=g) * p["kl_mean"]
    rewards = (torch.where(last, score, 0.0) - p["kl_coef"] * kl) * mask

    # True value: expected discounted reward to go, E[score] at the end and E[KL] on every token.
    gam = p["gamma"]
    steps_to_end = (lengths[:, None] - 1 - pos[None, :]).clamp(min=0).to(f64)
    remaining = (lengths[:, None] - pos[None, :]).clamp(min=0).to(f64)
    kl_to_go = remaining if gam == 1.0 else (1 - gam**remaining) / (1 - gam)
    true_value = (gam**steps_to_end * p["reward_mean"] - p["kl_coef"] * p["kl_mean"] * kl_to_go) * mask

    noise_v = torch.randn(B, T, generator=g, dtype=f64)
    noise_p = torch.randn(B, T, generator=g, dtype=f64)
    values = (p["value_scale"] * true_value + p["value_bias"] + p["value_noise"] * noise_v) * mask

    rewards, values, mask_t = rewards.to(dtype), values.to(dtype), mask.to(dtype)
    advantages, returns = gae_advantages_returns(rewards, values, mask_t, gam, p["lam"])
    vpreds = (values + p["step"] * (returns - values) + p["pred_noise"] * noise_p.to(dtype)) * mask_t
    if padding == "nan":
        vpreds = torch.where(mask_t.bool(), vpreds, float("nan"))
    return Batch(vpreds=vpreds, returns=returns, values=values, mask=mask_t, rewards=rewards, advantages=advantages)
