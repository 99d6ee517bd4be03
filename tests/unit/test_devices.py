"""dtypes and devices: float32, float64, bfloat16 on CPU always, CUDA where present."""

from __future__ import annotations

import pytest
import torch

import valueloss as vl
from tests.batches import random_batch


def cuda(test):
    """Runs only with a CUDA device; marked ``cuda`` (docs/benchmarks/record-gpu.sh selects these)."""
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
    return pytest.mark.cuda(skip(test))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("mode", vl.AGG_MODES)
def test_every_mode_runs_and_backprops_in_every_dtype(dtype, mode):
    # off the kinks: a token exactly on a band edge in bfloat16 is not on it in the float64 reference, and
    # clipfrac counts it on one side only (ties are compared bit for bit in test_anatomy and tests/upstream)
    v, r, o, m, eps = random_batch(5, rows=6, width=17, dtype=dtype, ties=False)
    v = v.requires_grad_(True)
    loss, clipfrac = vl.compute_value_loss(v, r, o, m, eps, mode)
    loss.backward()
    assert v.grad is not None and v.grad.dtype == dtype
    reference, ref_frac = vl.compute_value_loss(v.detach().double(), r.double(), o.double(), m, eps, mode)
    tol = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 5e-2}[dtype]
    assert loss.item() == pytest.approx(reference.item(), rel=tol, abs=tol)
    assert clipfrac.item() == pytest.approx(ref_frac.item(), abs=1e-6 if dtype != torch.bfloat16 else 0.1)


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_cuda_matches_cpu(dtype):
    v, r, o, m, eps = random_batch(6, rows=6, width=17, dtype=dtype)
    for mode in vl.AGG_MODES:
        cpu_loss, cpu_frac = vl.compute_value_loss(v, r, o, m, eps, mode)
        gpu_loss, gpu_frac = vl.compute_value_loss(v.cuda(), r.cuda(), o.cuda(), m.cuda(), eps, mode)
        assert float(gpu_frac) == float(cpu_frac)
        assert float(gpu_loss) == pytest.approx(float(cpu_loss), rel=1e-5 if dtype != torch.bfloat16 else 5e-2)
    for convention in vl.CONVENTIONS:
        cpu = vl.value_loss_grad(v, r, o, eps, convention)
        gpu = vl.value_loss_grad(v.cuda(), r.cuda(), o.cuda(), eps, convention).cpu()
        assert torch.equal(cpu, gpu)  # elementwise ops: the same bits on both devices
