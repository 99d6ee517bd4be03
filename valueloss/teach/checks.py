"""The findings beside the verdict, in words: NaN and padding, the two clip-fraction definitions, why max
and not min, each library's quirks, and what a logged clip fraction says next to a batch or an estimate.

Each function takes the numbers (computed in ``valueloss.tools.findings``) and returns a
:class:`~valueloss.teach.advice.Finding` whose words quote them through :func:`~valueloss.teach.advice.shown`.
"""

from __future__ import annotations

from ..dialects import Dialect
from ..threads import Source, threads
from .advice import Finding, shown

__all__ = [
    "LOGGED_AGREES",
    "all_masked",
    "not_finite_real",
    "not_finite_padding",
    "first_step",
    "definitions",
    "why_max",
    "library_notes",
    "log_beside_batch",
    "log_beside_estimate",
]

LOGGED_AGREES = 0.02  # |logged - computed| within 2 points: the log and the batch agree


def _pct(x: float) -> str:
    return shown("clip", x)


def all_masked(verl: Dialect) -> Finding:
    return Finding(
        "warning",
        "Every token is masked out",
        "The mask has no real token. verl's token-mean divides 0 by 0, so vf_loss is NaN (and every seq-mean mode "
        "too), while vf_clipfrac is 0 because masked_mean adds 1e-8. Check the response mask: a batch of empty "
        "responses, or a mask that is all padding.",
        (Source(f"{verl.library} source", verl.source_url),),
    )


def not_finite_real(count: int) -> Finding:
    return Finding(
        "warning",
        f"NaN or inf on {count} real token(s)",
        "Real tokens are not finite, so every aggregation mode and every library gives a NaN loss. In verl#498 the "
        "critic's values had drifted to [-16, 14] before vf_loss turned NaN: check the value head, the learning rate "
        "and the reward pipeline.",
        threads("verl-project/verl#498"),
    )


def not_finite_padding(count: int, ok_modes: list[str], nan_modes: list[str], nan_libraries: list[str]) -> Finding:
    return Finding(
        "warning",
        f"NaN or inf in {count} padded slot(s)",
        f"Padding is not finite. verl masks token-mean and token-sum with where(), so they survive "
        f"({', '.join(ok_modes) or 'none'} fine here); the seq-mean modes multiply L * mask before the row sums and "
        f"NaN * 0 = NaN, so {', '.join(nan_modes) or 'none'} are NaN. Libraries poisoned on this batch: "
        f"{', '.join(nan_libraries) or 'none'}. Zero the padding (values * mask) before the loss.",
        threads("verl-project/verl#498"),
    )


def first_step() -> Finding:
    """A batch whose critic has not moved, beside a verdict on a log (the verdict itself says it otherwise)."""
    return Finding(
        "info",
        "v == v_old on every token of this batch: the first mini-step of an update",
        "The critic has not moved since the rollout, so clip(v) = v and both clip fractions of this batch are 0 "
        "whatever eps is; the loss is the plain squared error. This is expected on the first mini-batch of every "
        "PPO update (verl#2642); clipping starts acting from the second mini-step on.",
        threads("verl-project/verl#2642"),
    )


def definitions(loss: float, prediction: float, d: Dialect, *, estimate: bool) -> Finding:
    """The two clip fractions a library may log, at this eps, and which one ``d`` logs."""
    est = "estimated " if estimate else ""
    what = (
        f"{d.library} logs: {d.clipfrac_definition}."
        if d.clipfrac_definition
        else f"{d.library} logs no value clip fraction."
    )
    return Finding(
        "info",
        "Two clip fractions: which one is your log showing?",
        f"Loss-clipped ({est}{_pct(loss)}): tokens where the clipped term wins; they get zero gradient (verl "
        f"vf_clipfrac, TRL). Prediction-clipped ({est}{_pct(prediction)}): tokens with |v - v_old| > eps (slime, "
        "TorchRL); it also counts tokens that moved away from R, or overshot R by more than the band edge falls short "
        f"of it, which keep their gradient, so it is never smaller. {what} A metric computed from the already-clipped "
        "prediction is always 0 (RLinf#1529), and both are 0 on the first mini-step of an update, where v == v_old "
        "(verl#2642).",
        threads("RLinf/RLinf#1529", "verl-project/verl#2642"),
    )


def why_max(loss: float, prediction: float, d: Dialect, *, estimate: bool) -> Finding | None:
    """The prediction-clipped tokens that max keeps learning (None when there are none and d uses max)."""
    restoring = max(prediction - loss, 0.0)
    if d.combine_rule != "clip-only" and restoring <= 0.0:
        return None
    est = "estimated " if estimate else ""
    return Finding(
        "info",
        "Why max and not min",
        f"Of the {est}{_pct(prediction)} of tokens outside the band, {_pct(loss)} moved more than eps toward R and are "
        "still nearer R than the band edge: the clipped term wins and their gradient is zero. The other "
        f"{_pct(restoring)} moved away from R, or overshot R by more than the band edge falls short of it: max keeps the "
        "unclipped term, so they are pulled back. A min (or a clip-only loss such as SB3's) would freeze those too "
        "(openai/baselines#91, #1134; huggingface/trl#202).",
        threads("openai/baselines#91", "openai/baselines#1134", "huggingface/trl#202"),
    )


def library_notes(d: Dialect, eps: float, prediction: float, *, estimate: bool) -> list[Finding]:
    """What this library does differently, read from its registry entry's typed fields."""
    out = []
    est = "an estimated " if estimate else ""
    if d.eps_units == "loss":
        out.append(
            Finding(
                "info",
                f"{d.library}: {d.param_name} clips the loss, not the value",
                f"{d.library} computes clamp((v − R)², 0, {d.param_name}): the bound is in squared return units, so it "
                "is not comparable with the other libraries' eps, and rescaling the rewards by c moves it by c². A "
                "token whose squared error is above it sits on the flat part of the loss and gets zero gradient.",
                threads(*d.threads),
            )
        )
    if d.default_eps is None:
        clip_only = (
            f" {d.library} uses the clip-only loss mean((R - clip(v))^2) without max: every prediction-clipped token "
            f"gets zero gradient ({est}{_pct(prediction)} here), including tokens that moved away from R."
            if d.combine_rule == "clip-only"
            else ""
        )
        out.append(
            Finding(
                "info",
                f"{d.library}: value clipping is off by default",
                f"{d.param_name} defaults to off; eps = {shown('eps', eps)} applies only if you set it.{clip_only}",
                threads("hill-a/stable-baselines#216", "DLR-RM/stable-baselines3#1426"),
            )
        )
    if d.shares_policy_clip:
        param = d.param_name.split(" (")[0]
        out.append(
            Finding(
                "info",
                f"{d.library} shares one {param} between policy and value",
                f"{param} = {d.default_eps:g} clips the probability ratio (unitless) and the value change (return units) "
                f"alike. {d.library} keeps value clipping on by default; cleanrl#208 collects the evidence that it "
                "rarely helps (Engstrom et al. 2020; Andrychowicz et al. 2021).",
                threads("vwxyzjn/cleanrl#208", "hill-a/stable-baselines#216"),
            )
        )
    return out


def log_beside_batch(logged: float, batch: float, other: float, step: float | None, most: float, d: Dialect) -> Finding:
    """A logged clip fraction next to this batch's (``batch``: the library's definition, ``other``: the other one).

    ``step``: a critic that closes this share of each of the batch's gaps per update reproduces the log
    (None: no step does; ``most`` is the most any step clips). A log below the batch and one above it have
    different causes."""
    if abs(logged - batch) <= LOGGED_AGREES:
        return Finding(
            "info",
            "Your log agrees with this batch",
            f"Logged {_pct(logged)}, this batch {_pct(batch)}: the same definition on the same kind of batch.",
        )
    size = (
        f"On this batch's returns and old values, a critic that closes {shown('step', step)} of each gap per update "
        "reproduces your log."
        if step is not None
        else f"No update step reproduces your log on this batch's returns and old values (the most is {_pct(most)})."
    )
    if logged < batch:
        return Finding(
            "info",
            f"Your log ({_pct(logged)}) sits below this batch ({_pct(batch)})",
            f"{size} A logged value is usually the mean over every mini-batch of an update, and the first one clips "
            "nothing (v == v_old, verl#2642), so the log sits below a late mini-batch; a metric computed from the "
            "already-clipped prediction is always 0 (RLinf#1529); or this batch comes from a later, faster-moving "
            "phase of training than the logged steps.",
            threads("verl-project/verl#2642", "RLinf/RLinf#1529"),
        )
    other_words = (
        f" This batch's other clip fraction (prediction-clipped, |v − v_old| > eps) is {_pct(other)}: if that is near "
        f"your log, your trainer counts prediction-clipped tokens, not {d.library}'s loss-clipped ones; pick the "
        "library that logs it."
        if d.sanity_definition == "loss" and other > batch
        else ""
    )
    return Finding(
        "info",
        f"Your log ({_pct(logged)}) is above this batch ({_pct(batch)})",
        f"{size} A log clips more than a batch when the logged updates moved the critic further: the batch is from "
        "an earlier mini-step of its update than the logged one (clipping grows with each mini-step, and some "
        "trainers log the last mini-batch), from another phase of training, or the run's eps was smaller or its "
        f"critic steps (learning rate × epochs) larger than this batch's.{other_words}",
        (),
    )


def log_beside_estimate(logged: float, step: float | None, assumed: float, at_assumed: float, most: float) -> Finding:
    """A logged clip fraction next to the summary estimate: the update step that reproduces it."""
    if step is None:
        side = "above" if logged > most else "below"
        return Finding(
            "info",
            f"Your logged {_pct(logged)} is {side} every estimate",
            f"No update step of the Gaussian model of these statistics clips {_pct(logged)} (the most is {_pct(most)}): "
            "the model does not describe your batch well (skewed returns, values correlated with returns, or "
            "another clip-fraction definition). Upload a batch for exact numbers.",
        )
    return Finding(
        "info",
        f"Your logged {_pct(logged)} matches a step of {shown('step', step)}",
        f"A critic that closes {shown('step', step)} of the gap to R per update reproduces your log, so that is the "
        f"step your run takes; the eps the verdict suggests is read on that model. The assumed step of "
        f"{assumed:g} gives {_pct(at_assumed)}.",
    )
