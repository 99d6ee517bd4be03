"""The frozen record of one fused call, built once by the dispatch before any work and read by every path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

__all__ = ["Call", "Kinds"]


@dataclass(frozen=True)
class Kinds:
    """The dtypes verl's own expressions give, so that every path returns what ``compute_value_loss`` returns.

    ``sum_dtype``: ``masked_sum(loss_mat, mask)`` and the row sums (``loss_mat * mask``);
    ``count_dtype``: ``mask.sum()`` (int64 for bool / integer masks); the clip fraction
    ``masked_sum(gt.float(), mask) / (mask.sum() + 1e-8)`` has a numerator of ``num_dtype``, a
    denominator of ``den_dtype`` (an integer count plus ``1e-8`` takes the default dtype) and the
    result ``frac_dtype``.
    """

    sum_dtype: torch.dtype
    count_dtype: torch.dtype
    num_dtype: torch.dtype
    den_dtype: torch.dtype
    frac_dtype: torch.dtype

    @classmethod
    def of(cls, dtype: torch.dtype, mask_dtype: torch.dtype) -> Kinds:
        """For values of ``dtype`` and a mask of ``mask_dtype`` (a missing mask counts as bool)."""
        float_mask = mask_dtype.is_floating_point
        count = mask_dtype if float_mask else torch.int64
        num = torch.promote_types(torch.float32, mask_dtype)
        den = count if float_mask else torch.get_default_dtype()
        return cls(torch.promote_types(dtype, mask_dtype), count, num, den, torch.promote_types(num, den))


class Call(NamedTuple):
    """One call of the fused loss, decided before any work (a named tuple: frozen, and cheap to build on
    every call).

    ``v``, ``r``, ``o`` and ``m`` are the detached inputs as (rows, columns), contiguous (``m`` None:
    every token is real, OpenRLHF's module without a mask); ``shape`` is ``vpreds``' own. ``eps`` is
    the clip range as the pass takes it (rounded to the dtype where CPU eager rounds a Python
    scalar). The formula: verl's ``max(min(v, o + eps), o - eps)`` clip or, with ``delta``,
    OpenRLHF's ``o + clamp(v - o, -eps, eps)``; ``clip`` False squares ``v - R`` alone. The sums the
    tail needs: ``row_sums`` (one per row, else one in all), ``where_sum`` (``where(mask, L, 0)``,
    verl's token modes: padding ignored even when NaN; else ``L * mask``). ``backend``: ``triton``,
    ``auto`` (CPU: the C loop for small batches, else ``compiled``), ``c``, ``compiled`` or ``eager``;
    ``mask_name``: how errors name the mask.
    """

    v: torch.Tensor
    r: torch.Tensor
    o: torch.Tensor
    m: torch.Tensor | None
    shape: torch.Size
    eps: float
    want_grad: bool
    delta: bool
    clip: bool
    row_sums: bool
    where_sum: bool
    kinds: Kinds
    backend: str
    mask_name: str = "response_mask"
