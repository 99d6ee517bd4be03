"""Per-token gradients of each library's value loss, and exact ties, both by torch autograd.

``dialect_token_grad`` differentiates the library's own loss (``dialect_loss``) on a whole grid in one
backward pass: every token of a one-row batch gets weight 1/N under these mean losses, so N times the
autograd gradient is the gradient of that library's loss for a batch of that one token (constant
factors such as verl's 0.5 included). This shows where each dialect stops learning: the max form
freezes tokens that moved more than eps toward R, SB3's clip-only form freezes every token outside the
band, a loss-clamping library (RLlib since ray 1.12) freezes tokens whose squared error exceeds its bound.
Each entry's ``tie_rule`` is honoured: baselines ppo2 (TensorFlow) sends the whole gradient of a tied
max to its first argument, torch splits it.

``tie_table`` evaluates the gradient at exact ties, where torch's backward rules for ``max``, ``min``
and ``clamp`` decide the answer and the three clip conventions disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import _validate as check
from .anatomy import value_loss_grad
from .dialects import DIALECTS, check_clip_param, dialect_loss, get_dialect
from .losses import clip_prediction

__all__ = ["DialectGrad", "dialect_token_grad", "TIE_CASES", "tie_point", "tie_table"]


@dataclass(frozen=True)
class DialectGrad:
    """Per-token gradient of one library's loss over a broadcast grid (numpy, the grid's shape)."""

    dialect: str
    grad: np.ndarray
    frozen: np.ndarray  # bool: gradient exactly 0 although the token is not resting at R inside the band


def dialect_token_grad(name: str, v, R, v_old, eps, *, dtype: torch.dtype = torch.float64) -> DialectGrad:
    """d(loss of library ``name`` on a one-token batch)/dv for every point of a broadcast grid.

    ``v``, ``R``, ``v_old`` are numbers or arrays that broadcast together; ``eps`` is the library's clip
    parameter (in the entry's ``eps_units``: a bound on the squared error for RLlib since ray 1.12; ``None``
    or the entry's ``off_values`` turn clipping off where the library allows it).
    """
    d = get_dialect(name)
    check_clip_param("eps", name, eps)
    arrays = []
    for arg, x in (("v", v), ("R", R), ("v_old", v_old)):
        try:
            arrays.append(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{arg} must be a number or an array of numbers, got {type(x).__name__}") from err
    try:
        v_arr, r_arr, o_arr = np.broadcast_arrays(*arrays)
    except ValueError as err:
        raise ValueError(
            f"v {arrays[0].shape}, R {arrays[1].shape} and v_old {arrays[2].shape} do not broadcast"
        ) from err
    shape = v_arr.shape
    n = v_arr.size
    if n == 0:
        raise ValueError("the grid is empty: v, R and v_old hold no points")

    def row(a):
        return torch.as_tensor(np.ascontiguousarray(a).reshape(1, n), dtype=dtype)

    vt = row(v_arr).requires_grad_(True)
    rt, ot = row(r_arr), row(o_arr)
    mask = torch.ones((1, n), dtype=dtype)
    loss = dialect_loss(name, vt, rt, ot, mask, eps).loss
    (grad,) = torch.autograd.grad(loss, vt)
    grad = (grad * n).reshape(shape).detach().numpy().astype(np.float64)
    frozen = (grad == 0) & (v_arr != r_arr)
    if d.clip_convention != "none" and not d.off(eps):
        # outside the band a token sitting exactly on R is frozen too (its gradient would be 0 anyway)
        frozen |= (grad == 0) & (np.abs(v_arr - o_arr) > float(eps))
    return DialectGrad(dialect=name, grad=grad, frozen=frozen)


TIE_CASES = {
    "upper-edge": "v exactly on the upper band edge, v = v_old + eps",
    "lower-edge": "v exactly on the lower band edge, v = v_old − eps",
    "eps-zero": "eps = 0 and v = v_old (both edges at once)",
    "symmetric-overshoot": "v overshot R by exactly as much as clip(v) falls short of it",
}

# (row label, clip convention, whose rule splits the gradient of a tied max)
_TIE_ROWS = (
    ("bounds", "bounds", "torch"),
    ("clamp", "clamp", "torch"),
    ("delta", "delta", "torch"),
    ("delta, tf.maximum", "delta", "tensorflow"),
)


def _users(convention: str, tie_rule: str) -> str:
    """The libraries (current behaviour) whose max form uses this clip convention and tie rule."""
    names = [
        d.library.split(" (")[0]
        for d in DIALECTS.values()
        if d.current and d.clip_convention == convention and d.tie_rule == tie_rule and d.combine_rule == "max"
    ]
    return ", ".join(dict.fromkeys(names))


def _tf_max_grad(v, r, o, eps, loss_unclipped, loss_clipped):
    """Closed form under TensorFlow's rule: a tied max (x >= y) passes the whole gradient to its first
    argument, the unclipped term; the clip (clamp) passes the gradient on the closed band."""
    inside = ((v - o) >= -eps) & ((v - o) <= eps)
    clipped_grad = torch.where(inside, 2.0 * (o + (v - o).clamp(-eps, eps) - r), torch.zeros_like(v))
    return torch.where(loss_unclipped >= loss_clipped, 2.0 * (v - r), clipped_grad)


def tie_point(case: str, v_old: float, R: float, eps: float) -> tuple[float, float]:
    """(v, eps) of a tie case, computed in float64 the way a trainer would reach it."""
    if case not in TIE_CASES:
        raise ValueError(f"unknown tie case {case!r}; valid cases are: {', '.join(TIE_CASES)}")
    eps = check.clip_range("eps", eps)
    v_old, R, eps = float(v_old), float(R), float(eps)
    if case == "upper-edge":
        return v_old + eps, eps
    if case == "lower-edge":
        return v_old - eps, eps
    if case == "eps-zero":
        return v_old, 0.0
    gap = R - v_old
    if abs(gap) <= eps:
        raise ValueError(
            f"a symmetric overshoot needs R outside the band: |R − v_old| = {abs(gap):g} must exceed eps = {eps:g}"
        )
    edge = v_old + eps if gap > 0 else v_old - eps
    return 2.0 * R - edge, eps


def tie_table(
    case: str,
    v_old: float = 0.0,
    R: float = 1.0,
    eps: float = 0.25,
    *,
    dtype: torch.dtype = torch.float64,
) -> list[dict]:
    """One row per clip convention (and one for TensorFlow's tie rule, baselines ppo2): autograd vs the
    closed form at the tie, and the share of 2(v − R) kept.

    Ties are only exact where the numbers are: the defaults are dyadic, so the tie holds in floats;
    with other numbers the ``terms equal`` column says whether it still does.
    """
    v, eps = tie_point(case, v_old, R, eps)
    rows = []
    for label, convention, tie_rule in _TIE_ROWS:
        vt = torch.tensor([v], dtype=dtype, requires_grad=True)
        rt = torch.tensor([R], dtype=dtype)
        ot = torch.tensor([v_old], dtype=dtype)
        v_clipped = clip_prediction(vt, ot, eps, convention)
        loss_unclipped = (vt - rt) ** 2
        loss_clipped = (v_clipped - rt) ** 2
        if tie_rule == "tensorflow":
            torch.where(loss_unclipped >= loss_clipped, loss_unclipped, loss_clipped).sum().backward()
            closed = _tf_max_grad(vt.detach(), rt, ot, eps, loss_unclipped.detach(), loss_clipped.detach())
        else:
            torch.max(loss_unclipped, loss_clipped).sum().backward()
            closed = value_loss_grad(vt.detach(), rt, ot, eps, convention)
        assert vt.grad is not None  # backward() just filled it
        autograd = vt.grad.detach()
        unclipped = 2.0 * (vt.detach() - rt)
        rows.append(
            {
                "convention": label,
                "used by": _users(convention, tie_rule),
                "clip convention": convention,
                "tie rule": tie_rule,
                "share of 2(v − R)": float(autograd / unclipped) if float(unclipped) != 0 else float("nan"),
                "autograd d max/dv": float(autograd),
                "closed form": float(closed),
                "bit-identical": bool(torch.equal(autograd, closed)),
                "terms equal": bool(loss_unclipped.detach() == loss_clipped.detach()),
                "v": float(vt.detach()),
                "clip(v)": float(v_clipped.detach()),
                "L_unclip": float(loss_unclipped.detach()),
                "L_clip": float(loss_clipped.detach()),
                "2(v − R)": float(unclipped),
            }
        )
    return rows
