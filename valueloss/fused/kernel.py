"""3. The GPU path: one Triton kernel reads v, R, v_old and the mask once per call.

``forward`` launches two kernels and never waits for the device:

- ``_forward_kernel`` over (row, chunk) programs (a row splits into chunks when rows are few, so that
  every multiprocessor has work): per token, verl's (or OpenRLHF's) loss terms and the *unit*
  gradient ``u`` (autograd's backward for a per-token weight of 1, in autograd's order of operations);
  per program, fp32 partials (fp64 for fp64 inputs): the where-masked and the multiplied loss sums,
  the clipped, real and bad-mask token counts. bf16 / fp16 are loaded and computed in fp32 and every
  operation is rounded to the storage type, as each eager op rounds its result.
- ``_finalize_kernel``, one program: reduces the partials in a fixed order (deterministic: no
  atomics), writes the masked sum (or the row sums) and the token count(s) in verl's dtypes, the
  clip fraction exactly as verl divides it, and the count of mask values other than 0/1.

``backward`` launches ``_backward_kernel`` once: where the weight autograd hands a token makes the
product exact (the weight in [2^-60, 2^60], padding weight +0, fp32 / bf16 / fp64) it writes
``round(w * u)`` into ``u``'s own buffer; tokens the forward marked (``u`` = NaN: band edges, products
that could leave the normal range, NaN inputs) and every token of a row whose weight is outside that
range are recomputed from the inputs, rule for rule. See :mod:`valueloss.fused` for why that is
autograd's gradient bit for bit and why 8 bytes per fp32 token (read ``u``, write the gradient) is the
price of not knowing the upstream gradient in the forward.

Launches use ``enable_fp_fusion=False``: a fused multiply-add rounds once where eager rounds twice.
``TRITON_INTERPRET=1`` runs the same kernels on CPU tensors (how CI tests them). The interpreter
truncates when it stores fp32 as bf16, so bf16 values are rounded to nearest-even by ``_rne_bf16``
before any store, and stores are exact on both.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .plan import Call

__all__ = ["backward", "forward", "interpreting", "layout", "supports"]

FP64, FP32, BF16, FP16, INT = 0, 1, 2, 3, 4  # storage kinds (INT: an exact integer count, int64)
KIND_OF = {torch.float64: FP64, torch.float32: FP32, torch.bfloat16: BF16, torch.float16: FP16}
MAX_CHUNK = 1 << 20  # columns per program at most: fp32 partial counts stay exact (< 2^24)


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (``TRITON_INTERPRET=1``: CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def supports(v: torch.Tensor) -> bool:
    """CUDA tensors, or CPU tensors under the interpreter."""
    return v.device.type == "cuda" or (v.device.type == "cpu" and interpreting())


# ---------------------------------------------------------------- per-token arithmetic


@triton.jit
def _rne_bf16(x):
    """fp32 ``x`` rounded to the nearest bfloat16, ties to even (as torch converts), kept in fp32."""
    bits = x.to(tl.uint32, bitcast=True)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return tl.where(x == x, rounded, bits | 0x400000).to(tl.float32, bitcast=True)  # NaN stays a (quiet) NaN


@triton.jit
def _round(x, KIND: tl.constexpr):
    """``x`` rounded to the storage type ``KIND`` (as an eager op on that type rounds its result)."""
    if KIND == 2:
        x = _rne_bf16(x)
    elif KIND == 3:
        x = x.to(tl.float16).to(tl.float32)
    return x


@triton.jit
def _as_kind(x, KIND: tl.constexpr):
    """An fp64 value rounded to ``KIND`` (via fp32 for bf16 / fp16, as torch converts doubles), as fp64."""
    if KIND == 1:
        x = x.to(tl.float32).to(tl.float64)
    elif KIND == 2:
        x = _rne_bf16(x.to(tl.float32)).to(tl.float64)
    elif KIND == 3:
        x = x.to(tl.float32).to(tl.float16).to(tl.float64)
    return x


@triton.jit
def _stored(x, KIND: tl.constexpr):
    """An fp64 value as ``KIND`` stores it: rounded as ``_as_kind`` does, then in a type whose store is exact
    (bf16 through fp32: the interpreter converts fp64 to bf16 wrongly)."""
    if KIND == 0:
        out = x
    elif KIND == 1:
        out = x.to(tl.float32)
    elif KIND == 2:
        out = _rne_bf16(x.to(tl.float32))
    elif KIND == 3:
        out = x.to(tl.float32).to(tl.float16)
    else:
        out = x.to(tl.int64)
    return out


@triton.jit
def _terms(v, r, o, eps, KIND: tl.constexpr, DELTA: tl.constexpr, CLIP: tl.constexpr):
    """The loss terms of one token, each operation rounded like eager's.

    verl (``DELTA`` False): ``clip = max(min(v, o + eps), o - eps)``; OpenRLHF (``DELTA``):
    ``clip = o + clamp(v - o, -eps, eps)``; ``CLIP`` False: no clipping. ``inner``, ``lo`` and ``hi``
    are what the clip's gradient rule compares: ``min(v, hi)`` and the band (verl), ``v - o`` and
    ``-eps, eps`` (OpenRLHF).
    """
    d_u = _round(v - r, KIND)
    loss_u = _round(d_u * d_u, KIND)
    if CLIP:
        if DELTA:
            inner = _round(v - o, KIND)
            hi = _round(eps, KIND)  # the clamp's bounds in the tensor's type
            lo = -hi
            clamped = tl.where(inner < lo, lo, tl.where(inner > hi, hi, inner))  # NaN falls through
            v_clip = _round(o + _round(clamped, KIND), KIND)
        else:
            lo = _round(o - eps, KIND)
            hi = _round(o + eps, KIND)
            inner = tl.where(v < hi, v, hi)  # minimum: NaN in either operand propagates
            inner = tl.where(v != v, v, inner)
            v_clip = tl.where(inner > lo, inner, lo)
            v_clip = tl.where(inner != inner, inner, v_clip)
        d_c = _round(v_clip - r, KIND)
        loss_c = _round(d_c * d_c, KIND)
    else:
        inner = v
        lo = v
        hi = v
        d_c = d_u
        loss_c = loss_u
    loss_max = tl.where(loss_u > loss_c, loss_u, loss_c)
    loss_max = tl.where(loss_u != loss_u, loss_u, loss_max)
    return inner, lo, hi, d_u, d_c, loss_u, loss_c, loss_max


@triton.jit
def _grad(v, inner, lo, hi, d_u, d_c, loss_u, loss_c, w, KIND: tl.constexpr, DELTA: tl.constexpr, CLIP: tl.constexpr):
    """Autograd's backward of the per-token loss for the weight ``w`` it hands the token, rule for rule.

    ``maximum`` splits a tie in half and gives the loser +0; ``pow`` sends ``w * (2 * d)``; verl's
    ``min`` / ``max`` clip does the same on ``v`` (halving ``x / 2`` written ``x * 0.5``: the same
    bits), OpenRLHF's ``clamp`` passes the gradient where ``lo <= v - o <= hi``; the two paths add.
    """
    if CLIP:
        half = tl.where(loss_u == loss_c, _round(w * 0.5, KIND), w)
        to_u = tl.where(loss_u < loss_c, 0.0, half)
        to_c = tl.where(loss_u > loss_c, 0.0, half)
        from_u = _round(to_u * _round(2.0 * d_u, KIND), KIND)
        through = _round(to_c * _round(2.0 * d_c, KIND), KIND)
        if DELTA:
            from_c = tl.where((inner >= lo) & (inner <= hi), through, 0.0)
        else:
            to_inner = tl.where(inner < lo, 0.0, tl.where(inner == lo, _round(through * 0.5, KIND), through))
            from_c = tl.where(v > hi, 0.0, tl.where(v == hi, _round(to_inner * 0.5, KIND), to_inner))
        g = _round(from_u + from_c, KIND)
    else:
        g = _round(w * _round(2.0 * d_u, KIND), KIND)
    return g


# ---------------------------------------------------------------- the kernels


@triton.jit
def _forward_kernel(
    v_ptr, r_ptr, o_ptr, m_ptr, u_ptr, part_ptr, eps: tl.float64, rows, cols, chunk_cols, n_parts,
    KIND: tl.constexpr, CT: tl.constexpr, DELTA: tl.constexpr, CLIP: tl.constexpr, HAS_MASK: tl.constexpr,
    WRITE_U: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """A tile of ``ROWS`` rows by one chunk of columns, ``BLOCK`` columns at a time; one partial per row."""
    row = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    row_in = row < rows
    chunk = tl.program_id(1)
    start = chunk * chunk_cols
    stop = tl.minimum(start + chunk_cols, cols)
    base = row[:, None] * cols
    eps_c = tl.cast(eps, tl.float64).to(CT)
    s_where = tl.zeros([ROWS, BLOCK], CT)
    s_mul = tl.zeros([ROWS, BLOCK], CT)
    n_clipped = tl.zeros([ROWS, BLOCK], tl.int32)
    n_real = tl.zeros([ROWS, BLOCK], tl.int32)
    n_bad = tl.zeros([ROWS, BLOCK], tl.int32)
    for off in tl.range(start, stop, BLOCK):
        col = off + tl.arange(0, BLOCK)
        inb = row_in[:, None] & (col < stop)[None, :]
        at = base + col[None, :]
        v = tl.load(v_ptr + at, mask=inb, other=0.0).to(CT)
        r = tl.load(r_ptr + at, mask=inb, other=0.0).to(CT)
        o = tl.load(o_ptr + at, mask=inb, other=0.0).to(CT)
        if HAS_MASK:
            m = tl.load(m_ptr + at, mask=inb, other=0)
            real = inb & (m != 0)
            n_bad += (real & (m != 1)).to(tl.int32)
            m_val = m.to(CT)
        else:
            real = inb
            m_val = tl.full([ROWS, BLOCK], 1.0, CT)
        inner, lo, hi, d_u, d_c, loss_u, loss_c, loss_max = _terms(v, r, o, eps_c, KIND, DELTA, CLIP)
        s_where += tl.where(real, loss_max, 0.0)
        s_mul += tl.where(inb, loss_max * m_val, 0.0)  # NaN padding poisons this sum, as verl's seq modes
        n_clipped += (real & (loss_c > loss_u)).to(tl.int32)
        n_real += real.to(tl.int32)
        if WRITE_U:
            u = _grad(v, inner, lo, hi, d_u, d_c, loss_u, loss_c, tl.where(real, 1.0, 0.0).to(CT), KIND, DELTA, CLIP)
            # real tokens whose w * u might not be autograd's bits: the backward recomputes them
            care = (loss_max <= 2.0**120) == 0
            care = care | ((tl.abs(u) < 2.0**-59) & (u != 0.0))
            if CLIP and not DELTA:
                care = care | (v == lo) | (v == hi)
            u = tl.where(real & care, float("nan"), u)
            tl.store(u_ptr + at, u, mask=inb)
    part = row * tl.num_programs(1) + chunk
    tl.store(part_ptr + part, tl.sum(s_where, 1), mask=row_in)
    tl.store(part_ptr + n_parts + part, tl.sum(s_mul, 1), mask=row_in)
    tl.store(part_ptr + 2 * n_parts + part, tl.sum(n_clipped, 1).to(CT), mask=row_in)
    tl.store(part_ptr + 3 * n_parts + part, tl.sum(n_real, 1).to(CT), mask=row_in)
    tl.store(part_ptr + 4 * n_parts + part, tl.sum(n_bad, 1).to(CT), mask=row_in)


@triton.jit
def _finalize_kernel(
    part_ptr, n_parts, chunks, rows, sums_ptr, counts_ptr, frac_ptr, bad_ptr,
    ROWS: tl.constexpr, WHERE: tl.constexpr, SUM: tl.constexpr, COUNT: tl.constexpr, NUM: tl.constexpr,
    DEN: tl.constexpr, FRAC: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    idx = tl.arange(0, BLOCK)
    s = tl.zeros([BLOCK], tl.float64)
    clipped = tl.zeros([BLOCK], tl.float64)
    tokens = tl.zeros([BLOCK], tl.float64)
    bad = tl.zeros([BLOCK], tl.float64)
    which = 0 if WHERE else 1  # the where-masked sum (verl's token modes) or the multiplied one
    for start in tl.range(0, n_parts, BLOCK):
        j = start + idx
        inb = j < n_parts
        s += tl.load(part_ptr + which * n_parts + j, mask=inb, other=0.0).to(tl.float64)
        clipped += tl.load(part_ptr + 2 * n_parts + j, mask=inb, other=0.0).to(tl.float64)
        tokens += tl.load(part_ptr + 3 * n_parts + j, mask=inb, other=0.0).to(tl.float64)
        bad += tl.load(part_ptr + 4 * n_parts + j, mask=inb, other=0.0).to(tl.float64)
    n_clipped = tl.sum(clipped, 0)
    n_tokens = tl.sum(tokens, 0)
    if ROWS:  # each row's chunks in order
        for r0 in tl.range(0, rows, BLOCK):
            rr = r0 + idx
            rin = rr < rows
            row_sum = tl.zeros([BLOCK], tl.float64)
            row_tokens = tl.zeros([BLOCK], tl.float64)
            for c in tl.range(0, chunks):
                row_sum += tl.load(part_ptr + n_parts + rr * chunks + c, mask=rin, other=0.0).to(tl.float64)
                row_tokens += tl.load(part_ptr + 3 * n_parts + rr * chunks + c, mask=rin, other=0.0).to(tl.float64)
            tl.store(sums_ptr + rr, _stored(row_sum, SUM), mask=rin)
            tl.store(counts_ptr + rr, _stored(row_tokens, COUNT), mask=rin)
    else:
        tl.store(sums_ptr, _stored(tl.sum(s, 0), SUM))
        tl.store(counts_ptr, _stored(n_tokens, COUNT))
    # verl's clip fraction: masked_sum(gt.float(), mask) / (mask.sum() + 1e-8), each step in verl's dtype;
    # computed in fp64 from operands of that dtype, so one rounding gives the dtype's own result
    denominator = _as_kind(_as_kind(n_tokens, COUNT) + 1e-8, DEN)
    tl.store(frac_ptr, _stored(_as_kind(n_clipped, NUM) / denominator, FRAC))
    tl.store(bad_ptr, tl.sum(bad, 0).to(tl.int64))


@triton.jit
def _backward_kernel(
    v_ptr, r_ptr, o_ptr, m_ptr, u_ptr, out_ptr, w_ptr, w_pad_ptr, w_stride, eps: tl.float64, rows, cols, chunk_cols,
    KIND: tl.constexpr, CT: tl.constexpr, BITS: tl.constexpr, DELTA: tl.constexpr, CLIP: tl.constexpr,
    HAS_MASK: tl.constexpr, HAVE_U: tl.constexpr, PAD_ZERO: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    row_in = row < rows
    start = tl.program_id(1) * chunk_cols
    stop = tl.minimum(start + chunk_cols, cols)
    base = row[:, None] * cols
    eps_c = tl.cast(eps, tl.float64).to(CT)
    # the rows' weights as tiles (broadcast, not added to zeros: -0 must stay -0)
    zero = tl.zeros([ROWS, BLOCK], CT)
    w_real = tl.broadcast_to(tl.load(w_ptr + row * w_stride, mask=row_in, other=0.0).to(CT)[:, None], (ROWS, BLOCK))
    # a row's product w * u is autograd's where w is a normal weight in this range (see the module docstring)
    row_fast = (w_real >= 2.0**-60) & (w_real <= 2.0**60)
    if PAD_ZERO:
        w_pad = zero
    else:
        w_pad = tl.load(w_pad_ptr + row * w_stride, mask=row_in, other=0.0).to(CT)[:, None]
        w_pad = tl.broadcast_to(w_pad, (ROWS, BLOCK))
        row_fast = row_fast & (w_pad.to(BITS, bitcast=True) == 0)  # +0: padding keeps the forward's u
    for off in tl.range(start, stop, BLOCK):
        col = off + tl.arange(0, BLOCK)
        inb = row_in[:, None] & (col < stop)[None, :]
        at = base + col[None, :]
        if HAVE_U:
            u = tl.load(u_ptr + at, mask=inb, other=0.0).to(CT)
            keep = row_fast & (u == u)
        else:
            u = zero
            keep = zero != zero
        need = inb & (keep == 0)  # only these tokens read the inputs again
        v = tl.load(v_ptr + at, mask=need, other=0.0).to(CT)
        r = tl.load(r_ptr + at, mask=need, other=0.0).to(CT)
        o = tl.load(o_ptr + at, mask=need, other=0.0).to(CT)
        if HAS_MASK:  # noqa: SIM108 - a compile-time branch: only one side is compiled
            real = tl.load(m_ptr + at, mask=need, other=0) != 0
        else:
            real = zero == zero
        inner, lo, hi, d_u, d_c, loss_u, loss_c, _ = _terms(v, r, o, eps_c, KIND, DELTA, CLIP)
        exact = _grad(v, inner, lo, hi, d_u, d_c, loss_u, loss_c, tl.where(real, w_real, w_pad), KIND, DELTA, CLIP)
        tl.store(out_ptr + at, tl.where(keep, _round(u * w_real, KIND), exact), mask=inb)


# ---------------------------------------------------------------- launching


@functools.lru_cache(maxsize=16)
def _programs_wanted(device: torch.device) -> int:
    """Enough programs to fill the device: 4 per multiprocessor (the CPU interpreter: 4)."""
    if device.type == "cuda":
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 4


@dataclass(frozen=True)
class Layout:
    """How a (rows, cols) batch is cut: ``rows_each`` rows by ``block`` columns per step, each program
    going through ``chunk_cols`` columns of its rows; ``chunks`` programs per row group."""

    rows_each: int
    block: int
    chunks: int
    chunk_cols: int
    grid: tuple[int, int]


def layout(rows: int, cols: int, device: torch.device, chunk_cols: int | None = None) -> Layout:
    """Whole rows per program, several short rows per program, or a row cut into chunks when rows are few.

    A step holds 1,024 tokens on a GPU (8 per thread at 4 warps); under the interpreter, whose cost is
    per operation, not per token, 16,384. ``chunk_cols`` forces the chunk width (tests).
    """
    tile, widest = (1024, 1024) if device.type == "cuda" else (16384, 4096)
    block = min(widest, max(16, triton.next_power_of_2(cols)))
    rows_each = min(triton.next_power_of_2(rows), max(1, tile // block))
    groups = triton.cdiv(rows, rows_each)
    if chunk_cols is None:
        steps = triton.cdiv(cols, block)
        chunks = max(1, min(steps, triton.cdiv(_programs_wanted(device), groups)))
        chunk_cols = min(triton.cdiv(steps, chunks) * block, MAX_CHUNK)
    chunks = triton.cdiv(cols, chunk_cols)
    return Layout(rows_each, block, chunks, chunk_cols, (groups, chunks))


def _compute_type(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _kind(dtype: torch.dtype) -> int:
    return KIND_OF.get(dtype, INT)


def kernel_eps(call: Call) -> float:
    """The clip range as eager rounds it: CPU rounds a Python scalar to a bf16 / fp16 tensor's dtype
    first; CUDA (and every fp32 / fp64 op) computes with it in fp32 / fp64."""
    dtype = call.v.dtype
    if call.v.device.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        return float(torch.tensor(call.eps, dtype=dtype))
    return call.eps


def forward(call: Call, *, chunk_cols: int | None = None, fp_fusion: bool = False):
    """Launch the pass and the finalize: ``(sums, counts, clip fraction, bad count, u or None)``, all on the device.

    ``sums`` / ``counts`` are 0-d (token modes) or per row, in verl's dtypes; ``u`` is written when the
    call wants a gradient. ``chunk_cols`` and ``fp_fusion`` are for tests and the GPU checks only.
    """
    v = call.v
    rows, cols = v.shape
    cut = layout(rows, cols, v.device, chunk_cols)
    n_parts = rows * cut.chunks
    compute = _compute_type(v.dtype)
    part = torch.empty((5, n_parts), dtype=torch.float64 if compute == tl.float64 else torch.float32, device=v.device)
    u = torch.empty_like(v) if call.want_grad else None
    m = call.m if call.m is not None else v
    _forward_kernel[cut.grid](
        v, call.r, call.o, m, v if u is None else u, part, kernel_eps(call), rows, cols, cut.chunk_cols, n_parts,
        KIND=KIND_OF[v.dtype], CT=compute, DELTA=call.delta, CLIP=call.clip, HAS_MASK=call.m is not None,
        WRITE_U=u is not None, ROWS=cut.rows_each, BLOCK=cut.block, num_warps=4, enable_fp_fusion=fp_fusion,
    )  # fmt: skip
    k = call.kinds
    shape = (rows,) if call.row_sums else ()
    sums = torch.empty(shape, dtype=k.sum_dtype, device=v.device)
    counts = torch.empty(shape, dtype=k.count_dtype, device=v.device)
    frac = torch.empty((), dtype=k.frac_dtype, device=v.device)
    bad = torch.empty((), dtype=torch.int64, device=v.device)
    _finalize_kernel[(1,)](
        part, n_parts, cut.chunks, rows, sums, counts, frac, bad,
        ROWS=call.row_sums, WHERE=call.where_sum, SUM=_kind(k.sum_dtype), COUNT=_kind(k.count_dtype),
        NUM=_kind(k.num_dtype), DEN=_kind(k.den_dtype), FRAC=_kind(k.frac_dtype), BLOCK=256, num_warps=4,
        enable_fp_fusion=fp_fusion,
    )  # fmt: skip
    return sums, counts, frac, bad, u


def backward(
    call: Call, w_real: torch.Tensor, w_pad: torch.Tensor | None, u: torch.Tensor | None, *,
    chunk_cols: int | None = None, fp_fusion: bool = False,
) -> torch.Tensor:  # fmt: skip
    """The gradient of ``v`` for autograd's per-token weights: ``w_real`` for real tokens (0-d, or one per
    row) and ``w_pad`` for padding (None: +0), in ``v``'s dtype. Written into ``u`` (the forward's buffer,
    then handed to autograd) or, when it is gone (a second backward), into a fresh tensor."""
    v = call.v
    rows, cols = v.shape
    cut = layout(rows, cols, v.device, chunk_cols)
    out = u if u is not None else torch.empty_like(v)
    m = call.m if call.m is not None else v
    compute = _compute_type(v.dtype)
    _backward_kernel[cut.grid](
        v, call.r, call.o, m, out, out, w_real, w_real if w_pad is None else w_pad, 1 if w_real.dim() else 0,
        kernel_eps(call), rows, cols, cut.chunk_cols,
        KIND=KIND_OF[v.dtype], CT=compute, BITS=tl.int64 if compute == tl.float64 else tl.int32, DELTA=call.delta,
        CLIP=call.clip, HAS_MASK=call.m is not None, HAVE_U=u is not None and v.dtype != torch.float16,
        PAD_ZERO=w_pad is None, ROWS=cut.rows_each, BLOCK=cut.block, num_warps=4, enable_fp_fusion=fp_fusion,
    )  # fmt: skip
    return out
