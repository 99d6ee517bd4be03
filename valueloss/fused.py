"""verl's clipped value loss in one memory pass, with autograd's gradient bit for bit.

The loss is memory-bound: a forward+backward has to read ``v``, ``v_old``, ``R`` and the mask and
write the gradient, yet the eager formula launches dozens of full-size kernels. Here one compiled pass
(inductor, traced once per dtype and device with symbolic sizes) reads the four inputs once and
produces the masked loss sum(s), the clip count, the token count, a count of tokens that need care
and a count of mask values that are not 0/1, and writes the *unit* gradient ``u`` of every token (its
gradient for an upstream weight of one) times the weight ``W`` the backward is expected to need.

Token modes fold that weight into the forward: ``N`` is counted from the mask first (one read of
it), ``W`` follows from verl's scalar tail for the upstream gradient the last backward saw (1 at
first: ``loss.backward()``), and the pass writes ``round(W * u)``. When the backward's weight is that
``W`` it hands the buffer to autograd as it is (the context's reference dropped first, so autograd
takes it as ``.grad`` without a copy): no second pass over the gradient. Another weight rescales the
buffer in place when the ratio is a power of two (exact in the guarded range) and recomputes it
exactly otherwise. The seq modes and the C loop's small batches write ``u`` itself and scale it in place.

Why the gradient equals autograd of ``compute_value_loss`` bit for bit
----------------------------------------------------------------------
The backward first computes the weight ``W`` that autograd would hand to each token of verl's loss
matrix, with verl's scalar operations in verl's dtypes (``0.5 * (S / N * dp_size)`` replayed on the
scalar for the token modes, verl's own seq-mean tail under autograd for the others). Per token,
verl's backward then applies the ``maximum`` rule (ties split the weight in half), ``pow``'s
``w * (2 * d)`` and the ``min``/``max`` clip rules. Every step multiplies by a power of two except
the one product ``w * (2 * d)``, so the gradient is ``round(W * u)``: exactly what the backward
computes, except where the pass or the weight flags a case it cannot vouch for:

- a token exactly on the band edge (``v == v_old +- eps``): two differently halved branches are
  rounded separately and then added;
- a product ``W * u`` that could leave the normal float range (``|u|`` below 2^-59, a squared term
  above 2^120, NaN or inf among the real tokens);
- a weight that is negative, non-finite or outside ``[2^-60, 2^60]`` (a loss multiplied by a
  negative number, an all-masked batch), or a float16 input.

There the backward runs a second pass that applies autograd's rules one by one to autograd's own
per-token weights (the closed form of :func:`valueloss.value_loss_grad`): exact too, about as fast
as the forward. The loss equals verl's up to the order of the float sums (the pass accumulates in
float64); the clip fraction is identical (an integer count divided as verl divides it) while the
number of real tokens stays below 2^24, where verl's own float32 count is exact.

One caveat, eager torch's rather than ours: ``minimum`` / ``maximum`` of ``+0.0`` and ``-0.0`` return
the second operand in eager's vectorised loop but the first in its scalar loop (tensors of a few
elements, and the last few elements of a row), so where ``v`` is a zero of the other sign than
``v_old + eps`` the *sign of a zero gradient* can differ from eager there. The fused pass always
follows the vectorised rule. The values are equal (``-0.0 == 0.0``).

Small CPU batches (float32 / float64, up to ``SMALL_TOKENS`` tokens) run the same pass as a plain C
loop instead (``valueloss._cpass``, built once with the system C compiler and called through ctypes):
inductor's Python wrapper costs ~20 us per call there, more than the work. The loop performs the
same operations in the same float type, so ``u`` and the counts are the same bits (tested against the
compiled pass and autograd). A default token-mode call on such a batch also skips the general
argument handling (``_small_token_loss``); its backward scales ``u`` in C, since torch's first
operation inside a backward costs ~10 us more than the loop.

Where compilation fails the same pass runs in eager torch (a one-time warning); set
``VALUELOSS_FUSED_BACKEND=eager`` or pass ``backend="eager"`` to force it.

On a GPU the exactness holds (its 15 CUDA tests passed on an H200) but the speed does not: recorded there
(``docs/benchmarks/``), a 4096x8192 forward+backward took 2.71 ms in float32 (8 % of the measured
roofline) and 2.47 ms in bfloat16, slower than OpenRLHF's eager module; over 1 ms of it is paid per
call whatever the batch. Choose it on a GPU for its exact gradient, not for speed.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
import time
import warnings

import numpy as np
import torch

from . import _cpass
from . import _validate as check
from .losses import _check_agg, compute_value_loss

__all__ = ["fused_value_loss", "fused_backend_report", "BACKENDS"]

BACKENDS = ("auto", "compiled", "c", "eager")
_BACKEND_ENV = "VALUELOSS_FUSED_BACKEND"
# Up to this many tokens, "auto" runs the pass as the plain C loop of valueloss._cpass on CPU: below
# it inductor's ~20 us Python wrapper costs more than the loop's single thread loses (measured crossover:
# ~5k float32 and ~8k float64 tokens on a 2-core machine).
SMALL_TOKENS = 4096

# Dtypes whose products W * u round exactly like autograd's chain inside the ranges below.
_FAST_DTYPES = (torch.float32, torch.float64, torch.bfloat16)
# The pass flags |u| < 2^-59 (W * u might be subnormal) and squared terms > 2^120 (might overflow);
# the backward scales only by weights in this range:
_W_MIN, _W_MAX = 2.0**-60, 2.0**60


def _band(values, eps):
    """``(values - eps, values + eps)`` rounded exactly as verl's eager ``values -+ eps``."""
    if isinstance(eps, torch.Tensor):  # compiled: a (1,) tensor in the op's compute dtype, see _eps_tensor
        base = values.to(eps.dtype)
        return (base - eps).to(values.dtype), (base + eps).to(values.dtype)
    return values - eps, values + eps  # eager: exactly verl's expression


def _clip_terms(v, returns, values, eps):
    """verl's clip and its two squared errors, with the intermediates both backward rules need:
    ``(lo, hi, min(v, hi), v - R, clip(v) - R, (v - R)^2, (clip(v) - R)^2)``."""
    lo, hi = _band(values, eps)
    inner = torch.minimum(v, hi)
    v_clipped = torch.maximum(inner, lo)
    d_unclipped = v - returns
    d_clipped = v_clipped - returns
    return lo, hi, inner, d_unclipped, d_clipped, d_unclipped * d_unclipped, d_clipped * d_clipped


def _per_token(v, returns, values, mask, eps):
    """verl's per-token terms (same operations, so the same bits) and the unit gradient ``u``."""
    maskb = mask != 0
    lo, hi, inner, d_unclipped, d_clipped, loss_unclipped, loss_clipped = _clip_terms(v, returns, values, eps)
    loss_max = torch.maximum(loss_unclipped, loss_clipped)
    two_d = 2.0 * d_unclipped
    # Real tokens, upstream weight one (see the module docstring for the cases):
    inside = (v < hi) & (v > lo)
    tie = torch.where(inside, two_d, torch.where(d_unclipped == 0, 0.0, d_unclipped))
    u_real = torch.where(loss_unclipped > loss_clipped, two_d, torch.where(loss_unclipped < loss_clipped, 0.0, tie))
    # Padding, upstream weight +0: autograd still multiplies 0 by 2d (NaN for NaN / inf garbage).
    blocked = (v > hi) | (inner < lo)
    u_pad = 0.0 * two_d + torch.where(blocked, 0.0, 0.0 * (2.0 * d_clipped))
    edge = (v == hi) | (v == lo)
    return maskb, loss_unclipped, loss_clipped, loss_max, u_real, u_pad, edge


def _needs_care(maskb, edge, loss_max, u):
    """Real tokens where ``W * u`` might not be autograd's bits: band edges, tiny or huge products.

    The limits are literals on purpose (a traced module-level float would become an input).
    """
    return maskb & (edge | ~(loss_max <= 2.0**120) | ((u.abs() < 2.0**-59) & (u != 0)))


def _stats(mask, maskb, loss_unclipped, loss_clipped, loss_max, care, dim):
    """Masked loss sums (float64 accumulation) and exact integer counts, over ``dim`` (None = all)."""
    kw = {} if dim is None else {"dim": dim}
    return (
        torch.where(maskb, loss_max, 0.0).sum(dtype=torch.float64, **kw),  # token modes: NaN padding ignored
        (loss_max * mask).sum(dtype=torch.float64, **kw),  # seq modes: NaN padding poisons its row
        (maskb & (loss_clipped > loss_unclipped)).sum(dtype=torch.int32, **kw),
        maskb.sum(dtype=torch.int32, **kw),
        care.sum(dtype=torch.int32, **kw),
        ((mask != 0) & (mask != 1)).sum(dtype=torch.int32, **kw),
    )


def _totals(s_where, clipped, tokens, care, bad):
    # one small float64 tensor (counts are exact below 2^53): the token-mode loss sum, clipped tokens,
    # real tokens, tokens needing the exact backward, mask values that are not 0/1
    return torch.stack([s_where.sum(), clipped.sum(), tokens.sum(), care.sum(), bad.sum()]).to(torch.float64)


def _grad_pass_tokens(v, returns, values, mask, weight, eps):
    """token modes: one flat loop writes ``weight * u`` and reduces everything to totals.

    ``weight`` (a (1,) tensor in ``v``'s dtype) is the gradient weight the backward is expected to
    need, folded in so that the backward can hand this buffer over as it is (1: ``u`` itself). One
    product, rounded once: the same bits as ``u.mul_(weight)`` after the pass. The care flags are
    those of the unit ``u``, as the backward's range checks assume."""
    maskb, lu, lc, lm, u_real, u_pad, edge = _per_token(v, returns, values, mask, eps)
    u = torch.where(maskb, u_real, u_pad)
    s_where, _, clipped, tokens, care, bad = _stats(mask, maskb, lu, lc, lm, _needs_care(maskb, edge, lm, u), None)
    return _totals(s_where, clipped, tokens, care, bad), u * weight


def _grad_pass_rows(v, returns, values, mask, rowone, eps):
    """seq modes: the same with row sums. ``rowone`` is a (rows, 1) column of ones; multiplying by it
    keeps the pointwise loop two-dimensional, so inductor fuses it with the row reductions."""
    maskb, lu, lc, lm, u_real, u_pad, edge = _per_token(v, returns, values, mask, eps)
    u = torch.where(maskb, u_real * rowone, u_pad)
    s_where, s_mul, clipped, tokens, care, bad = _stats(mask, maskb, lu, lc, lm, _needs_care(maskb, edge, lm, u), -1)
    return _totals(s_where, clipped, tokens, care, bad), s_mul, tokens, u


def _loss_pass(v, returns, values, mask, eps):
    """Forward only (no gradient wanted): the statistics, nothing written per token."""
    maskb, lu, lc, lm, _, _, _ = _per_token(v, returns, values, mask, eps)
    s_where, s_mul, clipped, tokens, care, bad = _stats(mask, maskb, lu, lc, lm, torch.zeros_like(maskb), -1)
    return _totals(s_where, clipped, tokens, care, bad), s_mul, tokens


def _exact_pass(v, returns, values, mask, w_real, w_pad, out, eps):
    """Autograd's backward of verl's per-token loss, rule for rule, for any upstream weight.

    ``w_real`` / ``w_pad`` (rows, 1) are the weights autograd hands to real and padded tokens. The
    rules: ``maximum`` splits a tie in half and masks the loser, ``pow`` sends ``w * (2 * d)``, and the
    clip's ``min`` / ``max`` do the same on ``v`` (halving ``x / 2`` is written ``x * 0.5``: same bits).
    """
    w = torch.where(mask != 0, w_real, w_pad)
    lo, hi, inner, d_unclipped, d_clipped, loss_unclipped, loss_clipped = _clip_terms(v, returns, values, eps)
    half = torch.where(loss_unclipped == loss_clipped, w * 0.5, w)
    to_unclipped = torch.where(loss_unclipped < loss_clipped, 0.0, half)
    to_clipped = torch.where(loss_unclipped > loss_clipped, 0.0, half)
    from_unclipped = to_unclipped * (2.0 * d_unclipped)
    through = to_clipped * (2.0 * d_clipped)
    to_inner = torch.where(inner < lo, 0.0, torch.where(inner == lo, through * 0.5, through))
    from_clipped = torch.where(v > hi, 0.0, torch.where(v == hi, to_inner * 0.5, to_inner))
    out.copy_(from_unclipped + from_clipped)  # into the forward's buffer: no fresh (page-faulting) allocation
    return (out,)


_PASSES = {"tokens": _grad_pass_tokens, "rows": _grad_pass_rows, "loss": _loss_pass, "exact": _exact_pass}
_EAGER = object()  # marks a (pass, dtype, device, threads) whose compilation failed
_lock = threading.Lock()
_compiled: dict[tuple, object] = {}
_report: dict[tuple, dict] = {}
_EPS: dict[tuple, torch.Tensor] = {}
_warned = False


def _resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    env = os.environ.get(_BACKEND_ENV, "").strip().lower()
    if backend == "auto" and env:
        if env not in BACKENDS:
            raise ValueError(f"{_BACKEND_ENV} must be one of {', '.join(BACKENDS)}, got {env!r}")
        backend = env
    return backend


def _eps_tensor(eps: float, v: torch.Tensor) -> torch.Tensor:
    """``eps`` as the compiled pass takes it, so that ``values +- eps`` rounds as verl's eager op does.

    A (1,) tensor in the op's compute dtype (float32 for bfloat16 / float16): CPU eager rounds a
    Python scalar to the tensor's dtype first, CUDA keeps it in float32. (A 0-d tensor would be
    traced as a Python float and specialised.)
    """
    reduced = v.dtype in (torch.bfloat16, torch.float16)
    key = (eps, v.dtype, v.device)
    t = _EPS.get(key)
    if t is None:
        if len(_EPS) > 256:
            _EPS.clear()
        value = float(torch.tensor(eps, dtype=v.dtype)) if reduced and v.device.type == "cpu" else eps
        t = _EPS[key] = torch.tensor([value], dtype=torch.float32 if reduced else v.dtype, device=v.device)
    return t


def _compile(kind: str, args: tuple):
    """Trace the pass with symbolic sizes and compile it with inductor (no dynamo guards per call)."""
    from torch.fx.experimental.proxy_tensor import make_fx

    # The example sizes are only hints, but inductor sizes its parallel loops from them, so they are
    # large; and distinct (equal example sizes would make the tracer assume rows == columns).
    v, eps = args[0], args[-1]
    rows, cols = 1031, 4099
    columns = {"rows": 1, "exact": 2}.get(kind, 0)  # (rows, 1) inputs: the ones column, the weights
    weight = [(1,)] * (kind == "tokens")  # the folded gradient weight
    shapes = (
        [(rows, cols)] * 4 + [(rows, 1)] * columns + [(rows, cols)] * (kind == "exact") + weight + [tuple(eps.shape)]
    )
    dtypes = [v.dtype] * (len(shapes) - 1) + [eps.dtype]
    example = [torch.empty(shape, dtype=dtype, device=v.device) for shape, dtype in zip(shapes, dtypes, strict=True)]
    graph = make_fx(_PASSES[kind], tracing_mode="symbolic")(*example)
    fake = [node.meta["val"] for node in graph.graph.nodes if node.op == "placeholder"]
    options = {"emulate_precision_casts": True}
    if v.device.type == "cpu":  # the thread count is baked into the kernel: make it part of the cache key
        options["cpp.threads"] = torch.get_num_threads()
    return torch._inductor.compile(graph, fake, options=options)


def _runs_c_loop(kind: str, backend: str, v: torch.Tensor) -> bool:
    """Whether pass ``kind`` runs as the C loop: small CPU float32 / float64 batches under "auto",
    every one under "c", where a C compiler built it (the exact backward pass is never the loop)."""
    return (
        kind != "exact"
        and (backend == "c" or (backend == "auto" and v.numel() <= SMALL_TOKENS))
        and _cpass.supports(v)
        and _cpass.library() is not None
    )


def _run_pass(kind: str, backend: str, *args):
    """Run a pass compiled (cached per pass, dtype, device and thread count) or eagerly.

    Compilation failures fall back to the same pass in eager torch, with a one-time warning. The
    last argument is ``eps`` as a Python float; the compiled pass takes it as a (1,) tensor.
    """
    global _warned
    fn = _PASSES[kind]
    if backend == "eager":
        return fn(*args)
    v = args[0]
    if _runs_c_loop(kind, backend, v):
        v, returns, values, mask = (a.contiguous() for a in args[:4])
        out = _cpass.run_pass(kind, v, returns, values, mask, args[-1])
        if kind == "tokens" and float(args[4]) != 1.0:  # the folded weight: the same product, in C
            _cpass.scale(out[1], float(args[4]))
        return out
    key = (kind, v.dtype, v.device, torch.get_num_threads())
    tensors = (*(a.contiguous() for a in args[:-1]), _eps_tensor(args[-1], v))  # compiled for dense inputs
    compiled = _compiled.get(key)
    if compiled is None:
        with _lock:
            compiled = _compiled.get(key)
            if compiled is None:
                start = time.perf_counter()
                try:
                    compiled = _compile(kind, tensors)
                    _report[key] = {"state": "ready", "compile_s": time.perf_counter() - start}
                except Exception as err:  # noqa: BLE001 - any compiler failure means: run the same pass eagerly
                    compiled = _EAGER
                    _report[key] = {"state": "eager", "error": f"{type(err).__name__}: {str(err)[:200]}"}
                    if not _warned:
                        _warned = True
                        warnings.warn(
                            f"valueloss.fused: compiling the fused pass failed here ({type(err).__name__}); "
                            "running the same pass in eager torch (same numbers, slower). "
                            f"Set {_BACKEND_ENV}=eager to silence this.",
                            RuntimeWarning,
                            stacklevel=3,
                        )
                _compiled[key] = compiled
    if compiled is _EAGER:
        return fn(*args)
    return tuple(compiled(*tensors))


def fused_backend_report() -> list[dict]:
    """What each compiled pass did so far: ``state`` (ready / eager) and compile seconds; then the C
    loop for small CPU batches (pass ``c-loop``, state ready / unavailable) once it was needed."""
    rows = []
    for (kind, dtype, device, threads), info in sorted(_report.items(), key=str):
        rows.append({"pass": kind, "dtype": str(dtype).removeprefix("torch."), "device": str(device),
                     "threads": threads, **info})  # fmt: skip
    loop = _cpass.status()
    if loop["state"] != "not built":
        rows.append({"pass": "c-loop", "dtype": "float32, float64", "device": "cpu", "threads": 1, **loop})
    return rows


class _State:
    """What the backward needs; ``u`` is dropped once it has been scaled in place and handed out.

    Built from the pass's inputs (for the exact pass) and outputs; the forward then adds how its tail
    ran (``token_mode``, ``sum_dtype``, ``dp_size``, ``w_pre``, ``small``, and ``scalars`` or ``divisor``)."""

    __slots__ = (
        "u", "care", "tokens", "v", "v2", "r2", "o2", "m2", "backend", "eps", "token_mode",
        "sum_dtype", "divisor", "dp_size", "scalars", "small", "w_pre",
    )  # fmt: skip

    def __init__(self, v, v2, r2, o2, m2, eps, backend, u, care, tokens=None):
        self.v, self.v2, self.r2, self.o2, self.m2, self.eps, self.backend = v, v2, r2, o2, m2, eps, backend
        self.u, self.care, self.tokens = u, care, tokens
        self.scalars = self.divisor = None


class _StatefulPass(torch.autograd.Function):
    """Shared forward of the fused passes: keeps the pass state on ``ctx`` and returns a copy of the value
    computed outside autograd; subclasses supply the backward (single backward only)."""

    @staticmethod
    def forward(ctx, vpreds, out, state):
        ctx.state = state
        return out.clone()

    @staticmethod
    def _refuse_double_backward():
        if torch.is_grad_enabled():
            raise RuntimeError("fused_value_loss does not support double backward (create_graph=True)")


class _TokenLoss(_StatefulPass):
    """token-mean / token-sum: returns the finished ``vf_loss`` and gives ``vpreds`` its gradient.

    The loss tail ``0.5 * (S / N * dp_size)`` ran without autograd; the backward replays autograd's
    rules for it on the scalar (mul: ``g * 0.5``, ``g * dp_size``; div: ``g / N``, then the cast to
    ``S``'s dtype): a few scalar operations instead of three graph nodes.
    """

    @staticmethod
    def backward(ctx, grad_loss):
        _StatefulPass._refuse_double_backward()
        state = ctx.state
        if state.scalars is not None:  # IEEE float32 / float64 arithmetic, operation for operation
            upstream = grad_loss.item()
            _UPSTREAM[0] = upstream  # the next forward folds this upstream's weight into its gradient
            return _scaled_grad_scalar(state, _sum_grad(state.scalars, upstream, state.dp_size)), None, None
        else:
            grad_sum = (grad_loss * 0.5) * state.dp_size
            if state.divisor is not None:
                grad_sum = grad_sum / state.divisor
            grad_sum = grad_sum.to(state.sum_dtype)
        return _scaled_grad(state, grad_sum), None, None


class _RowSums(_StatefulPass):
    """seq modes: returns the row sums ``sum(L * mask, -1)``; verl's tail after them runs in autograd."""

    @staticmethod
    def backward(ctx, grad_sums):
        _StatefulPass._refuse_double_backward()
        return _scaled_grad(ctx.state, grad_sums), None, None


def _sum_grad(scalars, upstream: float, dp_size: int):
    """Autograd's gradient of the masked loss sum ``S`` for an upstream gradient of the token-mode loss
    ``0.5 * (S / N * dp_size)`` (mul: ``g * 0.5``, ``g * dp_size``; div: ``g / N``; the cast to ``S``'s
    dtype), on numpy scalars of ``scalars = (loss type, divisor or None, sum type)``."""
    loss_type, divisor, sum_type = scalars
    quiet = abs(upstream) < 1e30 and dp_size == 1 and (divisor is None or divisor > 0)
    with _NO_WARNINGS if quiet else np.errstate(all="ignore"):
        grad = loss_type(loss_type(upstream) * loss_type(0.5)) * loss_type(dp_size)
        if divisor is not None:
            grad = grad / loss_type(divisor)
        return sum_type(grad)


# The upstream gradient of the last token-mode backward (1 before any: ``loss.backward()``). A training
# loop backpropagates the same factor every step (1, or 1 / accumulation steps), so the forward folds
# that factor's weight into the gradient it writes and the backward hands the buffer over untouched.
# A guess only: a backward with another upstream rescales in place or recomputes, exactly either way.
_UPSTREAM = [1.0]


def _folded_weight(scalars, mode, batch_num_tokens, dp_size, mask, dtype) -> float:
    """The per-token weight ``W`` (a ``dtype`` value as a float) that the backward will need if its
    upstream is ``_UPSTREAM[0]``, computed before the pass (``N`` counted from the mask: one read of
    it); 1.0 (no folding) where it is out of the range the backward scales by, or unsure."""
    by_count = batch_num_tokens is None
    sum_type, count_type, _, _, loss_type, count_is_float = _tail_types(*scalars, mode, by_count)
    n_tokens = None
    if mode == "token-mean" and by_count:
        total = float(mask.sum() if _exact_count_sum(mask) else mask.sum(dtype=torch.float64))
        if not (math.isfinite(total) and total > 0 and total.is_integer()):
            return 1.0  # an all-masked or odd mask: the pass and the backward sort it out
        n_tokens = int(total)
    divisor = _tail_divisor(count_type, count_is_float, mode, batch_num_tokens, n_tokens)
    with np.errstate(all="ignore"):
        weight = float(_NP_TYPES[dtype](_sum_grad((loss_type, divisor, sum_type), _UPSTREAM[0], dp_size)))
    return weight if _W_MIN <= weight <= _W_MAX else 1.0


def _exact_count_sum(mask: torch.Tensor) -> bool:
    """Whether ``mask.sum()`` in the mask's own dtype counts 0/1 values exactly (and fast: summing into
    float64 takes a slow conversion loop): integer masks, float64, float32 below 2^24 elements."""
    if not mask.is_floating_point():
        return True
    return mask.dtype == torch.float64 or (mask.dtype == torch.float32 and mask.numel() < 2**24)


def _rescale_factor(w_pre: float, weight: float) -> float | None:
    """What turns a buffer holding ``round(w_pre * u)`` into ``round(weight * u)`` exactly: 1 (hand it
    over), a power of two (both products normal: the care flags and the weight range guarantee it), or
    None (a recomputation is needed). A unit buffer (``w_pre == 1``) takes any weight: one rounding."""
    if weight == w_pre or w_pre == 1.0:
        return weight / w_pre
    ratio = weight / w_pre  # exact when it is a power of two
    return ratio if ratio > 0 and math.frexp(ratio)[0] == 0.5 else None


def _scaled_grad(state: _State, grad_sums: torch.Tensor) -> torch.Tensor:
    """``W * u`` in place when that is provably what autograd computes, else the exact recomputation.

    ``grad_sums`` is the gradient of the masked sum(s) of the loss matrix, as autograd would hold it.
    """
    v, u = state.v, state.u
    if u is not None and state.care == 0 and v.dtype in _FAST_DTYPES and state.w_pre == 1.0:
        # Autograd's weight for a real token: grad * 1 in the sum's dtype, cast to the loss matrix's.
        weights = grad_sums.to(v.dtype)
        if state.token_mode:
            usable = _W_MIN <= weights.item() <= _W_MAX
        else:
            in_range = (weights >= _W_MIN) & (weights <= _W_MAX)
            # rows without real tokens only carry padding: any finite weight >= 0 leaves it unchanged
            empty_ok = (weights >= 0) & torch.isfinite(weights) & (state.tokens.reshape(weights.shape) == 0)
            usable = bool((in_range | empty_ok).all())
            weights = weights.reshape(-1, 1)
        if usable:
            state.u = None  # consumed by the in-place scale
            u.mul_(weights)
            return u if u.shape == v.shape else u.view(v.shape)
    return _exact_grad(state, grad_sums)


def _scaled_grad_scalar(state: _State, grad_sum) -> torch.Tensor:
    """Token modes on CPU: ``grad_sum`` is autograd's gradient of ``S`` as a numpy scalar."""
    v, u = state.v, state.u
    if u is not None and state.care == 0 and v.dtype in _FAST_DTYPES:
        if v.dtype in _NP_TYPES:
            weight = w = float(_NP_TYPES[v.dtype](grad_sum))  # float32 / float64 mul_ uses it exactly
        else:  # bfloat16: autograd multiplies by the bfloat16 weight, so must we (never folded: w_pre 1)
            weight = torch.tensor(float(grad_sum), dtype=v.dtype)
            w = weight.item()
        factor = _rescale_factor(state.w_pre, w) if _W_MIN <= w <= _W_MAX else None
        if factor is not None:
            # Hand the forward's buffer to autograd: drop the context's reference first, so that
            # nothing else holds it (autograd then takes it as ``.grad`` without a copy, and a second
            # backward through a retained graph recomputes into a fresh buffer).
            state.u = None
            if factor != 1.0:  # scaled in place, only when needed
                if state.small:
                    _cpass.scale(u, factor)
                elif state.w_pre == 1.0:
                    u.mul_(weight)
                else:
                    u.mul_(factor)
            return u if u.shape == v.shape else u.view(v.shape)
    return _exact_grad(state, torch.tensor(float(grad_sum), dtype=state.sum_dtype, device=v.device))


def _exact_grad(state: _State, grad_sums: torch.Tensor) -> torch.Tensor:
    """Autograd's per-token weights, then its backward rules in one pass: exact for any weight."""
    v2 = state.v2
    rows = v2.shape[0]
    if state.token_mode:
        # masked_sum = (where(mask.bool(), L, 0) * mask).sum(): a real token gets grad * 1 cast to
        # L's dtype, a padded one the +0 of the where.
        w_real = grad_sums.to(v2.dtype).reshape(1, 1).expand(rows, 1)
        w_pad = torch.zeros((rows, 1), dtype=v2.dtype, device=v2.device)
    else:
        # seq modes: sum(L * mask, -1): grad_row * mask (1 or 0) cast to L's dtype
        grad_rows = grad_sums.reshape(rows, 1)
        w_real, w_pad = grad_rows.to(v2.dtype), (grad_rows * 0).to(v2.dtype)
    out = state.u if state.u is not None else torch.empty_like(v2)
    state.u = None
    (grad,) = _run_pass("exact", state.backend, v2, state.r2, state.o2, state.m2, w_real, w_pad, out, state.eps)
    return grad if grad.shape == state.v.shape else grad.view(state.v.shape)


def _check_inputs(vpreds, returns, values, response_mask):
    check.float_tensor("vpreds", vpreds)
    check.float_tensor("returns", returns)
    check.float_tensor("values", values)
    check.nonempty("vpreds", vpreds)
    if not isinstance(response_mask, torch.Tensor):
        raise TypeError(f"response_mask must be a torch.Tensor of 0/1 or bool, got {type(response_mask).__name__}")
    if response_mask.is_complex():
        raise TypeError(f"response_mask must be a bool, integer or floating tensor of 0/1, got {response_mask.dtype}")
    check.same_shape("vpreds", vpreds, returns=returns, values=values, response_mask=response_mask)


_ONES: dict[tuple, torch.Tensor] = {}


def _ones_column(v2: torch.Tensor) -> torch.Tensor:
    """A cached (rows, 1) column of ones in ``v2``'s dtype and device (see ``_grad_pass``)."""
    key = (v2.shape[0], v2.dtype, v2.device)
    ones = _ONES.get(key)
    if ones is None:
        if len(_ONES) > 64:
            _ONES.clear()
        ones = _ONES[key] = v2.new_ones((v2.shape[0], 1))
    return ones


def _mask_for_pass(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The mask in the values' dtype (one load width keeps the pass vectorised)."""
    if mask.dtype == dtype:
        return mask
    if mask.is_floating_point():
        # A float mask of another precision could hide a bad value (1 + 1e-12) when converted.
        check.mask_tensor("response_mask", mask)
    return mask.to(dtype)


_NP_TYPES = {torch.float32: np.float32, torch.float64: np.float64}
_NO_WARNINGS = contextlib.nullcontext()


def _scalar_types(vpreds, sum_dtype, count_dtype, clip_dtype, batch_num_tokens):
    """numpy scalar types for the token-mode tail, or None where torch's own scalar ops must run.

    numpy float32 / float64 scalars do IEEE arithmetic in their own type, so replaying verl's few
    scalar operations in numpy gives the same bits as torch's 0-d ops at a fraction of the cost.
    Covered: CPU tensors, float32 / float64 sums, an integer or float32 / float64 mask, the default
    dtype float32 (``int64 + 1e-8`` is float32 then), ``batch_num_tokens`` absent or a Python number.
    """
    if (
        vpreds.device.type != "cpu"
        or sum_dtype not in _NP_TYPES
        or clip_dtype not in _NP_TYPES
        or (count_dtype != torch.int64 and count_dtype not in _NP_TYPES)
        or torch.get_default_dtype() != torch.float32
        or isinstance(batch_num_tokens, (bool, torch.Tensor))
    ):
        return None
    return sum_dtype, count_dtype, clip_dtype


@functools.lru_cache(maxsize=64)
def _tail_types(sum_dtype, count_dtype, clip_dtype, mode, divide_by_count):
    """numpy types of verl's token-mode tail (see ``_scalar_types``): the sum's, the count's, the
    clipped count's, the clip fraction's and the loss's, and whether the divisor is the count as a float."""
    count_is_float = count_dtype in _NP_TYPES
    # mask.sum() + 1e-8: int64 + float -> float32 (default dtype); a float count stays in its dtype
    count_type = _NP_TYPES[count_dtype] if count_is_float else np.float32
    clip_type = _NP_TYPES[torch.promote_types(clip_dtype, count_dtype if count_is_float else torch.float32)]
    loss_dtype = sum_dtype
    if mode == "token-mean" and divide_by_count:  # S / mask.sum(): both 0-d, so their promoted dtype
        loss_dtype = torch.promote_types(sum_dtype, count_dtype)
    return _NP_TYPES[sum_dtype], count_type, _NP_TYPES[clip_dtype], clip_type, _NP_TYPES[loss_dtype], count_is_float


def _tail_divisor(count_type, count_is_float, mode, batch_num_tokens, n_tokens):
    """verl's token-mean divisor: ``mask.sum()`` (a float count as counted, an integer one exactly) or
    ``batch_num_tokens``; None for token-sum."""
    if mode != "token-mean":
        return None
    if batch_num_tokens is not None:
        return batch_num_tokens
    return count_type(n_tokens) if count_is_float else n_tokens


def _token_tail_scalars(scalars, s_total, n_clipped, n_tokens, mode, batch_num_tokens, dp_size, vpreds, state):
    """verl's token-mode tail and clip fraction on numpy scalars (see ``_scalar_types``)."""
    by_count = batch_num_tokens is None
    sum_type, count_type, clipped_type, clip_type, loss_type, count_is_float = _tail_types(*scalars, mode, by_count)
    total = sum_type(s_total)
    count = count_type(n_tokens)
    divisor = _tail_divisor(count_type, count_is_float, mode, batch_num_tokens, n_tokens)
    # numpy warns where torch is silent: an all-masked batch (0/0 = NaN), an overflow to inf
    quiet = n_tokens > 0 and dp_size == 1 and batch_num_tokens is None
    with _NO_WARNINGS if quiet else np.errstate(all="ignore"):
        clipfrac = clip_type(clipped_type(n_clipped)) / clip_type(count + count_type(1e-8))
        if divisor is None:
            loss = loss_type(0.5) * (total * loss_type(dp_size))
        else:
            loss = loss_type(0.5) * (loss_type(loss_type(total) / loss_type(divisor)) * loss_type(dp_size))
    # 0-d tensors of the numpy scalars' own dtypes (loss_dtype, the clip fraction's), made cheaply
    vf_loss = torch.from_numpy(np.array(loss))
    vf_clipfrac = torch.from_numpy(np.array(clipfrac))
    if state is not None:
        state.scalars = (loss_type, divisor, sum_type)
        vf_loss = _TokenLoss.apply(vpreds, vf_loss, state)
    return vf_loss, vf_clipfrac


_TOKEN_MODES = ("token-mean", "token-sum")
_SMALL_MASKS = (torch.bool, torch.uint8, torch.int32, torch.int64)


def _small_token_loss(vpreds, returns, values, mask, eps, mode, dp_size):
    """token-mean / token-sum of a small dense CPU float32 / float64 batch (the default call in a
    training step) in as few Python steps as possible: at 8 x 128 a forward+backward costs little more
    than a bare autograd.Function. Every check it makes is cheap; a call that fails one returns None
    and takes the general path, which validates in full and gives the errors."""
    dtype = vpreds.dtype
    if not (
        type(eps) is float
        and 0.0 <= eps < math.inf  # NaN fails too
        and dp_size == 1
        and type(dp_size) is int
        and dtype in _NP_TYPES
        and returns.dtype == dtype
        and values.dtype == dtype
        and (mask.dtype == dtype or mask.dtype in _SMALL_MASKS)
        and vpreds.dim() == 2
        and 0 < vpreds.numel() <= SMALL_TOKENS
        and vpreds.shape == returns.shape == values.shape == mask.shape
        and vpreds.is_cpu
        and returns.is_cpu
        and values.is_cpu
        and mask.is_cpu
        and vpreds.is_contiguous()
        and returns.is_contiguous()
        and values.is_contiguous()
        and mask.is_contiguous()
    ):
        return None
    grad_mode = torch.is_grad_enabled()
    if (grad_mode and (returns.requires_grad or values.requires_grad)) or os.environ.get(_BACKEND_ENV):
        return None  # verl's own graph differentiates those; an environment backend choice applies
    want_grad = grad_mode and vpreds.requires_grad
    if mask.dtype == dtype:  # (sum, count, clip fraction) dtypes, as in _scalar_types
        scalars = (dtype, dtype, dtype)
    elif torch.get_default_dtype() == torch.float32:  # int64 count + 1e-8 is float32 then
        scalars = (dtype, torch.int64, torch.float32)
    else:
        return None
    if _cpass.library() is None:
        return None
    v2 = vpreds.detach()
    m2 = mask if mask.dtype == dtype else mask.to(dtype)
    stats, u = _cpass.run_pass("tokens", v2, returns, values, m2, eps)
    s_total, n_clipped, n_tokens, n_care, n_bad = stats.tolist()
    if n_bad:
        check.mask_tensor("response_mask", mask)  # raises the same error as compute_value_loss
    state = None
    if want_grad:
        state = _State(vpreds, v2, returns, values, m2, eps, "auto", u, n_care)
        state.token_mode, state.sum_dtype, state.dp_size, state.w_pre, state.small = True, dtype, dp_size, 1.0, True
    return _token_tail_scalars(scalars, s_total, n_clipped, n_tokens, mode, None, dp_size, vpreds, state)


def _any_neg(a, b, c, d) -> bool:
    try:
        return a.is_neg() or b.is_neg() or c.is_neg() or d.is_neg()
    except AttributeError:  # not a tensor: the argument checks name it
        return False


def _resolved(x):
    """``x`` with a pending conjugation or negation applied (a differentiable copy); else ``x`` itself."""
    if isinstance(x, torch.Tensor) and (x.is_neg() or x.is_conj()):
        return x.resolve_conj().resolve_neg()
    return x


def fused_value_loss(
    vpreds: torch.Tensor,
    returns: torch.Tensor,
    values: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange_value: float,
    loss_agg_mode: str = "token-mean",
    *,
    dp_size: int = 1,
    batch_num_tokens=None,
    global_batch_size=None,
    loss_scale_factor=None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for :func:`valueloss.compute_value_loss`: same arguments, same ``(vf_loss, vf_clipfrac)``.

    One fused pass computes the loss, the clip fraction and (when ``vpreds`` requires grad) the
    per-token gradient (already scaled for the expected upstream in token modes); ``backward`` hands it
    over, or scales it in place. The gradient equals autograd of
    verl's eager formula bit for bit, ties included, for any upstream gradient (see the module
    docstring for the rare cases that take the exact slow path). ``vf_loss`` equals verl's up to the
    order of the float sums; ``vf_clipfrac`` is identical.

    ``backend``: ``"auto"`` (the C loop for CPU float32 / float64 batches up to ``SMALL_TOKENS`` tokens,
    inductor's compiled pass otherwise, unless ``VALUELOSS_FUSED_BACKEND`` says otherwise; falls back to
    eager with a one-time warning where compilation fails), ``"compiled"`` (inductor's pass always),
    ``"c"`` (the C loop for every CPU float32 / float64 batch, inductor's pass elsewhere) or ``"eager"``.
    Inputs other than ``vpreds`` that require grad (a 0-d clip range tensor included), ``returns`` /
    ``values`` of another dtype than ``vpreds``, or a clip range given as a tensor with dimensions are handed to
    :func:`compute_value_loss` unchanged (its dtype promotion applies there).
    """
    # The passes read raw memory: a negative-bit view (``z.conj().imag``) must be materialised first,
    # or its values would be read with the wrong sign. (Real tensors carry no conjugate bit; complex
    # ones are refused below.) Anything that is not a tensor is left to the checks below.
    if _any_neg(vpreds, returns, values, response_mask):
        vpreds, returns, values, response_mask = (_resolved(x) for x in (vpreds, returns, values, response_mask))
    if (
        backend == "auto"
        and loss_agg_mode in _TOKEN_MODES
        and batch_num_tokens is None
        and global_batch_size is None
        and loss_scale_factor is None
        and isinstance(vpreds, torch.Tensor)
        and isinstance(returns, torch.Tensor)
        and isinstance(values, torch.Tensor)
        and isinstance(response_mask, torch.Tensor)
    ):
        result = _small_token_loss(vpreds, returns, values, response_mask, cliprange_value, loss_agg_mode, dp_size)
        if result is not None:
            return result
    _check_inputs(vpreds, returns, values, response_mask)
    check.clip_range("cliprange_value", cliprange_value)
    _check_agg(loss_agg_mode, dp_size, batch_num_tokens, global_batch_size, loss_scale_factor)
    backend = _resolve_backend(backend)
    delegate = (
        (isinstance(cliprange_value, torch.Tensor) and cliprange_value.dim() != 0)
        or returns.dtype != vpreds.dtype
        or values.dtype != vpreds.dtype
        or (torch.is_grad_enabled() and (returns.requires_grad or values.requires_grad))
        # a clip range that requires grad: autograd of verl's formula gives its gradient (the pass has none)
        or (torch.is_grad_enabled() and isinstance(cliprange_value, torch.Tensor) and cliprange_value.requires_grad)
    )
    if delegate:
        return compute_value_loss(
            vpreds,
            returns,
            values,
            response_mask,
            cliprange_value,
            loss_agg_mode,
            dp_size=dp_size,
            batch_num_tokens=batch_num_tokens,
            global_batch_size=global_batch_size,
            loss_scale_factor=loss_scale_factor,
        )

    eps = float(cliprange_value.item() if isinstance(cliprange_value, torch.Tensor) else cliprange_value)
    mask = response_mask
    width = vpreds.shape[-1]
    rows_shape = vpreds.shape[:-1]
    flat = vpreds.dim() != 2
    v2 = vpreds.detach()
    r2, o2, m2 = returns.detach(), values.detach(), _mask_for_pass(mask, vpreds.dtype)
    if flat:
        v2, r2, o2, m2 = (x.reshape(-1, width) for x in (v2, r2, o2, m2))
    want_grad = torch.is_grad_enabled() and vpreds.requires_grad
    token_mode = loss_agg_mode in ("token-mean", "token-sum")

    # dtypes exactly as verl's expressions produce them
    sum_dtype = torch.promote_types(vpreds.dtype, mask.dtype)  # masked_sum(loss_mat, mask)
    count_dtype = mask.dtype if mask.is_floating_point() else torch.int64  # mask.sum()
    clip_dtype = torch.promote_types(torch.float32, mask.dtype)  # masked_sum(gt(...).float(), mask)
    scalars = _scalar_types(vpreds, sum_dtype, count_dtype, clip_dtype, batch_num_tokens) if token_mode else None

    s_mul = tokens = u = None
    w_pre = 1.0
    if not want_grad:
        stats, s_mul, tokens = _run_pass("loss", backend, v2, r2, o2, m2, eps)
    elif token_mode:
        if scalars is not None and vpreds.dtype in _NP_TYPES and not _runs_c_loop("tokens", backend, v2):
            # fold the backward's weight into the pass (the C loop's batches are small: it scales later)
            w_pre = _folded_weight(scalars, loss_agg_mode, batch_num_tokens, dp_size, mask, vpreds.dtype)
        weight = torch.tensor([w_pre], dtype=v2.dtype, device=v2.device)
        stats, u = _run_pass("tokens", backend, v2, r2, o2, m2, weight, eps)
    else:
        stats, s_mul, tokens, u = _run_pass("rows", backend, v2, r2, o2, m2, _ones_column(v2), eps)
    s_total, n_clipped, n_tokens, n_care, n_bad = stats.tolist()
    if n_bad:
        check.mask_tensor("response_mask", mask)  # raises the same error as compute_value_loss

    state = None
    if want_grad:
        state = _State(vpreds, v2, r2, o2, m2, eps, backend, u, n_care, tokens)
        state.token_mode, state.sum_dtype, state.dp_size, state.w_pre = token_mode, sum_dtype, dp_size, w_pre
        state.small = v2.numel() <= SMALL_TOKENS and _runs_c_loop("tokens", backend, v2)  # scale u in C too

    if token_mode and scalars is not None:
        return _token_tail_scalars(
            scalars, s_total, n_clipped, n_tokens, loss_agg_mode, batch_num_tokens, dp_size, vpreds, state
        )
    tokens_t = stats[2].to(count_dtype)  # == mask.sum(): an exact integer count
    vf_clipfrac = stats[1].to(clip_dtype) / (tokens_t + 1e-8)

    # The scalar tail: verl's agg_loss after its masked sums, operation for operation.
    if token_mode:
        sums = stats[0].to(sum_dtype)
        if loss_agg_mode == "token-mean":
            divisor = tokens_t if batch_num_tokens is None else batch_num_tokens
            vf_loss = 0.5 * (sums / divisor * dp_size)
        else:
            divisor = None
            vf_loss = 0.5 * (sums * dp_size)
        if want_grad:
            state.divisor = divisor
            vf_loss = _TokenLoss.apply(vpreds, vf_loss, state)
        return vf_loss, vf_clipfrac

    sums = s_mul.to(sum_dtype).reshape(rows_shape)
    if want_grad:
        sums = _RowSums.apply(vpreds, sums, state)
    row_tokens = tokens.to(count_dtype).reshape(rows_shape)
    seq_losses = sums / (row_tokens + 1e-8) if loss_agg_mode == "seq-mean-token-mean" else sums
    seq_mask = (row_tokens > 0).float()
    n_seqs = seq_mask.sum() if global_batch_size is None else global_batch_size
    valid = torch.where(seq_mask.bool(), seq_losses, 0.0)
    loss = (valid * seq_mask).sum() / n_seqs * dp_size
    if loss_agg_mode == "seq-mean-token-sum-norm":
        loss = loss / (loss_scale_factor if loss_scale_factor is not None else width)
    vf_loss = 0.5 * loss
    return vf_loss, vf_clipfrac
