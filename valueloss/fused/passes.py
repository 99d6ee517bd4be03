"""2b. The CPU path beside the C loop: the same pass in torch, compiled by inductor (or run eagerly).

The pass reads ``v``, ``R``, ``v_old`` and the mask once and returns the masked loss sum(s), the clip
count, the token count, a count of real tokens that need care (the backward recomputes those rather
than scale ``u``) and a count of mask values that are not 0/1, and writes the unit gradient ``u``
(autograd's per-token backward for a weight of 1; padding: weight +0). ``exact`` is autograd's backward
rule for rule, for any per-token weights (the recomputation). inductor compiles each pass once per
dtype, device and thread count, with symbolic sizes (no guards per call); where that fails the same
pass runs eagerly, with a one-time warning.
"""

from __future__ import annotations

import functools
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

from . import cloop

__all__ = ["PASSES", "ones_column", "report", "run", "runs_c_loop"]


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
    # Real tokens, upstream weight one (see valueloss.fused for the cases):
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


def _tokens_pass(v, returns, values, mask, eps):
    """token modes: one flat loop writes the unit gradient ``u`` and reduces everything to totals."""
    maskb, lu, lc, lm, u_real, u_pad, edge = _per_token(v, returns, values, mask, eps)
    u = torch.where(maskb, u_real, u_pad)
    s_where, _, clipped, tokens, care, bad = _stats(mask, maskb, lu, lc, lm, _needs_care(maskb, edge, lm, u), None)
    return _totals(s_where, clipped, tokens, care, bad), u


def _rows_pass(v, returns, values, mask, rowone, eps):
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


PASSES: dict[str, Callable[..., Any]] = {
    "tokens": _tokens_pass,
    "rows": _rows_pass,
    "loss": _loss_pass,
    "exact": _exact_pass,
}


@functools.lru_cache(maxsize=256)
def _eps_tensor(eps: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``eps`` as the compiled pass takes it, so that ``values +- eps`` rounds as verl's eager op does.

    A (1,) tensor in the op's compute dtype (float32 for bfloat16 / float16): CPU eager rounds a
    Python scalar to the tensor's dtype first, CUDA keeps it in float32. (A 0-d tensor would be
    traced as a Python float and specialised.)
    """
    reduced = dtype in (torch.bfloat16, torch.float16)
    value = float(torch.tensor(eps, dtype=dtype)) if reduced and device.type == "cpu" else eps
    return torch.tensor([value], dtype=torch.float32 if reduced else dtype, device=device)


@functools.lru_cache(maxsize=64)
def ones_column(rows: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A (rows, 1) column of ones for the rows pass (see ``_rows_pass``)."""
    return torch.ones((rows, 1), dtype=dtype, device=device)


def _compile(kind: str, args: tuple):
    """Trace the pass with symbolic sizes and compile it with inductor (no dynamo guards per call)."""
    from torch.fx.experimental.proxy_tensor import make_fx

    # The example sizes are only hints, but inductor sizes its parallel loops from them, so they are
    # large; and distinct (equal example sizes would make the tracer assume rows == columns).
    v, eps = args[0], args[-1]
    rows, cols = 1031, 4099
    columns = {"rows": 1, "exact": 2}.get(kind, 0)  # (rows, 1) inputs: the ones column, the weights
    shapes = [(rows, cols)] * 4 + [(rows, 1)] * columns + [(rows, cols)] * (kind == "exact") + [tuple(eps.shape)]
    dtypes = [v.dtype] * (len(shapes) - 1) + [eps.dtype]
    example = [torch.empty(shape, dtype=dtype, device=v.device) for shape, dtype in zip(shapes, dtypes, strict=True)]
    graph = make_fx(PASSES[kind], tracing_mode="symbolic")(*example)
    fake = [node.meta["val"] for node in graph.graph.nodes if node.op == "placeholder"]
    options: dict[str, bool | int] = {"emulate_precision_casts": True}
    if v.device.type == "cpu":  # the thread count is baked into the kernel: make it part of the cache key
        options["cpp.threads"] = torch.get_num_threads()
    return torch._inductor.compile(graph, fake, options=options)


_LOCK = threading.Lock()  # one compilation at a time
# What each compilation did, for fused_backend_report (no result depends on it): (pass, dtype, device,
# threads) -> {"state": "ready" | "eager", "compile_s" | "error"}
_REPORT: dict[tuple, dict] = {}


@functools.cache
def _compiled(kind: str, dtype: torch.dtype, device: torch.device, threads: int):
    """The compiled pass, once per pass, dtype, device and thread count; None where compilation failed
    (the same pass then runs eagerly, after a one-time warning)."""
    example = torch.empty((2, 3), dtype=dtype, device=device)
    args = [example] * 4 + [example[:, :1]] * {"rows": 1, "exact": 2}.get(kind, 0)
    args += [example] * (kind == "exact") + [_eps_tensor(0.0, dtype, device)]
    key = (kind, dtype, device, threads)
    start = time.perf_counter()
    try:
        compiled = _compile(kind, tuple(args))
    except Exception as err:  # noqa: BLE001 - any compiler failure means: run the same pass eagerly
        first = not any(info["state"] == "eager" for info in _REPORT.values())
        _REPORT[key] = {"state": "eager", "error": f"{type(err).__name__}: {str(err)[:200]}"}
        if first:
            warnings.warn(
                f"valueloss.fused: compiling the fused pass failed here ({type(err).__name__}); running the same "
                "pass in eager torch (same numbers, slower). Set VALUELOSS_FUSED_BACKEND=eager to silence this.",
                RuntimeWarning,
                stacklevel=2,
            )
        return None
    _REPORT[key] = {"state": "ready", "compile_s": time.perf_counter() - start}
    return compiled


def run(kind: str, backend: str, *args):
    """Run pass ``kind`` as the C loop (``backend`` "c", and small CPU batches under "auto"), compiled
    by inductor, or eagerly (``backend`` "eager", or where compilation failed).

    The last argument is ``eps`` as a Python float; the compiled pass takes it as a (1,) tensor.
    """
    fn = PASSES[kind]
    if backend == "eager":
        return fn(*args)
    v = args[0]
    if runs_c_loop(kind, backend, v):
        v, returns, values, mask = (a.contiguous() for a in args[:4])
        return cloop.run_pass(kind, v, returns, values, mask, args[-1])
    with _LOCK:
        compiled = _compiled(kind, v.dtype, v.device, torch.get_num_threads())
    if compiled is None:
        return fn(*args)
    tensors = (*(a.contiguous() for a in args[:-1]), _eps_tensor(args[-1], v.dtype, v.device))
    return tuple(compiled(*tensors))


def runs_c_loop(kind: str, backend: str, v: torch.Tensor) -> bool:
    """Whether pass ``kind`` runs as the C loop: small CPU float32 / float64 batches under "auto",
    every one under "c", where a C compiler built it (the exact backward pass is never the loop)."""
    return (
        kind != "exact"
        and (backend == "c" or (backend == "auto" and v.numel() <= cloop.SMALL_TOKENS))
        and cloop.supports(v)
        and cloop.library() is not None
    )


def report() -> list[dict]:
    """What each compiled pass did: ``state`` (ready / eager) and compile seconds (or the error)."""
    return [
        {"backend": "compiled", "pass": kind, "dtype": str(dtype).removeprefix("torch."), "device": str(device),
         "threads": threads, **info}
        for (kind, dtype, device, threads), info in sorted(_REPORT.items(), key=str)
    ]  # fmt: skip
