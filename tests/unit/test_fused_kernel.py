"""The fused Triton kernel (valueloss.fused.kernel) against verl's and OpenRLHF's eager formulas.

Without a GPU, Triton's interpreter (``TRITON_INTERPRET=1``, set here before the kernel is imported) runs
the very kernel on CPU tensors: the gradient bit for bit, the clip fraction identical, the loss within the
sum order's rounding, in every mode, with and without the data-parallel arguments, at band-edge ties,
eps = 0, fully masked rows, NaN in padding and odd sizes. With a GPU the same tests run compiled on CUDA.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():  # before the kernel module is imported (it is, lazily, by the first call)
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

import valueloss as vl  # noqa: E402
import valueloss.fused as fused  # noqa: E402
from tests.batches import random_batch  # noqa: E402
from valueloss.fused import dispatch, kernel  # noqa: E402

from .test_fused import assert_bitwise, assert_same, off_edge_ties  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# the interpreter's numpy multiplies the inf / NaN planted in padding as the GPU does, but says so
pytestmark = [
    pytest.mark.triton,
    pytest.mark.filterwarnings(
        "ignore:overflow encountered:RuntimeWarning", "ignore:invalid value encountered:RuntimeWarning"
    ),
]
DP = {"dp_size": 4, "batch_num_tokens": 100, "global_batch_size": 7, "loss_scale_factor": 9}


def on_device(*tensors):
    return tuple(t.to(DEVICE) for t in tensors)


def kernel_vs_eager(v, r, o, m, eps, mode="token-mean", scale=1.0, **kw):
    """(eager, fused) results of ``loss * scale`` backpropagated, the fused one through the kernel."""
    v, r, o, m = on_device(v, r, o, m)
    out = []
    for fn, extra in ((vl.compute_value_loss, {}), (vl.fused_value_loss, {"backend": "triton"})):
        x = v.detach().clone().requires_grad_(True)
        loss, frac = fn(x, r, o, m, eps, mode, **kw, **extra)
        (grad,) = torch.autograd.grad(loss * scale, x)
        out.append((loss.detach().cpu(), frac.cpu(), grad.cpu()))
    return out


def dp_args(mode):
    """verl's data-parallel arguments a mode takes (its global count, and the norm's factor)."""
    keys = {"token-mean": ("batch_num_tokens",), "token-sum": ()}.get(mode, ("global_batch_size",))
    extra = ("loss_scale_factor",) if mode == "seq-mean-token-sum-norm" else ()
    return {"dp_size": DP["dp_size"], **{k: DP[k] for k in keys + extra}}


# ------------------------------------------------------------------ rounding to bfloat16


@triton.jit
def _round_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    keep = offs < n
    tl.store(out_ptr + offs, kernel._rne_bf16(tl.load(x_ptr + offs, mask=keep, other=0.0)), mask=keep)


def test_bf16_rounding_helper_is_torchs_round_to_nearest_even():
    """The interpreter truncates fp32 to bf16 when it stores; the kernel rounds first, as torch converts."""
    g = torch.Generator().manual_seed(0)
    bits = torch.randint(-(2**31), 2**31, (50_000,), generator=g, dtype=torch.int64).to(torch.int32)
    halfway = (torch.randint(0, 2**16, (5_000,), generator=g, dtype=torch.int64) << 16 | 0x8000).to(torch.int32)
    special = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 3.3895314e38, -3.3895314e38, 1e-40, 2.0**-133])
    x = torch.cat([bits.view(torch.float32), halfway.view(torch.float32), special]).to(DEVICE)
    out = torch.empty_like(x)
    _round_kernel[(triton.cdiv(x.numel(), 8192),)](x, out, x.numel(), BLOCK=8192)
    real = ~torch.isnan(x)
    assert torch.isnan(out[~real]).all()
    assert_bitwise(out[real].to(torch.bfloat16), x[real].to(torch.bfloat16), "rounded to bfloat16")
    assert torch.equal(out[real].to(torch.bfloat16).float(), out[real])  # exactly representable: stores exact


# ------------------------------------------------------------------ verl's compute_value_loss


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("dp", [False, True], ids=["local", "dp"])
@pytest.mark.parametrize("mode", vl.AGG_MODES)
def test_every_mode_with_and_without_dp_arguments(mode, dp, dtype):
    v, r, o, m, eps = random_batch(1, rows=5, width=23, dtype=dtype)  # band-edge ties and an empty row
    for scale in (1.0, 0.37, -2.0):
        assert_same(*kernel_vs_eager(v, r, o, m, eps, mode, scale, **(dp_args(mode) if dp else {})), dtype)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_float64_and_float16(mode, dtype):
    v, r, o, m, eps = random_batch(2, rows=4, width=19, dtype=dtype)
    assert_same(*kernel_vs_eager(v, r, o, m, eps, mode, 0.7), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mode", vl.AGG_MODES)
def test_band_edges_eps_zero_masked_rows_and_nan_padding(mode, dtype):
    v, r, o, m, eps = off_edge_ties(dtype)  # ties, v == R, signed zeros, NaN / inf in padding, an empty row
    v[0, :4] = o[0, :4] + eps  # exactly on the upper band edge
    v[3, :4] = o[3, :4] - eps  # and the lower one
    for scale in (1.0, 3.0):
        assert_same(*kernel_vs_eager(v, r, o, m, eps, mode, scale), dtype)
    v0 = v.clone()
    v0[:, ::3] = o[:, ::3]  # eps = 0: the band is one point, every token on it an edge
    assert_same(*kernel_vs_eager(v0, r, o, m, 0.0, mode, 0.5), dtype)


@pytest.mark.parametrize("shape", [(1, 1), (3, 1000), (1000, 3), (2, 5000)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_odd_sizes(shape):
    """One token; few long rows (2x5000 is cut into row chunks); many short rows (several per program)."""
    rows, width = shape
    v, r, o, m, eps = random_batch(3, rows=rows, width=width, dtype=torch.float32)
    for mode in ("token-mean", "seq-mean-token-sum"):
        assert_same(*kernel_vs_eager(v, r, o, m, eps, mode, 0.37), torch.float32)


def test_layout_cuts_few_rows_into_chunks_and_packs_short_rows():
    cpu = torch.device("cpu")
    few = kernel.layout(2, 5000, cpu)
    assert few.chunks == 2 and few.grid == (1, 2) and few.chunk_cols % few.block == 0
    many = kernel.layout(1000, 3, cpu)
    assert many.block == 16 and many.rows_each == 1024 and many.grid == (1, 1)
    forced = kernel.layout(3, 1000, cpu, chunk_cols=64)
    assert forced.chunks == 16 and forced.grid == (1, 16)


def test_forced_chunks_change_no_bit_of_the_gradient_or_the_counts(monkeypatch):
    v, r, o, m, eps = random_batch(4, rows=3, width=300, dtype=torch.float32)
    want = kernel_vs_eager(v, r, o, m, eps, "seq-mean-token-mean", 0.37)
    original = kernel.layout
    monkeypatch.setattr(kernel, "layout", lambda rows, cols, device, chunk_cols=None: original(rows, cols, device, 32))
    got = kernel_vs_eager(v, r, o, m, eps, "seq-mean-token-mean", 0.37)
    assert_same(want[0], got[1], torch.float32)


@pytest.mark.parametrize(
    "mask_dtype", [torch.bool, torch.uint8, torch.int64, torch.float32, torch.float64, torch.bfloat16]
)
def test_mask_dtypes_follow_verls_promotion(mask_dtype):
    v, r, o, m, eps = random_batch(5, rows=4, width=19, dtype=torch.float32)
    for mode in ("token-mean", "seq-mean-token-mean"):
        assert_same(*kernel_vs_eager(v, r, o, m.to(mask_dtype), eps, mode, 0.5), torch.float32)


def test_a_mask_value_other_than_0_or_1_is_refused():
    v, r, o, m, eps = random_batch(6, rows=6, width=17, dtype=torch.float32)
    m[1, 1] = 2.0
    with pytest.raises(ValueError, match="response_mask must hold only 0 and 1"):
        vl.fused_value_loss(*on_device(v, r, o, m), eps, backend="triton")


def test_deterministic_and_a_second_backward_recomputes_into_a_fresh_buffer(monkeypatch):
    v, r, o, m, eps = on_device(*random_batch(7, rows=6, width=40, dtype=torch.float32)[:4]) + (0.2,)
    written = []
    original = kernel.forward
    monkeypatch.setattr(kernel, "forward", lambda call, **kw: written.append(original(call, **kw)) or written[-1])
    x = v.clone().requires_grad_(True)
    loss, frac = vl.fused_value_loss(x, r, o, m, eps, backend="triton")
    (first,) = torch.autograd.grad(loss * 0.3, x, retain_graph=True)
    assert first.data_ptr() == written[0][-1].data_ptr()  # the forward's buffer, handed over
    (second,) = torch.autograd.grad(loss * 0.3, x)
    assert second.data_ptr() != first.data_ptr()
    assert_bitwise(second, first)
    again, frac_again = vl.fused_value_loss(v, r, o, m, eps, backend="triton")
    assert_bitwise(again, loss.detach(), "loss") and assert_bitwise(frac_again, frac, "clip fraction")


def test_no_value_is_read_back_to_the_host(monkeypatch):
    """What the GPU path must never do (wait for the device), checked on CPU: with a bool mask nothing
    in a forward+backward reads a tensor's value into Python."""
    v, r, o, m, eps = random_batch(8, rows=4, width=33, dtype=torch.float32)
    m = m.bool()
    grads = []
    for mode in ("token-mean", "seq-mean-token-mean"):
        x = v.clone().requires_grad_(True)
        with monkeypatch.context() as patch:
            for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__"):
                patch.setattr(torch.Tensor, name, _refuse(name))
            loss, _ = vl.fused_value_loss(x, r, o, m, eps, mode, backend="triton")
            (grad,) = torch.autograd.grad(loss * 0.5, x)
        grads.append(grad)
        _, _, want = kernel_vs_eager(v, r, o, m, eps, mode, 0.5)[0]
        assert_bitwise(grad, want)


def _refuse(name):
    def refuse(*args, **kwargs):
        raise AssertionError(f"Tensor.{name}: a host read on the Triton path")

    return refuse


def test_backend_choice_and_report(monkeypatch):
    monkeypatch.setattr(dispatch, "_RAN", type(dispatch._RAN)())
    v, r, o, m, eps = random_batch(9, rows=6, width=17, dtype=torch.float32)
    vl.fused_value_loss(*on_device(v, r, o, m), eps, backend="triton")
    assert [row["backend"] for row in fused.fused_backend_report() if row["state"] == "ran"] == ["triton"]
    if DEVICE == "cpu":
        assert dispatch.resolve_backend("auto", v) == "auto"  # CPU tensors: the C loop / inductor
        monkeypatch.delenv("TRITON_INTERPRET")
        with pytest.raises(ValueError, match="CUDA tensors, or on CPU tensors under TRITON_INTERPRET=1"):
            vl.fused_value_loss(v, r, o, m, eps, backend="triton")
    else:
        assert dispatch.resolve_backend("auto", v.cuda()) == "triton"


# ------------------------------------------------------------------ OpenRLHF's ValueLoss


@pytest.mark.parametrize("clip_eps", [0.2, None])
@pytest.mark.parametrize("token_level", [True, False])
@pytest.mark.parametrize("masked", [True, False])
def test_openrlhfs_module_through_the_same_kernel(clip_eps, token_level, masked):
    v, r, o, m, _ = on_device(*random_batch(10, rows=5, width=23, dtype=torch.float32)[:4]) + (None,)
    mask = m if masked else None
    cases = [{}]
    if masked:
        cases.append({"dp_size": 2, "batch_num_tokens": 50, "global_batch_size": 6})
    for kw in cases:
        got, want = [], []
        for module, out in (
            (fused.FusedValueLoss(clip_eps, token_level), got),
            (vl.ValueLoss(clip_eps, token_level), want),
        ):
            x = v.clone().requires_grad_(True)
            loss = module(x, o, r, mask, **kw)
            out.extend([loss.detach().cpu(), torch.autograd.grad(loss * 0.37, x)[0].cpu()])
        assert got[0].dtype == want[0].dtype and got[0].item() == pytest.approx(want[0].item(), rel=1e-5)
        assert_bitwise(got[1], want[1])


def test_openrlhfs_module_ties_and_bfloat16():
    for dtype in (torch.float32, torch.bfloat16):
        v, r, o, m, eps = off_edge_ties(dtype)
        v[0, :4] = o[0, :4] + eps
        got, want = [], []
        for module, out in ((fused.FusedValueLoss(eps, False), got), (vl.ValueLoss(eps, False), want)):
            x = v.clone().to(DEVICE).requires_grad_(True)
            loss = module(x, o.to(DEVICE), r.to(DEVICE), m.to(DEVICE))
            out.append(torch.autograd.grad(loss * 3.0, x)[0].cpu())
        assert_bitwise(got[0], want[0])


def test_openrlhfs_module_refuses_what_openrlhfs_refuses():
    v, r, o, m, _ = on_device(*random_batch(11, rows=6, width=17, dtype=torch.float32)[:4]) + (None,)
    module = fused.FusedValueLoss(0.2)
    bad = m.clone()
    bad[0, 0] = 3.0
    with pytest.raises(ValueError, match="action_mask must hold only 0 and 1"):
        module(v, o, r, bad)
    with pytest.raises(ValueError, match="batch_num_tokens .* is required"):
        module(v, o, r, m, dp_size=2)
    with pytest.raises(ValueError, match="old_values has shape"):
        module(v, o[:, :-1], r, m)


def test_the_bench_times_the_bare_kernel_beside_the_fused_call():
    """``fused-kernel``: the kernel's launches without autograd, next to ``fused`` (on CPU under the interpreter)."""
    from valueloss.tools import bench

    config = bench.BenchConfig(sizes=((2, 16),), device=DEVICE, impls=("fused", "fused-kernel"), repeats=1)
    result = bench.run_benchmark(bench.BenchConfig(**{**config.__dict__, "min_sample_s": 1e-4}))
    ran = {(r["impl"], r["pass"]): r["status"] for r in result.rows}
    assert ran[("fused-kernel", "forward")] == ran[("fused-kernel", "forward+backward")] == "ok", ran
