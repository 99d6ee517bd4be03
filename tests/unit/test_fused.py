"""fused_value_loss against verl's eager formula: same loss, identical clip fraction, autograd's gradient
bit for bit (ties, padding garbage and signed zeros included), in every mode and dtype, compiled and eager."""

from __future__ import annotations

import inspect
import math
import warnings

import pytest
import torch

import valueloss as vl
import valueloss.fused as fused
from tests.batches import random_batch
from valueloss.fused import function, fused_value_loss, passes

from .conftest import golden_cases, golden_tensor

DTYPES = [torch.float32, torch.bfloat16, torch.float64]
BITS = {torch.float32: torch.int32, torch.float64: torch.int64, torch.bfloat16: torch.int16, torch.float16: torch.int16}
LOSS_TOL = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 1e-2, torch.float16: 1e-2}
FAST_BACKENDS = ["compiled", "c", "auto"]  # inductor's pass, the C loop, and what a default call takes


def cuda(test):
    """Runs only with a CUDA device; marked ``cuda`` (docs/benchmarks/record-gpu.sh selects these)."""
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
    return pytest.mark.cuda(skip(test))


pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


def assert_bitwise(got: torch.Tensor, want: torch.Tensor, what: str = "gradient") -> None:
    """Same dtype, same NaN positions, every other element equal bit for bit (so -0.0 != +0.0)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    got_nan, want_nan = torch.isnan(got), torch.isnan(want)
    assert torch.equal(got_nan, want_nan), f"{what}: NaN positions differ"
    a = torch.where(got_nan, 0, got).contiguous().view(BITS[got.dtype])
    b = torch.where(want_nan, 0, want).contiguous().view(BITS[want.dtype])
    diff = (a != b).nonzero()
    assert diff.numel() == 0, (
        f"{what}: {diff.shape[0]} of {a.numel()} elements differ, first at {diff[0].tolist()}: "
        f"{got[tuple(diff[0])].item()!r} vs {want[tuple(diff[0])].item()!r}"
    )


def run_both(v, r, o, m, eps, mode="token-mean", scale=1.0, backend="compiled", **kw):
    """(eager loss, clipfrac, grad), (fused loss, clipfrac, grad) for loss * scale backpropagated."""
    out = []
    for fn in (vl.compute_value_loss, fused_value_loss):
        x = v.detach().clone().requires_grad_(True)
        extra = {"backend": backend} if fn is fused_value_loss else {}
        loss, frac = fn(x, r, o, m, eps, mode, **kw, **extra)
        (grad,) = torch.autograd.grad(loss * scale, x)
        out.append((loss.detach(), frac, grad))
    return out


def assert_same(eager, fusedres, dtype):
    (l1, c1, g1), (l2, c2, g2) = eager, fusedres
    assert l2.dtype == l1.dtype and c2.dtype == c1.dtype
    assert_bitwise(c2, c1, "clip fraction")
    assert_bitwise(g2, g1)
    if math.isnan(l1.item()):
        assert math.isnan(l2.item())
    else:
        assert l2.item() == pytest.approx(l1.item(), rel=LOSS_TOL[dtype], abs=1e-30)


class CountExact:
    """Counts how often the backward falls back to the exact recomputation."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = function._exact

        def counting(*args):
            self.calls += 1
            return original(*args)

        monkeypatch.setattr(function, "_exact", counting)


@pytest.fixture
def fresh_compiler(monkeypatch):
    """A clean compilation cache and report, cleared again afterwards (a test may plant a broken compiler)."""
    passes._compiled.cache_clear()
    monkeypatch.setattr(passes, "_REPORT", {})
    yield
    passes._compiled.cache_clear()


# ------------------------------------------------------------------ golden vectors


@pytest.mark.parametrize(("name", "eps", "case", "want"), list(golden_cases()), ids=lambda x: str(x)[:12])
@pytest.mark.parametrize("backend", ["compiled", "c", "eager"])
def test_golden_vectors_every_mode(name, eps, case, want, backend):
    v, r, o, m = (golden_tensor(case[k]) for k in ("vpreds", "returns", "values", "response_mask"))
    for mode in vl.AGG_MODES:
        eager, got = run_both(v, r, o, m, float(eps), mode, backend=backend)
        assert_same(eager, got, torch.float64)
        expected = want["verl"][mode]
        if expected is None:
            assert math.isnan(got[0].item())
        else:
            assert got[0].item() == pytest.approx(expected, abs=1e-12, rel=0)
        assert got[1].item() == want["verl"]["vf_clipfrac"]
    # the per-token gradient of the max term on real tokens, times token-mean's weight 0.5 / N
    _, _, grad = run_both(v, r, o, m, float(eps), backend=backend)[1]
    valid = m.bool()
    per_token = golden_tensor(want["per_token_grad_of_max_term"])
    assert torch.allclose(grad[valid], per_token[valid] * 0.5 / valid.sum(), atol=1e-15, rtol=1e-12)


# ------------------------------------------------------------------ random data and constructed ties


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", vl.AGG_MODES)
def test_random_batches_with_ties_every_mode_and_dtype(dtype, mode, backend):
    for seed in range(4):
        v, r, o, m, eps = random_batch(seed, rows=5, width=23, dtype=dtype)
        for scale in (1.0, 0.37):
            assert_same(*run_both(v, r, o, m, eps, mode, scale=scale, backend=backend), dtype)


def off_edge_ties(dtype, rows=4, width=64, seed=0):
    """Ties the fast path must get right: inside the band (every token there is a tie), symmetric ties
    outside it (v = o + 2 eps, R = o + 1.5 eps), v == R, signed zeros, and NaN / inf garbage in padding."""
    g = torch.Generator().manual_seed(seed)
    eps = 0.25
    o = (torch.randint(-8, 8, (rows, width), generator=g) * 0.5).to(dtype)
    v = o + (torch.rand(rows, width, generator=g) * 0.4 - 0.2).to(dtype)  # strictly inside
    r = o + (torch.randn(rows, width, generator=g)).to(dtype)
    sym = torch.arange(width) % 5 == 0
    v[:, sym], r[:, sym] = o[:, sym] + 2 * eps, o[:, sym] + 1.5 * eps  # |v - R| == |clip(v) - R|
    r[:, 3::7] = v[:, 3::7]  # v == R inside the band: d = 0
    v[0, 1], r[0, 1], o[0, 1] = -0.0, 0.0, 0.0
    mask = torch.ones(rows, width)
    mask[1, width // 2 :] = 0
    mask[2, :] = 0
    garbage = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 1e30], dtype=dtype)
    v[1, width // 2 : width // 2 + 5] = garbage
    v[2, :5] = garbage
    return v, r, o, mask, eps


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", vl.AGG_MODES)
def test_fast_path_is_bit_exact_on_off_edge_ties(dtype, mode, backend, monkeypatch):
    v, r, o, m, eps = off_edge_ties(dtype)
    counter = CountExact(monkeypatch)
    for scale in (1.0, 3.0, 0.001):  # any positive upstream: the unit buffer scaled in place, exact
        assert_same(*run_both(v, r, o, m, eps, mode, scale=scale, backend=backend), dtype)
    assert counter.calls == 0, "these ties need no exact recomputation: the in-place scale must be exact"


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_band_edges_and_odd_weights_take_the_exact_path(dtype, backend, monkeypatch):
    v, r, o, m, eps = off_edge_ties(dtype)
    v_edge = v.clone()
    v_edge[0, :4] = o[0, :4] + eps  # exactly on the upper band edge
    v_edge[3, :4] = o[3, :4] - eps  # and the lower one
    counter = CountExact(monkeypatch)
    assert_same(*run_both(v_edge, r, o, m, eps, backend=backend), dtype)
    assert counter.calls == 1
    for scale in (-2.0, 0.0):  # negative and zero upstream gradients change signed zeros
        assert_same(*run_both(v, r, o, m, eps, scale=scale, backend=backend), dtype)
    assert counter.calls == 3


def test_near_edge_bfloat16_rounds_eps_like_eager_cpu():
    """CPU eager rounds the Python eps to bfloat16 before v_old +- eps; the compiled pass must too."""
    o = torch.full((1, 3), 0.486328125, dtype=torch.bfloat16)
    v = torch.tensor([[0.28515625, 0.287109375, 0.5]], dtype=torch.bfloat16)  # on (and next to) the lower edge
    r = torch.full((1, 3), 0.48046875, dtype=torch.bfloat16)
    assert_same(*run_both(v, r, o, torch.ones(1, 3), 0.2), torch.bfloat16)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize(
    "mask_dtype", [torch.bool, torch.uint8, torch.int32, torch.int64, torch.float64, torch.bfloat16]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_mask_dtypes_follow_verl_promotion(mask_dtype, dtype, backend):
    v, r, o, m, eps = random_batch(7, rows=4, width=19, dtype=dtype)
    for mode in ("token-mean", "token-sum", "seq-mean-token-mean"):
        for scale in (1.0, 0.5):
            assert_same(*run_both(v, r, o, m.to(mask_dtype), eps, mode, scale=scale, backend=backend), dtype)


@pytest.mark.parametrize(
    ("dp_size", "batch_num_tokens", "global_batch_size"),
    [(4, 100, 7), (2, torch.tensor(90.0, dtype=torch.float64), 9), (1, 77.5, None), (3, torch.tensor(123), 5)],
)
def test_data_parallel_counts(dp_size, batch_num_tokens, global_batch_size):
    v, r, o, m, eps = random_batch(3, rows=4, width=11, dtype=torch.float32)
    kw = dict(dp_size=dp_size, batch_num_tokens=batch_num_tokens, global_batch_size=global_batch_size)
    for mode in vl.AGG_MODES:
        assert_same(*run_both(v, r, o, m, eps, mode, scale=0.7, **kw), torch.float32)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (2, 3, 5), (13,)])
def test_shapes(shape, backend):
    g = torch.Generator().manual_seed(1)
    v, r, o = (torch.randn(shape, generator=g) for _ in range(3))
    m = (torch.rand(shape, generator=g) > 0.3).float()
    for mode in vl.AGG_MODES:
        assert_same(*run_both(v, r, o, m, 0.2, mode, backend=backend), torch.float32)


def test_non_contiguous_inputs_and_tensor_eps():
    v, r, o, m, eps = random_batch(2, rows=6, width=10, dtype=torch.float32)
    vt, rt, ot, mt = (x.t() for x in (v, r, o, m))
    assert_same(*run_both(vt, rt, ot, mt, torch.tensor(eps)), torch.float32)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_all_masked_batch_is_nan_like_verl_and_silent(backend):
    v, r, o, _, eps = random_batch(4, rows=3, width=5, dtype=torch.float32)
    m = torch.zeros(3, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's 0/0 warning would be noise torch does not make
        for mode in vl.AGG_MODES:
            assert_same(*run_both(v, r, o, m, eps, mode, backend=backend), torch.float32)


@pytest.mark.slow
def test_float16_runs_and_is_exact_through_the_slow_path():
    v, r, o, m, eps = random_batch(8, rows=3, width=9, dtype=torch.float16)
    assert_same(*run_both(v, r, o, m, eps), torch.float16)


# ------------------------------------------------------------------ forward only, autograd plumbing


def test_forward_without_grad_matches_and_writes_no_gradient():
    v, r, o, m, eps = random_batch(9, rows=6, width=17, dtype=torch.float32)
    with torch.no_grad():
        for mode in vl.AGG_MODES:
            want = vl.compute_value_loss(v, r, o, m, eps, mode)
            got = fused_value_loss(v, r, o, m, eps, mode)
            assert got[0].item() == pytest.approx(want[0].item(), rel=1e-6)
            assert_bitwise(got[1], want[1], "clip fraction")
            assert not got[0].requires_grad


def test_retain_graph_second_backward_is_still_exact():
    v, r, o, m, eps = random_batch(10, rows=6, width=17, dtype=torch.float32)
    x = v.clone().requires_grad_(True)
    loss, _ = fused_value_loss(x, r, o, m, eps)
    (first,) = torch.autograd.grad(loss, x, retain_graph=True)
    (second,) = torch.autograd.grad(loss * 2.0, x)
    y = v.clone().requires_grad_(True)
    want_loss, _ = vl.compute_value_loss(y, r, o, m, eps)
    (want_first,) = torch.autograd.grad(want_loss, y, retain_graph=True)
    (want_second,) = torch.autograd.grad(want_loss * 2.0, y)
    assert_bitwise(first, want_first)
    assert_bitwise(second, want_second)


def test_accumulates_into_grad_and_refuses_double_backward():
    v, r, o, m, eps = random_batch(11, rows=6, width=17, dtype=torch.float32)
    x = v.clone().requires_grad_(True)
    for _ in range(2):
        fused_value_loss(x, r, o, m, eps)[0].backward()
    y = v.clone().requires_grad_(True)
    for _ in range(2):
        vl.compute_value_loss(y, r, o, m, eps)[0].backward()
    assert_bitwise(x.grad, y.grad)
    z = v.clone().requires_grad_(True)
    loss, _ = fused_value_loss(z, r, o, m, eps)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(loss, z, create_graph=True)


def test_gradients_wanted_for_returns_or_values_use_verls_own_graph():
    v, r, o, m, eps = random_batch(12, rows=6, width=17, dtype=torch.float32)
    rr = r.clone().requires_grad_(True)
    loss, _ = fused_value_loss(v, rr, o, m, eps)
    (grad_r,) = torch.autograd.grad(loss, rr)
    rr2 = r.clone().requires_grad_(True)
    (want,) = torch.autograd.grad(vl.compute_value_loss(v, rr2, o, m, eps)[0], rr2)
    assert_bitwise(grad_r, want)


# ------------------------------------------------------------------ backends and fallback


def test_eager_backend_by_argument_and_environment(monkeypatch, fresh_compiler):
    v, r, o, m, eps = random_batch(13, rows=6, width=17, dtype=torch.float32)
    assert_same(*run_both(v, r, o, m, eps, backend="eager"), torch.float32)
    monkeypatch.setenv("VALUELOSS_FUSED_BACKEND", "eager")
    calls = []
    monkeypatch.setattr(passes, "_compile", lambda *a: calls.append(a))
    assert_same(*run_both(v, r, o, m, eps, backend="auto"), torch.float32)
    assert calls == []  # the environment forced eager: nothing was compiled
    monkeypatch.setenv("VALUELOSS_FUSED_BACKEND", "fast")
    with pytest.raises(ValueError, match="VALUELOSS_FUSED_BACKEND"):
        fused_value_loss(v, r, o, m, eps)


def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch, fresh_compiler):
    def broken(kind, args):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(passes, "_compile", broken)
    v, r, o, m, eps = random_batch(14, rows=6, width=17, dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_same(*run_both(v, r, o, m, eps), torch.float64)
        assert_same(*run_both(v, r, o, m, eps, "seq-mean-token-mean"), torch.float64)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "eager" in messages[0]
    report = [row for row in fused.fused_backend_report() if row["backend"] == "compiled" and row["state"] != "ran"]
    assert report and all(row["state"] == "eager" for row in report)


def test_backend_report_says_which_path_ran_and_what_compiling_did(fresh_compiler, monkeypatch):
    monkeypatch.setattr(fused.dispatch, "_RAN", type(fused.dispatch._RAN)())
    v, r, o, m, eps = random_batch(15, rows=6, width=17, dtype=torch.float32)
    fused_value_loss(v.clone().requires_grad_(True), r, o, m, eps, backend="compiled")
    fused_value_loss(v, r, o, m, eps, backend="eager")
    fused_value_loss(v, r, o, m, eps)  # a small CPU batch: the C loop
    rows = fused.fused_backend_report()
    ran = {(row["backend"], row["calls"]) for row in rows if row["state"] == "ran"}
    assert ran == {("compiled", 1), ("eager", 1), ("c-loop", 1)}
    ready = [row for row in rows if row["backend"] == "compiled" and row["pass"] == "tokens"]
    assert ready and ready[0]["state"] == "ready" and ready[0]["compile_s"] >= 0


# ------------------------------------------------------------------ bad input


def test_bad_input_gives_the_same_errors_as_compute_value_loss():
    v, r, o, m, eps = random_batch(16, rows=6, width=17, dtype=torch.float32)
    bad_mask = m.clone()
    bad_mask[1, 1] = 2.0
    cases = [
        ((v, r, o, bad_mask, eps), ValueError, "response_mask must hold only 0 and 1"),
        ((v, r[:, :-1], o, m, eps), ValueError, "returns has shape"),
        ((v, r, o, m, -1.0), ValueError, "cliprange_value"),
        ((v.long(), r, o, m, eps), TypeError, "vpreds must be a floating tensor"),
        ((v, r, o, m.tolist(), eps), TypeError, "response_mask must be a torch.Tensor"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            vl.compute_value_loss(*args)
        with pytest.raises(error, match=message):
            fused_value_loss(*args)
    with pytest.raises(ValueError, match="unknown loss_agg_mode"):
        fused_value_loss(v, r, o, m, eps, "token-median")
    with pytest.raises(ValueError, match="batch_num_tokens"):
        fused_value_loss(v, r, o, m, eps, dp_size=2)
    with pytest.raises(ValueError, match="backend must be one of"):
        fused_value_loss(v, r, o, m, eps, backend="fast")


def test_signature_is_compute_value_loss_then_backend():
    """A drop-in: verl's parameters (names, order, kinds, defaults, annotations), then ``backend``."""
    ours, verl = inspect.signature(fused_value_loss), inspect.signature(vl.compute_value_loss)
    *shared, backend = ours.parameters.values()
    assert shared == list(verl.parameters.values())
    assert (backend.name, backend.kind, backend.default) == ("backend", inspect.Parameter.KEYWORD_ONLY, "auto")
    assert ours.return_annotation == verl.return_annotation


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"dp_size": 0}, "dp_size must be an integer"),
        ({"batch_num_tokens": -3}, "batch_num_tokens"),
        ({"loss_scale_factor": 0}, "loss_scale_factor"),
        ({"dp_size": 2}, "batch_num_tokens .* is required"),
        ({"dp_size": 2, "loss_agg_mode": "seq-mean-token-mean"}, "global_batch_size .* is required"),
    ],
)
def test_bad_aggregation_arguments_give_the_same_errors_as_compute_value_loss(kw, message):
    v, r, o, m, eps = random_batch(16, rows=6, width=17, dtype=torch.float32)
    for fn in (vl.compute_value_loss, fused_value_loss):
        with pytest.raises(ValueError, match=message):
            fn(v, r, o, m, eps, **kw)


def test_bad_float64_mask_value_hidden_by_a_float32_cast_is_still_refused():
    v, r, o, m, eps = random_batch(17, rows=6, width=17, dtype=torch.float32)
    m64 = m.double()
    m64[2, 2] = 1 + 1e-12  # rounds to 1.0 in float32
    with pytest.raises(ValueError, match="response_mask must hold only 0 and 1"):
        fused_value_loss(v, r, o, m64, eps)


# ------------------------------------------------------------------ CUDA


@cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", vl.AGG_MODES)
def test_cuda_matches_eager_on_cuda(dtype, mode):
    v, r, o, m, eps = random_batch(18, rows=8, width=300, dtype=dtype, device="cuda")
    for scale in (1.0, 0.37):
        assert_same(*run_both(v, r, o, m, eps, mode, scale=scale), dtype)
    v, r, o, m, eps = off_edge_ties(dtype)
    assert_same(*run_both(v.cuda(), r.cuda(), o.cuda(), m.cuda(), eps, mode), dtype)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_signed_zero_min_max_follows_eagers_vectorised_loop(backend):
    """v = -0.0 against v_old + eps = +0.0 (an edge, so the exact pass runs): equal to eager bit for bit
    where eager runs vectorised. In tensors of a few elements eager's scalar loop picks the other zero
    (documented in valueloss.fused); the values still agree."""
    n = 256
    o = torch.full((2, n), -0.5)
    r = torch.zeros(2, n)
    v = torch.randn(2, n, generator=torch.Generator().manual_seed(3))
    v[:, :8] = -0.0
    m = torch.ones(2, n)
    m[1, :4] = 0  # two of the signed-zero tokens are padding
    assert_same(*run_both(v, r, o, m, 0.5, backend=backend), torch.float32)
    tiny = run_both(v[:1, :3], r[:1, :3], o[:1, :3], m[:1, :3], 0.5, backend=backend)
    assert torch.equal(tiny[0][2], tiny[1][2])  # -0.0 == 0.0: same values, possibly other zero signs


# ------------------------------------------------------------------ the forward's buffer handed to autograd


def eager_grad(v, r, o, m, eps, mode="token-mean", scale=1.0, **kw):
    y = v.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(vl.compute_value_loss(y, r, o, m, eps, mode, **kw)[0] * scale, y)
    return grad


class TokensBuffer:
    """Records the gradient buffer each gradient pass writes (its data pointer)."""

    def __init__(self, monkeypatch):
        self.pointers = []
        original = passes.run

        def recording(kind, *args):
            out = original(kind, *args)
            if kind in ("tokens", "rows"):
                self.pointers.append(out[-1].data_ptr())
            return out

        monkeypatch.setattr(passes, "run", recording)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["token-mean", "token-sum", "seq-mean-token-mean"])
@pytest.mark.parametrize(
    "kw", [{}, {"dp_size": 4, "batch_num_tokens": 301, "global_batch_size": 9}], ids=["local", "dp"]
)
@pytest.mark.parametrize("mask_dtype", [torch.float32, torch.bool, torch.float64])
def test_backward_hands_the_forwards_buffer_to_grad(dtype, mode, kw, mask_dtype, monkeypatch):
    v, r, o, m, eps = random_batch(30, rows=9, width=41, dtype=dtype, ties=False)
    m = m.to(mask_dtype)
    buffers, exact = TokensBuffer(monkeypatch), CountExact(monkeypatch)
    x = v.clone().requires_grad_(True)
    fused_value_loss(x, r, o, m, eps, mode, backend="compiled", **kw)[0].backward()
    assert_bitwise(x.grad, eager_grad(v, r, o, m, eps, mode, **kw))
    assert exact.calls == 0  # scaled in place
    assert x.grad.data_ptr() == buffers.pointers[0]  # taken as .grad as it is, no copy


@pytest.mark.parametrize("backend", ["auto", "compiled"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_any_positive_upstream_scales_in_place_and_a_negative_or_zero_one_recomputes(dtype, backend, monkeypatch):
    v, r, o, m, eps = random_batch(31, rows=9, width=41, dtype=dtype, ties=False)
    exact = CountExact(monkeypatch)
    for scale, recomputed in [(2.0, 0), (0.25, 0), (3.0, 0), (1 / 3, 0), (1.0, 0), (-1.0, 1), (0.0, 1)]:
        before = exact.calls
        _, fusedres = run_both(v, r, o, m, eps, scale=scale, backend=backend)
        assert_bitwise(fusedres[2], eager_grad(v, r, o, m, eps, scale=scale), f"gradient at upstream {scale}")
        assert exact.calls - before == recomputed, scale


def test_a_backward_leaves_nothing_behind_for_the_next_call(monkeypatch):
    """No state couples calls: what a forward writes does not depend on earlier backwards' upstreams."""
    v, r, o, m, eps = random_batch(36, rows=9, width=41, dtype=torch.float32, ties=False)
    original = passes.run
    seen = []

    def recording(kind, *args):
        out = original(kind, *args)
        seen.append(out[-1].clone())
        return out

    monkeypatch.setattr(passes, "run", recording)
    for scale in (1.0, 3.0, 0.1):
        x = v.clone().requires_grad_(True)
        (fused_value_loss(x, r, o, m, eps, backend="compiled")[0] * scale).backward()
        assert_bitwise(x.grad, eager_grad(v, r, o, m, eps, scale=scale))
    assert len(seen) == 3 and all(torch.equal(seen[0], later) for later in seen[1:])  # the same unit gradient


def test_an_input_changed_in_place_before_backward_is_refused_as_autograd_does():
    v, r, o, m, eps = random_batch(37, rows=9, width=41, dtype=torch.float32)
    for fn in (vl.compute_value_loss, fused_value_loss):
        x = v.clone().requires_grad_(True)
        loss, _ = fn(x, r, o, m, eps)
        with torch.no_grad():
            x.add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()


def test_the_call_record_is_frozen():
    v, r, o, m, eps = random_batch(38, rows=6, width=17, dtype=torch.float32)
    call = fused.dispatch._verl_call(v, r, o, m, eps, "token-mean", "compiled")
    with pytest.raises(AttributeError):  # a named tuple: no field can be set after construction
        call.eps = 0.3


def test_no_aliasing_second_backward_with_retain_graph(monkeypatch):
    v, r, o, m, eps = random_batch(32, rows=9, width=41, dtype=torch.float32, ties=False)
    x = v.clone().requires_grad_(True)
    loss, _ = fused_value_loss(x, r, o, m, eps, backend="compiled")
    (first,) = torch.autograd.grad(loss, x, retain_graph=True)
    kept = first.clone()
    (second,) = torch.autograd.grad(loss, x, retain_graph=True)
    assert second.data_ptr() != first.data_ptr()
    assert_bitwise(first, kept)  # the second backward wrote elsewhere
    assert_bitwise(second, eager_grad(v, r, o, m, eps))
    first.fill_(float("nan"))  # the caller owns the returned gradient: mutating it changes nothing else
    second.mul_(7.0)
    loss.backward()
    assert_bitwise(x.grad, eager_grad(v, r, o, m, eps))


@pytest.mark.parametrize("backend", ["compiled", "auto"])
def test_no_aliasing_accumulation_hooks_and_a_mutated_grad(backend):
    v, r, o, m, eps = random_batch(33, rows=9, width=41, dtype=torch.float32, ties=False)
    seen = {"fused": [], "eager": []}

    def train(fn, name):
        x = v.clone().requires_grad_(True)
        x.register_hook(lambda g: seen[name].append(g.clone()))
        x.register_hook(lambda g: g * 0.5)  # a hook that replaces the gradient
        x.register_post_accumulate_grad_hook(lambda leaf: seen[name].append(leaf.grad.clone()))
        extra = {"backend": backend} if fn is fused_value_loss else {}
        for _ in range(2):  # accumulation over two calls
            fn(x, r, o, m, eps, **extra)[0].backward()
        return x

    x, y = train(fused_value_loss, "fused"), train(vl.compute_value_loss, "eager")
    assert_bitwise(x.grad, y.grad)
    for got, want in zip(seen["fused"], seen["eager"], strict=True):
        assert_bitwise(got, want, "what a hook saw")
    x.grad.mul_(-3.0)  # a gradient mutated by the caller (an optimizer, clipping) ...
    x.grad = None
    fused_value_loss(x, r, o, m, eps, backend=backend)[0].backward()  # ... leaves the next call untouched
    assert_bitwise(x.grad, eager_grad(v, r, o, m, eps) * 0.5)


# ------------------------------------------------------------------ views, tensor clip ranges


def test_conjugate_and_negative_views_are_read_as_their_values():
    # issue 11.8: ``z.conj().imag`` is a negative-bit view; its raw memory holds the other sign
    z = torch.tensor([[1 + 0.7j]])
    want = vl.compute_value_loss(z.conj().imag, torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), 0.2)
    got = fused_value_loss(z.conj().imag, torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), 0.2)
    assert got[0].item() == pytest.approx(want[0].item()) and got[1].item() == want[1].item() == 0.0
    v, r, o, m, eps = random_batch(34, rows=5, width=23, dtype=torch.float32)
    for which in range(4):
        args = [v, r, o, m]
        args[which] = torch._neg_view(-args[which])  # same values, negative bit set
        assert args[which].is_neg()
        for backend in ("auto", "compiled", "c", "eager"):
            assert_same(*run_both(*args, eps, backend=backend), torch.float32)
    zc = torch.complex(v, v).detach().requires_grad_(True)
    loss, _ = fused_value_loss(zc.conj().imag, r, o, m, eps)  # -v: a differentiable view of a complex leaf
    (got_grad,) = torch.autograd.grad(loss, zc)
    zc2 = zc.detach().clone().requires_grad_(True)
    (want_grad,) = torch.autograd.grad(vl.compute_value_loss(zc2.conj().imag, r, o, m, eps)[0], zc2)
    assert torch.equal(got_grad, want_grad)


@pytest.mark.parametrize("backend", ["auto", "compiled", "c", "eager"])
def test_the_gradient_of_a_clip_range_tensor_is_autograds(backend):
    # issue 11.9: a requires_grad 0-d eps used to lose its gradient in the fused path
    v, r, o, m, _ = random_batch(35, rows=5, width=23, dtype=torch.float32)
    got, want = [], []
    for fn, out in ((fused_value_loss, got), (vl.compute_value_loss, want)):
        x = v.clone().requires_grad_(True)
        eps = torch.tensor(0.2, requires_grad=True)
        extra = {"backend": backend} if fn is fused_value_loss else {}
        out.extend(torch.autograd.grad(fn(x, r, o, m, eps, **extra)[0], (x, eps)))
    assert want[1].item() != 0.0  # the clip range matters for this batch
    assert_bitwise(got[0], want[0])
    assert_bitwise(got[1], want[1], "gradient of the clip range")
