"""The golden vectors (float64, from each library's published formula) reproduced to 1e-12."""

from __future__ import annotations

import math

import pytest
import torch

import valueloss as vl

from .conftest import golden_cases, golden_tensor

CASES = list(golden_cases())
IDS = [f"{name}-eps{eps}" for name, eps, _, _ in CASES]


def assert_matches(got, want, tol=1e-12):
    got = float(got)
    if want is None:
        assert math.isnan(got), f"expected NaN (the library propagates it), got {got}"
    else:
        assert got == pytest.approx(want, abs=tol, rel=0), f"got {got!r}, want {want!r}"


def inputs(case, dtype=torch.float64, device="cpu"):
    return [golden_tensor(case[k], dtype, device) for k in ("vpreds", "returns", "values", "response_mask")]


@pytest.mark.parametrize(("name", "eps", "case", "want"), CASES, ids=IDS)
def test_verl_every_mode_and_clipfrac(name, eps, case, want, device):
    v, r, o, m = inputs(case, device=device)
    for mode in vl.AGG_MODES:
        loss, _ = vl.compute_value_loss(v, r, o, m, float(eps), mode)
        assert_matches(loss, want["verl"][mode])
    _, clipfrac = vl.compute_value_loss(v, r, o, m, float(eps))
    assert float(clipfrac) == want["verl"]["vf_clipfrac"]  # exact: an integer count over N + 1e-8


@pytest.mark.parametrize(("name", "eps", "case", "want"), CASES, ids=IDS)
def test_openrlhf_both_aggregations_and_no_clip(name, eps, case, want, device):
    v, r, o, m = inputs(case, device=device)
    assert_matches(vl.ValueLoss(float(eps), token_level_loss=True)(v, o, r, m), want["openrlhf_token_level"])
    assert_matches(vl.ValueLoss(float(eps), token_level_loss=False)(v, o, r, m), want["openrlhf_seq_level"])
    assert_matches(vl.ValueLoss(None)(v, o, r, m), want["openrlhf_no_clip"])


@pytest.mark.parametrize(("name", "eps", "case", "want"), CASES, ids=IDS)
def test_other_dialects(name, eps, case, want, device):
    v, r, o, m = inputs(case, device=device)
    trl = vl.dialect_loss("trl", v, r, o, m, float(eps))
    if want["trl_vf_loss"] is None and not torch.isnan(torch.where(m.bool(), v, 0)).any():
        # The golden NaN applies TRL's formula to raw padded predictions; PPOTrainer zeroes them first
        # (masked_fill; checked against trl 1.12.0 in tests/upstream/test_trl.py), so a NaN only in padded
        # predictions never reaches TRL's loss: it is the mean over the real tokens.
        real = m.bool()
        e = float(eps)
        expected = 0.5 * torch.max((v - r) ** 2, (torch.clamp(v, o - e, o + e) - r) ** 2)[real].mean()
        assert_matches(trl.loss, float(expected))
    else:
        assert_matches(trl.loss, want["trl_vf_loss"])
    assert float(trl.clipfrac) == want["trl_vf_clipfrac"]
    assert_matches(vl.dialect_loss("cleanrl", v, r, o, m, float(eps)).loss, want["cleanrl_valid_tokens"])
    assert_matches(vl.dialect_loss("sb3", v, r, o, m, float(eps)).loss, want["sb3_valid_tokens"])
    assert_matches(vl.dialect_loss("slime", v, r, o, m, float(eps)).loss, want["slime_no_half"])


@pytest.mark.parametrize(("name", "eps", "case", "want"), CASES, ids=IDS)
def test_prediction_clip_fraction_and_per_token_gradient(name, eps, case, want, device):
    v, r, o, m = inputs(case, device=device)
    terms = vl.value_loss_terms(v, r, o, float(eps))
    pred_frac = (terms.prediction_clipped.double() * m).sum() / m.sum()
    assert float(pred_frac) == pytest.approx(want["pred_clipfrac"], abs=1e-15)
    grad = torch.where(m.bool(), terms.grad, 0.0).cpu()
    expected = torch.tensor(want["per_token_grad_of_max_term"], dtype=torch.float64)
    torch.testing.assert_close(grad, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("name", "eps", "case", "want"), CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_tracks_golden(name, eps, case, want, dtype):
    """float32 / bf16 inputs give the golden numbers within their precision (the padded 100.0 stays masked)."""
    v, r, o, m = inputs(case, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    for mode in vl.AGG_MODES:
        loss, _ = vl.compute_value_loss(v, r, o, m, float(eps), mode)
        expected = want["verl"][mode]
        if expected is None:
            assert math.isnan(float(loss))
        else:
            assert float(loss) == pytest.approx(expected, rel=tol, abs=tol)
