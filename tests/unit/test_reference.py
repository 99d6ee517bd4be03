"""Cross-check against an independent float64 numpy restatement of each library's formula.

Thousands of random batches with padding, empty rows and exact ties: losses to 1e-12, clip
fractions exactly, gradients equal to autograd.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import valueloss as vl
from tests.batches import random_batch


def reference_verl(v, r, o, m, eps, mode):
    """verl v0.9 in numpy, written from SEMANTICS.md (one process).

    Counts and the ``+ 1e-8`` live in the mask's dtype, as in torch: with a float32 mask the 1e-8
    vanishes in rounding, with a float64 mask it does not.
    """
    mask_dtype = m.dtype.type
    clipped = np.maximum(np.minimum(v, o + eps), o - eps)
    l1, l2 = (v - r) ** 2, (clipped - r) ** 2
    loss = np.maximum(l1, l2)
    real = m > 0
    n_rows = real.sum(axis=-1)
    if mode == "token-mean":
        agg = np.where(real, loss, 0.0).sum() / real.sum()
    elif mode == "token-sum":
        agg = np.where(real, loss, 0.0).sum()
    else:
        rows = (loss * m).sum(axis=-1)
        if mode == "seq-mean-token-mean":
            rows = rows / (mask_dtype(n_rows) + mask_dtype(1e-8))
        agg = np.where(n_rows > 0, rows, 0.0).sum() / (n_rows > 0).sum()
        if mode == "seq-mean-token-sum-norm":
            agg = agg / m.shape[-1]
    clipfrac = np.promote_types(np.float32, m.dtype).type
    clipfrac = clipfrac(((l2 > l1) & real).sum()) / (mask_dtype(real.sum()) + mask_dtype(1e-8))
    return 0.5 * agg, clipfrac


@pytest.mark.parametrize("mask_dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", vl.AGG_MODES)
def test_thousands_of_random_batches(mode, mask_dtype):
    with np.errstate(invalid="ignore", divide="ignore"):
        for seed in range(1000):
            v, r, o, m, eps = random_batch(seed, rows=4 + seed % 5, width=3 + seed % 11)
            m = m.to(mask_dtype)
            loss, clipfrac = vl.compute_value_loss(v, r, o, m, eps, mode)
            want_loss, want_frac = reference_verl(v.numpy(), r.numpy(), o.numpy(), m.numpy(), eps, mode)
            assert float(clipfrac) == float(want_frac), seed
            if np.isnan(want_loss):
                assert torch.isnan(loss), seed
            else:
                assert abs(float(loss) - want_loss) <= 1e-12 * max(1.0, abs(want_loss)), seed


def test_gradients_of_thousands_of_batches_equal_autograd():
    for seed in range(1000):
        v, r, o, m, eps = random_batch(seed, rows=3, width=8)
        leaf = v.clone().requires_grad_(True)
        vl.compute_value_loss(leaf, r, o, m, eps)[0].backward()
        weights = torch.zeros_like(v, requires_grad=True)
        (0.5 * vl.agg_loss(weights, m, "token-mean")).backward()
        assert torch.equal(leaf.grad, vl.value_loss_grad(v, r, o, eps, grad_output=weights.grad)), seed
