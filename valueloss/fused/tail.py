"""verl's and OpenRLHF's aggregation after the masked sums: the mirror of ``losses.agg_loss`` and
``library_code.openrlhf_aggregate`` on the sums a fused pass returns.

Under autograd (``verl_tail``, ``openrlhf_tail``) the tail is the libraries' own operations on the sums,
so autograd itself computes the weight each token's gradient gets. On CPU the token modes can instead
replay verl's three scalar operations on numpy scalars (``ScalarTail``): IEEE arithmetic in the same
types gives the same bits as torch's 0-d ops at a fraction of the cost, forward and backward.
"""

from __future__ import annotations

import contextlib
import functools
from typing import NamedTuple

import numpy as np
import torch

from ..losses import masked_sum

__all__ = ["ScalarTail", "openrlhf_tail", "verl_tail"]

TOKEN_MODES = ("token-mean", "token-sum")
NP_TYPES = {torch.float32: np.float32, torch.float64: np.float64}
_NO_WARNINGS = contextlib.nullcontext()


def verl_tail(
    sums, counts, mode, width, dp_size=1, batch_num_tokens=None, global_batch_size=None, loss_scale_factor=None
):
    """``0.5 * agg_loss`` from ``sums`` (token modes: ``masked_sum(L, mask)``; seq modes: the row sums
    ``sum(L * mask, -1)``) and ``counts`` (``mask.sum()``, or per row), operation for operation."""
    if mode == "token-mean":
        divisor = counts if batch_num_tokens is None else batch_num_tokens
        return 0.5 * (sums / divisor * dp_size)
    if mode == "token-sum":
        return 0.5 * (sums * dp_size)
    seq_losses = sums / (counts + 1e-8) if mode == "seq-mean-token-mean" else sums
    seq_mask = (counts > 0).float()
    n_seqs = seq_mask.sum() if global_batch_size is None else global_batch_size
    loss = masked_sum(seq_losses, seq_mask) / n_seqs * dp_size
    if mode == "seq-mean-token-sum-norm":
        loss = loss / (loss_scale_factor if loss_scale_factor is not None else width)
    return 0.5 * loss


def openrlhf_tail(sums, counts, numel, token_level, dp_size=1, batch_num_tokens=None, global_batch_size=None):
    """``0.5 * aggregate_loss`` of OpenRLHF 0.11 from ``sum(L * mask)`` (token level) or its row sums and
    ``mask.sum()`` (or per row); ``counts`` None: no mask (``loss.mean()``, or every token real)."""
    if token_level and batch_num_tokens is None:
        return 0.5 * (sums / (numel if counts is None else counts))
    if token_level:
        return 0.5 * (sums / batch_num_tokens * dp_size)
    seq_loss = sums / (counts + 1e-8)
    seq_mask = (counts > 0).float()
    if global_batch_size is None:
        return 0.5 * ((seq_loss * seq_mask).sum() / seq_mask.sum())
    return 0.5 * ((seq_loss * seq_mask).sum() / global_batch_size * dp_size)


@functools.lru_cache(maxsize=64)
def _types(sum_dtype, count_dtype, num_dtype, frac_dtype, mode, divide_by_count):
    """numpy types of verl's token-mode tail: the sum's, the count's (``mask.sum() + 1e-8``: an integer
    count plus a float is float32, the default dtype), the clipped count's, the clip fraction's and the loss's."""
    count_is_float = count_dtype in NP_TYPES
    count_type = NP_TYPES[count_dtype] if count_is_float else np.float32
    loss_dtype = sum_dtype
    if mode == "token-mean" and divide_by_count:  # S / mask.sum(): both 0-d, so their promoted dtype
        loss_dtype = torch.promote_types(sum_dtype, count_dtype)
    return NP_TYPES[sum_dtype], count_type, NP_TYPES[num_dtype], NP_TYPES[frac_dtype], NP_TYPES[loss_dtype]


class ScalarTail(NamedTuple):
    """verl's token-mode tail on numpy scalars: what its backward needs (the loss's type, the divisor or
    None for token-sum, the sum's type and ``dp_size``)."""

    loss_type: type
    divisor: float | np.floating | np.integer | None
    sum_type: type
    dp_size: int

    @staticmethod
    def applies(v: torch.Tensor, kinds, batch_num_tokens) -> bool:
        """Where numpy replays verl's types: CPU tensors, float32 / float64 sums, counts and clip
        fractions, the default dtype float32, ``batch_num_tokens`` absent or a Python number."""
        return (
            v.device.type == "cpu"
            and kinds.sum_dtype in NP_TYPES
            and kinds.num_dtype in NP_TYPES
            and kinds.frac_dtype in NP_TYPES
            and (kinds.count_dtype == torch.int64 or kinds.count_dtype in NP_TYPES)
            and torch.get_default_dtype() == torch.float32
            and not isinstance(batch_num_tokens, (bool, torch.Tensor))
        )

    @classmethod
    def run(cls, kinds, mode, s_total, n_clipped, n_tokens, dp_size, batch_num_tokens):
        """``(vf_loss, vf_clipfrac, tail)``: verl's loss and clip fraction as 0-d tensors of verl's dtypes."""
        by_count = batch_num_tokens is None
        sum_type, count_type, num_type, frac_type, loss_type = _types(
            kinds.sum_dtype, kinds.count_dtype, kinds.num_dtype, kinds.frac_dtype, mode, by_count
        )
        count_is_float = kinds.count_dtype in NP_TYPES
        total = sum_type(s_total)
        count = count_type(n_tokens)
        divisor = None
        if mode == "token-mean":
            divisor = batch_num_tokens if not by_count else (count_type(n_tokens) if count_is_float else n_tokens)
        # numpy warns where torch is silent: an all-masked batch (0/0 = NaN), an overflow to inf
        quiet = n_tokens > 0 and dp_size == 1 and by_count
        with _NO_WARNINGS if quiet else np.errstate(all="ignore"):
            clipfrac = frac_type(num_type(n_clipped)) / frac_type(count + count_type(1e-8))
            if divisor is None:
                loss = loss_type(0.5) * (total * loss_type(dp_size))
            else:
                loss = loss_type(0.5) * (loss_type(loss_type(total) / loss_type(divisor)) * loss_type(dp_size))
        # 0-d tensors of the numpy scalars' own dtypes, made cheaply
        vf_loss, vf_clipfrac = torch.from_numpy(np.array(loss)), torch.from_numpy(np.array(clipfrac))
        return vf_loss, vf_clipfrac, cls(loss_type, divisor, sum_type, dp_size)

    def sum_grad(self, upstream: float):
        """Autograd's gradient of the masked sum ``S`` for an upstream gradient of ``0.5 * (S / N * dp_size)``
        (mul: ``g * 0.5``, ``g * dp_size``; div: ``g / N``; the cast to ``S``'s dtype), as a numpy scalar."""
        loss_type, divisor = self.loss_type, self.divisor
        quiet = abs(upstream) < 1e30 and self.dp_size == 1 and (divisor is None or divisor > 0)
        with _NO_WARNINGS if quiet else np.errstate(all="ignore"):
            grad = loss_type(loss_type(upstream) * loss_type(0.5)) * loss_type(self.dp_size)
            if divisor is not None:
                grad = grad / loss_type(divisor)
            return self.sum_type(grad)
