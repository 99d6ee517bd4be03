"""The Sanity check's words: the metric row, the estimate's assumptions, the eps for the target counted in
tokens, what the curve shows and the library card, each written from the report's numbers (through
``advice.shown``, so the metric row and the verdict write a number the same way)."""

from __future__ import annotations

from ..dialects import Dialect
from .advice import shown

__all__ = [
    "DEFINITION_WORDS",
    "CURVE_WORDS",
    "metrics",
    "estimate_note",
    "step_assumption",
    "eps_target_note",
    "curve_caption",
    "what_to_notice",
    "library_card",
    "default_caption",
]

# What each clip-fraction definition counts, in the words the page shows.
DEFINITION_WORDS = {
    "loss": "loss-clipped: L_clip > L_unclip (verl vf_clipfrac, TRL); these tokens get zero gradient",
    "prediction": "prediction-clipped: |v - v_old| > eps (slime value_clipfrac, TorchRL); SB3 freezes all of them",
    "clamp": "loss-clamped: (v - R)^2 > vf_clip_param (RLlib); these tokens get zero gradient",
}
CURVE_WORDS = {
    "loss": "loss-clipped: L_clip > L_unclip (zero gradient)",
    "prediction": "prediction-clipped: |v − v_old| > eps",
    "clamp": "loss-clamped: (v − R)² > vf_clip_param (zero gradient)",
}


def metrics(
    d: Dialect,
    *,
    eps: float,
    eps_sigma: float | None,
    return_std: float,
    definition: str,
    own: float,
    estimate: bool,
    logged: float | None,
    target: float,
    eps_for_target: float | None,
    reachable: bool | None,
    target_note: str,
) -> list[tuple[str, str, str]]:
    """(label, value, help) of the metric row: eps, eps in σ_R, the clip fraction (yours and this batch's),
    and the eps for the target read on the evidence the verdict grades."""
    loss_units = d.eps_units == "loss"
    what = "clamped share at vf_clip_param" if loss_units else "clip fraction at eps"
    own_label = what + (" (est.)" if estimate else "")
    rows = [
        (
            "eps",
            shown("eps", eps),
            "In squared-return units: RLlib clamps the loss." if loss_units else "In return units.",
        ),
        (
            "eps / std(R)",
            "n/a" if eps_sigma is None else f"{shown('eps_sigma', eps_sigma)} σ_R",
            f"Return std = {shown('sigma', return_std)}. eps measured in return standard deviations.",
        ),
        (own_label, shown("clip" if logged is None else "batch_clip", own), DEFINITION_WORDS[definition]),
    ]
    if logged is not None:
        rows.append(("your logged clip fraction", shown("clip", logged), "The verdict weighs this one."))
    rows.append(
        (
            f"eps for ≤ {shown('target', target)} clipped",
            shown("eps_for_target", eps_for_target)
            if eps_for_target is not None
            else "unreachable"
            if reachable is False
            else "n/a",
            target_note,
        )
    )
    return rows


def estimate_note(n: int, seed: int, correlation: float, step: float) -> str:
    return (
        f"Estimated: clip fractions come from a Gaussian model batch of {n:,} tokens (seed {seed}) with these "
        f"statistics, correlation {correlation:g} between v_old and R, and a critic that moved {step:g} of the way "
        "toward R. A real batch's numbers depend on how far your critic moves per update: upload one for exact values."
    )


def step_assumption(step: float, over_steps: tuple[tuple[float, float], ...], log_step: float | None) -> str:
    """The summary estimate's key assumption, beside the result: the step used and the range over plausible
    steps; with a log, the step that reproduces it (the one the verdict's eps numbers use)."""
    fracs = [c for _, c in over_steps]
    each = ", ".join(f"{s:g}: {shown('clip', c)}" for s, c in over_steps)
    head = (
        f"**This estimate assumes one update moves the critic {step:g} of the way to R.** Over plausible steps from "
        f"{over_steps[0][0]:g} to {over_steps[-1][0]:g} the same statistics give **{shown('clip', min(fracs))} to "
        f"{shown('clip', max(fracs))}** ({each})."
    )
    if log_step is not None:
        return head + (
            f" Your logged clip fraction is reproduced by a step of **{shown('step', log_step)}**: the verdict, the "
            "curve and the eps for the target use that step."
        )
    return head + " Enter the clip fraction your log shows to see which step your run takes, or upload a batch."


def eps_target_note(
    *,
    eps: float | None,
    count: int | None,
    n: int,
    below: int | None,
    at_zero: int,
    target: float,
    reachable: bool,
    first_step: bool,
    log_step: float | None = None,
) -> str:
    """The eps for the target in whole tokens (so a fraction printed as 10.000 % is never 'more than 10 %');
    ``log_step``: read at the update step that reproduces the user's log, and said so."""
    where = f"At the step that reproduces your log ({shown('step', log_step)}): " if log_step is not None else ""
    return where + _eps_target_words(eps, count, n, below, at_zero, target, reachable, first_step)


def _eps_target_words(eps, count, n, below, at_zero, target, reachable, first_step) -> str:
    goal = shown("target", target)
    if not reachable:
        why = (
            "every token has v == v_old (first mini-step, verl#2642), so nothing can clip."
            if first_step
            else "a smaller eps cannot clip tokens that did not move toward R."
        )
        return (
            f"Unreachable: even eps = 0 clips only {at_zero:,} of {n:,} tokens ({at_zero / n:.3%}), below the "
            f"{goal} target: {why}"
        )
    if eps == 0.0:
        return f"eps = 0 already clips {count:,} of {n:,} tokens ({count / n:.3%}), at most the {goal} target."
    return (
        f"eps = {shown('eps_for_target', eps)} clips {count:,} of {n:,} tokens ({count / n:.3%}); any smaller eps clips "
        f"at least {below:,} ({below / n:.3%}), more than the {goal} target: the fraction moves one token at a time."
    )


def curve_caption(*, step: float | None, on: str, unreproduced: bool) -> str | None:
    """Which evidence the curve is drawn on, where a logged clip fraction moved it off this batch or estimate."""
    if step is not None:
        where = "this batch's returns and old values" if on == "batch" else "the model batch"
        return (
            f"The curve is {where} with a critic that closes {shown('step', step)} of each gap per update: the step "
            "that reproduces your logged clip fraction, on which the verdict reads its eps."
        )
    if unreproduced:
        return "The curve is the evidence as given: no update step reproduces your logged clip fraction."
    return None


def what_to_notice(d: Dialect) -> str:
    if d.eps_units == "loss":
        return (
            f"**What to notice:** {d.library} does not clip the prediction. A token whose squared error (v − R)² is "
            f"above {d.param_name} sits on the flat part of the clamped loss and gets zero gradient, so a small "
            f"{d.param_name} freezes the tokens the critic is most wrong about. The bound is in squared return units: "
            "rescaling rewards by c moves it by c²."
        )
    return (
        "**What to notice:** the clip fraction falls as eps grows: a token stops clipping once eps exceeds how far it "
        "moved toward R. The loss-clipped curve (zero gradient) never exceeds the prediction-clipped one; the gap "
        "between them is the tokens that moved away from R, or overshot R by more than the band edge falls short of "
        "it, and keep their gradient."
    )


def library_card(d: Dialect) -> str:
    """The library's registry entry as a short list (markdown)."""
    units = "squared return units" if d.eps_units == "loss" else "return units"
    default = "off" if d.default_eps is None else f"{d.default_eps:g}"
    return (
        f"- **parameter:** `{d.param_name}`\n"
        f"- **default:** {default} ({units})\n"
        f"- **combine:** {d.combine}\n"
        f"- **clip fraction logged:** {d.clipfrac_definition or 'none'}\n"
        f"- **releases:** {d.versions}; **logged as:** `{d.loss_metric}` ({d.logged or 'one minibatch'})\n"
        f"- **verified:** {d.verified}\n"
        f"- **source:** [{d.repo}]({d.source_url})"
    )


def default_caption(d: Dialect, eps: float) -> str | None:
    """Beside an eps that is not the library's default."""
    if d.default_eps is None or eps == d.default_eps:
        return None
    return f"You use eps = {eps:g}; {d.library}'s default is {d.default_eps:g}."
