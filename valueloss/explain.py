"""Words and equations for one token: what each term is, which one wins, and why the gradient is what it is.

The Explore page shows these next to the plots; the text is built here (no Streamlit) so it is tested
with the numbers it describes. Every number comes from ``value_loss_terms``: nothing is recomputed.
The gradient shown is ``d max(L_unclip, L_clip) / dv`` per token, before verl's 0.5 factor and the
aggregation weights; ``half_grad`` is the gradient of verl's loss for a batch of this one token.
"""

from __future__ import annotations

from dataclasses import dataclass

from .anatomy import (
    REGION_AWAY,
    REGION_INSIDE,
    REGION_LABELS,
    REGION_NAN,
    REGION_OVERSHOT,
    REGION_TIE,
    REGION_ZERO_GRAD,
    value_loss_terms,
)
from .theme import COLORS

__all__ = ["CONVENTION_LABELS", "TokenReadout", "token_readout", "equation_latex", "fmt"]

CONVENTION_LABELS = {
    "bounds": "verl: max(min(v, v_old + ε), v_old − ε)",
    "clamp": "TRL: torch.clamp(v, v_old − ε, v_old + ε)",
    "delta": "OpenRLHF, CleanRL, SB3: v_old + clamp(v − v_old, ±ε)",
}


def fmt(x: float) -> str:
    """A number the way a person reads it: 4 significant digits, no trailing zeros, a real minus sign."""
    if x != x:  # NaN
        return "NaN"
    text = f"{x:.4g}"
    if text in ("-0", "0"):
        return "0"
    return text.replace("-", "−")


@dataclass(frozen=True)
class TokenReadout:
    """One token's anatomy in plain numbers and sentences."""

    v: float
    R: float
    v_old: float
    eps: float
    convention: str
    v_clipped: float
    loss_unclipped: float
    loss_clipped: float
    loss_max: float
    winner: str  # "unclipped", "clipped" or "equal"
    region: int
    region_label: str
    grad: float  # d max / dv
    half_grad: float  # verl: d (0.5 * max) / dv for a batch of this one token
    unclipped_grad: float  # 2 (v - R), what the gradient would be without clipping
    why_winner: str
    why_grad: str

    @property
    def grad_ratio(self) -> float | None:
        """grad / 2(v - R); None where 2(v - R) is 0."""
        return None if self.unclipped_grad == 0 else self.grad / self.unclipped_grad


def token_readout(v: float, R: float, v_old: float, eps: float, convention: str = "bounds") -> TokenReadout:
    """Compute one token's terms with the core and explain them in words."""
    t = value_loss_terms(float(v), float(R), float(v_old), eps, convention)
    lu, lc = float(t.loss_unclipped), float(t.loss_clipped)
    region = int(t.region)
    grad = float(t.grad)
    v, R, v_old, eps = float(v), float(R), float(v_old), float(eps)
    unclipped_grad = 2.0 * (v - R)
    winner = "clipped" if lc > lu else ("unclipped" if lu > lc else "equal")
    delta, gap = v - v_old, R - v_old
    vc = float(t.v_clipped)

    if region == REGION_NAN:
        why_winner = "An input is NaN, so every term is NaN."
        why_grad = "NaN in, NaN out: the gradient is NaN."
    elif region == REGION_INSIDE:
        why_winner = (
            f"|Δ| = |v − v_old| = {fmt(abs(delta))} < ε = {fmt(eps)}: clip(v) = v, so both terms are the same number."
        )
        if lu != lc:
            why_winner += (
                f" Here they differ in the last digit: in the {convention} convention clip(v) = {vc!r} is not v = {v!r}, "
                "so a strict-> clip fraction would count this in-band token."
            )
        why_grad = f"Inside the band the loss is the plain squared error: gradient 2(v − R) = {fmt(grad)}."
    elif region == REGION_ZERO_GRAD:
        why_winner = (
            f"v moved Δ = {fmt(delta)} toward R, more than ε = {fmt(eps)}: clip(v) is held at {fmt(vc)}, "
            f"whose error ({fmt(lc)}) is larger than (v − R)² = {fmt(lu)}, so max() picks the clipped term."
        )
        why_grad = (
            "The clipped term does not depend on v (clip(v) sits on the band edge), so the gradient is exactly 0: "
            "this token stops learning until the next rollout moves v_old."
        )
    elif region == REGION_AWAY:
        direction = "no return gap (R = v_old)" if gap == 0 else "away from R"
        why_winner = (
            f"v moved Δ = {fmt(delta)}, {direction}, beyond the band: (v − R)² = {fmt(lu)} is larger than "
            f"the clipped term {fmt(lc)}, so max() keeps the unclipped term."
        )
        why_grad = f"Full gradient 2(v − R) = {fmt(grad)}: clipping never stops the critic from coming back toward R."
    elif region == REGION_OVERSHOT:
        why_winner = (
            f"v moved Δ = {fmt(delta)} toward R but went past it (R − v_old = {fmt(gap)}): (v − R)² = {fmt(lu)} "
            f"is larger than the clipped term {fmt(lc)}, so max() keeps the unclipped term."
        )
        why_grad = f"Full gradient 2(v − R) = {fmt(grad)}, pulling v back toward R."
    else:  # REGION_TIE
        why_winner = f"Exact tie: both terms equal {fmt(lu)} (v is on the band edge, or overshot R by exactly as much)."
        ratio = None if unclipped_grad == 0 else grad / unclipped_grad
        share = "" if ratio is None else f" = {fmt(ratio)} × 2(v − R)"
        why_grad = (
            f"torch splits the gradient of max() half and half on a tie; whether the clipped half reaches v "
            f"depends on the clip convention ({convention}). Gradient {fmt(grad)}{share}."
        )
    return TokenReadout(
        v=v,
        R=R,
        v_old=v_old,
        eps=eps,
        convention=convention,
        v_clipped=vc,
        loss_unclipped=lu,
        loss_clipped=lc,
        loss_max=float(t.loss_max),
        winner=winner,
        region=region,
        region_label=REGION_LABELS[region],
        grad=grad,
        half_grad=0.5 * grad,
        unclipped_grad=unclipped_grad,
        why_winner=why_winner,
        why_grad=why_grad,
    )


def _c(key: str, body: str) -> str:
    return rf"\textcolor{{{COLORS[key]}}}{{{body}}}"


def _n(x: float) -> str:
    """A number inside LaTeX."""
    return fmt(x).replace("−", "-")


def _p(x: float) -> str:
    """A number after a minus sign: parenthesised when negative, so ``v − (−2)`` stays readable."""
    text = _n(x)
    return f"({text})" if text.startswith("-") else text


def equation_latex(r: TokenReadout) -> str:
    """verl's loss for this one token with the numbers substituted, terms coloured like the plots.

    Three lines: the clip, the loss (the winning term marked), and d max / dv with its reason.
    """
    lo, hi = r.v_old - r.eps, r.v_old + r.eps
    unclip_sym = _c("unclipped", r"(v - R)^2")
    clip_sym = _c("clipped", r"(\mathrm{clip}(v) - R)^2")
    unclip_num = _c("unclipped", rf"({_n(r.v)} - {_p(r.R)})^2")
    clip_num = _c("clipped", rf"({_n(r.v_clipped)} - {_p(r.R)})^2")
    unclip_val = _c("unclipped", _n(r.loss_unclipped))
    clip_val = _c("clipped", _n(r.loss_clipped))
    if r.winner == "clipped":
        clip_val = rf"\underbrace{{{clip_val}}}_{{\text{{wins}}}}"
    elif r.winner == "unclipped" and r.region != REGION_INSIDE:
        unclip_val = rf"\underbrace{{{unclip_val}}}_{{\text{{wins}}}}"
    loss_val = _c("max", rf"\mathbf{{{_n(0.5 * r.loss_max)}}}")
    old, eps = _c("v_old", _n(r.v_old)), _c("band", _n(r.eps))
    band = rf"[{old} - {eps},\ {old} + {eps}]"
    lines = [
        rf"\mathrm{{clip}}(v) &= \mathrm{{clip}}\big({_n(r.v)},\ {band}\big) = \mathrm{{clip}}\big({_n(r.v)},\ "
        rf"[{_n(lo)},\ {_n(hi)}]\big) = {_n(r.v_clipped)}",
        rf"L &= \tfrac12 \max\big({unclip_sym},\ {clip_sym}\big) = \tfrac12\max\big({unclip_num},\ {clip_num}\big)",
        rf"&= \tfrac12 \max\big({unclip_val},\ {clip_val}\big) = {loss_val}",
    ]
    d_max = r"\frac{\partial \max}{\partial v}"
    if r.region == REGION_ZERO_GRAD:
        zero = _c("zero_grad", r"\mathbf{0}")
        grad_line = rf"{d_max} &= \frac{{\partial}}{{\partial v}}({_n(r.v_clipped)} - {_p(r.R)})^2 = {zero}"
        grad_line += r"\quad\text{(clip(v) is constant in v)}"
    elif r.region in (REGION_INSIDE, REGION_AWAY, REGION_OVERSHOT):
        grad_line = rf"{d_max} &= 2(v - R) = 2({_n(r.v)} - {_p(r.R)}) = \mathbf{{{_n(r.grad)}}}"
    elif r.region == REGION_TIE and r.grad_ratio is not None:
        grad_line = rf"{d_max} &= {_n(r.grad_ratio)} \cdot 2(v - R) = \mathbf{{{_n(r.grad)}}}\quad\text{{(exact tie)}}"
    else:
        grad_line = rf"{d_max} &= \mathbf{{{_n(r.grad)}}}"
    lines.append(grad_line)
    return r"\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}"
