"""Clip fractions of a batch as functions of eps: exact sweeps over a batch, a Gaussian model batch for
summary statistics from a log, the eps that reaches a target clip fraction, and the update size that
reproduces a logged one.

Three definitions (``DEFINITIONS``), named for what they count, never for a library: ``loss`` (the clipped
term wins: zero gradient), ``prediction`` (``|v - v_old| > eps``) and ``clamp`` (``(v - R)^2 > bound``, a
bound on the squared error). A registry entry names the one it logs (``Dialect.sanity_definition``)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from .. import _validate as check
from ..dialects import get_dialect
from ..losses import clip_bounds
from .batch import Batch

__all__ = [
    "target_definition",
    "real_tokens",
    "DEFINITIONS",
    "PLAUSIBLE_STEPS",
    "MAX_STEP",
    "SummaryStats",
    "Sweep",
    "EpsTarget",
    "Resized",
    "summary_from_batch",
    "model_batch",
    "eps_in_units",
    "eps_in_units_of_checked",
    "ClipThresholds",
    "clip_thresholds",
    "clipfrac_sweep",
    "eps_for_clipfrac",
    "eps_grid",
    "eps_grid_of_checked",
    "estimate_over_steps",
    "acts_below",
    "resize_to_clipfrac",
]


DEFINITIONS = ("loss", "prediction", "clamp")


# How far one update moves the critic toward R, as a share of the gap: the summary estimate's key assumption.
PLAUSIBLE_STEPS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0)
MAX_STEP = 3.0  # the largest update step a model batch takes (the Sanity check's slider ends there)


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
    clamp: np.ndarray

    def curve(self, definition: str) -> np.ndarray:
        return getattr(self, _definition(definition))


@dataclass(frozen=True)
class EpsTarget:
    """The smallest eps whose clip fraction is at most ``target`` (None when no eps reaches it).

    Counted in tokens: ``count`` of the ``n`` real tokens clip at ``eps`` (``count / n <= target``, exactly),
    and any smaller eps clips ``below`` or more (``below / n > target``). ``at_zero`` tokens clip at eps = 0;
    fewer than the target allows means no eps clips that many (``reachable`` False)."""

    target: float
    definition: str
    eps: float | None
    achieved: float | None  # count / n
    reachable: bool
    count: int | None
    n: int
    below: int | None  # tokens clipped by the next smaller eps (None: eps is 0 or unreachable)
    at_zero: int


def _definition(name: str) -> str:
    return check.choice("definition", name, DEFINITIONS)


def real_tokens(batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    m = batch.mask.bool()
    v, r, v_old = (torch.masked_select(x, m) for x in (batch.vpreds, batch.returns, batch.values))
    return v, r, v_old, batch.mask.sum()


def summary_from_batch(batch: Batch) -> SummaryStats:
    """Mean and std (population) of R and v_old over the batch's finite real tokens."""
    _, r_real, v_old_real, _ = real_tokens(batch)
    r, v_old = r_real.double().numpy(), v_old_real.double().numpy()
    r, v_old = r[np.isfinite(r)], v_old[np.isfinite(v_old)]
    if r.size == 0 or v_old.size == 0:
        raise ValueError("the batch has no finite real tokens: every token is masked out or NaN")
    return SummaryStats(float(r.mean()), float(r.std()), float(v_old.mean()), float(v_old.std()))


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
    step = check.finite_number("step", step, low=0.0, high=3.0)
    correlation = check.finite_number("correlation", correlation, low=-1.0, high=1.0)
    n = check.whole_number("n", n, 1, 1_000_000)
    seed = check.whole_number("seed", seed, 0)
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
    return eps_in_units_of_checked(eps, return_std)


def eps_in_units_of_checked(eps: float, return_std: float) -> float | None:
    """:func:`eps_in_units` for an ``eps`` the caller validated at its boundary."""
    return_std = check.finite_number("return_std", return_std, low=0.0)
    return float(eps) / return_std if return_std > 0 else None


_BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass(frozen=True)
class ClipThresholds:
    """Per-token eps thresholds, sorted: a token counts at eps exactly when ``eps < threshold``.

    Every definition's indicator is non-increasing in eps, in float arithmetic too (rounding is
    monotone), so one threshold per token answers every eps at once. ``loss`` is found by bisection
    on the float's bit pattern (exact: the smallest float eps at which the clipped term stops winning);
    ``prediction`` is ``|v - v_old|`` and ``clamp`` is ``(v - R)^2`` themselves. Thresholds live in the
    batch's dtype, as torch applies a Python-float eps in the tensor's dtype.
    """

    loss: torch.Tensor
    prediction: torch.Tensor
    clamp: torch.Tensor
    denom: torch.Tensor  # verl's sum(mask) + 1e-8
    num_dtype: torch.dtype

    def counts(self, definition: str, eps: torch.Tensor) -> torch.Tensor:
        t = getattr(self, _definition(definition))
        return t.numel() - torch.searchsorted(t, eps.to(t.dtype), right=True)

    def fractions(self, counts: torch.Tensor) -> torch.Tensor:
        """verl's ``masked_mean`` of the 0/1 indicators: ``count / (sum(mask) + 1e-8)`` in its dtypes."""
        return counts.to(self.num_dtype) / self.denom


def _loss_clipped(v, r, v_old, eps):
    """verl's strict ``L_clip > L_unclip`` with its exact operations (bounds clip), eps per token."""
    return (clip_bounds(v, v_old, eps) - r) ** 2 > (v - r) ** 2


def _loss_thresholds(v, r, v_old) -> torch.Tensor:
    dtype = v.dtype
    bits = _BITS[torch.finfo(dtype).bits // 8]
    thresholds = torch.zeros_like(v)
    active = _loss_clipped(v, r, v_old, torch.zeros_like(v))  # clipped at eps = 0
    inf = torch.full_like(v, math.inf)
    stuck = active & _loss_clipped(v, r, v_old, inf)  # still clipped at eps = inf (non-finite inputs only)
    thresholds[stuck] = math.inf
    todo = active & ~stuck
    vv, rr, oo = v[todo], r[todo], v_old[todo]
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
    v, r, v_old, _ = real_tokens(batch)
    mask = batch.mask
    num_dtype = torch.promote_types(torch.float32, mask.dtype) if mask.is_floating_point() else torch.float32

    def clean(x):  # NaN never counts (every comparison with NaN is False): threshold 0
        return torch.sort(torch.nan_to_num(x, nan=0.0, posinf=math.inf)).values

    return ClipThresholds(
        loss=torch.sort(_loss_thresholds(v, r, v_old)).values,
        prediction=clean((v - v_old).abs()),
        clamp=clean((v - r) ** 2),
        denom=mask.sum() + 1e-8,
        num_dtype=num_dtype,
    )


def clipfrac_sweep(batch: Batch, eps_values, thresholds: ClipThresholds | None = None) -> Sweep:
    """Every clip fraction at every eps (sorted thresholds + ``searchsorted``: any grid is cheap).

    ``loss`` equals verl's ``vf_clipfrac`` at each eps bit for bit (same clip, same strict ``>``,
    same ``sum / (N + 1e-8)``); ``prediction`` is the share with ``|v - v_old| > eps``;
    ``clamp`` the share with ``(v - R)^2 > eps`` (eps read as a bound on the squared error).
    """
    grid = np.asarray(eps_values, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or grid.size > 5000:
        raise ValueError(f"eps_values must be a 1-D grid of 1 to 5000 values, got shape {grid.shape}")
    if not np.isfinite(grid).all() or (grid < 0).any():
        raise ValueError("eps_values must be finite and >= 0")
    th = thresholds if thresholds is not None else clip_thresholds(batch)
    e = torch.as_tensor(grid, dtype=batch.values.dtype)
    frac = {name: th.fractions(th.counts(name, e)).double().numpy() for name in DEFINITIONS}
    return Sweep(eps=grid, **frac)


def eps_for_clipfrac(
    batch: Batch, target: float, definition: str = "loss", thresholds: ClipThresholds | None = None
) -> EpsTarget:
    """The smallest eps whose clip fraction (``definition``) is at most ``target``: exact, from the thresholds.

    Counted in whole tokens and compared exactly (``count / n <= target`` as rationals), so "at most the
    target" means what the printed numbers say: 2,000 of 20,000 tokens meets a 10 % target, although
    verl's float32 ``count / (n + 1e-8)`` rounds it a hair above 0.1. With the thresholds sorted, the
    answer is the (k + 1)-th largest, where k is the most tokens the target allows; any smaller eps clips
    more. A target above the fraction at eps = 0 is unreachable: no eps clips that many tokens.
    """
    target = check.finite_number("target", target, low=0.0, high=1.0)
    definition = _definition(definition)
    th = thresholds if thresholds is not None else clip_thresholds(batch)
    t = getattr(th, definition)
    n = t.numel()

    def count_at(eps: torch.Tensor) -> int:
        return int(th.counts(definition, eps.reshape(1))[0])

    at_zero = count_at(torch.zeros((), dtype=t.dtype))
    allowed = math.floor(Fraction(target) * n)  # the most tokens the target allows
    if at_zero <= allowed:
        if at_zero == allowed or target == 0.0:
            return EpsTarget(target, definition, 0.0, at_zero / n if n else 0.0, True, at_zero, n, None, at_zero)
        return EpsTarget(target, definition, None, None, False, None, n, None, at_zero)
    eps = t[n - 1 - allowed]
    count = count_at(eps)
    below = count_at(torch.nextafter(eps, torch.zeros_like(eps)))
    return EpsTarget(target, definition, float(eps), count / n, True, count, n, below, at_zero)


def acts_below(thresholds: ClipThresholds, definition: str) -> float:
    """The largest eps at which any token clips (``definition``): clipping acts exactly when eps is below it."""
    t = getattr(thresholds, _definition(definition))
    return float(t[-1]) if t.numel() else 0.0


def eps_grid(
    batch: Batch, eps: float, definition: str = "loss", n: int = 201, include: float | None = None
) -> np.ndarray:
    """An eps grid from 0 that shows the whole curve, the chosen eps and (if given) another point."""
    check.clip_range("eps", eps)
    return eps_grid_of_checked(batch, eps, definition, n, include)


def eps_grid_of_checked(
    batch: Batch, eps: float, definition: str = "loss", n: int = 201, include: float | None = None
) -> np.ndarray:
    """:func:`eps_grid` for an ``eps`` the caller validated at its boundary."""
    n = check.whole_number("n", n, 2, 2000)
    v, r, v_old, _ = real_tokens(batch)
    moved = ((v - r) ** 2) if _definition(definition) == "clamp" else (v - v_old).abs()
    x = moved[torch.isfinite(moved)].double().numpy()
    top = float(np.quantile(x, 0.995)) * 1.05 if x.size else 0.0
    hi = max(top, 2.0 * float(eps), 1.05 * float(include or 0.0), 1e-6)
    return np.linspace(0.0, hi, n)


def _clip_at(batch: Batch, eps: float, definition: str) -> float:
    v, r, v_old, n = real_tokens(batch)
    if definition == "loss":
        hit = _loss_clipped(v, r, v_old, torch.full_like(v, eps))
    elif definition == "prediction":
        hit = (v - v_old).abs() > eps
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


@dataclass(frozen=True)
class Resized:
    """A batch whose updates were resized to reproduce a clip fraction: ``v = v_old + size * (v' - v_old)``.

    ``size`` is None when no size reproduces it; ``most`` is then the most any size clips."""

    size: float | None
    fraction: float | None  # what ``batch`` clips at eps
    batch: Batch | None
    most: float


def _resized(batch: Batch, size: float) -> Batch:
    values = batch.values
    vpreds = values + size * (batch.vpreds - values)
    return Batch(vpreds=vpreds, returns=batch.returns, values=values, mask=batch.mask, rewards=None, advantages=None)


def resize_to_clipfrac(
    batch: Batch, eps: float, fraction: float, definition: str, *, above: bool, sizes, start: float
) -> Resized:
    """The update size that makes ``batch`` clip ``fraction`` at ``eps``, nearest ``start`` among ``sizes``.

    Each token's move ``v - v_old`` is multiplied by the size (a step of the gap on a :func:`model_batch`
    at step 1, or a scale of a real batch's updates). The clip fraction is a step function of the size and
    need not be monotone (a token that overshoots R stops clipping), so every crossing of ``fraction``
    between neighbouring ``sizes`` is found and the one nearest ``start`` bisected to float precision.
    The side returned is ``above`` (clips at least ``fraction``) or below (at most), so a log above a
    target is never reproduced by a batch below it.
    """
    fraction = check.finite_number("fraction", fraction, low=0.0, high=1.0)
    definition = _definition(definition)
    sizes = np.asarray(sizes, dtype=np.float64)
    v, r, v_old, count = real_tokens(batch)
    n = float(count)
    delta = v - v_old
    hit = {
        "loss": lambda u: _loss_clipped(v_old + u, r, v_old, torch.full_like(u, eps)),
        "prediction": lambda u: u.abs() > eps,
        "clamp": lambda u: (v_old + u - r) ** 2 > eps,
    }[definition]

    def clip(size: float) -> float:
        return float(hit(size * delta).sum()) / n if n else 0.0

    fracs = np.array([clip(float(s)) for s in sizes])
    crossing = [
        i for i in range(len(sizes) - 1) if min(fracs[i], fracs[i + 1]) <= fraction <= max(fracs[i], fracs[i + 1])
    ]
    if not crossing:
        return Resized(None, None, None, float(fracs.max()))
    i = min(crossing, key=lambda j: min(abs(sizes[j] - start), abs(sizes[j + 1] - start)))
    lo, hi = float(sizes[i]), float(sizes[i + 1])
    f_lo, f_hi = fracs[i], fracs[i + 1]
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        f_mid = clip(mid)
        if min(f_lo, f_mid) <= fraction <= max(f_lo, f_mid):  # keep fraction between the two ends
            hi, f_hi = mid, f_mid
        else:
            lo, f_lo = mid, f_mid
    ends = [(lo, f_lo), (hi, f_hi)]
    good = [(s, c) for s, c in ends if (c >= fraction if above else c <= fraction)]
    size, got = min(good, key=lambda e: abs(e[1] - fraction))
    return Resized(float(size), float(got), _resized(batch, size), float(fracs.max()))


def target_definition(library: str) -> str:
    """The clip fraction that matters for ``library``: the one it logs, else the one it freezes."""
    return get_dialect(library).sanity_definition
