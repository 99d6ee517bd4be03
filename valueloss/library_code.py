"""Each library's value loss as one self-contained function over torch: the code the registry computes with
and the code an export writes (``library_source``), the canonical copy of every formula. Its mirrors, and the
tests that tie each to it, are tabled in ``valueloss.losses``.

Every loss function takes ``(vpreds, returns, values, response_mask, <the library's parameter>, **settings)``
and returns ``(loss, clipfrac)`` (``clipfrac`` None where the library logs none). Settings are keyword
arguments written into an exported file as constants (verl's release flags, OpenRLHF's
``token_level_loss``, slime's ``--calculate-per-token-loss``). The functions use only ``torch``, ``F``
(``torch.nn.functional``) and helper functions of this module; ``library_source`` collects those helpers
by walking the names a function uses, and refuses any other global, so an export cannot silently need
this package. Libraries without token masks (CleanRL, SB3, baselines, rsl_rl) see only the real tokens,
selected by indexing, as their flat minibatches do. RLlib computes on the padded tensor and selects the
real tokens after (``rllib_masked_mean``).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "value_loss",
    "agg_loss",
    "openrlhf_value_loss",
    "openrlhf_2025_04_value_loss",
    "openrlhf_v07_value_loss",
    "openrlhf_v01_value_loss",
    "trl_value_loss",
    "trlx_value_loss",
    "deepspeed_chat_value_loss",
    "cleanrl_value_loss",
    "baselines_value_loss",
    "rsl_rl_value_loss",
    "nemo_aligner_value_loss",
    "sb3_value_loss",
    "rllib_value_loss",
    "rllib_legacy_value_loss",
    "rllib_masked_mean",
    "slime_value_loss",
    "slime_sample_mean",
    "slime_token_sum",
    "torchrl_value_loss",
    "library_source",
    "LibraryCode",
]


# --------------------------------------------------------------------------------------------- verl


def masked_sum(values, mask, axis=None, nan_safe=True):
    """verl masked_sum; releases before v0.5.0 multiply first (nan_safe=False: NaN * 0 = NaN)."""
    if nan_safe:
        values = torch.where(mask.bool(), values, 0.0)  # NaN in padding cannot leak
    return (values * mask).sum(axis=axis)


def masked_mean(values, mask, axis=None, nan_safe=True):
    """verl masked_mean: masked_sum / (mask.sum() + 1e-8)."""
    return masked_sum(values, mask, axis, nan_safe) / (mask.sum(axis=axis) + 1e-8)


def agg_loss(
    loss_mat,
    loss_mask,
    loss_agg_mode,
    nan_safe=True,
    token_mean_eps=False,
    skip_empty_rows=True,
    seq_mean_eps=False,
    norm_per_seq=True,
    dp_size=1,
    batch_num_tokens=None,
    global_batch_size=None,
    loss_scale_factor=None,
):
    """verl agg_loss; the flags are the release's, the defaults v0.7.1 on. dp_size and the global counts are
    v0.9's: each rank divides by the step's count over all ranks and multiplies by dp_size (one process: x 1)."""
    if loss_agg_mode == "token-sum":
        return masked_sum(loss_mat, loss_mask, nan_safe=nan_safe) * dp_size
    if loss_agg_mode == "token-mean":
        total = masked_sum(loss_mat, loss_mask, nan_safe=nan_safe)
        if token_mean_eps:
            return total / (loss_mask.sum() + 1e-8)  # masked_mean (before v0.7.0)
        if batch_num_tokens is None:
            batch_num_tokens = loss_mask.sum()
        return total / batch_num_tokens * dp_size
    row_tokens = torch.sum(loss_mask, dim=-1)
    if loss_agg_mode == "seq-mean-token-mean":
        seq_losses = torch.sum(loss_mat * loss_mask, dim=-1) / (row_tokens + 1e-8 if skip_empty_rows else row_tokens)
    else:
        seq_losses = torch.sum(loss_mat * loss_mask, dim=-1)  # NaN in padding poisons its row
    if loss_agg_mode == "seq-mean-token-sum-norm" and not norm_per_seq:
        return torch.sum(seq_losses) / loss_mask.shape[-1]  # the whole batch's sum / T
    if skip_empty_rows:
        seq_mask = (row_tokens > 0).float()  # rows without tokens are not counted
        total = masked_sum(seq_losses, seq_mask, nan_safe=nan_safe)
        if seq_mean_eps:
            loss = total / (seq_mask.sum() + 1e-8)  # masked_mean (v0.6.1)
        else:
            if global_batch_size is None:
                global_batch_size = seq_mask.sum()
            loss = total / global_batch_size * dp_size
    else:
        loss = torch.mean(seq_losses)  # every row, empty ones included
    if loss_agg_mode == "seq-mean-token-sum-norm":
        loss = loss / (loss_scale_factor if loss_scale_factor is not None else loss_mask.shape[-1])  # / padded width
    return loss


def value_loss(
    vpreds,
    returns,
    values,
    response_mask,
    cliprange_value,
    loss_agg_mode="token-mean",
    loss_scale=0.5,
    nan_safe=True,
    token_mean_eps=False,
    skip_empty_rows=True,
    seq_mean_eps=False,
    norm_per_seq=True,
    **global_counts,
):
    """verl compute_value_loss: loss_scale * AGG(max((v - R)^2, (clip(v) - R)^2)) and vf_clipfrac.

    loss_scale is 0.5 in every release but v0.4.0 (1.0). global_counts: agg_loss's dp_size, batch_num_tokens,
    global_batch_size and loss_scale_factor (v0.9), absent on one process."""
    vpredclipped = torch.max(torch.min(vpreds, values + cliprange_value), values - cliprange_value)  # clip_by_value
    vf_losses1 = (vpreds - returns) ** 2
    vf_losses2 = (vpredclipped - returns) ** 2
    clipped_vf_losses = torch.max(vf_losses1, vf_losses2)
    flags = dict(
        nan_safe=nan_safe,
        token_mean_eps=token_mean_eps,
        skip_empty_rows=skip_empty_rows,
        seq_mean_eps=seq_mean_eps,
        norm_per_seq=norm_per_seq,
    )
    vf_loss = loss_scale * agg_loss(clipped_vf_losses, response_mask, loss_agg_mode, **flags, **global_counts)
    vf_clipfrac = masked_mean(torch.gt(vf_losses2, vf_losses1).float(), response_mask, nan_safe=nan_safe)
    return vf_loss, vf_clipfrac


# --------------------------------------------------------------------------------------------- OpenRLHF


def openrlhf_token_loss(values, old_values, returns, clip_eps):
    """OpenRLHF ValueLoss's per-token loss: max of the clipped and plain squared errors (clip_eps=None: plain)."""
    if clip_eps is not None:
        values_clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
        surr1 = (values_clipped - returns) ** 2
        surr2 = (values - returns) ** 2
        loss = torch.max(surr1, surr2)
    else:
        loss = (values - returns) ** 2  # clip_eps=None: no clipping
    return loss


def openrlhf_masked_mean(x, mask, dim=None):
    """OpenRLHF's masked_mean: sum(x * m) / sum(m) (no epsilon; x.mean() without a mask)."""
    if mask is None:
        return x.mean() if dim is None else x.mean(dim=dim)
    return (x * mask).sum(dim=dim) / mask.sum(dim=dim)


def openrlhf_aggregate(loss, mask, token_level_loss, dp_size=1, batch_num_tokens=None, global_batch_size=None):
    """OpenRLHF 0.11's aggregate_loss. Token level: sum(L*m) / sum(m), or / batch_num_tokens * dp_size with the
    step's global count. Sequence level: row means sum(L*m) / (n_i + 1e-8), then the mean over the rows with
    n_i > 0 taken with a float32 row mask (bf16 row means give a float32 loss), or / global_batch_size * dp_size.
    Without a mask every token is real (OpenRLHF accepts that in the token mode without counts only)."""
    if token_level_loss and batch_num_tokens is None:
        return openrlhf_masked_mean(loss, mask)
    if mask is None:
        mask = torch.ones(loss.shape, dtype=torch.bool, device=loss.device)
    if token_level_loss:
        return (loss * mask).sum() / batch_num_tokens * dp_size
    token_counts = mask.sum(dim=-1)
    seq_loss = (loss * mask).sum(dim=-1) / (token_counts + 1e-8)
    seq_mask = (token_counts > 0).float()  # rows without tokens are left out (float32: bf16 -> float32)
    if global_batch_size is None:
        return openrlhf_masked_mean(seq_loss, seq_mask)
    return (seq_loss * seq_mask).sum() / global_batch_size * dp_size


def openrlhf_value_loss(vpreds, returns, values, response_mask, clip_eps, token_level_loss=True):
    """OpenRLHF ValueLoss.forward(values, old_values, returns, action_mask), one process: 0.5 * the masked mean
    of the max; token_level_loss=False averages each row first, then the rows that hold a token."""
    values, old_values, action_mask = vpreds, values, response_mask
    loss = openrlhf_token_loss(values, old_values, returns, clip_eps)
    return 0.5 * openrlhf_aggregate(loss, action_mask, token_level_loss), None  # OpenRLHF logs no value clip fraction


def openrlhf_2025_04_value_loss(vpreds, returns, values, response_mask, clip_eps):
    """OpenRLHF ValueLoss v0.1.4 – v0.6.x: per-row masked mean (no eps), then the mean over every row."""
    values, old_values, action_mask = vpreds, values, response_mask
    loss = openrlhf_token_loss(values, old_values, returns, clip_eps)
    return 0.5 * ((loss * action_mask).sum(dim=-1) / action_mask.sum(dim=-1)).mean(), None  # masked_mean(dim=-1)


def openrlhf_v07_value_loss(vpreds, returns, values, response_mask, clip_eps, token_level_loss=True):
    """OpenRLHF ValueLoss v0.7.0 – v0.10.2 (and v0.1.3, token mode only): token_level_loss=True is the masked
    mean over every token; False the v0.1.4 per-row mean (no eps, an empty row is 0/0) averaged over every row."""
    values, old_values, action_mask = vpreds, values, response_mask
    loss = openrlhf_token_loss(values, old_values, returns, clip_eps)
    if token_level_loss:
        loss = (loss * action_mask).sum() / action_mask.sum()  # masked_mean(loss, action_mask, dim=None)
    else:
        loss = ((loss * action_mask).sum(dim=-1) / action_mask.sum(dim=-1)).mean()  # masked_mean(dim=-1).mean()
    return 0.5 * loss, None


def openrlhf_v01_value_loss(vpreds, returns, values, response_mask, clip_eps):
    """OpenRLHF ValueLoss v0.0.1 – v0.1.2: per-row sum / (n_i + 1e-8) (an empty row gives 0), mean over rows."""
    values, old_values, action_mask = vpreds, values, response_mask
    loss = openrlhf_token_loss(values, old_values, returns, clip_eps)
    loss = (loss * action_mask).sum(dim=1) / (action_mask.sum(dim=1) + 1e-8)  # masked_mean(loss, mask), dim=1
    return 0.5 * loss.mean(), None


# --------------------------------------------------------------------------------------------- clamp family


def trl_value_loss(vpreds, returns, values, response_mask, cliprange_value):
    """TRL PPOTrainer: padded predictions zeroed, torch.clamp clip, max, 0.5 * masked mean; vf_clipfrac over
    real tokens."""
    vpreds = torch.masked_fill(vpreds, response_mask == 0, 0)  # PPOTrainer zeroes padded predictions (1.12.0)
    vpredclipped = torch.clamp(vpreds, values - cliprange_value, values + cliprange_value)
    vf_losses1 = torch.square(vpreds - returns)
    vf_losses2 = torch.square(vpredclipped - returns)
    vf_loss_max = torch.max(vf_losses1, vf_losses2)
    vf_loss = 0.5 * ((vf_loss_max * response_mask).sum() / response_mask.sum())
    vf_clipfrac = ((vf_losses2 > vf_losses1).float() * response_mask).sum() / response_mask.sum()
    return vf_loss, vf_clipfrac


def trlx_value_loss(vpreds, returns, values, response_mask, cliprange_value):
    """trlx PPOConfig.loss: torch.clamp clip, max, 0.5 * sum(L * mask) / n; values/clipfrac over n tokens."""
    values_clipped = torch.clamp(vpreds, values - cliprange_value, values + cliprange_value)
    n = response_mask.sum()
    vf_loss1 = (vpreds - returns) ** 2
    vf_loss2 = (values_clipped - returns) ** 2
    vf_loss = 0.5 * torch.sum(torch.max(vf_loss1, vf_loss2) * response_mask) / n
    vf_clipfrac = torch.sum((vf_loss2 > vf_loss1).float() * response_mask) / n
    return vf_loss, vf_clipfrac


def deepspeed_chat_value_loss(vpreds, returns, values, response_mask, cliprange_value, compute_fp32_loss=False):
    """DeepSpeed-Chat critic_loss_fn: torch.clamp clip, max, 0.5 * sum(L * mask) / sum(mask). --compute_fp32_loss
    casts the prediction and the clipped prediction to float32 AFTER the clamp: in a bf16 model the clip bounds
    (values +- cliprange_value) are still rounded to bf16."""
    values_clipped = torch.clamp(vpreds, values - cliprange_value, values + cliprange_value)
    if compute_fp32_loss:
        vpreds = vpreds.float()
        values_clipped = values_clipped.float()
    vf_loss1 = (vpreds - returns) ** 2
    vf_loss2 = (values_clipped - returns) ** 2
    vf_loss = 0.5 * torch.sum(torch.max(vf_loss1, vf_loss2) * response_mask) / response_mask.sum()
    return vf_loss, None  # DeepSpeed-Chat logs no value clip fraction


# --------------------------------------------------------------------------------------------- flat minibatches


def cleanrl_value_loss(vpreds, returns, values, response_mask, clip_coef):
    """CleanRL ppo.py: a flat minibatch, so only the real tokens are kept."""
    valid = response_mask.bool()
    newvalue, b_returns, b_values = vpreds[valid], returns[valid], values[valid]
    if clip_coef is None:
        return 0.5 * ((newvalue - b_returns) ** 2).mean(), None  # --clip-vloss False
    v_loss_unclipped = (newvalue - b_returns) ** 2
    v_clipped = b_values + torch.clamp(newvalue - b_values, -clip_coef, clip_coef)
    v_loss_clipped = (v_clipped - b_returns) ** 2
    v_loss_max = torch.max(v_loss_unclipped, v_loss_clipped)
    return 0.5 * v_loss_max.mean(), None  # CleanRL logs no value clip fraction


def tf_maximum(x, y):
    """tf.maximum with TensorFlow's gradient (_MaximumGrad, mask x >= y): at a tie the whole gradient goes to x."""
    return torch.where(x >= y, x, y)


def baselines_value_loss(vpreds, returns, values, response_mask, cliprange):
    """OpenAI baselines ppo2 (TensorFlow), restated in torch: delta clip, tf.maximum, 0.5 * reduce_mean."""
    valid = response_mask.bool()
    vpred, R, OLDVPRED = vpreds[valid], returns[valid], values[valid]
    vpredclipped = OLDVPRED + torch.clamp(vpred - OLDVPRED, -cliprange, cliprange)
    vf_losses1 = torch.square(vpred - R)
    vf_losses2 = torch.square(vpredclipped - R)
    return 0.5 * tf_maximum(vf_losses1, vf_losses2).mean(), None  # ppo2 logs only the policy clipfrac


def rsl_rl_value_loss(vpreds, returns, values, response_mask, clip_param):
    """rsl_rl PPO.update: delta clip with the policy's clip_param, max, plain mean (no 0.5)."""
    valid = response_mask.bool()
    values, target_values, returns = vpreds[valid], values[valid], returns[valid]
    if clip_param is None:
        return (returns - values).pow(2).mean(), None  # use_clipped_value_loss=False
    value_clipped = target_values + (values - target_values).clamp(-clip_param, clip_param)
    value_losses = (values - returns).pow(2)
    value_losses_clipped = (value_clipped - returns).pow(2)
    return torch.max(value_losses, value_losses_clipped).mean(), None  # no 0.5, no clip fraction


def nemo_aligner_value_loss(vpreds, returns, values, response_mask, clip_val):
    """NeMo-Aligner critic loss_func: delta clip, max, 0.5 * mean of the real tokens."""
    if clip_val > 0.0:
        values_clipped = values + (vpreds - values).clamp(-clip_val, clip_val)
        v_loss1 = (values_clipped - returns) ** 2
    else:  # loss_clip_val <= 0: the clipped term is a scalar 0, so the max is the plain squared error
        v_loss1 = torch.zeros((), dtype=vpreds.dtype, device=vpreds.device)
    v_loss2 = (vpreds - returns) ** 2
    loss_max = torch.max(v_loss1, v_loss2)
    return 0.5 * loss_max[response_mask.bool()].mean(), None  # masked_mean: values[mask.bool()].mean()


def sb3_value_loss(vpreds, returns, values, response_mask, clip_range_vf):
    """Stable-Baselines3 PPO: clip the prediction, then plain MSE. No max and no 0.5."""
    valid = response_mask.bool()
    values, old_values, rollout_returns = vpreds[valid], values[valid], returns[valid]
    if clip_range_vf is None:
        values_pred = values  # clip_range_vf=None: no clipping
    else:
        values_pred = old_values + torch.clamp(values - old_values, -clip_range_vf, clip_range_vf)
    return F.mse_loss(rollout_returns, values_pred), None  # SB3 logs no value clip fraction


def rllib_masked_mean(x, response_mask):
    """RLlib's masked mean (possibly_masked_mean / reduce_mean_valid): torch.sum(x[mask]) / torch.sum(mask).

    The loss is computed on the padded tensor first and selected after, so a NaN in padding stays out of the
    loss but not out of its gradient (0 * NaN); in bf16 sum() / n rounds differently from mean()."""
    mask = response_mask.bool()
    return torch.sum(x[mask]) / torch.sum(mask)


def rllib_value_loss(vpreds, returns, values, response_mask, vf_clip_param):
    """RLlib PPO since ray 1.12: clamps the squared error itself at vf_clip_param (loss units), not the value."""
    vf_loss = torch.pow(vpreds - returns, 2.0)
    vf_loss_clipped = torch.clamp(vf_loss, 0, vf_clip_param)
    return rllib_masked_mean(vf_loss_clipped, response_mask), None  # RLlib logs no value clip fraction


def rllib_legacy_value_loss(vpreds, returns, values, response_mask, vf_clip_param):
    """RLlib PPO up to ray 1.11: clips the prediction (return units), max of the two squared errors, masked mean."""
    value_fn_out, value_targets, prev_value_fn_out = vpreds, returns, values
    vf_loss1 = torch.pow(value_fn_out - value_targets, 2.0)
    vf_clipped = prev_value_fn_out + torch.clamp(value_fn_out - prev_value_fn_out, -vf_clip_param, vf_clip_param)
    vf_loss2 = torch.pow(vf_clipped - value_targets, 2.0)
    vf_loss = torch.max(vf_loss1, vf_loss2)
    return rllib_masked_mean(vf_loss, response_mask), None  # RLlib logs no value clip fraction


# --------------------------------------------------------------------------------------------- slime, TorchRL


def row_sums(x):
    """Each row's own ``.sum()``, as slime sums one sample at a time: vectorised, because torch reduces a row of
    up to 32768 elements (its parallel grain) the same way alone or inside a 2-D sum; longer rows one by one."""
    if x.shape[-1] <= 32768:
        return x.sum(dim=-1)
    return torch.stack([row.sum() for row in x])


def sequential_sum(parts):
    """Python's ``sum()`` over the elements of a 1-D tensor, 0 + p0 + p1 + ..., each addition rounded in
    ``parts``' dtype, in order (in bf16 this rounds after every sample, as slime does). float32/float64 add in
    numpy's cumsum, which is sequential in that dtype; other dtypes in a loop. The gradient of a sum is ones in
    any order, so the result is ``parts.sum()`` with its value replaced by the sequential one."""
    total = parts.sum()
    with torch.no_grad():
        flat = torch.cat([parts.new_zeros(1), parts.detach().reshape(-1)])
        if flat.dtype in (torch.float32, torch.float64):
            total.copy_(torch.from_numpy(flat.cpu().numpy().cumsum()[-1:]).reshape(()))
        else:
            running = flat[0]
            for p in flat[1:]:
                running = running + p
            total.copy_(running)
    return total


def slime_sample_mean(x, response_mask):
    """sum_of_sample_mean (cp_size 1, one sample per rollout): sample i's (x_i * loss_mask_i).sum() over
    clamp_min(its mask total, 1), added by Python's sum(). slime moves the masks to the GPU as int32 and the
    mask totals (rollout_mask_sums) as float32, so bf16 row sums are divided, and added, in float32."""
    x, response_mask = (x, response_mask) if x.dim() > 1 else (x[None], response_mask[None])
    loss_masks = response_mask.to(torch.int32)
    sample_denoms = loss_masks.sum(dim=-1).to(torch.float32)
    return sequential_sum(row_sums(x * loss_masks) / torch.clamp_min(sample_denoms, 1))


def slime_token_sum(x, response_mask):
    """sum_of_token (--calculate-per-token-loss): each sample's (x_i * loss_mask_i).sum() in x's dtype, added by
    Python's sum(); and num_tokens, the sum over samples of clamp_min(mask total, 1) that Megatron divides by."""
    x, response_mask = (x, response_mask) if x.dim() > 1 else (x[None], response_mask[None])
    loss_masks = response_mask.to(torch.int32)
    num_tokens = torch.clamp_min(loss_masks.sum(dim=-1), 1).sum()
    return sequential_sum(row_sums(x * loss_masks)), num_tokens


def slime_value_loss(vpreds, returns, values, response_mask, value_clip, calculate_per_token_loss=False):
    """slime value_loss_function on one micro-batch of one rank, as logged: delta clip, max, no 0.5.

    value_clipfrac counts clipped predictions (|v - o| > eps), cast to float32. The logged numbers are the
    reduced sums divided in Python double by the step's samples (per-sample mean) or by num_tokens
    (--calculate-per-token-loss), so both come back as float64; the gradient is the trained loss's."""
    values_clipfrac = torch.abs(vpreds - values) > value_clip
    values_clipped = values + (vpreds - values).clamp(-value_clip, value_clip)
    surr1 = (values_clipped - returns) ** 2
    surr2 = (vpreds - returns) ** 2
    loss = torch.max(surr1, surr2)
    if calculate_per_token_loss:
        loss, num_tokens = slime_token_sum(loss, response_mask)
        clipfrac, _ = slime_token_sum(values_clipfrac.float(), response_mask)
        denominator = num_tokens.to(torch.float32).double()  # values[0] of the logged tensor, float32 there
    else:
        loss = slime_sample_mean(loss, response_mask)
        clipfrac = slime_sample_mean(values_clipfrac.float(), response_mask)
        denominator = float(response_mask.shape[0] if response_mask.dim() > 1 else 1)  # step_global_batch_size
    return loss.double() / denominator, clipfrac.double() / denominator


def torchrl_value_loss(vpreds, returns, values, response_mask, clip_value):
    """TorchRL ClipPPOLoss: smooth-L1 critic, delta clip, max; loss_critic = critic_coeff * L, masked mean."""
    critic_coeff = 1.0  # ClipPPOLoss's default; loss_critic is logged after this multiplication
    state_value, old_state_value, target_return = vpreds, values, returns
    mask = response_mask != 0
    loss_value = F.smooth_l1_loss(target_return, state_value, reduction="none")
    clip_fraction = None
    if clip_value:  # `if self.clip_value:` 0 and None are both "off"
        # ClipPPOLoss keeps clip_value as a float32 buffer: the band is float32(eps) wide in every dtype.
        clip_value = torch.as_tensor(clip_value, dtype=torch.float32, device=state_value.device)
        pre_clipped = state_value - old_state_value
        clipped = pre_clipped.clamp(-clip_value, clip_value)
        clip_fraction = (pre_clipped != clipped).to(state_value.dtype).mean()  # whole tensor, padding included
        loss_value_clipped = F.smooth_l1_loss(target_return, old_state_value + clipped, reduction="none")
        loss_value = torch.maximum(loss_value, loss_value_clipped)
    loss_critic = critic_coeff * loss_value
    # LossModule's masked reduction: padding selected away (NaN there cannot leak), no tokens logs 0
    return torch.where(mask, loss_critic, 0).sum() / mask.sum().clamp_min(1), clip_fraction


# --------------------------------------------------------------------------------------------- export

_ALLOWED_GLOBALS = {"torch": torch, "F": F}


def _names(code: types.CodeType):
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def library_source(fn) -> str:
    """The source of ``fn`` and of every helper of this module it calls (helpers first), each exactly as
    ``inspect.getsource`` gives it. Raises ``ValueError`` where ``fn`` uses a global other than ``torch``,
    ``F`` or a function of this module (the exported file would not run on its own)."""
    order: list = []

    def visit(f, path):
        if f in order:
            return
        if f in path:
            raise ValueError(f"{f.__name__} calls itself; library code must not recurse")
        for name in _names(f.__code__):
            if name not in f.__globals__:
                continue  # an attribute or a builtin
            obj = f.__globals__[name]
            if name in _ALLOWED_GLOBALS and obj is _ALLOWED_GLOBALS[name]:
                continue
            if isinstance(obj, types.FunctionType) and obj.__module__ == __name__:
                visit(obj, path + (f,))
                continue
            raise ValueError(
                f"{f.__name__} uses the global {name!r}: library code may use only torch, F and its helpers"
            )
        order.append(f)

    visit(fn, ())
    return "\n\n\n".join(inspect.getsource(f).strip("\n") for f in order)


def _no_settings(mode: str) -> dict:
    return {}


@dataclass(frozen=True)
class LibraryCode:
    """One library's loss function and the keyword settings it runs with for an aggregation mode: the
    registry computes ``fn(vpreds, returns, values, mask, eps, **settings(mode))``, and an export writes
    ``source()`` with ``settings(mode)`` as constants, so both run the same code."""

    fn: Callable
    settings: Callable[[str], dict] = _no_settings

    def __call__(self, vpreds, returns, values, response_mask, eps, mode):
        return self.fn(vpreds, returns, values, response_mask, eps, **self.settings(mode))

    def source(self) -> str:
        return library_source(self.fn)
