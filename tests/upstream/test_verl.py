"""verl 0.9.1 (PyPI) against ``valueloss.compute_value_loss`` / ``agg_loss``, bit for bit.

How the library is loaded: **just the loss functions from the installed files** -- ``agg_loss`` and
``compute_value_loss`` from ``verl/trainer/ppo/core_algos.py``, ``clip_by_value``, ``masked_sum`` and
``masked_mean`` from ``verl/utils/torch_functional.py`` -- run verbatim (see ``_harness.load_functions``).
Importing those modules whole would pull in omegaconf, transformers, tensordict and verl's worker config,
none of which the loss code touches. Our core follows verl's operation order, so every mode, the clip
fraction and the gradient (autograd through both) must agree to the bit in float32, bfloat16 and float64,
with bool/int/float masks, NaN in padding, exact ties and the global-batch arguments.
"""

from __future__ import annotations

import itertools
from typing import Optional

import pytest
import torch

import valueloss as vl
from tests.batches import DTYPES, MASK_KINDS, assert_bitwise, random_batch, seed_of

from ._harness import as_module, load_functions, version_of

MODES = ("token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")


@pytest.fixture(scope="module")
def verl(upstream_site):
    root = upstream_site / "verl"
    functional = load_functions(
        root / "utils" / "torch_functional.py", ["clip_by_value", "masked_sum", "masked_mean"], {"torch": torch}
    )
    namespace = {"torch": torch, "Optional": Optional, "verl_F": as_module("verl_F", functional)}
    return as_module(
        "core_algos", load_functions(root / "trainer/ppo/core_algos.py", ["agg_loss", "compute_value_loss"], namespace)
    )


def test_the_pinned_release_is_loaded(upstream_site):
    meta = upstream_site / f"verl-{version_of('verl')}.dist-info"
    assert meta.is_dir(), f"expected verl {version_of('verl')} under {upstream_site}"
    assert tuple(vl.AGG_MODES) == MODES


def _global_args(gen, batch, mode, dp_size):
    """The global-batch arguments a trainer passes: counts of the whole step (>= this micro-batch's)."""
    if dp_size == 1 and bool(torch.randint(0, 2, (1,), generator=gen)):
        return {}
    tokens = int(batch.bool_mask.sum()) * dp_size + int(torch.randint(1, 5, (1,), generator=gen))
    seqs = batch.mask.shape[0] * dp_size + int(torch.randint(0, 3, (1,), generator=gen))
    kwargs = {"dp_size": dp_size, "batch_num_tokens": tokens, "global_batch_size": seqs}
    if bool(torch.randint(0, 2, (1,), generator=gen)):  # what verl passes: float32 tensors of the all-reduced counts
        kwargs["batch_num_tokens"] = torch.tensor(float(tokens))
        kwargs["global_batch_size"] = torch.tensor(float(seqs))
    if mode == "seq-mean-token-sum-norm" and bool(torch.randint(0, 2, (1,), generator=gen)):
        kwargs["loss_scale_factor"] = 4096
    return kwargs


def check_verl(verl, batch, mode, kwargs):
    """Loss, clip fraction and gradient of ours and verl's on one batch: the same bits."""
    leaf_theirs, leaf_ours = batch.leaf(), batch.leaf()
    theirs, theirs_frac = verl.compute_value_loss(
        leaf_theirs, batch.returns, batch.values, batch.mask, batch.eps, mode, **kwargs
    )
    ours, ours_frac = vl.compute_value_loss(
        leaf_ours, batch.returns, batch.values, batch.mask, batch.eps, mode, **kwargs
    )
    assert_bitwise(ours, theirs, f"vf_loss {mode}")
    assert_bitwise(ours_frac, theirs_frac, f"vf_clipfrac {mode}")
    theirs.backward()
    ours.backward()
    assert_bitwise(leaf_ours.grad, leaf_theirs.grad, f"d vf_loss / d vpreds {mode}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_compute_value_loss_bit_for_bit(verl, dtype, mask_kind, mode):
    gen = torch.Generator().manual_seed(seed_of(str(dtype), mask_kind, mode))
    for i in range(40):
        batch = random_batch(gen, dtype, mask_kind, nan_padding=i % 5 == 4, edge_rows=False)
        kwargs = _global_args(gen, batch, mode, dp_size=(1, 1, 2, 4)[i % 4])
        check_verl(verl, batch, mode, kwargs)


@pytest.mark.parametrize("mode", MODES)
def test_agg_loss_bit_for_bit(verl, mode):
    gen = torch.Generator().manual_seed(7)
    for dtype, mask_kind, dp_size in itertools.product(DTYPES, MASK_KINDS, (1, 3)):
        batch = random_batch(gen, dtype, mask_kind, edge_rows=False)
        loss_mat = (batch.vpreds - batch.returns) ** 2
        kwargs = _global_args(gen, batch, mode, dp_size)
        assert_bitwise(
            vl.agg_loss(loss_mat, batch.mask, mode, **kwargs),
            verl.agg_loss(loss_mat, batch.mask, mode, **kwargs),
            f"agg_loss {mode} {dtype} {mask_kind} {kwargs}",
        )


@pytest.mark.parametrize("mode", MODES)
def test_missing_global_counts_with_several_ranks_raise_in_both(verl, mode):
    batch = random_batch(torch.Generator().manual_seed(3), torch.float32, "bool", edge_rows=False)
    if mode == "token-sum":  # needs no count
        check_verl(verl, batch, mode, {"dp_size": 2})
        return
    with pytest.raises(ValueError):
        verl.compute_value_loss(batch.vpreds, batch.returns, batch.values, batch.mask, 0.5, mode, dp_size=2)
    with pytest.raises(ValueError, match="dp_size"):
        vl.compute_value_loss(batch.vpreds, batch.returns, batch.values, batch.mask, 0.5, mode, dp_size=2)


def test_dialect_is_verls_default_call(verl):
    """``dialect_loss("verl")`` is verl's critic loss with its default ``loss_agg_mode="token-mean"``."""
    gen = torch.Generator().manual_seed(23)
    for dtype, mask_kind in itertools.product(DTYPES, MASK_KINDS):
        for _ in range(5):
            b = random_batch(gen, dtype, mask_kind, edge_rows=False)
            loss, clipfrac = verl.compute_value_loss(b.vpreds, b.returns, b.values, b.mask, b.eps)
            ours = vl.dialect_loss("verl", b.vpreds, b.returns, b.values, b.mask, b.eps)
            assert_bitwise(ours.loss, loss, f"dialect verl {dtype} {mask_kind}")
            assert_bitwise(ours.clipfrac, clipfrac, f"dialect verl clipfrac {dtype} {mask_kind}")
