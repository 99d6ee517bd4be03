"""The clipped value loss as verl and OpenRLHF compute it.

Shapes: every tensor is ``(batch, response_length)`` (any shape with the sequence on the last axis
works for the token modes). Notation: ``v`` = vpreds, ``o`` = old values, ``R`` = returns,
``eps`` = clip range, ``m`` = response mask.

The arithmetic follows each library's operation order, so float results match bit for bit where the
library's own formula is deterministic: NaN in padding is ignored exactly where verl masks with
``where`` and propagates exactly where it multiplies.
"""

from __future__ import annotations

import torch
from torch import nn

from . import _validate as check

__all__ = [
    "clip_bounds",
    "clip_clamp",
    "clip_delta",
    "clip_prediction",
    "masked_sum",
    "masked_mean",
    "agg_loss",
    "compute_value_loss",
    "ValueLoss",
]


def clip_bounds(v: torch.Tensor, values: torch.Tensor, eps) -> torch.Tensor:
    """verl's ``clip_by_value``: ``max(min(v, o + eps), o - eps)``; returns ``v`` itself inside the band."""
    return torch.max(torch.min(v, values + eps), values - eps)


def clip_clamp(v: torch.Tensor, values: torch.Tensor, eps) -> torch.Tensor:
    """TRL's ``torch.clamp(v, o - eps, o + eps)``: same values as bounds, full gradient on the edges."""
    return torch.clamp(v, values - eps, values + eps)


def clip_delta(v: torch.Tensor, values: torch.Tensor, eps) -> torch.Tensor:
    """OpenRLHF / CleanRL / SB3: ``o + clamp(v - o, -eps, eps)``; may sit 1 ulp off ``v`` in the band."""
    return values + (v - values).clamp(-eps, eps)


_CLIPS = {"bounds": clip_bounds, "clamp": clip_clamp, "delta": clip_delta}


def clip_prediction(v: torch.Tensor, values: torch.Tensor, eps, convention: str = "bounds") -> torch.Tensor:
    """Clip ``v`` to the trust band ``[o - eps, o + eps]`` in the named convention."""
    return _CLIPS[check.convention(convention)](v, values, eps)


def masked_sum(values: torch.Tensor, mask: torch.Tensor, axis=None) -> torch.Tensor:
    """Sum over real tokens; NaN in padding is replaced before the product (verl's NaN-safe sum)."""
    valid = torch.where(mask.bool(), values, 0.0)
    return (valid * mask).sum(axis=axis)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, axis=None) -> torch.Tensor:
    """verl's masked mean: ``masked_sum / (sum(mask) + 1e-8)`` (so an empty mask gives 0, not NaN)."""
    return masked_sum(values, mask, axis) / (mask.sum(axis=axis) + 1e-8)


def _check_agg(loss_agg_mode, dp_size, batch_num_tokens, global_batch_size, loss_scale_factor):
    """The aggregation arguments of ``agg_loss`` and ``fused_value_loss``, checked before any work: with
    several data-parallel ranks the mode's global count is required. Returns ``(dp_size, batch_num_tokens,
    global_batch_size, loss_scale_factor)`` as ``valueloss._validate`` reads them (numbers as floats)."""
    check.agg_mode(loss_agg_mode)
    dp_size = check.dp_size(dp_size)
    batch_num_tokens = check.positive_count("batch_num_tokens", batch_num_tokens)
    global_batch_size = check.positive_count("global_batch_size", global_batch_size)
    loss_scale_factor = check.positive_count("loss_scale_factor", loss_scale_factor)
    if dp_size > 1 and loss_agg_mode == "token-mean" and batch_num_tokens is None:
        raise ValueError("batch_num_tokens (the global token count) is required when dp_size > 1")
    if dp_size > 1 and loss_agg_mode.startswith("seq") and global_batch_size is None:
        raise ValueError("global_batch_size (the global number of sequences) is required when dp_size > 1")
    return dp_size, batch_num_tokens, global_batch_size, loss_scale_factor


def agg_loss(
    loss_mat: torch.Tensor,
    loss_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    dp_size: int = 1,
    batch_num_tokens=None,
    global_batch_size=None,
    loss_scale_factor=None,
) -> torch.Tensor:
    """Aggregate a per-token loss matrix to a scalar exactly as verl v0.9 does.

    With one process (``dp_size=1``) the global counts default to this batch's own. With several
    data-parallel ranks each rank divides by the *global* count and multiplies by ``dp_size`` so that
    DDP's gradient averaging yields the global mean; missing counts are then a ``ValueError``.

    All-masked batch: token-mean and every seq-mean mode return NaN (0/0, as verl), token-sum 0.
    """
    check.float_tensor("loss_mat", loss_mat)
    check.mask_tensor("loss_mask", loss_mask)
    check.nonempty("loss_mat", loss_mat)
    check.same_shape("loss_mat", loss_mat, loss_mask=loss_mask)
    dp_size, batch_num_tokens, global_batch_size, loss_scale_factor = _check_agg(
        loss_agg_mode, dp_size, batch_num_tokens, global_batch_size, loss_scale_factor
    )

    if loss_agg_mode == "token-mean":
        if batch_num_tokens is None:
            batch_num_tokens = loss_mask.sum()
        return masked_sum(loss_mat, loss_mask) / batch_num_tokens * dp_size

    if loss_agg_mode == "token-sum":
        return masked_sum(loss_mat, loss_mask) * dp_size

    # The seq modes multiply before the row sums: a NaN in a padded slot poisons its row (as in verl).
    row_tokens = torch.sum(loss_mask, dim=-1)
    if loss_agg_mode == "seq-mean-token-mean":
        seq_losses = torch.sum(loss_mat * loss_mask, dim=-1) / (row_tokens + 1e-8)
    else:
        seq_losses = torch.sum(loss_mat * loss_mask, dim=-1)
    seq_mask = (row_tokens > 0).float()
    if global_batch_size is None:
        global_batch_size = seq_mask.sum()
    loss = masked_sum(seq_losses, seq_mask) / global_batch_size * dp_size
    if loss_agg_mode == "seq-mean-token-sum-norm":
        loss = loss / (loss_scale_factor if loss_scale_factor is not None else loss_mask.shape[-1])
    return loss


def _check_batch(vpreds, returns, values, mask, mask_name="response_mask"):
    check.float_tensor("vpreds", vpreds)
    check.float_tensor("returns", returns)
    check.float_tensor("values", values)
    check.nonempty("vpreds", vpreds)
    if mask is not None:
        check.mask_tensor(mask_name, mask)
        check.same_shape("vpreds", vpreds, returns=returns, values=values, **{mask_name: mask})
    else:
        check.same_shape("vpreds", vpreds, returns=returns, values=values)


def compute_value_loss(
    vpreds: torch.Tensor,
    returns: torch.Tensor,
    values: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange_value: float,
    loss_agg_mode: str = "token-mean",
    *,
    dp_size: int = 1,
    batch_num_tokens=None,
    global_batch_size=None,
    loss_scale_factor=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's ``compute_value_loss``: ``0.5 * AGG(max((v-R)^2, (clip(v)-R)^2))`` and ``vf_clipfrac``.

    Args:
        vpreds: current critic predictions ``v``, shape (batch, response_length).
        returns: return targets ``R`` (GAE advantages + old values), same shape.
        values: old values ``o`` stored at rollout, same shape.
        response_mask: 1 for real tokens, 0 for padding (bool, integer or floating).
        cliprange_value: ``eps`` in return units (verl's ``critic.cliprange_value``, default 0.5).
        loss_agg_mode: one of ``token-mean`` (default), ``token-sum``, ``seq-mean-token-sum``,
            ``seq-mean-token-mean``, ``seq-mean-token-sum-norm``.

    Returns:
        ``(vf_loss, vf_clipfrac)``: the scalar loss (0.5 applied after aggregation) and the share of
        real tokens where the clipped term is strictly larger, ``sum(m * (L_clip > L_unclip)) / (N + 1e-8)``.
        Those are exactly the tokens whose gradient is zero. An all-masked batch gives a NaN loss and
        a clip fraction of 0.
    """
    _check_batch(vpreds, returns, values, response_mask)
    cliprange_value = check.clip_range("cliprange_value", cliprange_value)
    vpredclipped = clip_bounds(vpreds, values, cliprange_value)
    loss_unclipped = (vpreds - returns) ** 2
    loss_clipped = (vpredclipped - returns) ** 2
    loss_max = torch.max(loss_unclipped, loss_clipped)
    vf_loss = 0.5 * agg_loss(
        loss_max,
        response_mask,
        loss_agg_mode,
        dp_size=dp_size,
        batch_num_tokens=batch_num_tokens,
        global_batch_size=global_batch_size,
        loss_scale_factor=loss_scale_factor,
    )
    vf_clipfrac = masked_mean(torch.gt(loss_clipped, loss_unclipped).float(), response_mask)
    return vf_loss, vf_clipfrac


def _openrlhf_masked_mean(x: torch.Tensor, mask: torch.Tensor | None, dim=None) -> torch.Tensor:
    """OpenRLHF's ``masked_mean``: ``sum(x * m) / sum(m)`` (no epsilon; ``x.mean()`` without a mask)."""
    if mask is None:
        return x.mean() if dim is None else x.mean(dim=dim)
    return (x * mask).sum(dim=dim) / mask.sum(dim=dim)


def _openrlhf_aggregate(loss, mask, token_level_loss, dp_size, batch_num_tokens, global_batch_size):
    """OpenRLHF 0.11's ``aggregate_loss`` in its operation order.

    Token level: ``sum(L*m) / sum(m)``, or ``sum(L*m) / batch_num_tokens * dp_size`` with the global count.
    Sequence level: row means ``sum(L*m) / (n_i + 1e-8)``, then a mean over the rows with ``n_i > 0``
    taken with a **float32** row mask, ``sum(row * seq_mask) / sum(seq_mask)`` (or ``/ global_batch_size
    * dp_size``). That float32 mask promotes bfloat16 row means to float32, so a bf16 batch gives a
    float32 loss there, exactly as the library does.

    Without a mask every token is real. OpenRLHF itself accepts no mask only in the token mode without
    counts (``loss.mean()``, reproduced here); the other no-mask cases raise there, and here give exactly
    what an all-True boolean mask gives.
    """
    if token_level_loss and batch_num_tokens is None:
        return _openrlhf_masked_mean(loss, mask)
    if mask is None:
        mask = torch.ones(loss.shape, dtype=torch.bool, device=loss.device)
    if token_level_loss:
        return (loss * mask).sum() / batch_num_tokens * dp_size
    token_counts = mask.sum(dim=-1)
    seq_loss = (loss * mask).sum(dim=-1) / (token_counts + 1e-8)
    seq_mask = (token_counts > 0).float()  # rows without tokens are left out
    if global_batch_size is None:
        return _openrlhf_masked_mean(seq_loss, seq_mask)
    return (seq_loss * seq_mask).sum() / global_batch_size * dp_size


class ValueLoss(nn.Module):
    """OpenRLHF's ``ValueLoss`` (v0.11): delta clip convention, ``0.5 *`` the aggregated max.

    ``clip_eps=None`` turns clipping off (plain squared error). ``token_level_loss=True`` averages over
    all real tokens (``sum(L*m) / sum(m)``); ``False`` averages each row first
    (``sum(L*m) / (n_i + 1e-8)``) and then the rows that hold at least one token.

    ``forward(values, old_values, returns, action_mask=None, dp_size=1, batch_num_tokens=None,
    global_batch_size=None)`` has OpenRLHF 0.11's signature. With the global counts (what its trainer
    passes: the tokens, resp. non-empty sequences, of the whole step over every data-parallel rank) the
    loss is ``sum / count * dp_size``, so that DDP's gradient averaging yields the global mean. Where
    OpenRLHF silently ignores ``dp_size > 1`` (no count given) this raises a ``ValueError`` instead.
    """

    def __init__(self, clip_eps: float | None = None, token_level_loss: bool = True) -> None:
        super().__init__()
        self.clip_eps = check.clip_range("clip_eps", clip_eps, allow_none=True)
        if not isinstance(token_level_loss, bool):  # a string such as 'no' would be truthy
            raise TypeError(f"token_level_loss must be True or False, got {token_level_loss!r}")
        self.token_level_loss = token_level_loss

    def forward(
        self,
        values: torch.Tensor,
        old_values: torch.Tensor,
        returns: torch.Tensor,
        action_mask: torch.Tensor | None = None,
        dp_size: int = 1,
        batch_num_tokens=None,
        global_batch_size=None,
    ) -> torch.Tensor:
        check.float_tensor("values", values)
        check.float_tensor("old_values", old_values)
        check.float_tensor("returns", returns)
        check.nonempty("values", values)
        others = {"old_values": old_values, "returns": returns}
        if action_mask is not None:
            check.mask_tensor("action_mask", action_mask)
            others["action_mask"] = action_mask
        check.same_shape("values", values, **others)
        dp_size = check.dp_size(dp_size)
        batch_num_tokens = check.positive_count("batch_num_tokens", batch_num_tokens)
        global_batch_size = check.positive_count("global_batch_size", global_batch_size)
        if dp_size > 1:
            needed = "batch_num_tokens" if self.token_level_loss else "global_batch_size"
            if (batch_num_tokens if self.token_level_loss else global_batch_size) is None:
                what = "tokens" if self.token_level_loss else "non-empty sequences"
                raise ValueError(f"{needed} (the global number of {what}) is required when dp_size > 1")

        if self.clip_eps is not None:
            values_clipped = clip_delta(values, old_values, self.clip_eps)
            surr_clipped = (values_clipped - returns) ** 2
            surr_unclipped = (values - returns) ** 2
            loss = torch.max(surr_clipped, surr_unclipped)
        else:
            loss = (values - returns) ** 2

        loss = _openrlhf_aggregate(
            loss, action_mask, self.token_level_loss, dp_size, batch_num_tokens, global_batch_size
        )
        return 0.5 * loss
