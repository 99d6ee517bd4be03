"""4. The autograd Functions: a fused pass's sums (or finished token-mode loss) with autograd's gradient.

``SumsFunction`` returns the masked loss sum(s), the token count(s) and the clip fraction; verl's (or
OpenRLHF's) tail runs after it under autograd, so its backward receives the gradient of the sums as
autograd computes it and turns it into per-token weights by autograd's rules for ``masked_sum``
(``where(mask, L, 0) * mask``: a real token gets ``g * 1``, padding the ``+0`` of the where) or
``L * mask`` (padding gets ``g * 0``). ``TokenLoss`` (CPU, float32 / float64 sums) returns the finished
token-mode loss and replays the tail's three scalar rules on numpy scalars.

Either backward hands autograd the forward's buffer ``u`` after scaling it in place by the weight (the
context's reference is dropped first, so autograd takes it as ``.grad`` without a copy) where that
product is autograd's bits, and recomputes the gradient from the inputs rule for rule elsewhere; a
second backward through a retained graph recomputes into a fresh buffer. No state outlives a call:
what the backward needs is the call's frozen record, the pass's counts and the buffer on ``ctx``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .. import _validate as check
from . import cloop, passes
from .plan import Call
from .tail import NP_TYPES, ScalarTail

__all__ = ["HostPass", "SumsFunction", "TokenLoss", "device_pass", "host_pass"]

# Dtypes whose products W * u round exactly like autograd's chain inside the ranges below.
_FAST_DTYPES = (torch.float32, torch.float64, torch.bfloat16)
# The pass flags |u| < 2^-59 (W * u might be subnormal) and squared terms > 2^120 (might overflow);
# the backward scales only by weights in this range:
_W_MIN, _W_MAX = 2.0**-60, 2.0**60


def _kernel():
    from . import kernel  # Triton: imported where it runs

    return kernel


class HostPass(NamedTuple):
    """A CPU pass's outputs: ``totals`` (the token-mode loss sum, clipped, real, care and bad-mask
    counts, as Python numbers), the row sums and real tokens per row (or None), ``u`` (or None), and
    whether the C loop ran it (its backward then scales ``u`` in C too)."""

    totals: tuple[float, float, float, float, float]
    row_sums: torch.Tensor | None
    row_tokens: torch.Tensor | None
    u: torch.Tensor | None
    loop: bool


def host_pass(call: Call, mask: torch.Tensor | None) -> HostPass:
    """Run the CPU pass the call needs (C loop, inductor or eager, by ``call.backend``); a mask value
    other than 0/1 raises ``compute_value_loss``'s error."""
    v, r, o, m = call.v, call.r, call.o, call.m
    row_sums = row_tokens = u = None
    loop = passes.runs_c_loop("tokens", call.backend, v)
    if not call.want_grad:
        stats, row_sums, row_tokens = passes.run("loss", call.backend, v, r, o, m, call.eps)
    elif not call.row_sums:
        stats, u = passes.run("tokens", call.backend, v, r, o, m, call.eps)
    else:
        ones = passes.ones_column(v.shape[0], v.dtype, v.device)
        stats, row_sums, row_tokens, u = passes.run("rows", call.backend, v, r, o, m, ones, call.eps)
    totals = tuple(stats.tolist())
    if totals[4] and mask is not None:  # a bad value can only come from a mask
        check.mask_tensor(call.mask_name, mask)  # raises the same error as compute_value_loss
    return HostPass(totals, row_sums, row_tokens, u, loop)


def device_pass(call: Call, mask: torch.Tensor | None):
    """``(sums, counts, clip fraction, u, care)`` of the call's backend, sums and counts in verl's dtypes."""
    k = call.kinds
    if call.backend == "triton":
        sums, counts, frac, bad, u = _kernel().forward(call)
        if mask is not None and mask.dtype != torch.bool:
            if bad.device.type == "cpu":
                if int(bad):
                    check.mask_tensor(call.mask_name, mask)
            else:  # no host sync: a device-side assertion, as torch's own losses check their targets
                torch._assert_async(bad == 0, f"{call.mask_name} must hold only 0 and 1 (1 = real token, 0 = padding)")
        return sums, counts, frac, u, None
    host = host_pass(call, mask)
    s_where, n_clipped, n_tokens, care, _ = host.totals
    if call.row_sums:
        assert host.row_sums is not None and host.row_tokens is not None  # the pass returns them in row mode
        sums, counts = host.row_sums.to(k.sum_dtype), host.row_tokens.to(k.count_dtype)
        n = torch.tensor(n_tokens, dtype=torch.float64).to(k.count_dtype)
    else:
        sums = torch.tensor(s_where, dtype=torch.float64).to(k.sum_dtype)
        counts = n = torch.tensor(n_tokens, dtype=torch.float64).to(k.count_dtype)
    frac = torch.tensor(n_clipped, dtype=torch.float64).to(k.num_dtype) / (n + 1e-8)  # verl's masked_mean tail
    return sums, counts, frac, host.u, int(care)


def _refuse_double_backward():
    if torch.is_grad_enabled():
        raise RuntimeError("fused_value_loss does not support double backward (create_graph=True)")


def _take(ctx) -> torch.Tensor | None:
    """The forward's buffer, once: the context lets go of it, so that autograd can own it."""
    buffer, ctx.buffer = ctx.buffer, None
    return buffer


class SumsFunction(torch.autograd.Function):
    """``(sums, counts, clip fraction)`` of a call; differentiable in ``vpreds`` through the sums."""

    @staticmethod
    def forward(ctx, vpreds, returns, values, mask, call: Call):
        sums, counts, frac, u, care = device_pass(call, mask)
        ctx.save_for_backward(vpreds, returns, values, mask)  # autograd then refuses inputs changed in place
        ctx.call, ctx.care, ctx.counts, ctx.buffer = call, care, counts.detach(), u
        ctx.mark_non_differentiable(counts, frac)
        return sums, counts, frac

    @staticmethod
    def backward(ctx, grad_sums, _counts, _frac):
        _refuse_double_backward()
        ctx.saved_tensors  # noqa: B018 - the version check
        call = ctx.call
        dtype = call.v.dtype
        # masked_sum: real tokens g * 1, padding the +0 of the where; L * mask: padding g * 0 (cast to L's dtype)
        w_real = grad_sums.to(dtype)
        w_pad = None if call.where_sum else (grad_sums * 0).to(dtype)
        if call.backend == "triton":
            grad = _kernel().backward(call, w_real, w_pad, _take(ctx))
        else:
            grad = _cpu_grad(call, w_real, w_pad, _take(ctx), ctx.care, ctx.counts)
        return grad.view(call.shape), None, None, None, None


class TokenLoss(torch.autograd.Function):
    """CPU token modes: ``(vf_loss, vf_clipfrac)`` from a pass, verl's tail on numpy scalars."""

    @staticmethod
    def forward(ctx, vpreds, mask, call: Call, host: HostPass, tail_args: tuple):
        """``tail_args``: ``(loss_agg_mode, dp_size, batch_num_tokens)``."""
        s_where, n_clipped, n_tokens, care, _ = host.totals
        mode, dp_size, batch_num_tokens = tail_args
        loss, frac, tail = ScalarTail.run(call.kinds, mode, s_where, n_clipped, n_tokens, dp_size, batch_num_tokens)
        ctx.save_for_backward(vpreds, call.r, call.o, mask)  # autograd then refuses inputs changed in place
        ctx.call, ctx.care, ctx.tail, ctx.loop, ctx.buffer = call, int(care), tail, host.loop, host.u
        ctx.mark_non_differentiable(frac)
        return loss, frac

    @staticmethod
    def backward(ctx, grad_loss, _frac):
        _refuse_double_backward()
        ctx.saved_tensors  # noqa: B018 - the version check
        call = ctx.call
        grad_sum = ctx.tail.sum_grad(grad_loss.item())  # a CPU scalar: no device to wait for
        v, u = call.v, _take(ctx)
        if u is not None and ctx.care == 0 and v.dtype in _FAST_DTYPES:
            if v.dtype in NP_TYPES:
                weight = w = float(NP_TYPES[v.dtype](grad_sum))  # float32 / float64 mul_ uses it exactly
            else:  # bfloat16: autograd multiplies by the bfloat16 weight, so must we
                weight = torch.tensor(float(grad_sum), dtype=v.dtype)
                w = weight.item()
            if _W_MIN <= w <= _W_MAX:
                if ctx.loop:
                    cloop.scale(u, w)
                else:
                    u.mul_(weight)
                return u.view(call.shape), None, None, None, None
        w_real = torch.tensor(float(grad_sum), dtype=call.kinds.sum_dtype).to(v.dtype)
        grad = _exact(call, w_real, None, u)
        return grad.view(call.shape), None, None, None, None


def _cpu_grad(call: Call, w_real, w_pad, u, care: int, counts: torch.Tensor) -> torch.Tensor:
    """``w * u`` in place where that is provably autograd's product, else the exact recomputation.

    Provably: no token the pass flagged, a weight in the normal range below (so padding's weight
    ``g * 0`` is +0), and per row (seq modes) either that or a row without real tokens whose weight
    is a finite ``>= 0`` with padding weight +0 (padding's ``u`` times it is padding's own gradient).
    """
    v = call.v
    if u is not None and care == 0 and v.dtype in _FAST_DTYPES:
        if w_real.dim() == 0:
            usable = _W_MIN <= w_real.item() <= _W_MAX
        else:
            in_range = (w_real >= _W_MIN) & (w_real <= _W_MAX)
            pad_plus_zero = (w_pad == 0) & ~torch.signbit(w_pad)
            empty = (counts.reshape(w_real.shape) == 0) & (w_real >= 0) & torch.isfinite(w_real) & pad_plus_zero
            usable = bool((in_range | empty).all())
        if usable:
            return u.mul_(w_real.reshape(-1, 1) if w_real.dim() else w_real)
    return _exact(call, w_real, w_pad, u)


def _exact(call: Call, w_real: torch.Tensor, w_pad: torch.Tensor | None, u) -> torch.Tensor:
    """Autograd's per-token weights, then its backward rules in one pass (inductor or eager): exact for
    any weight. Written into the forward's buffer where there is one."""
    v = call.v
    rows = v.shape[0]
    w_real = w_real.reshape(-1, 1).expand(rows, 1)
    w_pad = torch.zeros((rows, 1), dtype=v.dtype) if w_pad is None else w_pad.reshape(-1, 1).expand(rows, 1)
    out = u if u is not None else torch.empty_like(v)
    (grad,) = passes.run("exact", call.backend, v, call.r, call.o, call.m, w_real, w_pad, out, call.eps)
    return grad
