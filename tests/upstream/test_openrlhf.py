"""OpenRLHF 0.11.2 (PyPI) ``ValueLoss`` against ``valueloss.ValueLoss`` and the ``openrlhf`` dialect, bit for bit.

How the library is loaded: **just the loss code from the installed files** -- ``aggregate_loss`` and
``ValueLoss`` from ``openrlhf/models/loss.py`` and ``masked_mean`` from ``openrlhf/models/utils.py``, run
verbatim (see ``_harness.load_functions``). Importing ``openrlhf.models`` whole would import deepspeed,
transformers, flash-attn and ray (through ``actor.py``, ``model.py`` and ``utils.py``), none of which
``ValueLoss`` touches. Our ``ValueLoss`` keeps OpenRLHF 0.11's signature and operation order, so both
aggregations, ``clip_eps=None`` and the data-parallel arguments must give the same bits, the gradient too.
"""

from __future__ import annotations

import itertools
from typing import Optional

import pytest
import torch
import torch.nn as nn

import valueloss as vl
from tests.batches import DTYPES, MASK_KINDS, assert_bitwise, random_batch, seed_of

from ._harness import load_functions, version_of


@pytest.fixture(scope="module")
def openrlhf(upstream_site):
    assert (upstream_site / f"openrlhf-{version_of('openrlhf')}.dist-info").is_dir()
    root = upstream_site / "openrlhf" / "models"
    namespace = {"torch": torch, "nn": nn, "Optional": Optional}
    load_functions(root / "utils.py", ["masked_mean"], namespace)
    return load_functions(root / "loss.py", ["aggregate_loss", "ValueLoss"], namespace)


def _dp_args(gen, batch, dp_size):
    """What OpenRLHF's critic passes (``get_loss_batch_info``): float32 tensors of the step's global counts."""
    if dp_size == 1 and bool(torch.randint(0, 3, (1,), generator=gen) == 0):
        return {}
    gas = int(torch.randint(1, 4, (1,), generator=gen))
    tokens = (int(batch.bool_mask.sum()) * dp_size + int(torch.randint(1, 5, (1,), generator=gen))) / gas
    seqs = (batch.mask.shape[0] * dp_size + int(torch.randint(0, 3, (1,), generator=gen))) / gas
    return {
        "dp_size": dp_size,
        "batch_num_tokens": torch.tensor(tokens, dtype=torch.float32),
        "global_batch_size": torch.tensor(seqs, dtype=torch.float32),
    }


def check_openrlhf(openrlhf, batch, clip_eps, token_level_loss, kwargs, mask=True):
    mask = batch.mask if mask else None
    leaf_theirs, leaf_ours = batch.leaf(), batch.leaf()
    theirs = openrlhf["ValueLoss"](clip_eps, token_level_loss)(leaf_theirs, batch.values, batch.returns, mask, **kwargs)
    ours = vl.ValueLoss(clip_eps, token_level_loss)(leaf_ours, batch.values, batch.returns, mask, **kwargs)
    what = f"ValueLoss(clip_eps={clip_eps}, token_level_loss={token_level_loss}) {kwargs}"
    assert_bitwise(ours, theirs, what)
    theirs.backward()
    ours.backward()
    assert_bitwise(leaf_ours.grad, leaf_theirs.grad, f"gradient of {what}")
    return ours


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
@pytest.mark.parametrize("token_level_loss", [True, False])
@pytest.mark.parametrize("clip", ["eps", "none"])
def test_value_loss_bit_for_bit(openrlhf, dtype, mask_kind, token_level_loss, clip):
    gen = torch.Generator().manual_seed(seed_of(str(dtype), mask_kind, token_level_loss, clip))
    for i in range(30):
        batch = random_batch(gen, dtype, mask_kind, nan_padding=i % 6 == 5, edge_rows=False)
        kwargs = _dp_args(gen, batch, dp_size=(1, 1, 2, 8)[i % 4])
        check_openrlhf(openrlhf, batch, batch.eps if clip == "eps" else None, token_level_loss, kwargs)


def test_bf16_sequence_mean_is_taken_in_float32(openrlhf):
    """The sequence mode promotes bf16 row means to float32 (its ``seq_mask`` is float32), as ours does."""
    batch = random_batch(torch.Generator().manual_seed(5), torch.bfloat16, "bool", edge_rows=False)
    ours = check_openrlhf(openrlhf, batch, 0.2, False, {})
    assert ours.dtype == torch.float32


def test_no_mask(openrlhf):
    """``action_mask=None``: OpenRLHF takes ``loss.mean()`` in the token mode (it raises in the others)."""
    gen = torch.Generator().manual_seed(9)
    for dtype in DTYPES:
        check_openrlhf(openrlhf, random_batch(gen, dtype, "bool", edge_rows=False), 0.5, True, {}, mask=False)


def test_dialect_is_openrlhf_default_module(openrlhf):
    """``dialect_loss("openrlhf")`` is OpenRLHF's critic loss: ``ValueLoss(value_clip)`` with the default
    ``token_level_loss=True``, on this micro-batch's own counts."""
    gen = torch.Generator().manual_seed(13)
    for dtype, mask_kind in itertools.product(DTYPES, MASK_KINDS):
        batch = random_batch(gen, dtype, mask_kind, edge_rows=False)
        theirs = openrlhf["ValueLoss"](batch.eps)(batch.vpreds, batch.values, batch.returns, batch.mask)
        ours = vl.dialect_loss("openrlhf", batch.vpreds, batch.returns, batch.values, batch.mask, batch.eps)
        assert_bitwise(ours.loss, theirs, f"dialect openrlhf {dtype} {mask_kind}")


def test_several_ranks_without_counts_is_an_error_not_a_silent_number(openrlhf):
    """OpenRLHF ignores ``dp_size`` when no global count is given; ours refuses that combination."""
    batch = random_batch(torch.Generator().manual_seed(1), torch.float32, "bool", edge_rows=False)
    silently = openrlhf["ValueLoss"](0.2)(batch.vpreds, batch.values, batch.returns, batch.mask, dp_size=4)
    one_rank = openrlhf["ValueLoss"](0.2)(batch.vpreds, batch.values, batch.returns, batch.mask)
    assert_bitwise(silently, one_rank, "OpenRLHF ignores dp_size without counts")
    with pytest.raises(ValueError, match="batch_num_tokens"):
        vl.ValueLoss(0.2)(batch.vpreds, batch.values, batch.returns, batch.mask, dp_size=4)
    with pytest.raises(ValueError, match="global_batch_size"):
        vl.ValueLoss(0.2, token_level_loss=False)(batch.vpreds, batch.values, batch.returns, batch.mask, dp_size=4)
