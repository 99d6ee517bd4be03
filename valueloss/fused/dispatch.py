"""1. Dispatch: check the call once, decide everything into a frozen record, run one path, apply verl's tail.

``fused_value_loss`` reads as the sequence it runs: resolve negative-bit views; a default training step
on a small CPU batch goes straight to the C loop; otherwise the arguments are checked exactly as
``compute_value_loss`` checks them, what only verl's own graph can differentiate is handed to it, the
:class:`~valueloss.fused.plan.Call` is built, the pass runs (under autograd when ``vpreds`` wants a
gradient) and verl's tail turns its sums into ``(vf_loss, vf_clipfrac)``.
"""

from __future__ import annotations

import functools
import math
import os
from collections import Counter

import torch

from .. import _validate as check
from ..losses import ValueLoss, compute_value_loss
from . import cloop, passes
from .function import HostPass, SumsFunction, TokenLoss, device_pass, host_pass
from .plan import Call, Kinds
from .tail import NP_TYPES, TOKEN_MODES, ScalarTail, openrlhf_tail, verl_tail

__all__ = ["BACKENDS", "FusedValueLoss", "fused_backend_report", "fused_value_loss"]

BACKENDS = ("auto", "triton", "compiled", "c", "eager")
BACKEND_ENV = "VALUELOSS_FUSED_BACKEND"
_SMALL_MASKS = (torch.bool, torch.uint8, torch.int32, torch.int64)
# Which path ran, per (path, dtype, device): what fused_backend_report says (no result depends on it).
_RAN: Counter = Counter()


@functools.lru_cache(maxsize=1)
def triton_status() -> str | None:
    """None where the Triton kernel imports, else why not (Triton missing or broken)."""
    try:
        from . import kernel  # noqa: F401
    except Exception as err:  # noqa: BLE001 - any import failure means: no Triton path here
        return f"{type(err).__name__}: {str(err)[:200]}"
    return None


def resolve_backend(backend: str, v: torch.Tensor) -> str:
    """The path a call takes: ``backend``, or under "auto" ``$VALUELOSS_FUSED_BACKEND``, else Triton for
    CUDA tensors where it imports; "triton" also takes CPU tensors under ``TRITON_INTERPRET=1``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    env = os.environ.get(BACKEND_ENV, "").strip().lower()
    if backend == "auto" and env:
        if env not in BACKENDS:
            raise ValueError(f"{BACKEND_ENV} must be one of {', '.join(BACKENDS)}, got {env!r}")
        backend = env
    if backend == "auto" and v.device.type == "cuda" and triton_status() is None:
        return "triton"
    if backend == "triton":
        if triton_status() is not None:
            raise ValueError(f"backend='triton' needs Triton (pip install triton): {triton_status()}")
        from .kernel import supports

        if not supports(v):
            raise ValueError(
                f"backend='triton' runs on CUDA tensors, or on CPU tensors under TRITON_INTERPRET=1; got {v.device}"
            )
    return backend


def _engine(call: Call) -> str:
    if call.backend == "triton":
        return "triton"
    if call.backend == "eager":
        return "eager"
    return "c-loop" if passes.runs_c_loop("tokens", call.backend, call.v) else "compiled"


def fused_backend_report() -> list[dict]:
    """Which path ran (``calls`` per path, dtype and device): ``triton``, ``c-loop``, ``compiled`` or
    ``eager``; then what each compiled pass's compilation did (``state`` ready / eager, seconds) and the
    C loop's state once it was needed (ready / unavailable, with why)."""
    rows = [
        {"backend": path, "pass": "all", "dtype": str(dtype).removeprefix("torch."), "device": str(device),
         "state": "ran", "calls": calls}
        for (path, dtype, device), calls in sorted(_RAN.items(), key=str)
    ]  # fmt: skip
    rows += passes.report()
    loop = cloop.status()
    if loop["state"] != "not built":
        rows.append({"backend": "c", "pass": "c-loop", "dtype": "float32, float64", "device": "cpu", **loop})
    return rows


# ---------------------------------------------------------------- verl's compute_value_loss


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
    per-token unit gradient; ``backward`` scales it in place or recomputes it. The gradient equals
    autograd of verl's eager formula bit for bit, ties included, for any upstream gradient (see
    :mod:`valueloss.fused`). ``vf_loss`` equals verl's up to the order of the float sums;
    ``vf_clipfrac`` is identical.

    ``backend``: ``"auto"`` (the Triton kernel for CUDA tensors where Triton imports; on CPU the C loop
    for float32 / float64 batches up to ``SMALL_TOKENS`` tokens, inductor's compiled pass otherwise;
    ``VALUELOSS_FUSED_BACKEND`` overrides it), ``"triton"`` (the kernel; CPU tensors under
    ``TRITON_INTERPRET=1``), ``"compiled"`` (inductor's pass), ``"c"`` (the C loop for every CPU
    float32 / float64 batch) or ``"eager"`` (the same pass in eager torch). Inputs other than ``vpreds``
    that require grad (a 0-d clip range tensor included), ``returns`` / ``values`` of another dtype than
    ``vpreds``, or a clip range given as a tensor with dimensions are handed to
    :func:`compute_value_loss` unchanged (its dtype promotion applies there).

    On the Triton path nothing waits for the device, with two exceptions: a clip range given as a CUDA
    tensor is read once (``.item()``; pass a Python float); and a mask of another dtype than bool that
    holds a value other than 0/1 cannot raise a ``ValueError`` without waiting, so it fails a
    device-side assertion instead, as ``torch.nn.functional.cross_entropy`` does with a bad target
    (a bool mask needs no check).
    """
    vpreds, returns, values, response_mask = _resolved(vpreds, returns, values, response_mask)
    quick = _small_cpu_step(
        vpreds, returns, values, response_mask, cliprange_value, loss_agg_mode, dp_size,
        (batch_num_tokens, global_batch_size, loss_scale_factor), backend,
    )  # fmt: skip
    if quick is not None:
        return quick
    _check_inputs(vpreds, returns, values, response_mask)
    check.clip_range("cliprange_value", cliprange_value)
    check.aggregation(loss_agg_mode, dp_size, batch_num_tokens, global_batch_size, loss_scale_factor)
    backend = resolve_backend(backend, vpreds)
    if _needs_verls_graph(vpreds, returns, values, cliprange_value):
        return compute_value_loss(
            vpreds, returns, values, response_mask, cliprange_value, loss_agg_mode, dp_size=dp_size,
            batch_num_tokens=batch_num_tokens, global_batch_size=global_batch_size,
            loss_scale_factor=loss_scale_factor,
        )  # fmt: skip
    call = _verl_call(vpreds, returns, values, response_mask, cliprange_value, loss_agg_mode, backend)
    _RAN[(_engine(call), vpreds.dtype, vpreds.device)] += 1
    if not call.row_sums and call.backend != "triton" and ScalarTail.applies(vpreds, call.kinds, batch_num_tokens):
        return _scalar_token_loss(
            call, vpreds, returns, values, response_mask, loss_agg_mode, dp_size, batch_num_tokens
        )
    sums, counts, frac = _sums(call, vpreds, returns, values, response_mask)
    rows_shape = vpreds.shape[:-1]
    if call.row_sums:
        sums, counts = sums.reshape(rows_shape), counts.reshape(rows_shape)
    width = vpreds.shape[-1]
    vf_loss = verl_tail(
        sums, counts, loss_agg_mode, width, dp_size, batch_num_tokens, global_batch_size, loss_scale_factor
    )
    return vf_loss, frac


def _resolved(*tensors):
    """Each tensor with a pending negation or conjugation applied (a differentiable copy): the passes
    read raw memory, where a negative-bit view (``z.conj().imag``) holds the other sign. Anything that
    is not a tensor is left to the argument checks. (Checked first without building anything: this
    runs on every call.)"""
    try:
        if not any(x.is_neg() for x in tensors):  # (a conjugate bit needs a complex tensor: refused later)
            return tensors
    except AttributeError:  # not a tensor
        pass
    return tuple(
        x.resolve_conj().resolve_neg() if isinstance(x, torch.Tensor) and (x.is_neg() or x.is_conj()) else x
        for x in tensors
    )


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


def _needs_verls_graph(vpreds, returns, values, eps) -> bool:
    """What the pass cannot differentiate or promote like verl: inputs besides ``vpreds`` that want a
    gradient (a clip range tensor included), mixed dtypes, a clip range tensor with dimensions."""
    grad = torch.is_grad_enabled()
    eps_tensor = isinstance(eps, torch.Tensor)
    return (
        (eps_tensor and (eps.dim() != 0 or (grad and eps.requires_grad)))
        or returns.dtype != vpreds.dtype
        or values.dtype != vpreds.dtype
        or (grad and (returns.requires_grad or values.requires_grad))
    )


@functools.lru_cache(maxsize=64)
def _kinds(dtype: torch.dtype, mask_dtype: torch.dtype, default: torch.dtype) -> Kinds:
    return Kinds.of(dtype, mask_dtype)  # ``default``: Kinds reads the default dtype, so it keys the cache


def _pass_mask(mask: torch.Tensor, dtype: torch.dtype, backend: str) -> torch.Tensor:
    """The mask as the pass reads it: any dtype for the kernel; in the values' dtype for the CPU passes
    (one load width keeps them vectorised), after checking a float mask of another precision, which
    the conversion could hide a bad value in (1 + 1e-12)."""
    if backend == "triton" or mask.dtype == dtype:
        return mask
    if mask.is_floating_point():
        check.mask_tensor("response_mask", mask)
    return mask.to(dtype)


def _verl_call(vpreds, returns, values, mask, eps, mode, backend) -> Call:
    width = vpreds.shape[-1]
    v, r, old = (x.detach().reshape(-1, width).contiguous() for x in (vpreds, returns, values))
    m = _pass_mask(mask, vpreds.dtype, backend).reshape(-1, width).contiguous()
    seq = mode.startswith("seq")
    return Call(
        v, r, old, m, vpreds.shape, float(eps), torch.is_grad_enabled() and vpreds.requires_grad,
        delta=False, clip=True, row_sums=seq, where_sum=not seq,
        kinds=_kinds(vpreds.dtype, mask.dtype, torch.get_default_dtype()), backend=backend,
    )  # fmt: skip


def _sums(call: Call, vpreds, returns, values, mask):
    """``(sums, counts, clip fraction)``, differentiable in ``vpreds`` when the call wants a gradient."""
    if call.want_grad:
        return SumsFunction.apply(vpreds, returns, values, mask, call)
    sums, counts, frac, _, _ = device_pass(call, mask)
    return sums, counts, frac


def _scalar_token_loss(call, vpreds, returns, values, mask, mode, dp_size, batch_num_tokens):
    """CPU token modes: the pass, then verl's tail on numpy scalars (``TokenLoss`` under autograd)."""
    host = host_pass(call, mask)
    if call.want_grad:
        return TokenLoss.apply(vpreds, mask, call, host, (mode, dp_size, batch_num_tokens))
    s_where, n_clipped, n_tokens, _, _ = host.totals
    loss, frac, _ = ScalarTail.run(call.kinds, mode, s_where, n_clipped, n_tokens, dp_size, batch_num_tokens)
    return loss, frac


def _small_cpu_step(vpreds, returns, values, mask, eps, mode, dp_size, counts, backend):
    """token-mean / token-sum of a small dense CPU float32 / float64 batch (the default call in a
    training step) in as few Python steps as possible: at 8 x 128 a forward+backward costs little more
    than a bare autograd.Function. Every check it makes is cheap; a call that fails one returns None
    and takes the general path, which validates in full and gives the errors."""
    if not (
        backend == "auto"
        and mode in TOKEN_MODES
        and counts == (None, None, None)
        and type(eps) is float
        and 0.0 <= eps < math.inf  # NaN fails too
        and type(dp_size) is int
        and dp_size == 1
        and isinstance(vpreds, torch.Tensor)
        and isinstance(returns, torch.Tensor)
        and isinstance(values, torch.Tensor)
        and isinstance(mask, torch.Tensor)
    ):
        return None
    dtype = vpreds.dtype
    if not (
        dtype in NP_TYPES
        and returns.dtype == dtype
        and values.dtype == dtype
        and (mask.dtype == dtype or mask.dtype in _SMALL_MASKS)
        and vpreds.dim() == 2
        and 0 < vpreds.numel() <= cloop.SMALL_TOKENS
        and vpreds.shape == returns.shape == values.shape == mask.shape
        and vpreds.is_cpu and returns.is_cpu and values.is_cpu and mask.is_cpu
        and vpreds.is_contiguous() and returns.is_contiguous() and values.is_contiguous() and mask.is_contiguous()
        and torch.get_default_dtype() == torch.float32  # int64 count + 1e-8 is float32 then
    ):  # fmt: skip
        return None
    grad_mode = torch.is_grad_enabled()
    if (grad_mode and (returns.requires_grad or values.requires_grad)) or os.environ.get(BACKEND_ENV):
        return None  # verl's own graph differentiates those; an environment backend choice applies
    if cloop.library() is None:
        return None
    v2, m2 = vpreds.detach(), mask if mask.dtype == dtype else mask.to(dtype)
    want_grad = grad_mode and vpreds.requires_grad
    kinds = _kinds(dtype, mask.dtype, torch.float32)
    call = Call(v2, returns, values, m2, vpreds.shape, eps, want_grad, False, True, False, True, kinds, "auto")
    stats, u = cloop.run_pass("tokens", v2, returns, values, m2, eps)
    host = HostPass(tuple(stats.tolist()), None, None, u, True)
    if host.totals[4]:
        check.mask_tensor("response_mask", mask)  # raises the same error as compute_value_loss
    _RAN[("c-loop", dtype, vpreds.device)] += 1
    if want_grad:
        return TokenLoss.apply(vpreds, mask, call, host, (mode, 1, None))
    loss, frac, _ = ScalarTail.run(kinds, mode, host.totals[0], host.totals[1], host.totals[2], 1, None)
    return loss, frac


# ---------------------------------------------------------------- OpenRLHF's ValueLoss


class FusedValueLoss(ValueLoss):
    """OpenRLHF's :class:`~valueloss.ValueLoss` through the fused Triton kernel: same constructor, same
    ``forward`` signature and numbers, autograd's gradient bit for bit.

    The kernel runs for CUDA tensors where Triton imports (and for CPU tensors under
    ``TRITON_INTERPRET=1`` with ``backend="triton"``); anywhere else, and where an input besides
    ``values`` wants a gradient or the dtypes differ, OpenRLHF's eager module runs (there is no CPU pass
    for OpenRLHF's clip convention). ``fused_backend_report`` says which ran.
    """

    def __init__(self, clip_eps: float | None = None, token_level_loss: bool = True, *, backend: str = "auto") -> None:
        super().__init__(clip_eps, token_level_loss)
        if backend not in ("auto", "triton", "eager"):
            raise ValueError(f"backend must be one of auto, triton, eager, got {backend!r}")
        self.backend = backend

    def forward(
        self, values, old_values, returns, action_mask=None, dp_size=1, batch_num_tokens=None, global_batch_size=None
    ):
        eager = lambda: super(FusedValueLoss, self).forward(  # noqa: E731
            values, old_values, returns, action_mask, dp_size, batch_num_tokens, global_batch_size
        )
        if not self._kernel_runs(values, old_values, returns, action_mask):
            _RAN[("eager-module", getattr(values, "dtype", None), getattr(values, "device", None))] += 1
            return eager()
        self._check(
            values,
            old_values,
            returns,
            action_mask,
            dp_size,
            batch_num_tokens,
            global_batch_size,
            self.token_level_loss,
        )
        width = values.shape[-1]
        mask = None if action_mask is None else action_mask.reshape(-1, width).contiguous()
        call = Call(
            values.detach().reshape(-1, width).contiguous(), returns.detach().reshape(-1, width).contiguous(),
            old_values.detach().reshape(-1, width).contiguous(), mask, values.shape,
            0.0 if self.clip_eps is None else float(self.clip_eps),
            torch.is_grad_enabled() and values.requires_grad, delta=True, clip=self.clip_eps is not None,
            row_sums=not self.token_level_loss, where_sum=False, mask_name="action_mask",
            kinds=_kinds(values.dtype, torch.bool if action_mask is None else action_mask.dtype, torch.get_default_dtype()),
            backend="triton",
        )  # fmt: skip
        _RAN[("triton", values.dtype, values.device)] += 1
        sums, counts, _ = _sums(call, values, returns, old_values, action_mask)
        if call.row_sums:
            sums, counts = sums.reshape(values.shape[:-1]), counts.reshape(values.shape[:-1])
        return openrlhf_tail(
            sums, None if action_mask is None else counts, values.numel(), self.token_level_loss, dp_size,
            batch_num_tokens, global_batch_size,
        )  # fmt: skip

    def _kernel_runs(self, values, old_values, returns, action_mask) -> bool:
        tensors = [values, old_values, returns] + ([] if action_mask is None else [action_mask])
        if self.backend == "eager" or not all(isinstance(t, torch.Tensor) for t in tensors):
            return False
        if not values.is_floating_point() or old_values.dtype != values.dtype or returns.dtype != values.dtype:
            return False
        if torch.is_grad_enabled() and (old_values.requires_grad or returns.requires_grad):
            return False
        wanted = resolve_backend("triton" if self.backend == "triton" else "auto", values)
        return wanted == "triton"

    @staticmethod
    def _check(values, old_values, returns, action_mask, dp_size, batch_num_tokens, global_batch_size, token_level):
        """OpenRLHF's argument rules (``ValueLoss`` checks the same), except the mask's values: the kernel
        counts those without waiting for the device (see ``fused_value_loss``)."""
        check.nonempty("values", values)
        if action_mask is not None and (not isinstance(action_mask, torch.Tensor) or action_mask.is_complex()):
            check.mask_tensor("action_mask", action_mask)  # raises its TypeError
        others = {"old_values": old_values, "returns": returns}
        check.same_shape("values", values, **others, **({} if action_mask is None else {"action_mask": action_mask}))
        needed = "tokens" if token_level else "sequences"
        check.global_counts(dp_size, batch_num_tokens, global_batch_size, needed=needed)
