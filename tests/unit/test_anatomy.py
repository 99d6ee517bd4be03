"""The per-token anatomy (valueloss.anatomy): the closed-form gradient ``value_loss_grad`` against torch autograd
(bit for bit, ties included) and against finite differences, and the regions ``value_loss_terms`` assigns."""

from __future__ import annotations

import pytest
import torch

import valueloss as vl
from tests.batches import bits, random_batch
from valueloss.losses import clip_prediction

DTYPES = [torch.float32, torch.float64, torch.bfloat16]


def autograd_of_max_term(v, r, o, eps, convention, grad_output=None):
    """Each library's per-token max term, differentiated by torch itself."""
    v = v.detach().clone().requires_grad_(True)
    v_clipped = clip_prediction(v, o, eps, convention)
    loss_unclipped = (v - r) ** 2
    loss_clipped = (v_clipped - r) ** 2
    # OpenRLHF / CleanRL put the clipped term first; torch's max splits ties symmetrically anyway.
    first, second = (loss_clipped, loss_unclipped) if convention == "delta" else (loss_unclipped, loss_clipped)
    loss = torch.max(first, second)
    loss.backward(torch.ones_like(loss) if grad_output is None else grad_output)
    return v.grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("convention", vl.CONVENTIONS)
def test_closed_form_equals_autograd_bit_for_bit(dtype, convention, device):
    mismatches = 0
    for seed in range(40):
        v, r, o, _, eps = random_batch(seed, rows=16, width=64, dtype=dtype, device=device)
        upstream = None if seed % 2 else torch.rand(v.shape, generator=torch.Generator().manual_seed(seed)).to(dtype)
        if upstream is not None:
            upstream = upstream.to(device)
        want = autograd_of_max_term(v, r, o, eps, convention, upstream)
        got = vl.value_loss_grad(v, r, o, eps, convention, grad_output=upstream)
        mismatches += int((bits(want) != bits(got)).sum())
    assert mismatches == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_constructed_ties_follow_torch_tie_rules(dtype):
    """On the band edge verl's bounds clip gives 3/4 of 2(v - R); clamp and delta give all of it."""
    o = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=dtype)
    eps = 0.5
    v = torch.stack([o[0] + eps, o[1] - eps, o[2] + eps, o[3] - eps])
    r = torch.tensor([3.0, -3.0, -2.0, 4.0], dtype=dtype)
    full = 2 * (v - r)
    torch.testing.assert_close(vl.value_loss_grad(v, r, o, eps, "bounds"), 0.75 * full, rtol=0, atol=0)
    for convention in ("clamp", "delta"):
        torch.testing.assert_close(vl.value_loss_grad(v, r, o, eps, convention), full, rtol=0, atol=0)
    for convention in vl.CONVENTIONS:
        assert torch.equal(
            bits(vl.value_loss_grad(v, r, o, eps, convention)), bits(autograd_of_max_term(v, r, o, eps, convention))
        )


def test_eps_zero_tie_and_symmetric_overshoot():
    """v == v_old with eps = 0: both clip halves tie (5/8 of the gradient); a symmetric overshoot ties the max."""
    v, r, o = torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([0.0])
    assert vl.value_loss_grad(v, r, o, 0.0, "bounds").item() == pytest.approx(0.625 * -2.0)
    # o = 0, eps = 0.2, R = 0.5, v = 0.8: clip(v) = 0.2, both terms are 0.09: the max splits the gradient.
    v, r, o = (
        torch.tensor([0.8], dtype=torch.float64),
        torch.tensor([0.5], dtype=torch.float64),
        torch.zeros(1, dtype=torch.float64),
    )
    terms = vl.value_loss_terms(v, r, o, 0.2)
    assert terms.loss_clipped.item() == pytest.approx(terms.loss_unclipped.item())
    for convention in vl.CONVENTIONS:
        assert torch.equal(
            bits(vl.value_loss_grad(v, r, o, 0.2, convention)), bits(autograd_of_max_term(v, r, o, 0.2, convention))
        )


@pytest.mark.parametrize("mode", vl.AGG_MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_whole_loss_gradient_equals_closed_form_with_aggregation_weights(mode, dtype):
    """Autograd through compute_value_loss == the closed form fed the aggregation's upstream gradient."""
    for seed in range(10):
        v, r, o, m, eps = random_batch(seed, rows=6, width=17, dtype=dtype)
        v_leaf = v.clone().requires_grad_(True)
        loss, _ = vl.compute_value_loss(v_leaf, r, o, m, eps, mode)
        loss.backward()
        # The upstream gradient of each token's max term, as autograd computes it for this mode.
        loss_mat = torch.zeros_like(v, requires_grad=True)
        (0.5 * vl.agg_loss(loss_mat, m, mode)).backward()
        closed = vl.value_loss_grad(v, r, o, eps, "bounds", grad_output=loss_mat.grad)
        assert torch.equal(bits(v_leaf.grad), bits(closed)), f"seed {seed}"


@pytest.mark.parametrize("convention", vl.CONVENTIONS)
def test_finite_differences_away_from_kinks(convention):
    g = torch.Generator().manual_seed(7)
    o = torch.randn(4000, generator=g, dtype=torch.float64)
    r = o + torch.randn(4000, generator=g, dtype=torch.float64) * 2
    v = o + torch.randn(4000, generator=g, dtype=torch.float64)
    eps, h = 0.3, 1e-6
    terms = vl.value_loss_terms(v, r, o, eps, convention)
    # Stay clear of the kinks: band edges, ties between the terms.
    smooth = ((v - o).abs() - eps).abs() > 1e-3
    smooth &= (terms.loss_clipped - terms.loss_unclipped).abs() > 1e-3
    plus = vl.value_loss_terms(v + h, r, o, eps, convention).loss_max
    minus = vl.value_loss_terms(v - h, r, o, eps, convention).loss_max
    numeric = (plus - minus) / (2 * h)
    torch.testing.assert_close(terms.grad[smooth], numeric[smooth], atol=1e-5, rtol=1e-6)
    assert int(smooth.sum()) > 3000


def test_zero_gradient_exactly_where_the_clipped_term_wins():
    v, r, o, m, eps = random_batch(3, rows=32, width=64, eps=0.2)  # ties placed on this eps's band edges
    terms = vl.value_loss_terms(v, r, o, eps)
    assert torch.all(terms.grad[terms.clipped_wins] == 0)
    assert torch.all(terms.grad[~terms.clipped_wins & (v != r)] != 0)
    assert torch.all(terms.region[terms.clipped_wins & ((v - o).abs() > eps)] == vl.REGION_ZERO_GRAD)
