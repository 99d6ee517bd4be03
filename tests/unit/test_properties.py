"""Hypothesis properties of the clipped value loss that must hold for every batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import valueloss as vl

finite = st.floats(min_value=-50, max_value=50, allow_nan=False, allow_infinity=False, width=32)
eps_values = st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 3.0])


@st.composite
def batches(draw, dtype=torch.float64):
    rows = draw(st.integers(1, 5))
    width = draw(st.integers(1, 9))
    shape = (rows, width)
    values = draw(arrays(np.float32, shape, elements=finite))
    delta = draw(arrays(np.float32, shape, elements=st.floats(-3, 3, width=32)))
    returns = draw(arrays(np.float32, shape, elements=finite))
    mask = draw(arrays(np.bool_, shape))
    eps = draw(eps_values)
    # Force exact ties on some tokens: on the band edges and at v == v_old.
    tie = draw(arrays(np.int8, shape, elements=st.integers(0, 4)))
    o = torch.from_numpy(values).to(dtype)
    v = o + torch.from_numpy(delta).to(dtype)
    t = torch.from_numpy(tie)
    v = torch.where(t == 1, o + eps, torch.where(t == 2, o - eps, torch.where(t == 3, o, v)))
    r = torch.from_numpy(returns).to(dtype)
    return v, r, o, torch.from_numpy(mask).to(torch.float32), eps


@settings(max_examples=150, deadline=None)
@given(batches())
def test_clip_fraction_equals_zero_gradient_share_under_bounds(batch):
    """vf_clipfrac counts exactly the tokens whose gradient is zero (a token already at R aside:
    its gradient is zero whichever term wins)."""
    v, r, o, m, eps = batch
    _, clipfrac = vl.compute_value_loss(v, r, o, m, eps)
    terms = vl.value_loss_terms(v, r, o, eps, "bounds")
    real = m.bool()
    zero_grad = terms.grad == 0
    away_from_target = v != r
    assert torch.equal((zero_grad & away_from_target)[real], (terms.clipped_wins & away_from_target)[real])
    assert torch.all(zero_grad[terms.clipped_wins])
    n = int(real.sum())
    counted = int(terms.clipped_wins[real].sum())
    assert float(clipfrac) == float(torch.tensor(float(counted)) / (n + torch.tensor(1e-8)))


@settings(max_examples=100, deadline=None)
@given(batches(), st.sampled_from(vl.AGG_MODES))
def test_huge_eps_equals_unclipped(batch, mode):
    v, r, o, m, _ = batch
    eps = 1e6
    loss, clipfrac = vl.compute_value_loss(v, r, o, m, eps, mode)
    unclipped = 0.5 * vl.agg_loss((v - r) ** 2, m, mode)
    assert float(clipfrac) == 0.0
    assert (math.isnan(float(loss)) and math.isnan(float(unclipped))) or float(loss) == float(unclipped)


@settings(max_examples=150, deadline=None)
@given(batches(), st.sampled_from(vl.AGG_MODES))
def test_loss_at_least_half_the_unclipped_loss(batch, mode):
    v, r, o, m, eps = batch
    loss, _ = vl.compute_value_loss(v, r, o, m, eps, mode)
    unclipped = 0.5 * vl.agg_loss((v - r) ** 2, m, mode)
    if math.isnan(float(unclipped)):  # all-masked: both NaN, as verl
        assert math.isnan(float(loss))
    else:
        assert float(loss) >= float(unclipped) * (1 - 1e-12)


@settings(max_examples=150, deadline=None)
@given(batches(dtype=torch.float32))
def test_bounds_and_delta_conventions_agree_within_one_ulp(batch):
    v, _, o, _, eps = batch
    bounds = vl.clip_bounds(v, o, eps)
    delta = vl.clip_delta(v, o, eps)
    # one ulp of the larger magnitude (the delta form rounds twice: v - o, then o + clamp)
    ulp = torch.finfo(torch.float32).eps * torch.maximum(bounds.abs(), o.abs()).clamp(
        min=torch.finfo(torch.float32).tiny
    )
    assert torch.all((bounds - delta).abs() <= ulp)


@settings(max_examples=100, deadline=None)
@given(batches(), st.randoms(use_true_random=False))
def test_token_mean_is_invariant_to_token_permutation(batch, rnd):
    v, r, o, m, eps = batch
    loss, clipfrac = vl.compute_value_loss(v, r, o, m, eps, "token-mean")
    perm = list(range(v.numel()))
    rnd.shuffle(perm)
    idx = torch.tensor(perm)

    def shuffle(x):
        return x.flatten()[idx].reshape(x.shape)

    loss_p, clipfrac_p = vl.compute_value_loss(shuffle(v), shuffle(r), shuffle(o), shuffle(m), eps, "token-mean")
    if math.isnan(float(loss)):
        assert math.isnan(float(loss_p))
    else:
        # Only the summation order changes: equal up to float64 rounding.
        assert abs(float(loss_p) - float(loss)) <= 1e-12 * max(1.0, abs(float(loss)))
    assert float(clipfrac_p) == float(clipfrac)


@settings(max_examples=100, deadline=None)
@given(batches())
def test_openrlhf_token_level_equals_verl_token_mean_in_float64(batch):
    v, r, o, m, eps = batch
    if m.sum() == 0:
        return
    verl, _ = vl.compute_value_loss(v, r, o, m, eps, "token-mean")
    openrlhf = vl.ValueLoss(eps)(v, o, r, m)
    assert abs(float(verl) - float(openrlhf)) <= 1e-9 * max(1.0, abs(float(verl)))


@settings(max_examples=100, deadline=None)
@given(batches())
def test_regions_partition_the_tokens_consistently(batch):
    v, r, o, _, eps = batch
    terms = vl.value_loss_terms(v, r, o, eps)
    inside = terms.region == vl.REGION_INSIDE
    assert torch.all((v[inside] - o[inside]).abs() < eps)
    assert torch.all(terms.loss_clipped[inside] == terms.loss_unclipped[inside])
    assert torch.all(terms.clipped_wins[terms.region == vl.REGION_ZERO_GRAD])
    restoring = (terms.region == vl.REGION_AWAY) | (terms.region == vl.REGION_OVERSHOT)
    assert torch.all(terms.loss_unclipped[restoring] > terms.loss_clipped[restoring])


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@settings(max_examples=150, deadline=None)
@given(
    batches(),
    st.sampled_from([torch.float32, torch.float64]),
    st.sampled_from(vl.AGG_MODES),
    st.sampled_from(["auto", "c", "compiled"]),
    st.sampled_from([torch.float32, torch.bool, torch.int64]),
    st.sampled_from([1.0, 0.3, -2.0]),
)
def test_fused_gradient_is_autograds_bit_for_bit(batch, dtype, mode, backend, mask_dtype, upstream):
    """Every fused path (the C loop of a default small call, inductor's pass) hands back autograd's
    gradient of verl's eager formula bit for bit and the same clip fraction, ties included."""
    v, r, o, m, eps = (x.to(dtype) if isinstance(x, torch.Tensor) else x for x in batch)
    m = m.to(mask_dtype)
    results = []
    for fn, extra in ((vl.compute_value_loss, {}), (vl.fused_value_loss, {"backend": backend})):
        x = v.clone().requires_grad_(True)
        loss, frac = fn(x, r, o, m, eps, mode, **extra)
        (grad,) = torch.autograd.grad(loss * upstream, x)
        results.append((loss.detach(), frac, grad))
    (want_loss, want_frac, want_grad), (loss, frac, grad) = results
    assert loss.dtype == want_loss.dtype and torch.equal(frac, want_frac)
    bits = {torch.float32: torch.int32, torch.float64: torch.int64}[dtype]
    assert torch.equal(torch.isnan(grad), torch.isnan(want_grad))
    assert torch.equal(grad.nan_to_num(0).view(bits), want_grad.nan_to_num(0).view(bits))
    if math.isnan(want_loss.item()):
        assert math.isnan(loss.item())
    else:
        assert loss.item() == pytest.approx(want_loss.item(), rel=1e-5 if dtype == torch.float32 else 1e-12, abs=1e-30)
