"""Each library's value loss restated as standalone torch code, in the library's operation order.

Every function here takes ``(mode, eps)`` and returns the source of one function
``value_loss(vpreds, returns, values, response_mask, <the library's parameter>) -> (loss, clipfrac)``
that an exported file (``valueloss.tools.export``) runs without this package. The registry
(``valueloss.dialects``) names the function of each entry (``Dialect.export_source``); the exported
file's tests check that this code gives exactly the numbers ``dialect_loss`` gives.

These are restatements written from the pinned sources named on each entry, not copies.
"""

from __future__ import annotations

__all__ = [
    "verl",
    "openrlhf",
    "openrlhf_2025_04",
    "trl",
    "trlx",
    "deepspeed_chat",
    "cleanrl",
    "baselines",
    "rsl_rl",
    "nemo_aligner",
    "sb3",
    "slime",
    "torchrl",
    "rllib",
    "rllib_legacy",
]


# --------------------------------------------------------------------------------------------- verl


def verl(rel):
    """A source builder for one verl release (``rel``: the release's flags, see ``dialects._VerlRelease``)."""

    def source(mode: str, eps) -> str:
        where = (
            "    valid = torch.where(mask.bool(), values, 0.0)  # NaN in padding cannot leak\n"
            if rel.nan_safe
            else ("    valid = values  # this release multiplies first: NaN * 0 = NaN\n")
        )
        helpers = (
            "\ndef masked_sum(values, mask, axis=None):\n" + where + "    return (valid * mask).sum(axis=axis)\n\n\n"
            "def masked_mean(values, mask, axis=None):\n"
            "    return masked_sum(values, mask, axis) / (mask.sum(axis=axis) + 1e-8)\n"
        )
        if mode == "token-mean":
            body = (
                "    return masked_mean(loss_mat, loss_mask)\n"
                if rel.token_mean_eps
                else "    return masked_sum(loss_mat, loss_mask) / loss_mask.sum()\n"
            )
        elif mode == "token-sum":
            body = "    return masked_sum(loss_mat, loss_mask)\n"
        else:
            if mode == "seq-mean-token-mean":
                denom = "(row_tokens + 1e-8)" if rel.skip_empty_rows else "row_tokens"
                body = (
                    "    row_tokens = torch.sum(loss_mask, dim=-1)\n"
                    f"    seq_losses = torch.sum(loss_mat * loss_mask, dim=-1) / {denom}\n"
                )
            else:
                body = (
                    "    row_tokens = torch.sum(loss_mask, dim=-1)\n"
                    "    seq_losses = torch.sum(loss_mat * loss_mask, dim=-1)  # NaN in padding poisons its row\n"
                )
            if mode == "seq-mean-token-sum-norm" and not rel.norm_per_seq:
                body += "    return torch.sum(seq_losses) / loss_mask.shape[-1]  # the whole batch's sum / T\n"
            else:
                if rel.skip_empty_rows:
                    body += "    seq_mask = (row_tokens > 0).float()  # rows without tokens are not counted\n"
                    body += (
                        "    loss = masked_mean(seq_losses, seq_mask)\n"
                        if rel.seq_mean_eps
                        else "    loss = masked_sum(seq_losses, seq_mask) / seq_mask.sum()\n"
                    )
                else:
                    body += "    loss = torch.mean(seq_losses)  # every row, empty ones included\n"
                if mode == "seq-mean-token-sum-norm":
                    body += "    loss = loss / loss_mask.shape[-1]  # / padded width\n"
                body += "    return loss\n"
        half = "0.5 * " if rel.half else ""
        return (
            helpers
            + f'''

def agg_loss(loss_mat, loss_mask):
    """verl agg_loss with loss_agg_mode="{mode}", one process (dp_size = 1)."""
'''
            + body
            + f'''

def value_loss(vpreds, returns, values, response_mask, cliprange_value):
    """verl compute_value_loss: {half}AGG(max((v - R)^2, (clip(v) - R)^2)) and vf_clipfrac."""
    vpredclipped = torch.max(torch.min(vpreds, values + cliprange_value), values - cliprange_value)  # clip_by_value
    vf_losses1 = (vpreds - returns) ** 2
    vf_losses2 = (vpredclipped - returns) ** 2
    clipped_vf_losses = torch.max(vf_losses1, vf_losses2)
    vf_loss = {half}agg_loss(clipped_vf_losses, response_mask)
    vf_clipfrac = masked_mean(torch.gt(vf_losses2, vf_losses1).float(), response_mask)
    return vf_loss, vf_clipfrac
'''
        )

    return source


# --------------------------------------------------------------------------------------------- OpenRLHF


def openrlhf(mode: str, eps) -> str:
    token_level = mode == "token-mean"
    clip = (
        """    values_clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
    surr1 = (values_clipped - returns) ** 2
    surr2 = (values - returns) ** 2
    loss = torch.max(surr1, surr2)
"""
        if eps is not None
        else "    loss = (values - returns) ** 2  # clip_eps=None: no clipping\n"
    )
    if token_level:
        agg = "    loss = (loss * action_mask).sum() / action_mask.sum()  # token_level_loss=True\n"
    else:
        agg = (
            "    row_tokens = action_mask.sum(dim=-1)  # token_level_loss=False: mean of row means\n"
            "    row_means = (loss * action_mask).sum(dim=-1) / (row_tokens + 1e-8)\n"
            "    loss = row_means[row_tokens > 0].mean()\n"
        )
    return (
        '''
def value_loss(vpreds, returns, values, response_mask, clip_eps):
    """OpenRLHF ValueLoss.forward(values, old_values, returns, action_mask): 0.5 * masked mean of the max."""
    values, old_values, action_mask = vpreds, values, response_mask
'''
        + clip
        + agg
        + "    return 0.5 * loss, None  # OpenRLHF logs no value clip fraction\n"
    )


def openrlhf_2025_04(mode: str, eps) -> str:
    clip = (
        """    values_clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
    surr1 = (values_clipped - returns) ** 2
    surr2 = (values - returns) ** 2
    loss = torch.max(surr1, surr2)
"""
        if eps is not None
        else "    loss = (values - returns) ** 2  # clip_eps=None: no clipping\n"
    )
    return (
        '''
def value_loss(vpreds, returns, values, response_mask, clip_eps):
    """OpenRLHF ValueLoss before 2025-04-12: per-row masked mean (no eps), then the mean over every row."""
    values, old_values, action_mask = vpreds, values, response_mask
'''
        + clip
        + "    loss = ((loss * action_mask).sum(dim=-1) / action_mask.sum(dim=-1)).mean()  # masked_mean(dim=-1)\n"
        + "    return 0.5 * loss, None  # OpenRLHF logs no value clip fraction\n"
    )


# --------------------------------------------------------------------------------------------- clamp family


def trl(mode: str, eps) -> str:
    return '''
def value_loss(vpreds, returns, values, response_mask, cliprange_value):
    """TRL PPOTrainer: padded predictions zeroed, torch.clamp clip, max, 0.5 * masked mean; vf_clipfrac over
    real tokens."""
    vpreds = torch.masked_fill(vpreds, response_mask == 0, 0)
    vpredclipped = torch.clamp(vpreds, values - cliprange_value, values + cliprange_value)
    vf_losses1 = torch.square(vpreds - returns)
    vf_losses2 = torch.square(vpredclipped - returns)
    vf_loss_max = torch.max(vf_losses1, vf_losses2)
    vf_loss = 0.5 * ((vf_loss_max * response_mask).sum() / response_mask.sum())
    vf_clipfrac = ((vf_losses2 > vf_losses1).float() * response_mask).sum() / response_mask.sum()
    return vf_loss, vf_clipfrac
'''


def trlx(mode: str, eps) -> str:
    return '''
def value_loss(vpreds, returns, values, response_mask, cliprange_value):
    """trlx PPOConfig.loss: torch.clamp clip, max, 0.5 * sum(L * mask) / n; values/clipfrac over n tokens."""
    values_clipped = torch.clamp(vpreds, values - cliprange_value, values + cliprange_value)
    n = response_mask.sum()
    vf_loss1 = (vpreds - returns) ** 2
    vf_loss2 = (values_clipped - returns) ** 2
    vf_loss = 0.5 * torch.sum(torch.max(vf_loss1, vf_loss2) * response_mask) / n
    vf_clipfrac = torch.sum((vf_loss2 > vf_loss1).float() * response_mask) / n
    return vf_loss, vf_clipfrac
'''


def deepspeed_chat(mode: str, eps) -> str:
    return '''
def value_loss(vpreds, returns, values, response_mask, cliprange_value):
    """DeepSpeed-Chat critic_loss_fn (compute_fp32_loss off): torch.clamp clip, max, 0.5 * sum(L * mask) / sum(mask)."""
    values_clipped = torch.clamp(vpreds, values - cliprange_value, values + cliprange_value)
    vf_loss1 = (vpreds - returns) ** 2
    vf_loss2 = (values_clipped - returns) ** 2
    vf_loss = 0.5 * torch.sum(torch.max(vf_loss1, vf_loss2) * response_mask) / response_mask.sum()
    return vf_loss, None  # DeepSpeed-Chat logs no value clip fraction
'''


# --------------------------------------------------------------------------------------------- flat minibatches


def cleanrl(mode: str, eps) -> str:
    if eps is None:
        body = "    return 0.5 * ((newvalue - b_returns) ** 2).mean(), None  # --clip-vloss False\n"
    else:
        body = """    v_loss_unclipped = (newvalue - b_returns) ** 2
    v_clipped = b_values + torch.clamp(newvalue - b_values, -clip_coef, clip_coef)
    v_loss_clipped = (v_clipped - b_returns) ** 2
    v_loss_max = torch.max(v_loss_unclipped, v_loss_clipped)
    return 0.5 * v_loss_max.mean(), None  # CleanRL logs no value clip fraction
"""
    return (
        '''
def value_loss(vpreds, returns, values, response_mask, clip_coef):
    """CleanRL ppo.py: a flat minibatch, so only the real tokens are kept."""
    valid = response_mask.bool()
    newvalue, b_returns, b_values = vpreds[valid], returns[valid], values[valid]
'''
        + body
    )


def baselines(mode: str, eps) -> str:
    return '''
def tf_maximum(x, y):
    """tf.maximum with TensorFlow's gradient: at a tie (x >= y) the whole gradient goes to x."""
    return torch.where(x >= y, x, y)


def value_loss(vpreds, returns, values, response_mask, cliprange):
    """OpenAI baselines ppo2 (TensorFlow), restated in torch: delta clip, tf.maximum, 0.5 * reduce_mean."""
    valid = response_mask.bool()
    vpred, R, OLDVPRED = vpreds[valid], returns[valid], values[valid]
    vpredclipped = OLDVPRED + torch.clamp(vpred - OLDVPRED, -cliprange, cliprange)
    vf_losses1 = torch.square(vpred - R)
    vf_losses2 = torch.square(vpredclipped - R)
    return 0.5 * tf_maximum(vf_losses1, vf_losses2).mean(), None  # ppo2 logs only the policy clipfrac
'''


def rsl_rl(mode: str, eps) -> str:
    if eps is None:
        body = "    return (returns - values).pow(2).mean(), None  # use_clipped_value_loss=False\n"
    else:
        body = """    value_clipped = target_values + (values - target_values).clamp(-clip_param, clip_param)
    value_losses = (values - returns).pow(2)
    value_losses_clipped = (value_clipped - returns).pow(2)
    return torch.max(value_losses, value_losses_clipped).mean(), None  # no 0.5, no clip fraction
"""
    return (
        '''
def value_loss(vpreds, returns, values, response_mask, clip_param):
    """rsl_rl PPO.update: delta clip with the policy's clip_param, max, plain mean (no 0.5)."""
    valid = response_mask.bool()
    values, target_values, returns = vpreds[valid], values[valid], returns[valid]
'''
        + body
    )


def nemo_aligner(mode: str, eps) -> str:
    return '''
def value_loss(vpreds, returns, values, response_mask, clip_val):
    """NeMo-Aligner critic loss_func: delta clip, max, 0.5 * mean of the real tokens."""
    if clip_val > 0.0:
        values_clipped = values + (vpreds - values).clamp(-clip_val, clip_val)
        v_loss1 = (values_clipped - returns) ** 2
    else:
        v_loss1 = torch.tensor(0.0, dtype=vpreds.dtype)  # loss_clip_val <= 0: no clipping
    v_loss2 = (vpreds - returns) ** 2
    loss_max = torch.max(v_loss1, v_loss2)
    return 0.5 * loss_max[response_mask.bool()].mean(), None  # masked_mean: values[mask.bool()].mean()
'''


def sb3(mode: str, eps) -> str:
    pred = (
        "    values_pred = old_values + torch.clamp(values - old_values, -clip_range_vf, clip_range_vf)\n"
        if eps is not None
        else "    values_pred = values  # clip_range_vf=None: no clipping\n"
    )
    return (
        '''
def value_loss(vpreds, returns, values, response_mask, clip_range_vf):
    """Stable-Baselines3 PPO: clip the prediction, then plain MSE. No max and no 0.5."""
    valid = response_mask.bool()
    values, old_values, rollout_returns = vpreds[valid], values[valid], returns[valid]
'''
        + pred
        + "    return F.mse_loss(rollout_returns, values_pred), None  # SB3 logs no value clip fraction\n"
    )


def rllib(mode: str, eps) -> str:
    return '''
def value_loss(vpreds, returns, values, response_mask, vf_clip_param):
    """RLlib PPO since late 2021: clamps the squared error itself at vf_clip_param (loss units), not the value."""
    valid = response_mask.bool()
    vf_loss = torch.pow(vpreds[valid] - returns[valid], 2.0)
    return torch.clamp(vf_loss, 0, vf_clip_param).mean(), None  # RLlib logs no value clip fraction
'''


def rllib_legacy(mode: str, eps) -> str:
    return '''
def value_loss(vpreds, returns, values, response_mask, vf_clip_param):
    """RLlib PPO before late 2021: clips the prediction (return units), max of the two squared errors, mean."""
    valid = response_mask.bool()
    value_fn, value_targets, vf_preds = vpreds[valid], returns[valid], values[valid]
    vf_loss1 = torch.pow(value_fn - value_targets, 2.0)
    vf_clipped = vf_preds + torch.clamp(value_fn - vf_preds, -vf_clip_param, vf_clip_param)
    vf_loss2 = torch.pow(vf_clipped - value_targets, 2.0)
    return torch.max(vf_loss1, vf_loss2).mean(), None  # RLlib logs no value clip fraction
'''


# --------------------------------------------------------------------------------------------- slime, TorchRL


def slime(per_token: bool):
    def source(mode: str, eps) -> str:
        if per_token:
            reducer = '''
def reduce_rows(x, response_mask):
    """--calculate-per-token-loss: token sums added one sample at a time, / the token count."""
    total = 0
    for x_i, mask_i in zip(x, response_mask):
        total = total + (x_i * mask_i).sum()
    return total / response_mask.sum()
'''
        else:
            reducer = '''
def reduce_rows(x, response_mask):
    """sum_of_sample_mean: per-sample token means added one sample at a time, / the number of samples."""
    total = 0
    for x_i, mask_i in zip(x, response_mask):
        total = total + (x_i * mask_i).sum() / torch.clamp_min(mask_i.sum(), 1)
    return total / x.shape[0]
'''
        return (
            reducer
            + '''

def value_loss(vpreds, returns, values, response_mask, value_clip):
    """slime value_loss_function: delta clip, max, no 0.5; value_clipfrac counts clipped predictions."""
    clipfrac = (vpreds - values).abs() > value_clip
    values_clipped = values + (vpreds - values).clamp(-value_clip, value_clip)
    loss = torch.max((values_clipped - returns) ** 2, (vpreds - returns) ** 2)
    return reduce_rows(loss, response_mask), reduce_rows(clipfrac.to(vpreds.dtype), response_mask)
'''
        )

    return source


def torchrl(mode: str, eps) -> str:
    clip = (
        """    clip_value = torch.as_tensor(clip_value, dtype=torch.float32)  # ClipPPOLoss's float32 buffer
    pre_clipped = state_value - old_state_value
    clipped = pre_clipped.clamp(-clip_value, clip_value)
    clip_fraction = (pre_clipped != clipped).to(state_value.dtype).mean()  # whole tensor, padding included
    loss_value_clipped = F.smooth_l1_loss(target_return, old_state_value + clipped, reduction="none")
    loss_value = torch.maximum(loss_value, loss_value_clipped)
"""
        if eps
        else "    # clip_value is None or 0: `if self.clip_value:` is False, no clipping\n"
    )
    return (
        '''
def value_loss(vpreds, returns, values, response_mask, clip_value):
    """TorchRL ClipPPOLoss: smooth-L1 critic, delta clip, max; loss_critic = critic_coeff * L, masked mean."""
    critic_coeff = 1.0
    state_value, old_state_value, target_return = vpreds, values, returns
    mask = response_mask != 0
    loss_value = F.smooth_l1_loss(target_return, state_value, reduction="none")
    clip_fraction = None
'''
        + clip
        + "    loss_critic = critic_coeff * loss_value\n"
        + "    # masked mean as LossModule reduces it: padding selected away, no tokens logs 0\n"
        + "    return torch.where(mask, loss_critic, 0).sum() / mask.sum().clamp_min(1), clip_fraction\n"
    )
