"""The C loop for small CPU batches (valueloss._cpass): the compiled pass's outputs bit for bit, taken
by a default call on a small batch, and a clean fallback where no C compiler works."""

from __future__ import annotations

import pytest
import torch

import valueloss._cpass as cpass
import valueloss.fused as fused
from valueloss.fused import fused_value_loss

from .conftest import random_batch
from .test_fused import assert_bitwise, assert_same, off_edge_ties, run_both

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
needs_loop = pytest.mark.skipif(cpass.library() is None, reason=f"no C loop here: {cpass.status()}")


def with_garbage(dtype, rows=6, width=67, seed=0):
    """Random tokens plus ties, band edges, signed zeros, NaN / inf / huge values, odd mask values."""
    v, r, o, m, eps = off_edge_ties(dtype, rows=rows, width=width, seed=seed)
    v[3, :3] = o[3, :3] + eps  # band edges: counted as needing the exact backward
    v[4, 5], r[4, 6], o[4, 7] = float("nan"), float("inf"), float("nan")  # in real tokens
    v[5, 9] = 1e30 if dtype == torch.float32 else 1e200  # a squared term beyond 2^120
    return v, r, o, m.to(dtype), eps


@needs_loop
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["tokens", "rows", "loss"])
def test_loop_equals_the_compiled_pass(dtype, kind):
    for seed in range(3):
        v, r, o, m, eps = with_garbage(dtype, seed=seed)
        m_odd = m.clone()
        m_odd[0, 0] = 2.0  # a mask value the pass must count as bad
        args = (v, r, o, m_odd) + ((fused._ones_column(v),) if kind == "rows" else ())
        want = fused._run_pass(kind, "compiled", *args, eps)
        got = cpass.run_pass(kind, v, r, o, m_odd, eps)
        assert len(got) == len(want)
        torch.testing.assert_close(got[0][0], want[0][0].to(torch.float64), equal_nan=True)  # sums: any order
        counts = [1, 2, 4] if kind == "loss" else [1, 2, 3, 4]  # the forward-only pass counts no care tokens
        assert torch.equal(got[0][counts], want[0][counts].to(torch.float64))  # counts: exact
        if kind != "tokens":
            torch.testing.assert_close(got[1], want[1], equal_nan=True)
            assert torch.equal(got[2], want[2])
        if kind != "loss":
            assert_bitwise(got[-1], want[-1], "unit gradient")


@needs_loop
def test_a_default_small_call_runs_the_loop_and_a_large_one_does_not(monkeypatch):
    calls = []
    original = cpass.run_pass
    monkeypatch.setattr(cpass, "run_pass", lambda *a: calls.append(a[0]) or original(*a))
    v, r, o, m, eps = random_batch(1, rows=8, width=128, dtype=torch.float32)
    x = v.clone().requires_grad_(True)
    fused_value_loss(x, r, o, m, eps)[0].backward()
    assert calls == ["tokens"]
    big = fused.SMALL_TOKENS // 64 + 1
    v, r, o, m, eps = random_batch(2, rows=64, width=big, dtype=torch.float32)
    fused_value_loss(v.clone().requires_grad_(True), r, o, m, eps)[0].backward()
    assert calls == ["tokens"]  # beyond SMALL_TOKENS "auto" runs inductor's pass


@needs_loop
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scale_is_autograds_product(dtype):
    u = torch.randn(1000, dtype=dtype) * torch.logspace(-30, 30, 1000, dtype=dtype)
    for weight in (0.5 / 777, 3.0, 1e-20):
        w = float(torch.tensor(weight, dtype=dtype))
        assert_bitwise(cpass.scale(u.clone(), w), u * w, "scaled gradient")


def test_without_a_compiler_the_compiled_pass_runs_and_the_report_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(cpass, "_status", {"state": "not built"})
    monkeypatch.setattr(cpass, "_library", None)
    monkeypatch.setattr(cpass, "_functions", {})
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("VALUELOSS_CACHE_DIR", str(tmp_path / "cache"))
    assert cpass.library() is None
    assert cpass.status()["state"] == "unavailable" and "no-such-compiler" in cpass.status()["error"]
    v, r, o, m, eps = random_batch(3, rows=4, width=16, dtype=torch.float32)
    for backend in ("auto", "c"):
        assert_same(*run_both(v, r, o, m, eps, backend=backend), torch.float32)
    loop = [row for row in fused.fused_backend_report() if row["pass"] == "c-loop"]
    assert loop and loop[0]["state"] == "unavailable"


def test_builds_into_the_cache_folder_once(monkeypatch, tmp_path):
    compiler = cpass._compiler()
    if compiler is None:
        pytest.skip("no C compiler here")
    monkeypatch.setenv("VALUELOSS_CACHE_DIR", str(tmp_path))
    first = cpass._build(compiler)
    assert first.parent == tmp_path and first.exists()
    stamp = first.stat().st_mtime_ns
    assert cpass._build(compiler) == first and first.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary files left behind
