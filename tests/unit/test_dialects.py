"""Each dialect computes what its library computes; the registry says so in words the app shows."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import valueloss as vl

from .conftest import random_batch


def test_registry_is_complete():
    assert list(vl.DIALECTS) == ["verl", "openrlhf", "trl", "cleanrl", "sb3", "slime", "torchrl", "rllib"]
    for d in vl.DIALECTS.values():
        assert d.param_name and d.library and d.aggregation and d.combine
        assert d.clip_convention in {"bounds", "clamp", "delta", "none"}
        assert d.source_url.startswith(f"https://github.com/{d.repo}/blob/")
        assert d.formula.strip()
    assert vl.DIALECTS["verl"].default_eps == 0.5 and vl.DIALECTS["trl"].default_eps == 0.2
    assert vl.DIALECTS["sb3"].default_eps is None and vl.DIALECTS["rllib"].default_eps == 10.0
    assert vl.DIALECTS["verl"].half and not vl.DIALECTS["sb3"].half


def openrlhf_reference(values, old_values, returns, mask, clip_eps):
    """OpenRLHF's published formula restated independently (token-level), for the float32 bit check."""
    clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
    loss = torch.max((clipped - returns) ** 2, (values - returns) ** 2)
    return 0.5 * ((loss * mask).sum() / mask.sum())


def test_openrlhf_is_bit_identical_in_float32():
    for seed in range(30):
        v, r, o, m, eps = random_batch(seed, dtype=torch.float32)
        ours = vl.ValueLoss(eps)(v, o, r, m)
        assert torch.equal(ours, openrlhf_reference(v, o, r, m, eps))
        assert torch.equal(vl.dialect_loss("openrlhf", v, r, o, m, eps).loss, ours)


def test_verl_dialect_is_compute_value_loss_token_mean():
    v, r, o, m, eps = random_batch(1)
    result = vl.dialect_loss("verl", v, r, o, m, eps)
    loss, clipfrac = vl.compute_value_loss(v, r, o, m, eps)
    assert torch.equal(result.loss, loss) and torch.equal(result.clipfrac, clipfrac)


def test_sb3_is_clip_only_and_off_means_plain_mse():
    v, r, o, m, eps = random_batch(2)
    real = m.bool()
    clipped = o + (v - o).clamp(-0.2, 0.2)
    assert float(vl.dialect_loss("sb3", v, r, o, m, 0.2).loss) == pytest.approx(float(((r - clipped)[real] ** 2).mean()))
    assert float(vl.dialect_loss("sb3", v, r, o, m, None).loss) == pytest.approx(float(((r - v)[real] ** 2).mean()))
    # SB3 has no max: it can be below the unclipped error (tokens frozen though they moved the wrong way).
    assert vl.dialect_loss("sb3", v, r, o, m, 0.2).clipfrac is None


def test_rllib_clamps_the_loss_not_the_value():
    v = torch.tensor([[0.0, 0.0]])
    r = torch.tensor([[1.0, 10.0]])
    m = torch.ones_like(v)
    got = vl.dialect_loss("rllib", v, r, v, m, 10.0)
    assert float(got.loss) == pytest.approx((1.0 + 10.0) / 2)  # 100 is clamped to 10
    assert got.clipfrac is None


def test_torchrl_uses_huber_and_counts_clipped_predictions():
    v, r, o, m, _ = random_batch(4, ties=False)
    real = m.bool()
    got = vl.dialect_loss("torchrl", v, r, o, m, 0.2)
    vr, rr, orr = v[real], r[real], o[real]
    clipped = orr + (vr - orr).clamp(-0.2, 0.2)
    expected = torch.max(F.smooth_l1_loss(rr, vr, reduction="none"), F.smooth_l1_loss(rr, clipped, reduction="none")).mean()
    assert float(got.loss) == pytest.approx(float(expected))
    assert float(got.clipfrac) == pytest.approx(float(((vr - orr).abs() > 0.2).double().mean()))
    assert vl.dialect_loss("torchrl", v, r, o, m, None).clipfrac is None


def test_dialects_that_share_a_form_agree_in_float64():
    """verl, OpenRLHF, TRL and CleanRL all compute 0.5 * token-mean of the max (different clip code)."""
    for seed in range(10):
        v, r, o, m, eps = random_batch(seed, ties=False)
        losses = [float(vl.dialect_loss(n, v, r, o, m, eps).loss) for n in ("verl", "openrlhf", "trl", "cleanrl")]
        assert max(losses) - min(losses) <= 1e-12 * max(1.0, abs(losses[0]))
        # slime: no 0.5 and a per-sequence mean over every row
        assert vl.dialect_loss("slime", v, r, o, m, eps).loss.isfinite()


def test_clipping_off_is_refused_where_the_library_has_no_off_switch():
    v, r, o, m, _ = random_batch(0)
    with pytest.raises(ValueError, match="cliprange"):
        vl.dialect_loss("verl", v, r, o, m, None)
    assert vl.dialect_loss("openrlhf", v, r, o, m, None).loss.isfinite()
