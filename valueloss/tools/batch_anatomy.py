"""The boundary of a batch analysis: inputs validated once, the per-token anatomy computed once.

The Batch page's report (:mod:`.batch_reports`) and the Sanity check (:mod:`.sanity`) both start here and
pass the one :class:`BatchAnatomy` down; no table or finding validates eps or recomputes the terms again."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import _validate as check
from ..anatomy import ValueLossTerms, value_loss_terms_of_checked
from ..losses import agg_loss, masked_mean
from .batch import Batch

__all__ = ["BatchAnatomy", "batch_anatomy"]


@dataclass(frozen=True)
class BatchAnatomy:
    """One batch's per-token anatomy at one (eps, convention), validated and computed once.

    Every table and statistic of a report derives from this one result (``terms`` covers every cell,
    padding included, shape ``(B, T)``); nothing downstream validates eps or recomputes the terms.
    """

    batch: Batch
    eps: float
    convention: str
    terms: ValueLossTerms

    def vf_loss(self, loss_agg_mode: str = "token-mean") -> torch.Tensor:
        """verl's ``vf_loss`` in ``loss_agg_mode`` from the per-token max term (as ``compute_value_loss``)."""
        return 0.5 * agg_loss(self.terms.loss_max, self.batch.mask, loss_agg_mode)

    def vf_clipfrac(self) -> torch.Tensor:
        """verl's ``vf_clipfrac``: the share of real tokens whose clipped term is strictly larger."""
        return masked_mean(self.terms.clipped_wins.float(), self.batch.mask)


def batch_anatomy(batch: Batch, eps: float, convention: str = "bounds") -> BatchAnatomy:
    """The boundary of a batch analysis: validate ``eps`` and ``convention`` once, compute the terms once."""
    check.clip_range("eps", eps)
    check.convention(convention)
    terms = value_loss_terms_of_checked(batch.vpreds, batch.returns, batch.values, eps, convention)
    return BatchAnatomy(batch=batch, eps=eps, convention=convention, terms=terms)
