"""The suite's one random padded-batch generator (tests/batches.py) really makes the cases the tests rely on."""

from __future__ import annotations

import pytest
import torch

from tests.batches import DTYPES, MASK_KINDS, assert_bitwise, random_batch


def test_the_ties_are_there():
    """Tokens on both band edges, at v == R, at v == o, and R on the upper edge: else the ties are untested."""
    gen = torch.Generator().manual_seed(11)
    upper = lower = v_is_r = v_is_o = r_on_edge = 0
    for _ in range(50):
        b = random_batch(gen, torch.float32, "bool", edge_rows=False)
        if b.eps == 0:
            continue
        upper += int((b.vpreds == b.values + b.eps).sum())
        lower += int((b.vpreds == b.values - b.eps).sum())
        v_is_r += int((b.vpreds == b.returns).sum())
        v_is_o += int((b.vpreds == b.values).sum())
        r_on_edge += int((b.returns == b.values + b.eps).sum())
    assert min(upper, lower, v_is_r, v_is_o, r_on_edge) > 20, (upper, lower, v_is_r, v_is_o, r_on_edge)


def test_without_ties_no_token_sits_on_a_kink():
    v, r, o, _, eps = random_batch(1, rows=32, width=64, eps=0.2, ties=False)
    assert not ((v - o).abs() == eps).any() and not (v == r).any()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_edge_rows_right_padding_and_nan_padding(dtype):
    for seed in range(20):
        b = random_batch(seed, dtype, "bool", rows=5, width=7, nan_padding=True)
        m = b.mask
        assert not m[0].any() and m[-1].all()  # the fully masked row and the full row
        lengths = m.sum(-1)
        assert torch.equal(m, torch.arange(7)[None, :] < lengths[:, None])  # right padding only
        assert torch.isnan(b.vpreds[~m]).all() and not torch.isnan(b.vpreds[m]).any()
        assert b.vpreds.dtype == b.returns.dtype == b.values.dtype == dtype


def test_mask_kinds_and_shapes():
    want = {"bool": torch.bool, "int": torch.int64, "float": torch.float32, "float-like": torch.bfloat16}
    for kind in MASK_KINDS:
        b = random_batch(3, torch.bfloat16, kind, max_rows=4, max_len=5)
        assert b.mask.dtype == want[kind]
        assert 1 <= b.vpreds.shape[0] <= 4 and 1 <= b.vpreds.shape[1] <= 5
    assert random_batch(3, rows=2, width=9).vpreds.shape == (2, 9)


def test_same_seed_same_batch_and_bitwise_sees_signed_zero():
    a, b = random_batch(7, torch.float32), random_batch(7, torch.float32)
    for x, y in zip(a[:4], b[:4], strict=True):
        assert_bitwise(x, y)
    with pytest.raises(AssertionError):
        assert_bitwise(torch.tensor([0.0]), torch.tensor([-0.0]))
