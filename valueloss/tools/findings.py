"""Findings about ``cliprange_value``: each question users bring (is my eps right for my return scale?
why is my clip fraction 0? why is the loss NaN?) becomes a :class:`Finding` in the app's notation, with the
issue thread where it was first asked, and the verdict that weighs a clip fraction against a target."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from .. import _validate as check
from ..dialects import DIALECTS, get_dialect
from .batch import Batch
from .batch_anatomy import BatchAnatomy, batch_anatomy
from .clipfrac import (
    ClipThresholds,
    EpsTarget,
    SummaryStats,
    Sweep,
    clip_thresholds,
    clipfrac_sweep,
    eps_for_clipfrac,
    finite_number,
    model_batch,
    real_tokens,
    summary_from_batch,
    target_definition,
)

__all__ = [
    "ISSUES",
    "ROLLOUTS_TOO_MANY",
    "EPS_SIGMA_SMALL",
    "EPS_SIGMA_LARGE",
    "SCALE_MEAN_SIGMAS",
    "SCALE_STD_RATIO",
    "EPS_SIGMA_TIGHT",
    "LAG_ROLLOUTS",
    "LOGGED_AGREES",
    "Finding",
    "LibraryInfo",
    "library_info",
    "AGG_MODES_ORDER",
    "findings_for_batch",
    "findings_of",
    "findings_for_summary",
    "clipfrac_verdict",
    "REFERENCE_CLIPFRAC",
    "batch_clip_verdict",
    "logged_clipfrac_finding",
]


ISSUES = {
    "verl#498": "https://github.com/verl-project/verl/issues/498",
    "verl#2642": "https://github.com/verl-project/verl/issues/2642",
    "hill-a/stable-baselines#216": "https://github.com/hill-a/stable-baselines/issues/216",
    "DLR-RM/stable-baselines3#1426": "https://github.com/DLR-RM/stable-baselines3/issues/1426",
    "RLinf#1529": "https://github.com/RLinf/RLinf/issues/1529",
    "openai/baselines#91": "https://github.com/openai/baselines/issues/91",
    "openai/baselines#1134": "https://github.com/openai/baselines/issues/1134",
    "huggingface/trl#202": "https://github.com/huggingface/trl/issues/202",
    "ray#19291": "https://github.com/ray-project/ray/issues/19291",
    "ray#8908": "https://github.com/ray-project/ray/issues/8908",
    "cleanrl#208": "https://github.com/vwxyzjn/cleanrl/issues/208",
    "DeepSpeedExamples#556": "https://github.com/deepspeedai/DeepSpeedExamples/issues/556",
    "DeepSpeedExamples#956": "https://github.com/deepspeedai/DeepSpeedExamples/issues/956",
}


# Thresholds of the findings, named so the page and the tests can quote them.
ROLLOUTS_TOO_MANY = 10.0  # typical gap / eps: rollouts needed to close the typical return gap


EPS_SIGMA_SMALL = 0.05


EPS_SIGMA_LARGE = 2.0


SCALE_MEAN_SIGMAS = 3.0  # |mean(v_old) - mean(R)| in return stds


SCALE_STD_RATIO = 3.0  # std(v_old) / std(R)


EPS_SIGMA_TIGHT = 0.1  # over target with eps below a tenth of a return std: eps is small for the returns


LAG_ROLLOUTS = 3.0  # over target with the typical gap at least 3 eps: the critic lags its targets


LOGGED_AGREES = 0.02  # |logged - computed| within 2 points: the log and the batch agree


@dataclass(frozen=True)
class Finding:
    """One problem (or all-clear), explained, with the issue threads that asked about it."""

    severity: str  # "warning", "info" or "ok"
    title: str
    explanation: str
    links: tuple[str, ...]


@dataclass(frozen=True)
class LibraryInfo:
    name: str
    library: str
    param_name: str
    default_eps: float | None
    units: str  # "return" or "loss"
    formula: str
    combine: str
    clipfrac_definition: str | None
    source_url: str
    notes: str


def library_info(library: str) -> LibraryInfo:
    """The dialect's fields that the app shows; ``units`` is the dialect's ``eps_units``."""
    d = get_dialect(library)
    return LibraryInfo(**{f.name: getattr(d, _DIALECT_FIELD.get(f.name, f.name)) for f in fields(LibraryInfo)})


_DIALECT_FIELD = {"units": "eps_units"}  # LibraryInfo field -> Dialect attribute, where the names differ


def _links(*keys: str) -> tuple[str, ...]:
    return tuple(ISSUES[k] for k in keys)


def _thread_links(d) -> tuple[str, ...]:
    """The issue threads a registry entry names (``owner/repo#n``), as URLs."""
    return tuple(f"https://github.com/{t.split('#')[0]}/issues/{t.split('#')[1]}" for t in d.threads)


def _scale_finding(s: SummaryStats, eps: float, typical_gap: float) -> Finding | None:
    scale = s.return_std if s.return_std > 0 else max(abs(s.return_mean), float(eps), 1e-8)
    mean_off = abs(s.value_mean - s.return_mean) / scale
    ratio = s.value_std / scale
    if mean_off <= SCALE_MEAN_SIGMAS and ratio <= SCALE_STD_RATIO:
        return None
    rollouts = typical_gap / eps if eps > 0 else math.inf
    return Finding(
        "warning",
        "Values and returns live on different scales",
        f"Old values have mean {s.value_mean:.3g} and std {s.value_std:.3g}; returns have mean "
        f"{s.return_mean:.3g} and std {s.return_std:.3g} (mean off by {mean_off:.1f} return stds, spread ratio "
        f"{ratio:.1f}). The clip lets v move at most eps = {eps:.3g} from v_old per update, so closing the typical "
        f"gap |R - v_old| = {typical_gap:.3g} takes about {rollouts:.0f} rollouts. This is the pattern of verl#498 "
        "(values in [-16, 14] against returns in [0, 1]). Check the value-head initialisation and the reward / return "
        "normalisation before tuning eps.",
        _links("verl#498", "DeepSpeedExamples#556"),
    )


def _eps_scale_findings(
    eps: float, s: SummaryStats, typical_gap: float, clip_now: float, estimate: bool
) -> list[Finding]:
    out = []
    sigma = s.return_std
    ratio = eps / sigma if sigma > 0 else None
    rollouts = typical_gap / eps if eps > 0 else math.inf
    est = "estimated " if estimate else ""
    units = (
        "eps is in return units: it depends on the reward scale, so scale it with your rewards or normalise "
        "the returns (hill-a/stable-baselines#216; SB3 made it a separate, default-off clip_range_vf)."
    )
    if eps == 0:
        out.append(
            Finding(
                "warning",
                "eps = 0 freezes the critic on every token that moved toward R",
                "With eps = 0 the clipped term is (v_old - R)^2: any token whose prediction moved toward its "
                "return gets zero gradient (unless it overshot R by more than the whole gap R - v_old). Use a positive eps, or turn value clipping off. "
                + units,
                _links("hill-a/stable-baselines#216", "DLR-RM/stable-baselines3#1426"),
            )
        )
        return out
    if rollouts > ROLLOUTS_TOO_MANY or (ratio is not None and ratio < EPS_SIGMA_SMALL):
        out.append(
            Finding(
                "warning",
                "eps is small for this return scale",
                (f"eps = {eps:.3g} is {ratio:.3g} return stds; " if ratio is not None else f"eps = {eps:.3g}; ")
                + f"the typical gap |R - v_old| is {typical_gap:.3g}, about {rollouts:.0f} times eps. A token's value "
                "can move only about eps per rollout, so the critic needs that many rollouts to catch up; the "
                f"{est}clip fraction is {clip_now:.0%}. " + units,
                _links("hill-a/stable-baselines#216", "DLR-RM/stable-baselines3#1426"),
            )
        )
    elif (ratio is not None and ratio > EPS_SIGMA_LARGE) or clip_now == 0.0:
        out.append(
            Finding(
                "info",
                "eps is large for this return scale: clipping rarely acts",
                (f"eps = {eps:.3g} is {ratio:.3g} return stds; " if ratio is not None else f"eps = {eps:.3g}; ")
                + f"the {est}clip fraction is {clip_now:.1%}. The trust band is wider than the critic's moves, so "
                "the loss is the plain squared error almost everywhere. That is harmless, but then value clipping "
                "does nothing for you: evidence on whether it helps at all is mixed (cleanrl#208). " + units,
                _links("hill-a/stable-baselines#216", "DLR-RM/stable-baselines3#1426", "cleanrl#208"),
            )
        )
    return out


def _definitions_finding(loss: float, pred: float, library: str, estimate: bool) -> Finding:
    logged = DIALECTS[library].clipfrac_definition
    what = (
        f"{DIALECTS[library].library} logs: {logged}."
        if logged
        else f"{DIALECTS[library].library} logs no value clip fraction."
    )
    est = "estimated " if estimate else ""
    return Finding(
        "info",
        "Two clip fractions: which one is your log showing?",
        f"Loss-clipped ({est}{loss:.1%}): tokens where the clipped term wins; they get zero gradient (verl vf_clipfrac, "
        f"TRL). Prediction-clipped ({est}{pred:.1%}): tokens with |v - v_old| > eps (slime, TorchRL); it also counts "
        "tokens that moved away from R, or overshot R by more than the band edge falls short of it, which keep "
        "their gradient, so it is never smaller. "
        f"{what} A metric computed from the already-clipped prediction is always 0 (RLinf#1529), and both are 0 on "
        "the first mini-step of an update, where v == v_old (verl#2642).",
        _links("RLinf#1529", "verl#2642"),
    )


def _library_findings(library: str, eps: float, rllib_share: float | None, zero_pred: float, estimate: bool):
    out = []
    d = DIALECTS[library]
    est = "an estimated " if estimate else ""
    if d.eps_units == "loss":
        share = rllib_share or 0.0
        out.append(
            Finding(
                "warning" if share > 0.1 else "info",
                f"{d.library}: {d.param_name} clips the loss, not the value",
                f"{d.library} computes clamp((v - R)^2, 0, {d.param_name}): with {d.param_name} = {eps:.3g} (squared "
                f"return units) {est}{share:.1%} of tokens have a larger squared error, so their loss is flat and "
                "their gradient is zero. Its parameter is not comparable with the other libraries' eps; set it above "
                "the squared errors you expect, or scale your rewards"
                + (f" ({', '.join(d.threads)})." if d.threads else "."),
                _thread_links(d),
            )
        )
    if d.default_eps is None:
        out.append(
            Finding(
                "info",
                f"{d.library}: value clipping is off by default",
                f"{d.param_name} defaults to off; eps = {eps:.3g} applies only if you set it. "
                + (
                    f"{d.library} uses the clip-only loss mean((R - clip(v))^2) without max: every prediction-clipped "
                    f"token gets zero gradient ({est}{zero_pred:.1%} here), including tokens that moved away from R."
                    if d.combine_rule == "clip-only"
                    else ""
                ),
                _links("hill-a/stable-baselines#216", "DLR-RM/stable-baselines3#1426"),
            )
        )
    if "shared with the policy" in d.param_name:
        param = d.param_name.split(" (")[0]
        out.append(
            Finding(
                "info",
                f"{d.library} shares one {param} between policy and value",
                f"{param} = {d.default_eps:g} clips the probability ratio (unitless) and the value change (return "
                f"units) alike. {d.library} keeps value clipping on by default; cleanrl#208 collects the evidence that "
                "it rarely helps (Engstrom et al. 2020; Andrychowicz et al. 2021).",
                _links("cleanrl#208", "hill-a/stable-baselines#216"),
            )
        )
    return out


def _why_max_finding(loss: float, pred: float, library: str, estimate: bool) -> Finding | None:
    restoring = max(pred - loss, 0.0)
    if get_dialect(library).combine_rule != "clip-only" and restoring <= 0.0:
        return None
    est = "estimated " if estimate else ""
    return Finding(
        "info",
        "Why max and not min",
        f"Of the {est}{pred:.1%} of tokens outside the band, {loss:.1%} moved more than eps toward R and are still nearer R "
        f"than the band edge: the clipped term wins and their gradient is zero. The other {restoring:.1%} moved away "
        "from R, or overshot R by more than the band edge falls short of it: max keeps the unclipped term, so they "
        "are pulled back. A min (or SB3's clip-only loss) would freeze those too "
        "(openai/baselines#91, #1134; huggingface/trl#202).",
        _links("openai/baselines#91", "openai/baselines#1134", "huggingface/trl#202"),
    )


def _nan_findings(anatomy: BatchAnatomy) -> list[Finding]:
    batch, eps = anatomy.batch, anatomy.eps
    m = batch.mask.bool()
    finite = torch.isfinite(batch.vpreds) & torch.isfinite(batch.returns) & torch.isfinite(batch.values)
    n_real, n_pad = int((~finite & m).sum()), int((~finite & ~m).sum())
    out = []
    if n_real:
        out.append(
            Finding(
                "warning",
                f"NaN or inf on {n_real} real token(s)",
                "Real tokens are not finite, so every aggregation mode and every library gives a NaN loss. "
                "In verl#498 the critic's values had drifted to [-16, 14] before vf_loss turned NaN: check the value "
                "head, the learning rate and the reward pipeline.",
                _links("verl#498"),
            )
        )
    elif n_pad:
        nan_modes, ok_modes = [], []
        for mode in AGG_MODES_ORDER:
            loss = anatomy.vf_loss(mode)
            (nan_modes if torch.isnan(loss) else ok_modes).append(mode)
        nan_libs = []
        for name in DIALECTS:
            param = DIALECTS[name].default_eps if DIALECTS[name].eps_units == "loss" else eps
            loss, _ = DIALECTS[name].compute(batch.vpreds, batch.returns, batch.values, batch.mask, param, "token-mean")
            if torch.isnan(loss):
                nan_libs.append(DIALECTS[name].library)
        out.append(
            Finding(
                "warning",
                f"NaN or inf in {n_pad} padded slot(s)",
                f"Padding is not finite. verl masks token-mean and token-sum with where(), so they survive "
                f"({', '.join(ok_modes) or 'none'} fine here); the seq-mean modes multiply L * mask before the row sums "
                f"and NaN * 0 = NaN, so {', '.join(nan_modes) or 'none'} are NaN. Libraries poisoned on this batch: "
                f"{', '.join(nan_libs) or 'none'}. Zero the padding (values * mask) before the loss.",
                _links("verl#498"),
            )
        )
    return out


AGG_MODES_ORDER = check.AGG_MODES


def _sorted(findings: list[Finding]) -> list[Finding]:
    order = {"warning": 0, "ok": 1, "info": 2}
    return sorted(findings, key=lambda f: order[f.severity])


def _with_verdict(findings: list[Finding], verdict: Finding) -> list[Finding]:
    """The verdict first, then warnings, then the rest."""
    return [verdict, *_sorted(findings)]


def findings_for_batch(
    batch: Batch,
    eps: float,
    library: str = "verl",
    thresholds: ClipThresholds | None = None,
    *,
    target: float = 0.1,
    logged: float | None = None,
) -> list[Finding]:
    """Every check that applies to this batch: the verdict on the clip fraction against ``target`` first,
    then warnings (``thresholds``: reuse a :func:`clip_thresholds`; ``logged``: the user's logged fraction)."""
    anatomy = batch_anatomy(batch, eps)
    library = get_dialect(library).name
    return findings_of(anatomy, library, thresholds, target=target, logged=logged)


def findings_of(
    anatomy: BatchAnatomy,
    library: str,
    thresholds: ClipThresholds | None = None,
    *,
    target: float = 0.1,
    logged: float | None = None,
    at_eps: Sweep | None = None,
    eps_target: EpsTarget | None = None,
) -> list[Finding]:
    """:func:`findings_for_batch` on an anatomy validated at the caller's boundary (``library`` a known name).

    ``at_eps`` (the clip fractions at eps) and ``eps_target`` (the eps for ``target``) may be passed down
    by a caller that computed them already; they are computed here otherwise."""
    batch = anatomy.batch
    eps = float(anatomy.eps)
    if batch.n_tokens == 0:
        return [
            Finding(
                "warning",
                "Every token is masked out",
                "The mask has no real token. verl's token-mean divides 0 by 0, so vf_loss is NaN (and every seq-mean "
                "mode too), while vf_clipfrac is 0 because masked_mean adds 1e-8. Check the response mask: a batch "
                "of empty responses, or a mask that is all padding.",
                (DIALECTS["verl"].source_url,),
            )
        ]
    findings = _nan_findings(anatomy)
    v, r, v_old, _ = real_tokens(batch)
    finite = torch.isfinite(v) & torch.isfinite(r) & torch.isfinite(v_old)
    if not bool(finite.any()):
        return findings
    stats = summary_from_batch(batch)
    gap = (r - v_old)[finite].abs().double().numpy()
    typical_gap = float(np.median(gap))
    delta = (v - v_old)[finite]
    sweep = at_eps if at_eps is not None else clipfrac_sweep(batch, [eps], thresholds)
    loss, pred, rl = float(sweep.loss[0]), float(sweep.prediction[0]), float(sweep.rllib[0])
    definition = target_definition(library)
    clip_now = {"loss": loss, "prediction": pred, "rllib": rl}[definition]
    scale = _scale_finding(stats, eps, typical_gap)
    if scale:
        findings.append(scale)
    first_step = bool((delta == 0).all())
    if first_step:
        findings.append(
            Finding(
                "info",
                "v == v_old on every token: the first mini-step of an update",
                "The critic has not moved since the rollout, so clip(v) = v and both clip fractions are 0 whatever "
                "eps is; the loss is the plain squared error. This is expected on the first mini-batch of every PPO "
                "update (verl#2642); clipping starts acting from the second mini-step on.",
                _links("verl#2642"),
            )
        )
    elif DIALECTS[library].eps_units == "return":
        findings.extend(_eps_scale_findings(eps, stats, typical_gap, clip_now, estimate=False))
    findings.extend(_definition_and_library_findings(library, eps, loss, pred, rl, estimate=False))
    if logged is not None:
        findings.append(logged_clipfrac_finding(logged, clip_now, estimate=False))
    th = thresholds if thresholds is not None else clip_thresholds(batch)
    target_eps = (eps_target if eps_target is not None else eps_for_clipfrac(batch, target, definition, th)).eps
    verdict_at = (clip_now, target, eps, library, typical_gap, stats.return_std, logged, target_eps)
    return _findings_with_verdict(findings, *verdict_at, first_step=first_step)


def findings_for_summary(
    stats: SummaryStats,
    eps: float,
    library: str = "verl",
    *,
    model: Batch | None = None,
    thresholds: ClipThresholds | None = None,
    target: float = 0.1,
    logged: float | None = None,
    step: float | None = None,
    over_steps: tuple[tuple[float, float], ...] = (),
) -> list[Finding]:
    """Checks from the four logged statistics; clip fractions come from ``model`` (a :func:`model_batch`,
    moved ``step`` of the way to R). With ``logged`` (the user's logged fraction) and ``over_steps``
    (:func:`estimate_over_steps`) the log is placed among the plausible steps."""
    check.clip_range("eps", eps)
    library = get_dialect(library).name
    eps = float(eps)
    model = model if model is not None else model_batch(stats)
    _, r, v_old, _ = real_tokens(model)
    typical_gap = float((r - v_old).abs().median())
    sweep = clipfrac_sweep(model, [eps], thresholds)
    loss, pred, rl = float(sweep.loss[0]), float(sweep.prediction[0]), float(sweep.rllib[0])
    definition = target_definition(library)
    clip_now = {"loss": loss, "prediction": pred, "rllib": rl}[definition]
    findings = []
    scale = _scale_finding(stats, eps, typical_gap)
    if scale:
        findings.append(scale)
    if DIALECTS[library].eps_units == "return":
        findings.extend(_eps_scale_findings(eps, stats, typical_gap, clip_now, estimate=True))
    findings.extend(_definition_and_library_findings(library, eps, loss, pred, rl, estimate=True))
    if logged is not None:
        findings.append(logged_clipfrac_finding(logged, clip_now, estimate=True, step=step, over_steps=over_steps))
    th = thresholds if thresholds is not None else clip_thresholds(model)
    target_eps = eps_for_clipfrac(model, target, definition, th).eps
    verdict_at = (clip_now, target, eps, library, typical_gap, stats.return_std, logged, target_eps)
    return _findings_with_verdict(findings, *verdict_at, estimate=True)


def _definition_and_library_findings(
    library: str, eps: float, loss: float, pred: float, rl: float, *, estimate: bool
) -> list[Finding]:
    """The clip-fraction definition checks (return-unit dialects) and the library's own notes, in that order."""
    out = []
    if DIALECTS[library].eps_units == "return":
        out.append(_definitions_finding(loss, pred, library, estimate=estimate))
        why = _why_max_finding(loss, pred, library, estimate=estimate)
        if why:
            out.append(why)
    out.extend(_library_findings(library, eps, rl, pred, estimate=estimate))
    return out


def _findings_with_verdict(
    findings: list[Finding],
    clip_now: float,
    target: float,
    eps: float,
    library: str,
    typical_gap: float,
    return_std: float,
    logged: float | None,
    target_eps: float,
    **flags: bool,
) -> list[Finding]:
    """``findings`` with the :func:`clipfrac_verdict` for ``clip_now`` in front; any warning among them counts.
    ``flags`` are clipfrac_verdict's ``estimate`` / ``first_step``."""
    verdict = clipfrac_verdict(
        clip_now,
        target,
        eps=eps,
        library=library,
        typical_gap=typical_gap,
        return_std=return_std,
        logged=logged,
        target_eps=target_eps,
        other_warnings=any(f.severity == "warning" for f in findings),
        **flags,
    )
    return _with_verdict(findings, verdict)


_WHAT_IT_MEANS = {
    "loss": "these tokens moved more than eps toward R and get zero gradient",
    "prediction": "these tokens moved more than eps from v_old",
    "rllib": "these tokens' squared error exceeds vf_clip_param, so their loss is flat and their gradient zero",
}


def clipfrac_verdict(
    clip: float,
    target: float,
    *,
    eps: float,
    library: str,
    typical_gap: float,
    return_std: float,
    estimate: bool = False,
    first_step: bool = False,
    logged: float | None = None,
    target_eps: float | None = None,
    other_warnings: bool = False,
    target_name: str | None = None,
) -> Finding:
    """Is this clip fraction fine for the user's ``target``, and if not, why: eps too small for the return
    scale, a critic that lags its targets, or a critic that moves more than eps in one update.

    ``clip`` is the library's own clip fraction (exact for a batch, estimated from summary statistics);
    ``logged``, when given, is what the user's training log shows and is the number weighed;
    ``target_name`` names the target in the text (default "your 10% target").
    """
    target = finite_number("target", target, low=0.0, high=1.0)
    clip = finite_number("clip", clip, low=0.0, high=1.0)
    if logged is not None:
        logged = finite_number("logged", logged, low=0.0, high=1.0)
    library = get_dialect(library).name
    definition = target_definition(library)
    weighed = clip if logged is None else logged
    named = target_name or f"your {target:.0%} target"
    if logged is not None:
        source = f"Your logged clip fraction {logged:.1%} (this {'estimate' if estimate else 'batch'}: {clip:.1%})"
    else:
        source = f"The {'estimated ' if estimate else ''}clip fraction {clip:.1%}"
    entry = DIALECTS[library]
    means = _WHAT_IT_MEANS[definition]
    if entry.combine_rule == "clip-only":
        means = "SB3's clip-only loss gives every one of these tokens zero gradient, even those that moved away from R"
    if first_step and logged is None:
        return Finding(
            "info",
            "0 % clipped here says nothing about eps",
            "v == v_old on every token (the first mini-step of an update), so no eps can clip anything: check a "
            "batch from a later mini-step, or the clip fraction your log shows over the whole update (verl#2642).",
            _links("verl#2642"),
        )
    if weighed <= target:
        severity = "info" if other_warnings else "ok"
        rest = " See the warnings below: they do not depend on the clip fraction." if other_warnings else ""
        return Finding(
            severity,
            f"{weighed:.1%} clipped: within {named}",
            f"{source} is at most {named}; {means}. Most tokens keep their gradient, so the clip "
            f"acts as a brake on the few that moved furthest, which is what it is for.{rest}",
            (),
        )
    over = f"{source} is above {named}: {means}."
    where = "the model batch of these statistics" if estimate else "this batch"
    reach = f" An eps of about {target_eps:.3g} reaches {named} on {where}." if target_eps else ""
    if entry.eps_units == "loss":
        return Finding(
            "warning",
            f"{weighed:.1%} clipped, above {named}: vf_clip_param is small for these errors",
            f"{over} RLlib clamps the squared error at vf_clip_param = {eps:.3g} (squared return units), so the tokens "
            f"the critic is most wrong about stop learning.{reach} Raise vf_clip_param above the squared errors "
            "you expect, or scale the rewards (ray#19291, ray#8908).",
            _links("ray#19291", "ray#8908"),
        )
    ratio = eps / return_std if return_std > 0 else None
    lag = typical_gap / eps if eps > 0 else math.inf
    sigma = f"{ratio:.2g} return stds (σ_R = {return_std:.3g})" if ratio is not None else "not comparable (σ_R = 0)"
    if eps == 0:
        return Finding(
            "warning",
            f"{weighed:.1%} clipped, above {named}: eps = 0 freezes every move toward R",
            f"{over} With eps = 0 the band has no width: a token learns only on the first mini-step of each update "
            "and is frozen as soon as it moves toward R. Use a positive eps, or turn value clipping off.",
            _links("hill-a/stable-baselines#216", "DLR-RM/stable-baselines3#1426"),
        )
    if ratio is not None and ratio <= EPS_SIGMA_TIGHT:
        return Finding(
            "warning",
            f"{weighed:.1%} clipped, above {named}: eps is too small for this return scale",
            f"{over} eps = {eps:.3g} is {sigma}, at most {EPS_SIGMA_TIGHT:g} σ_R: eps is in return units, so a value "
            f"that suits normalised returns is tight for these, and the typical gap |R − v_old| = {typical_gap:.3g} "
            f"takes about {lag:.0f} rollouts to close.{reach} Scale eps with the returns, or normalise the returns "
            "(hill-a/stable-baselines#216, DLR-RM/stable-baselines3#1426; DeepSpeedExamples#556 is a critic that "
            "could not keep up).",
            _links("hill-a/stable-baselines#216", "DLR-RM/stable-baselines3#1426", "DeepSpeedExamples#556"),
        )
    if lag >= LAG_ROLLOUTS:
        return Finding(
            "warning",
            f"{weighed:.1%} clipped, above {named}: the critic lags its targets",
            f"{over} eps = {eps:.3g} is {sigma}, a sensible size, but the typical gap |R − v_old| = {typical_gap:.3g} "
            f"is {lag:.1f} × eps: tokens reach the band edge long before R and stop there, so the critic needs about "
            f"{lag:.0f} rollouts to catch up. The clip is doing its job on a critic that is behind: check the value "
            "head's initialisation and warm-up, the critic learning rate, and whether the returns drift "
            f"(verl#498, DeepSpeedExamples#556).{reach}",
            _links("verl#498", "DeepSpeedExamples#556"),
        )
    return Finding(
        "warning",
        f"{weighed:.1%} clipped, above {named}: the critic moves more than eps per update",
        f"{over} eps = {eps:.3g} is {sigma} and the typical gap |R − v_old| = {typical_gap:.3g} is only {lag:.1f} × "
        "eps, yet many tokens moved more than eps toward R within one update: the critic's steps (learning rate × "
        f"epochs) are large for this eps. Lower the critic learning rate or its epochs, or raise eps.{reach} Whether "
        "value clipping helps at all is debated (cleanrl#208); a max form keeps tokens that moved away learning "
        "(openai/baselines#91).",
        _links("cleanrl#208", "openai/baselines#91"),
    )


REFERENCE_CLIPFRAC = 0.1  # the Batch page's yardstick: the Sanity check's default target


def batch_clip_verdict(
    batch: Batch, eps: float, library: str = "verl", reference: float = REFERENCE_CLIPFRAC
) -> Finding:
    """Is this batch's clip fraction typical or alarming, and why: :func:`clipfrac_verdict` against ``reference``,
    titled for the Batch page ("Typical: ..." or "Alarming: ...")."""
    check.clip_range("eps", eps)
    library = get_dialect(library).name
    if batch.n_tokens == 0:
        raise ValueError("every token of the batch is masked out, so it has no clip fraction to judge")
    v, r, v_old, _ = real_tokens(batch)
    finite = torch.isfinite(v) & torch.isfinite(r) & torch.isfinite(v_old)
    if not bool(finite.any()):
        raise ValueError("no real token of the batch is finite, so it has no clip fraction to judge")
    stats = summary_from_batch(batch)
    typical_gap = float(np.median((r - v_old)[finite].abs().double().numpy()))
    definition = target_definition(library)
    th = clip_thresholds(batch)
    clip = float(getattr(clipfrac_sweep(batch, [float(eps)], th), definition)[0])
    verdict = clipfrac_verdict(
        clip,
        reference,
        eps=float(eps),
        library=library,
        typical_gap=typical_gap,
        return_std=stats.return_std,
        first_step=bool(((v - v_old)[finite] == 0).all()),
        target_eps=eps_for_clipfrac(batch, reference, definition, th).eps,
        target_name=f"the {reference:.0%} yardstick",
    )
    label = {"ok": "Typical", "warning": "Alarming", "info": "Uninformative"}[verdict.severity]
    return Finding(verdict.severity, f"{label}: {verdict.title}", verdict.explanation, verdict.links)


def logged_clipfrac_finding(
    logged: float,
    computed: float,
    *,
    estimate: bool,
    step: float | None = None,
    over_steps: tuple[tuple[float, float], ...] = (),
) -> Finding:
    """What the clip fraction from the user's log says next to the one computed here."""
    logged = finite_number("logged", logged, low=0.0, high=1.0)
    computed = finite_number("computed", computed, low=0.0, high=1.0)
    if not estimate:
        if abs(logged - computed) <= LOGGED_AGREES:
            return Finding(
                "info",
                "Your log agrees with this batch",
                f"Logged {logged:.1%}, this batch {computed:.1%}: the same definition on the same kind of batch.",
                (),
            )
        return Finding(
            "info",
            f"Your log ({logged:.1%}) and this batch ({computed:.1%}) differ",
            "A logged value is usually the mean over every mini-batch of an update, and the first one clips nothing "
            "(v == v_old, verl#2642), so the log sits below a late mini-batch; a metric computed from the "
            "already-clipped prediction is always 0 (RLinf#1529); and libraries count different things "
            "(loss-clipped against prediction-clipped, see below).",
            _links("verl#2642", "RLinf#1529"),
        )
    if not over_steps:
        raise ValueError("over_steps is needed to compare a logged clip fraction with an estimate")
    fracs = [c for _, c in over_steps]
    lo_step, hi_step = over_steps[0][0], over_steps[-1][0]
    assumed = f" The estimate above assumes a step of {step:g}." if step is not None else ""
    if logged < min(fracs) or logged > max(fracs):
        side = "below" if logged < min(fracs) else "above"
        return Finding(
            "info",
            f"Your logged {logged:.1%} is {side} every estimate",
            f"Over update steps {lo_step:g} to {hi_step:g} of the gap, these statistics give {min(fracs):.1%} to "
            f"{max(fracs):.1%}; your log is {side} that. The Gaussian model does not describe your batch well "
            "(skewed returns, values correlated with returns): upload a batch for exact numbers." + assumed,
            (),
        )
    pairs = zip(over_steps, over_steps[1:], strict=False)
    a, b = next((s1, s2) for (s1, c1), (s2, c2) in pairs if min(c1, c2) <= logged <= max(c1, c2))
    return Finding(
        "info",
        f"Your logged {logged:.1%} matches a step of {a:g} to {b:g}",
        f"With these statistics a critic that moves {a:g} to {b:g} of the way to R per update gives about "
        f"{logged:.1%}, so that is the step your run takes.{assumed} Set the update step there for estimates that "
        "describe your run.",
        (),
    )
