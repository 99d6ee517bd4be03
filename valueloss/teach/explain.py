"""Words and equations for one token: what each term is, which one wins, and why the gradient is what it is.

The Explore page shows these next to the plots; the text is built here (no Streamlit) so it is tested
with the numbers it describes. Every number comes from ``value_loss_terms``: nothing is recomputed.
The gradient shown is ``d max(L_unclip, L_clip) / dv`` per token, before verl's 0.5 factor and the
aggregation weights; ``half_grad`` is the gradient of verl's loss for a batch of this one token.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .. import anatomy
from ..anatomy import REGION_LABELS, value_loss_terms  # the pages read REGION_LABELS from here
from ..notation import COLORS

__all__ = [
    "CONVENTION_LABELS",
    "CONVENTION_WORDS",
    "TokenReadout",
    "token_readout",
    "equation_latex",
    "fmt",
    "zero_gradient_interval",
    "zero_gradient_rule",
    "region_map_caption",
    "gradient_map_caption",
    "TieSplit",
    "tie_split",
    "tie_caption",
    "TIE_WORDS",
    "AGG_MODE_WORDS",
]

CONVENTION_LABELS = {
    "bounds": "verl: max(min(v, v_old + ε), v_old − ε)",
    "clamp": "TRL: torch.clamp(v, v_old − ε, v_old + ε)",
    "delta": "OpenRLHF, CleanRL, SB3: v_old + clamp(v − v_old, ±ε)",
}


# Plain words for the jargon, shown where each name first appears.
CONVENTION_WORDS = (
    "A *clip convention* is how the code writes clip(v) = v clipped to [v_old − ε, v_old + ε]: "
    "*bounds* (verl) nests min and max, *clamp* (TRL) calls torch.clamp, *delta* (OpenRLHF, CleanRL, SB3) "
    "clamps the move v − v_old. Same values everywhere; they differ only in the gradient at an exact tie."
)
TIE_WORDS = (
    "A *tie* is a token where the two terms are exactly equal, e.g. v sitting exactly on a band edge: "
    "max() then has no single winner, and torch splits the gradient between them."
)

# verl's loss_agg_mode names, read left to right: how tokens are combined into one number.
AGG_MODE_WORDS = {
    "token-mean": "average over every real token of the batch (each token counts the same)",
    "token-sum": "sum over every real token (grows with the batch size)",
    "seq-mean-token-sum": "sum each sequence's tokens, then average the sequences (long answers weigh more)",
    "seq-mean-token-mean": "average within each sequence, then across sequences (a short answer's tokens weigh more)",
    "seq-mean-token-sum-norm": "sum each sequence's tokens, average the sequences, divide by the padded width "
    "(a constant scale)",
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

    if region == anatomy.REGION_NAN:
        why_winner = "An input is NaN, so every term is NaN."
        why_grad = "NaN in, NaN out: the gradient is NaN."
    elif region == anatomy.REGION_INSIDE:
        why_winner = (
            f"|Δ| = |v − v_old| = {fmt(abs(delta))} < ε = {fmt(eps)}: clip(v) = v, so both terms are the same number."
        )
        if lu != lc:
            why_winner += (
                f" Here they differ in the last digit: in the {convention} convention clip(v) = {vc!r} is not v = {v!r}, "
                "so a strict-> clip fraction would count this in-band token."
            )
        why_grad = f"Inside the band the loss is the plain squared error: gradient 2(v − R) = {fmt(grad)}."
    elif region == anatomy.REGION_ZERO_GRAD:
        past_R = (v - R) * gap > 0
        moved = (
            f"v moved Δ = {fmt(delta)} toward R, more than ε = {fmt(eps)}, and went past R by {fmt(abs(v - R))}, "
            f"yet it is still nearer R than the band edge clip(v) = {fmt(vc)} is"
            if past_R
            else f"v moved Δ = {fmt(delta)} toward R, more than ε = {fmt(eps)}, without reaching R: clip(v) is held "
            f"at the band edge {fmt(vc)}"
        )
        why_winner = (
            f"{moved}, so (clip(v) − R)² = {fmt(lc)} is larger than (v − R)² = {fmt(lu)} and max() picks the "
            "clipped term."
        )
        why_grad = (
            "The clipped term does not depend on v (clip(v) sits on the band edge), so the gradient is exactly 0: "
            "this token stops learning until the next rollout moves v_old. " + zero_gradient_rule(v_old, R, eps)
        )
    elif region == anatomy.REGION_AWAY:
        direction = "no return gap (R = v_old)" if gap == 0 else "away from R"
        why_winner = (
            f"v moved Δ = {fmt(delta)}, {direction}, beyond the band: (v − R)² = {fmt(lu)} is larger than "
            f"the clipped term {fmt(lc)}, so max() keeps the unclipped term."
        )
        why_grad = f"Full gradient 2(v − R) = {fmt(grad)}: clipping never stops the critic from coming back toward R."
    elif region == anatomy.REGION_OVERSHOT:
        why_winner = (
            f"v moved Δ = {fmt(delta)} toward R and overshot it (R − v_old = {fmt(gap)}) by {fmt(abs(v - R))}, "
            f"farther than the band edge clip(v) = {fmt(vc)} is from R ({fmt(abs(vc - R))}): (v − R)² = {fmt(lu)} "
            f"is larger than the clipped term {fmt(lc)}, so max() keeps the unclipped term."
        )
        why_grad = f"Full gradient 2(v − R) = {fmt(grad)}, pulling v back toward R. " + zero_gradient_rule(
            v_old, R, eps
        )
    else:  # REGION_TIE
        if eps == 0 and v == v_old:
            where = "ε = 0, so v = v_old sits on both band edges at once"
        elif v in (v_old - eps, v_old + eps):
            where = "v is on a band edge"
        else:
            where = "v overshot R by exactly as far as the band edge falls short of it"
        why_winner = f"Exact tie: both terms equal {fmt(lu)} ({where})."
        split = tie_split(convention, v, v_old, eps)
        if unclipped_grad == 0:
            why_grad = (
                f"torch splits the gradient of max() half and half on a tie; {split.reason}. Gradient {fmt(grad)}."
            )
        elif grad == float(split.share) * unclipped_grad:
            why_grad = (
                f"torch splits the gradient of max() half and half on a tie; {split.reason} ({convention} "
                f"convention). Gradient {fmt(grad)} = {_frac(split.share)} × 2(v − R) ({split.words})."
            )
        else:  # rounding moved one of the comparisons: state the number, never a split it does not match
            why_grad = (
                f"torch splits the gradient of max() half and half on a tie ({convention} convention); rounding "
                f"decides how much of the clipped half passes here: gradient {fmt(grad)} = "
                f"{fmt(grad / unclipped_grad)} × 2(v − R)."
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


def _colored(key: str, body: str) -> str:
    return rf"\textcolor{{{COLORS[key]}}}{{{body}}}"


def _latex_number(x: float) -> str:
    """A number inside LaTeX."""
    return fmt(x).replace("−", "-")


def _latex_operand(x: float) -> str:
    """A number after a minus sign: parenthesised when negative, so ``v − (−2)`` stays readable."""
    text = _latex_number(x)
    return f"({text})" if text.startswith("-") else text


def equation_latex(r: TokenReadout) -> str:
    """verl's loss for this one token with the numbers substituted, terms coloured like the plots.

    Three lines: the clip, the loss (the winning term marked), and d max / dv with its reason.
    """
    lo, hi = r.v_old - r.eps, r.v_old + r.eps
    unclip_sym = _colored("unclipped", r"(v - R)^2")
    clip_sym = _colored("clipped", r"(\mathrm{clip}(v) - R)^2")
    unclip_num = _colored("unclipped", rf"({_latex_number(r.v)} - {_latex_operand(r.R)})^2")
    clip_num = _colored("clipped", rf"({_latex_number(r.v_clipped)} - {_latex_operand(r.R)})^2")
    unclip_val = _colored("unclipped", _latex_number(r.loss_unclipped))
    clip_val = _colored("clipped", _latex_number(r.loss_clipped))
    if r.winner == "clipped":
        clip_val = rf"\underbrace{{{clip_val}}}_{{\text{{wins}}}}"
    elif r.winner == "unclipped" and r.region != anatomy.REGION_INSIDE:
        unclip_val = rf"\underbrace{{{unclip_val}}}_{{\text{{wins}}}}"
    loss_val = _colored("max", rf"\mathbf{{{_latex_number(0.5 * r.loss_max)}}}")
    old, eps = _colored("v_old", _latex_number(r.v_old)), _colored("band", _latex_number(r.eps))
    band = rf"[{old} - {eps},\ {old} + {eps}]"
    lines = [
        rf"\mathrm{{clip}}(v) &= \mathrm{{clip}}\big({_latex_number(r.v)},\ {band}\big) = \mathrm{{clip}}\big({_latex_number(r.v)},\ "
        rf"[{_latex_number(lo)},\ {_latex_number(hi)}]\big) = {_latex_number(r.v_clipped)}",
        rf"L &= \tfrac12 \max\big({unclip_sym},\ {clip_sym}\big) = \tfrac12\max\big({unclip_num},\ {clip_num}\big)",
        rf"&= \tfrac12 \max\big({unclip_val},\ {clip_val}\big) = {loss_val}",
    ]
    d_max = r"\frac{\partial \max}{\partial v}"
    if r.region == anatomy.REGION_ZERO_GRAD:
        zero = _colored("zero_grad", r"\mathbf{0}")
        grad_line = rf"{d_max} &= \frac{{\partial}}{{\partial v}}({_latex_number(r.v_clipped)} - {_latex_operand(r.R)})^2 = {zero}"
        grad_line += r"\quad\text{(clip(v) is constant in v)}"
    elif r.region in (anatomy.REGION_INSIDE, anatomy.REGION_AWAY, anatomy.REGION_OVERSHOT):
        grad_line = rf"{d_max} &= 2(v - R) = 2({_latex_number(r.v)} - {_latex_operand(r.R)}) = \mathbf{{{_latex_number(r.grad)}}}"
    elif r.region == anatomy.REGION_TIE and r.grad_ratio is not None:
        grad_line = rf"{d_max} &= {_latex_number(r.grad_ratio)} \cdot 2(v - R) = \mathbf{{{_latex_number(r.grad)}}}\quad\text{{(exact tie)}}"
    else:
        grad_line = rf"{d_max} &= \mathbf{{{_latex_number(r.grad)}}}"
    lines.append(grad_line)
    return r"\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}"


# ------------------------------------------------------------------------------------------------
# The zero-gradient rule, stated from the numbers


def zero_gradient_interval(v_old: float, R: float, eps: float) -> tuple[float, float] | None:
    """The open interval of v whose gradient is exactly 0 (the clipped term strictly wins), or None.

    With the gap g = R − v_old and |g| > eps it is the v that moved toward R by more than eps but by less
    than 2|g| − eps: between the band edge and its mirror image 2R − edge, overshoots of R included.
    Its two ends are exact ties. With |g| <= eps (R inside the band) no v has a zero gradient.
    """
    v_old, R, eps = float(v_old), float(R), float(eps)
    gap = R - v_old
    if abs(gap) <= eps:
        return None
    edge = v_old + eps if gap > 0 else v_old - eps
    mirror = 2.0 * R - edge
    return (edge, mirror) if gap > 0 else (mirror, edge)


def zero_gradient_rule(v_old: float, R: float, eps: float) -> str:
    """The rule, in one or two sentences with these numbers: which v get zero gradient, which are pulled back."""
    v_old, R, eps = float(v_old), float(R), float(eps)
    gap = R - v_old
    if gap == 0:
        return "Rule: R = v_old, so no move is toward R and no v has zero gradient; outside the band v is pulled back."
    span = zero_gradient_interval(v_old, R, eps)
    if span is None:
        return (
            f"Rule: |R − v_old| = {fmt(abs(gap))} is at most ε = {fmt(eps)}, so R lies inside the band and no v has "
            "zero gradient: past the band edge toward R, v is farther from R than the edge is and is pulled back."
        )
    lo, hi = span
    edge, mirror = (lo, hi) if gap > 0 else (hi, lo)
    sign = "+" if gap > 0 else "−"
    beyond = "above" if gap > 0 else "below"
    return (
        f"Rule: with R − v_old = {fmt(gap)} and ε = {fmt(eps)}, the gradient is exactly 0 for {fmt(lo)} < v < "
        f"{fmt(hi)}: v moved toward R by more than ε but by less than 2|R − v_old| − ε = {fmt(2 * abs(gap) - eps)}, "
        f"which includes overshooting R by up to {fmt(abs(gap) - eps)}, as far as 2R − (v_old {sign} ε) = "
        f"{fmt(mirror)}. Only v {beyond} {fmt(mirror)}, or a move away from R, is pulled back "
        f"(at v = {fmt(edge)} and v = {fmt(mirror)} the terms tie)."
    )


def region_map_caption(v_old: float, R: float, eps: float) -> str:
    """The caption of the One token region map (axes Δ = v − v_old and R − v_old), with this token's rule."""
    return (
        "Every token of a batch is one point here. Inside the band (between the dashed lines) every token learns. "
        "Outside it, a token that moved toward R by more than ε but by less than 2|R − v_old| − ε has zero gradient "
        "(purple): it is still nearer R than the band edge, even if it overshot R, so the purple wedge crosses the "
        "line v = R. A token that moved away from R (green), or overshot R by more than that (vermillion), is pulled "
        "back. " + zero_gradient_rule(v_old, R, eps)
    )


def gradient_map_caption(frozen_share: float) -> str:
    """The caption under the Gradients page's main map, with the share of the plane that is frozen."""
    if not 0.0 <= frozen_share <= 1.0:
        raise ValueError(f"frozen_share must be a fraction in [0, 1], got {frozen_share!r}")
    return (
        f"Purple cells have a gradient of **exactly 0**: the token moved more than ε toward R and is still nearer "
        f"R than the band edge (so ε < |Δ| < 2|R − v_old| − ε, overshoots of R included); the clipped term won, and "
        f"it does not depend on v. That is **{frozen_share:.0%}** of this plane; these are the tokens a loss clip "
        "fraction counts. Everywhere else the gradient is the plain 2(v − R): a token that moved away from R, or "
        "overshot R by more than 2|R − v_old| − ε, is pulled back. Blue: gradient < 0, a descent step raises v; "
        "orange: > 0, it lowers v."
    )


# ------------------------------------------------------------------------------------------------
# Ties: how much of 2(v − R) reaches v, and why


@dataclass(frozen=True)
class TieSplit:
    """At an exact tie: the unclipped term's share, the clipped term's share, and why."""

    unclipped: Fraction
    clipped: Fraction
    reason: str

    @property
    def share(self) -> Fraction:
        return self.unclipped + self.clipped

    @property
    def words(self) -> str:
        return f"{_frac(self.unclipped)} + {_frac(self.clipped)} = {_frac(self.share)}"


def _frac(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _tie_pass(a: float, b: float, keep_smaller: bool) -> Fraction:
    """What min (keep_smaller) or max passes to its first argument a against b: all, half on a tie, none."""
    if a == b:
        return Fraction(1, 2)
    return Fraction(1) if (a < b) == keep_smaller else Fraction(0)


def tie_split(convention: str, v: float, v_old: float, eps: float, tie_rule: str = "torch") -> TieSplit:
    """Why a token whose two terms tie gets the share of 2(v − R) it gets, in ``convention``.

    max() sends 1/2 to each term. The clipped half reaches v only through clip(v): verl's bounds
    ``max(min(v, v_old + eps), v_old − eps)`` halves it again at each bound v sits on (both at once when
    eps = 0), ``torch.clamp`` (TRL) and the delta form pass it whole on the closed band, and outside the band
    clip(v) is a constant that passes nothing.
    """
    v, v_old, eps = float(v), float(v_old), float(eps)
    lo, hi = v_old - eps, v_old + eps
    half = Fraction(1, 2)
    if tie_rule == "tensorflow":
        if convention not in ("bounds", "clamp", "delta"):
            raise ValueError(f"convention must be one of bounds, clamp, delta, got {convention!r}")
        return TieSplit(
            unclipped=Fraction(1),
            clipped=Fraction(0),
            reason="TensorFlow's tf.maximum sends the whole gradient of a tie to its first argument, the unclipped "
            "term (baselines ppo2 writes it first), so nothing goes through clip(v)",
        )
    if tie_rule != "torch":
        raise ValueError(f"tie_rule must be 'torch' or 'tensorflow', got {tie_rule!r}")
    if convention == "bounds":
        through_min = _tie_pass(v, hi, keep_smaller=True)
        inner = min(v, hi)
        through_max = _tie_pass(inner, lo, keep_smaller=False)
        clipped = half * through_min * through_max
        if through_min == half and through_max == half:
            reason = (
                "with ε = 0 both bounds equal v, so the clipped half meets two more ties inside verl's clip: "
                "min(v, v_old + ε) halves it and max(·, v_old − ε) halves it again, so ½ · ½ · ½ = 1/8 reaches v"
            )
        elif half in (through_min, through_max):
            bound = "min(v, v_old + ε)" if through_min == half else "max(·, v_old − ε)"
            reason = (
                f"the clipped half then meets a second tie inside verl's clip, at {bound}, which halves it again, "
                "so ½ · ½ = 1/4 reaches v"
            )
        elif clipped == 0:
            reason = "v is outside the band, so clip(v) is a constant and the clipped half does not reach v"
        else:
            reason = "v is strictly inside the band, so clip(v) = v passes the clipped half whole"
    elif convention in ("clamp", "delta"):
        inside = lo <= v <= hi if convention == "clamp" else -eps <= v - v_old <= eps
        clipped = half if inside else Fraction(0)
        what = "torch.clamp" if convention == "clamp" else "the delta form's clamp of v − v_old"
        reason = (
            f"{what} passes the whole gradient on its closed interval, edges included, so the clipped half reaches "
            "v in full"
            if inside
            else "v is outside the band, so clip(v) is a constant and the clipped half does not reach v"
        )
    else:
        raise ValueError(f"convention must be one of bounds, clamp, delta, got {convention!r}")
    return TieSplit(unclipped=half, clipped=clipped, reason=reason)


def tie_caption(rows: list[dict], v_old: float, eps: float) -> str:
    """The tie inspector's caption, from its table rows (``dialect_grads.tie_table``) and the v_old and eps
    the table used (``dialect_grads.tie_point`` gives that eps: 0 for the eps-zero case): each share explained.

    Only the rows whose terms really tie are explained; a share that does not match the explanation raises,
    so the words can never disagree with the table.
    """
    parts = []
    for row in rows:
        if not row["terms equal"]:
            continue
        split = tie_split(row["clip convention"], row["v"], v_old, eps, row["tie rule"])
        share = row["share of 2(v − R)"]
        if share == share and abs(float(split.share) - share) > 1e-12:
            raise ValueError(
                f"the {row['convention']} row passes {share:g} of 2(v − R), but the explanation gives {split.share}"
            )
        parts.append(f"**{row['used by']}** ({row['convention']}): {split.words} of 2(v − R), because {split.reason}.")
    if not parts:
        return "No row is an exact tie with these numbers, so there is no split to explain."
    return "torch's max() sends ½ of the gradient to each term on a tie. " + " ".join(parts)
