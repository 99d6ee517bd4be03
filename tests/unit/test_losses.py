"""The drop-in API of valueloss.losses: ``ValueLoss`` with OpenRLHF 0.11's arguments (dp_size, batch_num_tokens,
global_batch_size), from first principles: the formulas, the dtype rule and the refusals, no upstream needed.

``compute_value_loss`` and ``agg_loss`` are tested against the golden vectors (test_golden.py), an independent
numpy restatement (test_reference.py), hypothesis properties (test_properties.py), in every dtype
(test_devices.py), for bad input (test_validation.py), and bit for bit against the released libraries
(tests/upstream/test_verl.py, test_openrlhf.py).
"""

from __future__ import annotations

import pytest
import torch

import valueloss as vl
from tests.batches import random_batch


def _loss_matrix(v, o, r, eps):
    clipped = o + (v - o).clamp(-eps, eps)
    return torch.max((clipped - r) ** 2, (v - r) ** 2)


@pytest.mark.parametrize("seed", range(5))
def test_global_counts_scale_as_documented(seed):
    v, r, o, m, eps = random_batch(seed, rows=6, width=17)
    per_token = _loss_matrix(v, o, r, eps)
    tokens, rows = float(m.sum()) * 4 + 3, m.shape[0] * 4
    got = vl.ValueLoss(eps)(v, o, r, m, dp_size=4, batch_num_tokens=tokens)
    assert got.item() == pytest.approx(0.5 * float((per_token * m).sum()) / tokens * 4, rel=1e-12)
    got = vl.ValueLoss(eps, token_level_loss=False)(v, o, r, m, dp_size=4, global_batch_size=rows)
    n = m.sum(-1)
    row_means = (per_token * m).sum(-1) / (n + 1e-8)
    assert got.item() == pytest.approx(0.5 * float(row_means[n > 0].sum()) / rows * 4, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_one_rank_with_its_own_counts_equals_no_counts(seed):
    v, r, o, m, eps = random_batch(seed, rows=6, width=17)
    mine = vl.ValueLoss(eps)(v, o, r, m)
    explicit = vl.ValueLoss(eps)(v, o, r, m, batch_num_tokens=m.sum())
    assert explicit.item() == pytest.approx(mine.item(), rel=1e-14)
    seqs = (m.sum(-1) > 0).sum()
    seq = vl.ValueLoss(eps, token_level_loss=False)
    assert seq(v, o, r, m, global_batch_size=seqs).item() == pytest.approx(seq(v, o, r, m).item(), rel=1e-14)


def test_gradient_matches_finite_differences_with_counts():
    # away from the kinks, where finite differences hold
    v, r, o, m, eps = random_batch(1, rows=6, width=17, ties=False)
    v = v.clone().requires_grad_(True)
    module = vl.ValueLoss(eps, token_level_loss=False)
    assert torch.autograd.gradcheck(lambda x: module(x, o, r, m, dp_size=2, global_batch_size=9), (v,))


def test_bf16_sequence_mode_is_float32_and_token_mode_bf16():
    v, r, o, m, eps = (t.to(torch.bfloat16) if torch.is_tensor(t) else t for t in random_batch(2, rows=6, width=17))
    m = m.bool()
    assert vl.ValueLoss(eps, token_level_loss=False)(v, o, r, m).dtype == torch.float32
    assert vl.ValueLoss(eps)(v, o, r, m).dtype == torch.bfloat16
    seq32 = vl.ValueLoss(eps, token_level_loss=False)(v.float(), o.float(), r.float(), m)
    seq16 = vl.ValueLoss(eps, token_level_loss=False)(v, o, r, m)
    assert seq16.item() == pytest.approx(seq32.item(), rel=2e-2)


def test_no_mask_counts_every_token():
    v, r, o, _, eps = random_batch(3, rows=6, width=17)
    ones = torch.ones_like(v, dtype=torch.bool)
    assert vl.ValueLoss(eps)(v, o, r).item() == pytest.approx(vl.ValueLoss(eps)(v, o, r, ones).item(), rel=1e-14)
    seq = vl.ValueLoss(eps, token_level_loss=False)
    assert seq(v, o, r).item() == seq(v, o, r, ones).item()  # exactly an all-True mask
    with_count = vl.ValueLoss(eps)(v, o, r, None, dp_size=2, batch_num_tokens=50)
    assert with_count.item() == pytest.approx(0.5 * float(_loss_matrix(v, o, r, eps).sum()) / 50 * 2, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dp_size": 0}, ValueError, "dp_size"),
        ({"dp_size": 2.0}, ValueError, "dp_size"),
        ({"dp_size": True}, ValueError, "dp_size"),
        ({"batch_num_tokens": 0}, ValueError, "batch_num_tokens"),
        ({"batch_num_tokens": float("nan")}, ValueError, "batch_num_tokens"),
        ({"batch_num_tokens": "12"}, TypeError, "batch_num_tokens"),
        ({"global_batch_size": -3}, ValueError, "global_batch_size"),
        ({"dp_size": 2}, ValueError, "batch_num_tokens"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, error, match):
    v, r, o, m, eps = random_batch(0, rows=6, width=17)
    with pytest.raises(error, match=match):
        vl.ValueLoss(eps)(v, o, r, m, **kwargs)


def test_several_ranks_in_sequence_mode_need_the_sequence_count():
    v, r, o, m, eps = random_batch(0, rows=6, width=17)
    with pytest.raises(ValueError, match="global_batch_size"):
        vl.ValueLoss(eps, token_level_loss=False)(v, o, r, m, dp_size=2, batch_num_tokens=10)
