"""TorchRL 0.14.1 (PyPI, with tensordict 0.14.3) ``ClipPPOLoss`` against the ``torchrl`` dialect.

How the library is loaded: **the real packages, imported whole** (``torchrl.objectives.ClipPPOLoss``,
``torchrl.modules``, ``tensordict``), installed without dependencies; their small pure dependencies
(pyvers, hoptorch, cloudpickle, orjson, importlib_metadata) are pinned beside them. No stand-ins.
``_torchrl_driver.clip_ppo_loss`` runs one forward and backward of ``ClipPPOLoss`` with a critic that
predicts exactly the batch's ``vpreds`` and the padding given as TorchRL's collectors mark it.

What TorchRL logs, checked here: ``loss_critic`` is the masked mean of the max of two smooth-L1 losses
(``where(mask, l, 0).sum() / mask.sum()``), multiplied by ``critic_coeff`` token by token *before* that
mean; ``value_clip_fraction`` is a mean over the **whole** tensor, padding included; ``clip_value=0`` is
falsy, so it turns clipping off. Where the ``torchrl`` dialect does not yet reproduce one of these, the
test would say so (the dialect lives in ``valueloss/dialects.py``).
"""

from __future__ import annotations

import itertools

import pytest
import torch

import valueloss as vl
from tests.batches import DTYPES, MASK_KINDS, Batch, assert_bitwise, random_batch

from ._harness import version_of
from ._torchrl_driver import clip_ppo_loss

ULPS = {torch.float32: 8 * 2**-23, torch.bfloat16: 8 * 2**-7, torch.float64: 8 * 2**-52}


@pytest.fixture(scope="module")
def torchrl(upstream_site):
    import tensordict
    import torchrl

    assert torchrl.__file__.startswith(str(upstream_site)), torchrl.__file__
    assert torchrl.__version__.startswith(version_of("torchrl")), torchrl.__version__
    assert tensordict.__version__.startswith(version_of("tensordict")), tensordict.__version__
    return torchrl


def _batches(seed, count=8, nan_padding=False):
    gen = torch.Generator().manual_seed(seed)
    for dtype, mask_kind in itertools.product(DTYPES, MASK_KINDS):
        for _ in range(count):
            batch = random_batch(gen, dtype, mask_kind, nan_padding=nan_padding, edge_rows=False)
            if batch.bool_mask.any():
                yield batch


def as_torchrl_stores_it(eps):
    """``ClipPPOLoss`` keeps ``clip_value`` as a float32 buffer (``register_coeff_buffer``): in float64 the
    band edge is float32(eps), e.g. 0.20000000298... for 0.2. Ours is given that number."""
    return None if eps is None else float(torch.tensor(eps, dtype=torch.float32))


def _ours(batch, eps):
    leaf = batch.leaf()
    result = vl.dialect_loss("torchrl", leaf, batch.returns, batch.values, batch.mask, as_torchrl_stores_it(eps))
    result.loss.backward()
    return result, leaf.grad


def test_loss_and_gradient_agree_to_rounding(torchrl):
    """Same loss and same gradient as TorchRL's own reduction, to a few ulps, in every dtype and mask kind."""
    for batch in _batches(1):
        eps = batch.eps or None  # 0 means off in TorchRL; tested separately below
        logged, grad = clip_ppo_loss(batch.vpreds, batch.returns, batch.values, batch.bool_mask, eps)
        ours, our_grad = _ours(batch, eps)
        tol = ULPS[batch.vpreds.dtype]
        torch.testing.assert_close(ours.loss, logged["loss_critic"], rtol=tol, atol=tol)
        torch.testing.assert_close(our_grad, grad, rtol=tol, atol=tol)


def test_loss_and_gradient_bit_for_bit(torchrl):
    for batch in _batches(2):
        eps = batch.eps or None
        logged, grad = clip_ppo_loss(batch.vpreds, batch.returns, batch.values, batch.bool_mask, eps)
        ours, our_grad = _ours(batch, eps)
        assert_bitwise(ours.loss, logged["loss_critic"], f"loss_critic {batch.vpreds.dtype}")
        assert_bitwise(our_grad, grad, f"gradient {batch.vpreds.dtype}")


def test_nan_in_padding(torchrl):
    """NaN predictions in padding: TorchRL's ``where`` keeps the loss finite, and so does the dialect's, but the
    gradient is NaN on those padded slots (``where`` passes 0 times the smooth-L1 derivative at NaN) in both.
    On real tokens both gradients agree."""
    for batch in _batches(3, count=5, nan_padding=True):
        logged, grad = clip_ppo_loss(batch.vpreds, batch.returns, batch.values, batch.bool_mask, 0.2)
        ours, our_grad = _ours(batch, 0.2)
        assert torch.isfinite(logged["loss_critic"]) and torch.isfinite(ours.loss)
        tol = ULPS[batch.vpreds.dtype]
        torch.testing.assert_close(ours.loss, logged["loss_critic"], rtol=tol, atol=tol)
        real, nan_slots = batch.bool_mask, torch.isnan(batch.vpreds)
        torch.testing.assert_close(our_grad[real], grad[real], rtol=tol, atol=tol)
        assert torch.isnan(grad[nan_slots]).all() and torch.equal(torch.isnan(our_grad), torch.isnan(grad))


def test_logged_loss_critic_includes_critic_coeff(torchrl):
    """``loss_critic`` = mean(critic_coeff * l): the coefficient is applied per token before the mean."""
    batch = random_batch(torch.Generator().manual_seed(4), torch.float64, "bool", eps=0.2, edge_rows=False)
    batch.mask[0, 0] = True
    for coeff in (1.0, 0.5, 2.0):
        logged, grad = clip_ppo_loss(batch.vpreds, batch.returns, batch.values, batch.bool_mask, 0.2, coeff)
        ours, our_grad = _ours(batch, 0.2)
        torch.testing.assert_close(logged["loss_critic"], coeff * ours.loss, rtol=1e-15, atol=1e-15)
        torch.testing.assert_close(grad, coeff * our_grad, rtol=1e-15, atol=1e-15)


def _padded_batch_that_clips_in_padding():
    """Two rows; the second row's padding holds predictions far outside the band."""
    v = torch.tensor([[0.0, 1.0, 0.1], [0.3, 5.0, -5.0]])
    o = torch.zeros(2, 3)
    r = torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
    m = torch.tensor([[True, True, True], [True, False, False]])
    return Batch(v, r, o, m, 0.2)


def test_value_clip_fraction_counts_padding_in_torchrl(torchrl):
    """The library's own number: 4 of 6 slots have |v - o| > 0.2, two of them padding (2 of 4 real tokens)."""
    b = _padded_batch_that_clips_in_padding()
    logged, _ = clip_ppo_loss(b.vpreds, b.returns, b.values, b.bool_mask, 0.2)
    assert logged["value_clip_fraction"].item() == torch.tensor(4 / 6).item()


def test_value_clip_fraction_as_logged(torchrl):
    b = _padded_batch_that_clips_in_padding()
    logged, _ = clip_ppo_loss(b.vpreds, b.returns, b.values, b.bool_mask, 0.2)
    ours = vl.dialect_loss("torchrl", b.vpreds, b.returns, b.values, b.mask, 0.2)
    assert_bitwise(ours.clipfrac, logged["value_clip_fraction"], "value_clip_fraction")


def test_value_clip_fraction_without_padding_agrees(torchrl):
    for batch in _batches(5, count=5):
        full = Batch(batch.vpreds, batch.returns, batch.values, torch.ones_like(batch.bool_mask), batch.eps or 0.2)
        logged, _ = clip_ppo_loss(full.vpreds, full.returns, full.values, full.mask, full.eps)
        ours = vl.dialect_loss(
            "torchrl", full.vpreds, full.returns, full.values, full.mask, as_torchrl_stores_it(full.eps)
        )
        assert_bitwise(ours.clipfrac, logged["value_clip_fraction"], "value_clip_fraction")


def test_clip_value_none_is_off(torchrl):
    for batch in _batches(6, count=3):
        logged, _ = clip_ppo_loss(batch.vpreds, batch.returns, batch.values, batch.bool_mask, None)
        assert "value_clip_fraction" not in logged
        ours, _ = _ours(batch, None)
        tol = ULPS[batch.vpreds.dtype]
        torch.testing.assert_close(ours.loss, logged["loss_critic"], rtol=tol, atol=tol)


def test_clip_value_zero_is_off(torchrl):
    b = _padded_batch_that_clips_in_padding()
    logged, _ = clip_ppo_loss(b.vpreds, b.returns, b.values, b.bool_mask, 0.0)
    assert "value_clip_fraction" not in logged  # the library's side holds; ours below does not yet
    ours, _ = _ours(b, 0.0)
    torch.testing.assert_close(ours.loss, logged["loss_critic"], rtol=1e-6, atol=1e-6)


def _all_padding_batch():
    v = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.3, 1.0]])
    return Batch(v, torch.zeros(2, 3), torch.full((2, 3), 0.1), torch.zeros(2, 3, dtype=torch.bool), 0.2)


def test_all_padding_batch_logs_zero_in_torchrl(torchrl):
    """``mask.sum().clamp_min(1)``: a batch without a real token logs ``loss_critic = 0`` and a zero gradient."""
    b = _all_padding_batch()
    logged, grad = clip_ppo_loss(b.vpreds, b.returns, b.values, b.bool_mask, 0.2)
    assert logged["loss_critic"].item() == 0.0 and (grad == 0).all()


def test_all_padding_batch_as_logged(torchrl):
    b = _all_padding_batch()
    logged, _ = clip_ppo_loss(b.vpreds, b.returns, b.values, b.bool_mask, 0.2)
    ours = vl.dialect_loss("torchrl", b.vpreds, b.returns, b.values, b.mask, 0.2)
    assert_bitwise(ours.loss, logged["loss_critic"], "loss_critic of an all-padding batch")


def _float64_batch_between_eps_and_its_float32():
    """|v - o| = 0.2 + 1.5e-9: outside a float64 band of 0.2, inside float32(0.2) = 0.20000000298..."""
    o = torch.zeros(1, 4, dtype=torch.float64)
    v = torch.tensor([[0.2 + 1.5e-9, -(0.2 + 1.5e-9), 0.1, 0.0]], dtype=torch.float64)
    return Batch(v, torch.ones(1, 4, dtype=torch.float64), o, torch.ones(1, 4, dtype=torch.bool), 0.2)


def test_float64_band_edge_is_float32_eps_in_torchrl(torchrl):
    b = _float64_batch_between_eps_and_its_float32()
    logged, _ = clip_ppo_loss(b.vpreds, b.returns, b.values, b.bool_mask, 0.2)
    assert logged["value_clip_fraction"].item() == 0.0  # nothing clipped: the band is float32(0.2) wide
    ours = vl.dialect_loss("torchrl", b.vpreds, b.returns, b.values, b.mask, as_torchrl_stores_it(0.2))
    assert_bitwise(ours.clipfrac, logged["value_clip_fraction"], "value_clip_fraction at float32(eps)")


def test_float64_band_edge_as_logged(torchrl):
    b = _float64_batch_between_eps_and_its_float32()
    logged, _ = clip_ppo_loss(b.vpreds, b.returns, b.values, b.bool_mask, 0.2)
    ours = vl.dialect_loss("torchrl", b.vpreds, b.returns, b.values, b.mask, 0.2)
    assert_bitwise(ours.clipfrac, logged["value_clip_fraction"], "value_clip_fraction with clip_value=0.2")
