"""Per-token anatomy of the clipped value loss: both terms, who wins, the region and the gradient.

The gradient here is a closed form that reproduces torch autograd bit for bit, exact ties included,
because it applies the same backward rules in the same order:

- ``torch.maximum`` / ``torch.minimum`` (and ``torch.max(a, b)``) send half the gradient to each side
  on an exact tie;
- ``torch.clamp`` passes the full gradient on the closed interval ``[lo, hi]``;
- ``x ** 2`` sends ``grad * (2 * x)``.

So in verl's *bounds* convention a token sitting exactly on the band edge gets 3/4 of its unclipped
gradient (half from each branch of the max, and the clipped branch halved again by ``min``), while
TRL's *clamp* and OpenRLHF's *delta* conventions give it all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _validate as check
from .losses import clip_prediction

__all__ = [
    "REGION_INSIDE",
    "REGION_ZERO_GRAD",
    "REGION_AWAY",
    "REGION_OVERSHOT",
    "REGION_TIE",
    "REGION_NAN",
    "REGION_LABELS",
    "ValueLossTerms",
    "value_loss_terms",
    "value_loss_terms_of_checked",
    "value_loss_grad",
    "value_loss_grad_of_checked",
]

REGION_INSIDE = 0
REGION_ZERO_GRAD = 1
REGION_AWAY = 2
REGION_OVERSHOT = 3
REGION_TIE = 4
REGION_NAN = 5

REGION_LABELS = {
    REGION_INSIDE: "inside the band",
    REGION_ZERO_GRAD: "zero gradient: past the band toward R, nearer R than the band edge",
    REGION_AWAY: "restoring: moved away from R",
    REGION_OVERSHOT: "restoring: overshot R, farther from R than the band edge",
    REGION_TIE: "exact tie",
    REGION_NAN: "NaN input",
}


@dataclass(frozen=True)
class ValueLossTerms:
    """Everything the app draws about each token (all tensors broadcast to one shape).

    ``grad`` is d max(L_unclip, L_clip) / dv per token: before the 0.5 factor and the aggregation
    weights, exactly what autograd gives with an upstream gradient of one.
    """

    v_clipped: torch.Tensor
    loss_unclipped: torch.Tensor
    loss_clipped: torch.Tensor
    loss_max: torch.Tensor
    clipped_wins: torch.Tensor  # bool: L_clip > L_unclip (strict), the loss clip fraction's tokens
    prediction_clipped: torch.Tensor  # bool: |v - o| > eps, the prediction clip fraction's tokens
    region: torch.Tensor  # int8 codes, see REGION_LABELS
    grad: torch.Tensor


def _maximum_backward(grad, a, b):
    """What torch.maximum(a, b) sends back to a and to b."""
    halved = torch.where(a == b, grad / 2, grad)
    return halved.masked_fill(a < b, 0), halved.masked_fill(a > b, 0)


def _minimum_backward(grad, a, b):
    """What torch.minimum(a, b) sends back to a and to b."""
    halved = torch.where(a == b, grad / 2, grad)
    return halved.masked_fill(a > b, 0), halved.masked_fill(a < b, 0)


def _grad_from_parts(v, returns, values, eps, convention, grad_output):
    lo, hi = values - eps, values + eps
    if convention == "bounds":
        inner = torch.min(v, hi)
        v_clipped = torch.max(inner, lo)
    else:
        v_clipped = clip_prediction(v, values, eps, convention)
    d_unclipped = v - returns
    d_clipped = v_clipped - returns
    loss_unclipped = d_unclipped**2
    loss_clipped = d_clipped**2

    to_unclipped, to_clipped = _maximum_backward(grad_output, loss_unclipped, loss_clipped)
    from_unclipped = to_unclipped * (2.0 * d_unclipped)
    through_clip = to_clipped * (2.0 * d_clipped)
    zero = torch.zeros((), dtype=through_clip.dtype, device=through_clip.device)
    if convention == "bounds":
        to_inner, _ = _maximum_backward(through_clip, inner, lo)
        from_clipped, _ = _minimum_backward(to_inner, v, hi)
    elif convention == "clamp":
        from_clipped = torch.where((v >= lo) & (v <= hi), through_clip, zero)
    else:
        delta = v - values
        from_clipped = torch.where((delta >= -eps) & (delta <= eps), through_clip, zero)
    grad = from_unclipped + from_clipped
    return v_clipped, loss_unclipped, loss_clipped, grad


def _broadcast_inputs(vpreds, returns, values):
    v = check.as_float_tensor("vpreds", vpreds)
    r = check.as_float_tensor("returns", returns, like=v if not isinstance(returns, torch.Tensor) else None)
    o = check.as_float_tensor("values", values, like=v if not isinstance(values, torch.Tensor) else None)
    try:
        v, r, o = torch.broadcast_tensors(v, r, o)
    except RuntimeError as err:
        raise ValueError(
            f"vpreds {tuple(v.shape)}, returns {tuple(r.shape)} and values {tuple(o.shape)} do not broadcast"
        ) from err
    return v, r, o


def value_loss_grad(
    vpreds,
    returns,
    values,
    cliprange,
    convention: str = "bounds",
    grad_output: torch.Tensor | None = None,
) -> torch.Tensor:
    """Closed-form d max((v-R)^2, (clip(v)-R)^2) / dv, equal to torch autograd bit for bit.

    ``convention`` is ``"bounds"`` (verl), ``"clamp"`` (TRL) or ``"delta"`` (OpenRLHF, CleanRL).
    ``grad_output`` is the upstream gradient of each token's max term (default one); pass the
    aggregation weights to get the gradient of a whole loss, still bit-identical to autograd.
    """
    check.convention(convention)
    cliprange = check.clip_range("cliprange", cliprange)
    v, r, o = _broadcast_inputs(vpreds, returns, values)
    return value_loss_grad_of_checked(v, r, o, cliprange, convention, grad_output)


def value_loss_grad_of_checked(v, r, o, cliprange, convention: str = "bounds", grad_output=None) -> torch.Tensor:
    """:func:`value_loss_grad` for inputs a caller has already validated at its boundary (float tensors of one
    shape, a valid clip range and convention)."""
    if grad_output is None:
        grad_output = torch.ones_like(v)
    return _grad_from_parts(v, r, o, cliprange, convention, grad_output)[3]


def value_loss_terms(vpreds, returns, values, cliprange, convention: str = "bounds") -> ValueLossTerms:
    """Per-token anatomy; inputs broadcast, so one call evaluates a whole 1-D or 2-D grid.

    Regions: inside the band (``|v - o| < eps``), then outside it: exact tie (both terms equal,
    e.g. on the band edge), zero gradient (clipped term wins: v moved more than eps toward R and is
    still nearer R than the band edge, so eps < |Δ| < 2|R - o| - eps, overshoots of R included),
    restoring (unclipped term wins) because v moved away from R, or overshot R by more than that.
    """
    check.convention(convention)
    cliprange = check.clip_range("cliprange", cliprange)
    v, r, o = _broadcast_inputs(vpreds, returns, values)
    return value_loss_terms_of_checked(v, r, o, cliprange, convention)


def value_loss_terms_of_checked(v, r, o, cliprange, convention: str = "bounds") -> ValueLossTerms:
    """:func:`value_loss_terms` for inputs a caller has already validated at its boundary: float tensors of
    one shape, a valid clip range and convention. An analysis that validated once calls this, not the check again."""
    v_clipped, loss_unclipped, loss_clipped, grad = _grad_from_parts(v, r, o, cliprange, convention, torch.ones_like(v))
    loss_max = torch.max(loss_unclipped, loss_clipped)
    clipped_wins = loss_clipped > loss_unclipped
    delta = v - o
    prediction_clipped = delta.abs() > cliprange
    inside = (v > o - cliprange) & (v < o + cliprange) if convention != "delta" else delta.abs() < cliprange
    toward = torch.sign(delta) == torch.sign(r - o)
    region = torch.full(v.shape, REGION_AWAY, dtype=torch.int8, device=v.device)
    region[toward & (r != o)] = REGION_OVERSHOT
    region[clipped_wins] = REGION_ZERO_GRAD
    region[loss_clipped == loss_unclipped] = REGION_TIE
    region[inside] = REGION_INSIDE
    region[torch.isnan(v) | torch.isnan(r) | torch.isnan(o)] = REGION_NAN
    return ValueLossTerms(
        v_clipped=v_clipped,
        loss_unclipped=loss_unclipped,
        loss_clipped=loss_clipped,
        loss_max=loss_max,
        clipped_wins=clipped_wins,
        prediction_clipped=prediction_clipped,
        region=region,
        grad=grad,
    )
