"""Sanity checks for ``cliprange_value``: from a batch, or from the summary statistics in a training log.

The questions users bring (is my eps right for my return scale? why is my clip fraction 0? why is the
loss NaN?) each become a :class:`Finding` that explains the problem in the app's notation and links
the issue thread where it was first asked.

Clip fractions here are computed exactly as the libraries compute them; with summary statistics only,
they come from a Gaussian model batch and are labelled as estimates.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from . import _validate as check
from .batches import Batch
from .dialects import DIALECTS, dialect_loss, get_dialect
from .losses import compute_value_loss

__all__ = [
    "ISSUES",
    "Finding",
    "SummaryStats",
    "Sweep",
    "EpsTarget",
    "LibraryInfo",
    "SanityReport",
    "DEFINITIONS",
    "summary_from_batch",
    "model_batch",
    "eps_in_units",
    "eps_grid",
    "ClipThresholds",
    "clip_thresholds",
    "clipfrac_sweep",
    "eps_for_clipfrac",
    "library_info",
    "target_definition",
    "findings_for_batch",
    "findings_for_summary",
    "sanity_from_batch",
    "sanity_from_summary",
    "PLAUSIBLE_STEPS",
    "clipfrac_verdict",
    "estimate_over_steps",
    "logged_clipfrac_finding",
    "step_assumption_text",
    "REFERENCE_CLIPFRAC",
    "batch_clip_verdict",
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

# What each curve counts, in the words the page shows.
DEFINITIONS = {
    "loss": "loss-clipped: L_clip > L_unclip (verl vf_clipfrac, TRL); these tokens get zero gradient",
    "prediction": "prediction-clipped: |v - v_old| > eps (slime value_clipfrac, TorchRL); SB3 freezes all of them",
    "rllib": "loss-clamped: (v - R)^2 > vf_clip_param (RLlib); these tokens get zero gradient",
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

# How far one update moves the critic toward R, as a share of the gap: the summary estimate's key assumption.
PLAUSIBLE_STEPS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Finding:
    """One problem (or all-clear), explained, with the issue threads that asked about it."""

    severity: str  # "warning", "info" or "ok"
    title: str
    explanation: str
    links: tuple[str, ...]


@dataclass(frozen=True)
class SummaryStats:
    """The four numbers a training log shows (e.g. verl's critic/returns/mean, critic/values/std)."""

    return_mean: float
    return_std: float
    value_mean: float
    value_std: float

    def __post_init__(self):
        for name in ("return_mean", "return_std", "value_mean", "value_std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            if name.endswith("std") and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class Sweep:
    """Clip fractions over an eps grid (each array has the grid's length); all are non-increasing in eps."""

    eps: np.ndarray
    loss: np.ndarray
    prediction: np.ndarray
    rllib: np.ndarray

    def curve(self, definition: str) -> np.ndarray:
        return {"loss": self.loss, "prediction": self.prediction, "rllib": self.rllib}[_definition(definition)]


@dataclass(frozen=True)
class EpsTarget:
    """The smallest eps whose clip fraction is at most ``target`` (None when no eps reaches it)."""

    target: float
    definition: str
    eps: float | None
    achieved: float | None
    reachable: bool
    note: str


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


@dataclass(frozen=True)
class SanityReport:
    """Everything the Sanity-check page shows."""

    source: str  # "batch" or "summary"
    estimate: bool
    estimate_note: str
    library: LibraryInfo
    eps: float
    summary: SummaryStats
    eps_over_sigma: float | None
    definition: str  # the curve that matters for this library
    at_eps: dict[str, float]  # clip fraction of each definition at eps
    sweep: Sweep
    target: EpsTarget
    findings: list[Finding]
    verdict: Finding | None = None  # the clip fraction weighed against the target (also findings[0])
    step: float | None = None  # summary estimates: the assumed update step
    over_steps: tuple[tuple[float, float], ...] = ()  # (step, estimated clip fraction) over PLAUSIBLE_STEPS
    logged: float | None = None  # the clip fraction the user logged, if given


def _definition(name: str) -> str:
    if name not in DEFINITIONS:
        raise ValueError(f"definition must be one of {', '.join(DEFINITIONS)}, got {name!r}")
    return name


def _finite_number(name: str, value, *, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and value < low or high is not None and value > high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _real_tokens(batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    m = batch.mask.bool()
    real = (torch.masked_select(x, m) for x in (batch.vpreds, batch.returns, batch.values))
    return (*real, batch.mask.sum())


def summary_from_batch(batch: Batch) -> SummaryStats:
    """Mean and std (population) of R and v_old over the batch's finite real tokens."""
    _, r, o, _ = _real_tokens(batch)
    r, o = r.double().numpy(), o.double().numpy()
    r, o = r[np.isfinite(r)], o[np.isfinite(o)]
    if r.size == 0 or o.size == 0:
        raise ValueError("the batch has no finite real tokens: every token is masked out or NaN")
    return SummaryStats(float(r.mean()), float(r.std()), float(o.mean()), float(o.std()))


def model_batch(
    stats: SummaryStats,
    step: float = 0.15,
    correlation: float = 0.0,
    n: int = 20_000,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Batch:
    """A Gaussian stand-in batch for summary statistics (one row of ``n`` real tokens).

    ``R ~ N(return_mean, return_std)``, ``v_old ~ N(value_mean, value_std)`` with correlation
    ``correlation``, and after one update the critic has moved a fraction ``step`` of the way toward
    R: ``v = v_old + step * (R - v_old)``. Clip fractions on it are estimates of a real batch's.
    """
    if not isinstance(stats, SummaryStats):
        raise TypeError(f"stats must be SummaryStats, got {type(stats).__name__}")
    step = _finite_number("step", step, low=0.0, high=3.0)
    correlation = _finite_number("correlation", correlation, low=-1.0, high=1.0)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1_000_000:
        raise ValueError(f"n must be an integer between 1 and 1,000,000, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(1, n, generator=g, dtype=torch.float64)
    z2 = torch.randn(1, n, generator=g, dtype=torch.float64)
    returns = stats.return_mean + stats.return_std * z1
    values = stats.value_mean + stats.value_std * (correlation * z1 + math.sqrt(1 - correlation**2) * z2)
    returns, values = returns.to(dtype), values.to(dtype)
    vpreds = values + step * (returns - values)
    mask = torch.ones_like(values)
    return Batch(vpreds=vpreds, returns=returns, values=values, mask=mask, rewards=None, advantages=returns - values)


def eps_in_units(eps: float, return_std: float) -> float | None:
    """eps in units of the return std (None when the returns do not vary)."""
    check.clip_range("eps", eps)
    return_std = _finite_number("return_std", return_std, low=0.0)
    return float(eps) / return_std if return_std > 0 else None


_BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass(frozen=True)
class ClipThresholds:
    """Per-token eps thresholds, sorted: a token counts at eps exactly when ``eps < threshold``.

    Every definition's indicator is non-increasing in eps, in float arithmetic too (rounding is
    monotone), so one threshold per token answers every eps at once. ``loss`` is found by bisection
    on the float's bit pattern (exact: the smallest float eps at which the clipped term stops winning);
    ``prediction`` is ``|v - v_old|`` and ``rllib`` is ``(v - R)^2`` themselves. Thresholds live in the
    batch's dtype, as torch applies a Python-float eps in the tensor's dtype.
    """

    loss: torch.Tensor
    prediction: torch.Tensor
    rllib: torch.Tensor
    denom: torch.Tensor  # verl's sum(mask) + 1e-8
    num_dtype: torch.dtype

    def counts(self, definition: str, eps: torch.Tensor) -> torch.Tensor:
        t = getattr(self, _definition(definition))
        return t.numel() - torch.searchsorted(t, eps.to(t.dtype), right=True)

    def fractions(self, counts: torch.Tensor) -> torch.Tensor:
        """verl's ``masked_mean`` of the 0/1 indicators: ``count / (sum(mask) + 1e-8)`` in its dtypes."""
        return counts.to(self.num_dtype) / self.denom


def _loss_clipped(v, r, o, eps):
    """verl's strict ``L_clip > L_unclip`` with its exact operations (bounds clip), eps per token."""
    clipped = torch.max(torch.min(v, o + eps), o - eps)
    return (clipped - r) ** 2 > (v - r) ** 2


def _loss_thresholds(v, r, o) -> torch.Tensor:
    dtype = v.dtype
    bits = _BITS[torch.finfo(dtype).bits // 8]
    thresholds = torch.zeros_like(v)
    active = _loss_clipped(v, r, o, torch.zeros_like(v))  # clipped at eps = 0
    inf = torch.full_like(v, math.inf)
    stuck = active & _loss_clipped(v, r, o, inf)  # still clipped at eps = inf (non-finite inputs only)
    thresholds[stuck] = math.inf
    todo = active & ~stuck
    vv, rr, oo = v[todo], r[todo], o[todo]
    lo = torch.zeros(vv.shape, dtype=bits)  # the bits of 0.0: clipped there
    hi = torch.full(vv.shape, math.inf, dtype=dtype).view(bits)  # the bits of +inf: not clipped there
    while vv.numel() and bool(((hi - lo) > 1).any()):
        mid = lo + (hi - lo) // 2
        clipped = _loss_clipped(vv, rr, oo, mid.view(dtype))
        lo = torch.where(clipped, mid, lo)
        hi = torch.where(clipped, hi, mid)
    thresholds[todo] = hi.view(dtype)
    return thresholds


def clip_thresholds(batch: Batch) -> ClipThresholds:
    """Sorted per-token thresholds of the three definitions over the batch's real tokens."""
    v, r, o, _ = _real_tokens(batch)
    mask = batch.mask
    num_dtype = torch.promote_types(torch.float32, mask.dtype) if mask.is_floating_point() else torch.float32

    def clean(x):  # NaN never counts (every comparison with NaN is False): threshold 0
        return torch.sort(torch.nan_to_num(x, nan=0.0, posinf=math.inf)).values

    return ClipThresholds(
        loss=torch.sort(_loss_thresholds(v, r, o)).values,
        prediction=clean((v - o).abs()),
        rllib=clean((v - r) ** 2),
        denom=mask.sum() + 1e-8,
        num_dtype=num_dtype,
    )


def clipfrac_sweep(batch: Batch, eps_values, thresholds: ClipThresholds | None = None) -> Sweep:
    """Every clip fraction at every eps (sorted thresholds + ``searchsorted``: any grid is cheap).

    ``loss`` equals verl's ``vf_clipfrac`` at each eps bit for bit (same clip, same strict ``>``,
    same ``sum / (N + 1e-8)``); ``prediction`` is the share with ``|v - v_old| > eps``;
    ``rllib`` the share with ``(v - R)^2 > eps`` (eps read as RLlib's loss bound).
    """
    grid = np.asarray(eps_values, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or grid.size > 5000:
        raise ValueError(f"eps_values must be a 1-D grid of 1 to 5000 values, got shape {grid.shape}")
    if not np.isfinite(grid).all() or (grid < 0).any():
        raise ValueError("eps_values must be finite and >= 0")
    th = thresholds if thresholds is not None else clip_thresholds(batch)
    e = torch.as_tensor(grid, dtype=batch.values.dtype)
    frac = {name: th.fractions(th.counts(name, e)).double().numpy() for name in DEFINITIONS}
    return Sweep(eps=grid, loss=frac["loss"], prediction=frac["prediction"], rllib=frac["rllib"])


def eps_for_clipfrac(
    batch: Batch, target: float, definition: str = "loss", thresholds: ClipThresholds | None = None
) -> EpsTarget:
    """The smallest eps whose clip fraction (``definition``) is at most ``target``: exact, from the thresholds.

    With the thresholds sorted, the answer is the (k + 1)-th largest, where k is the most tokens the
    target allows; any smaller float eps clips more than the target. A target above the fraction at
    eps = 0 is unreachable: no eps clips that many tokens.
    """
    target = _finite_number("target", target, low=0.0, high=1.0)
    definition = _definition(definition)
    th = thresholds if thresholds is not None else clip_thresholds(batch)
    t = getattr(th, definition)
    n = t.numel()

    def frac_at(eps: torch.Tensor) -> float:
        return float(th.fractions(th.counts(definition, eps.reshape(1)))[0])

    at_zero = frac_at(torch.zeros((), dtype=t.dtype))
    if at_zero <= target:
        if at_zero >= target or target == 0.0:
            return EpsTarget(target, definition, 0.0, at_zero, True, "eps = 0 already gives this clip fraction.")
        return EpsTarget(
            target,
            definition,
            None,
            None,
            False,
            f"Unreachable: no eps clips more than {at_zero:.2%} of this batch (the fraction at eps = 0), "
            f"below the target {target:.2%}. "
            + (
                "Every token has v == v_old (first mini-step, verl#2642), so nothing can clip."
                if at_zero == 0.0
                else "A smaller eps cannot clip tokens that did not move toward R."
            ),
        )
    # Compared as the printed numbers compare (float64), so achieved <= target holds as shown.
    allowed = th.fractions(torch.arange(n + 1)).double() <= target  # non-decreasing in the count
    k = int(torch.nonzero(allowed).max())  # the most tokens the target allows (< n: at_zero > target)
    eps = t[n - 1 - k]
    achieved = frac_at(eps)
    below = frac_at(torch.nextafter(eps, torch.zeros_like(eps)))
    note = f"eps = {float(eps):.4g} gives {achieved:.3%}" + (
        f"; any smaller eps gives more than the target ({below:.3%}): the fraction moves in steps of one token."
        if achieved < target
        else "."
    )
    return EpsTarget(target, definition, float(eps), achieved, True, note)


def eps_grid(
    batch: Batch, eps: float, definition: str = "loss", n: int = 201, include: float | None = None
) -> np.ndarray:
    """An eps grid from 0 that shows the whole curve, the chosen eps and (if given) another point."""
    check.clip_range("eps", eps)
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= 2000:
        raise ValueError(f"n must be an integer between 2 and 2000, got {n!r}")
    v, r, o, _ = _real_tokens(batch)
    x = ((v - r) ** 2) if _definition(definition) == "rllib" else (v - o).abs()
    x = x[torch.isfinite(x)].double().numpy()
    top = float(np.quantile(x, 0.995)) * 1.05 if x.size else 0.0
    hi = max(top, 2.0 * float(eps), 1.05 * float(include or 0.0), 1e-6)
    return np.linspace(0.0, hi, n)


def target_definition(library: str) -> str:
    """The clip fraction that matters for ``library``: the one it logs, else the one it freezes."""
    return get_dialect(library).sanity_definition


def library_info(library: str) -> LibraryInfo:
    d = get_dialect(library)
    return LibraryInfo(
        name=d.name,
        library=d.library,
        param_name=d.param_name,
        default_eps=d.default_eps,
        units=d.eps_units,
        formula=d.formula,
        combine=d.combine,
        clipfrac_definition=d.clipfrac_definition,
        source_url=d.source_url,
        notes=d.notes,
    )


# ---------------------------------------------------------------------------------------------------
# Findings
# ---------------------------------------------------------------------------------------------------


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
                "return gets zero gradient (unless it overshot R by more than the whole gap R - v_old). Use a positive eps, or turn value clipping off. " + units,
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
                    if d.combine.startswith("clip-only")
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
    if not get_dialect(library).combine.startswith("clip-only") and restoring <= 0.0:
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


def _nan_findings(batch: Batch, eps: float) -> list[Finding]:
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
            loss, _ = compute_value_loss(batch.vpreds, batch.returns, batch.values, batch.mask, eps, mode)
            (nan_modes if torch.isnan(loss) else ok_modes).append(mode)
        nan_libs = []
        for name in DIALECTS:
            param = DIALECTS[name].default_eps if DIALECTS[name].eps_units == "loss" else eps
            res = dialect_loss(name, batch.vpreds, batch.returns, batch.values, batch.mask, param)
            if torch.isnan(res.loss):
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
    check.clip_range("eps", eps)
    library = get_dialect(library).name
    eps = float(eps)
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
    findings = _nan_findings(batch, eps)
    v, r, o, _ = _real_tokens(batch)
    finite = torch.isfinite(v) & torch.isfinite(r) & torch.isfinite(o)
    if not bool(finite.any()):
        return findings
    stats = summary_from_batch(batch)
    gap = (r - o)[finite].abs().double().numpy()
    typical_gap = float(np.median(gap))
    delta = (v - o)[finite]
    sweep = clipfrac_sweep(batch, [eps], thresholds)
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
    if DIALECTS[library].eps_units == "return":
        findings.append(_definitions_finding(loss, pred, library, estimate=False))
        why = _why_max_finding(loss, pred, library, estimate=False)
        if why:
            findings.append(why)
    findings.extend(_library_findings(library, eps, rl, pred, estimate=False))
    if logged is not None:
        findings.append(logged_clipfrac_finding(logged, clip_now, estimate=False))
    th = thresholds if thresholds is not None else clip_thresholds(batch)
    verdict = clipfrac_verdict(
        clip_now,
        target,
        eps=eps,
        library=library,
        typical_gap=typical_gap,
        return_std=stats.return_std,
        first_step=first_step,
        logged=logged,
        target_eps=eps_for_clipfrac(batch, target, definition, th).eps,
        other_warnings=any(f.severity == "warning" for f in findings),
    )
    return _with_verdict(findings, verdict)


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
    _, r, o, _ = _real_tokens(model)
    typical_gap = float((r - o).abs().median())
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
    if DIALECTS[library].eps_units == "return":
        findings.append(_definitions_finding(loss, pred, library, estimate=True))
        why = _why_max_finding(loss, pred, library, estimate=True)
        if why:
            findings.append(why)
    findings.extend(_library_findings(library, eps, rl, pred, estimate=True))
    if logged is not None:
        findings.append(logged_clipfrac_finding(logged, clip_now, estimate=True, step=step, over_steps=over_steps))
    th = thresholds if thresholds is not None else clip_thresholds(model)
    verdict = clipfrac_verdict(
        clip_now,
        target,
        eps=eps,
        library=library,
        typical_gap=typical_gap,
        return_std=stats.return_std,
        estimate=True,
        logged=logged,
        target_eps=eps_for_clipfrac(model, target, definition, th).eps,
        other_warnings=any(f.severity == "warning" for f in findings),
    )
    return _with_verdict(findings, verdict)


# ---------------------------------------------------------------------------------------------------
# The verdict: the clip fraction weighed against the user's target, and what it means
# ---------------------------------------------------------------------------------------------------

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
    target = _finite_number("target", target, low=0.0, high=1.0)
    clip = _finite_number("clip", clip, low=0.0, high=1.0)
    if logged is not None:
        logged = _finite_number("logged", logged, low=0.0, high=1.0)
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
    if entry.combine.startswith("clip-only"):
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


def batch_clip_verdict(batch: Batch, eps: float, library: str = "verl", reference: float = REFERENCE_CLIPFRAC) -> Finding:
    """Is this batch's clip fraction typical or alarming, and why: :func:`clipfrac_verdict` against ``reference``,
    titled for the Batch page ("Typical: ..." or "Alarming: ...")."""
    check.clip_range("eps", eps)
    library = get_dialect(library).name
    if batch.n_tokens == 0:
        raise ValueError("every token of the batch is masked out, so it has no clip fraction to judge")
    v, r, o, _ = _real_tokens(batch)
    finite = torch.isfinite(v) & torch.isfinite(r) & torch.isfinite(o)
    if not bool(finite.any()):
        raise ValueError("no real token of the batch is finite, so it has no clip fraction to judge")
    stats = summary_from_batch(batch)
    typical_gap = float(np.median((r - o)[finite].abs().double().numpy()))
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
        first_step=bool(((v - o)[finite] == 0).all()),
        target_eps=eps_for_clipfrac(batch, reference, definition, th).eps,
        target_name=f"the {reference:.0%} yardstick",
    )
    label = {"ok": "Typical", "warning": "Alarming", "info": "Uninformative"}[verdict.severity]
    return Finding(verdict.severity, f"{label}: {verdict.title}", verdict.explanation, verdict.links)


def _clip_at(batch: Batch, eps: float, definition: str) -> float:
    v, r, o, n = _real_tokens(batch)
    if definition == "loss":
        hit = _loss_clipped(v, r, o, torch.full_like(v, eps))
    elif definition == "prediction":
        hit = (v - o).abs() > eps
    else:
        hit = (v - r) ** 2 > eps
    return float(hit.sum()) / float(n)


def estimate_over_steps(
    stats: SummaryStats,
    eps: float,
    library: str = "verl",
    steps=PLAUSIBLE_STEPS,
    *,
    correlation: float = 0.0,
    n: int = 20_000,
    seed: int = 0,
) -> tuple[tuple[float, float], ...]:
    """The summary estimate at each update step in ``steps``: (step, clip fraction of ``library``'s kind).

    The estimate's key assumption is how far one update moves the critic toward R; this shows how much the
    answer depends on it (same model batch and seed for every step).
    """
    check.clip_range("eps", eps)
    definition = target_definition(library)
    out = []
    for step in steps:
        model = model_batch(stats, step=step, correlation=correlation, n=n, seed=seed)
        out.append((float(step), _clip_at(model, float(eps), definition)))
    return tuple(out)


def logged_clipfrac_finding(
    logged: float,
    computed: float,
    *,
    estimate: bool,
    step: float | None = None,
    over_steps: tuple[tuple[float, float], ...] = (),
) -> Finding:
    """What the clip fraction from the user's log says next to the one computed here."""
    logged = _finite_number("logged", logged, low=0.0, high=1.0)
    computed = _finite_number("computed", computed, low=0.0, high=1.0)
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


def step_assumption_text(report: SanityReport) -> str:
    """The summary estimate's key assumption, beside the result: the step used and the range over plausible steps."""
    if not report.estimate or report.step is None or not report.over_steps:
        raise ValueError("only a summary-statistics report (an estimate with over_steps) has a step assumption")
    fracs = [c for _, c in report.over_steps]
    lo, hi = min(fracs), max(fracs)
    s_lo, s_hi = report.over_steps[0][0], report.over_steps[-1][0]
    each = ", ".join(f"{s:g}: {c:.1%}" for s, c in report.over_steps)
    return (
        f"**This estimate assumes one update moves the critic {report.step:g} of the way to R.** Over plausible "
        f"steps from {s_lo:g} to {s_hi:g} the same statistics give **{lo:.1%} to {hi:.1%}** ({each}). Enter the "
        "clip fraction your log shows to see which step your run takes, or upload a batch for exact numbers."
    )


def _report(
    source, estimate, note, batch, stats, eps, library, target, th, findings, step=None, over_steps=(), logged=None
) -> SanityReport:
    info = library_info(library)
    definition = target_definition(library)
    tgt = eps_for_clipfrac(batch, target, definition, th)
    grid = eps_grid(batch, eps, definition, include=tgt.eps)
    sweep = clipfrac_sweep(batch, grid, th)
    at = clipfrac_sweep(batch, [eps], th)
    return SanityReport(
        source=source,
        estimate=estimate,
        estimate_note=note,
        library=info,
        eps=float(eps),
        summary=stats,
        eps_over_sigma=eps_in_units(eps, stats.return_std) if info.units == "return" else None,
        definition=definition,
        at_eps={"loss": float(at.loss[0]), "prediction": float(at.prediction[0]), "rllib": float(at.rllib[0])},
        sweep=sweep,
        target=tgt,
        findings=findings,
        verdict=findings[0],
        step=step,
        over_steps=tuple(over_steps),
        logged=logged,
    )


def sanity_from_batch(
    batch: Batch, eps: float, library: str = "verl", target: float = 0.1, *, logged: float | None = None
) -> SanityReport:
    """All sanity numbers and findings for a real (or synthetic) batch: exact, no model.

    ``logged``: the clip fraction the user's training log shows (compared with this batch's, and weighed)."""
    check.clip_range("eps", eps)
    get_dialect(library)
    if batch.n_tokens == 0:
        raise ValueError(
            "every token of the batch is masked out (the mask has no 1), so there is nothing to check. On such a "
            "batch verl's token-mean vf_loss is 0/0 = NaN and vf_clipfrac is 0. Fix the response mask"
        )
    stats = summary_from_batch(batch)
    th = clip_thresholds(batch)
    findings = findings_for_batch(batch, eps, library, th, target=target, logged=logged)
    return _report("batch", False, "", batch, stats, eps, library, target, th, findings, logged=logged)


def sanity_from_summary(
    stats: SummaryStats,
    eps: float,
    library: str = "verl",
    target: float = 0.1,
    *,
    step: float = 0.15,
    correlation: float = 0.0,
    n: int = 20_000,
    seed: int = 0,
    logged: float | None = None,
) -> SanityReport:
    """Sanity numbers from four logged statistics; clip fractions are model-based estimates.

    The estimate depends on ``step`` (how far one update moves the critic toward R): the report carries
    the estimate over :data:`PLAUSIBLE_STEPS` too, and places ``logged`` (the user's log) among them."""
    check.clip_range("eps", eps)
    get_dialect(library)
    model = model_batch(stats, step=step, correlation=correlation, n=n, seed=seed)
    note = (
        f"Estimated: clip fractions come from a Gaussian model batch of {n:,} tokens (seed {seed}) with these "
        f"statistics, correlation {correlation:g} between v_old and R, and a critic that moved {step:g} of the way "
        "toward R. A real batch's numbers depend on how far your critic moves per update: upload one for exact values."
    )
    th = clip_thresholds(model)
    over_steps = estimate_over_steps(stats, eps, library, correlation=correlation, n=n, seed=seed)
    findings = findings_for_summary(
        stats, eps, library, model=model, thresholds=th, target=target, logged=logged, step=step, over_steps=over_steps
    )
    return _report(
        "summary", True, note, model, stats, eps, library, target, th, findings, step, over_steps, logged
    )
