"""The critic over a run: its quantities (by the registry's names), the return scale, the phases of the run,
each phase's evidence for the advice, and what the detectors find (what users bring to issue trackers).

Input: a :class:`RunLog` and a mapping quantity -> metric name (from :mod:`.recognise`, or the user's).
Every number a sentence quotes is a field of the records returned here, so the page shows the same numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from ...threads import Link, threads
from .model import RunLog, Series

__all__ = [
    "TIMELINE_QUANTITIES",
    "LOSS_GROWTH",
    "EV_NEAR_ZERO",
    "DRIFT_SCALES",
    "EXPLODING",
    "FINDING_SHORT",
    "RunQuantities",
    "PhaseEvidence",
    "RunFinding",
    "RunAnalysis",
    "quantities_of",
    "return_scale",
    "phases",
    "phase_evidence",
    "detect",
    "analyse_run",
]

# The quantities the timeline draws, in the registry's names (LoggedMetric.quantity).
TIMELINE_QUANTITIES = (
    "clipfrac",
    "value_loss",
    "explained_variance",
    "values_mean",
    "values_min",
    "values_max",
    "returns_mean",
    "returns_min",
    "returns_max",
    "vpred_mean",
    "grad_norm",
)

# Detector thresholds, named so the page and the tests quote them.
LOSS_GROWTH = 100.0  # value loss above this many times its early level: "grew by orders of magnitude"
EV_NEAR_ZERO = 0.1  # explained variance below this (rolling median): the critic explains almost nothing
DRIFT_SCALES = 1.0  # |mean(v_old) - mean(R)| above this many return scales: values drift away from returns
EARLY_SHARE = 0.1  # the first 10 % of a run's points are its "early" level (at least 5 points)
MAX_PHASES = 6

# The threads where users brought each pattern (titles in valueloss.threads): value losses that exploded or
# turned NaN/inf in rsl_rl / IsaacLab runs, and verl's NaN vf_loss with values far from returns (EV -72).
VERL_498 = "verl-project/verl#498"
EXPLODING = (
    "leggedrobotics/rsl_rl#152",
    "leggedrobotics/rsl_rl#154",
    "isaac-sim/IsaacLab#1999",
    "isaac-sim/IsaacLab#2539",
    "isaac-sim/IsaacLab#4570",
    VERL_498,
)


@dataclass(frozen=True)
class RunQuantities:
    """A run's critic quantities by the registry's names, each a :class:`Series` (only those logged)."""

    run: str
    series: dict[str, Series]
    keys: dict[str, str]  # quantity -> the metric name it was read from

    def get(self, quantity: str) -> Series | None:
        return self.series.get(quantity)

    @functools.cached_property
    def steps(self) -> np.ndarray:
        """Every step at which some quantity was logged (computed once)."""
        arrays = [s.steps for s in self.series.values()]
        if not arrays:
            return np.empty(0, dtype=np.int64)
        if all(len(a) == len(arrays[0]) and np.array_equal(a, arrays[0]) for a in arrays[1:]):
            return arrays[0]  # the usual case: every quantity logged at every step
        merged = np.sort(np.concatenate(arrays))
        return merged[np.concatenate([[True], merged[1:] != merged[:-1]])]

    @functools.cached_property
    def scale(self) -> Series | None:
        """:func:`return_scale` of these quantities (computed once)."""
        return return_scale(self)


def quantities_of(run: RunLog, mapping: dict[str, str]) -> RunQuantities:
    """The run's series for each mapped quantity (metric names the run does not hold are left out)."""
    series = {q: run.series[name] for q, name in mapping.items() if name in run.series}
    return RunQuantities(run.name, series, {q: mapping[q] for q in series})


def _aligned(a: Series, b: Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The steps both series logged, with each one's value there."""
    steps, ia, ib = np.intersect1d(a.steps, b.steps, assume_unique=True, return_indices=True)
    return steps, a.values[ia], b.values[ib]


def return_scale(q: RunQuantities) -> Series | None:
    """The return scale per step: half the logged range, (max(R) - min(R)) / 2.

    Trainers log the returns' mean, min and max, not their std; by Popoviciu's inequality the std is at most
    half the range, so eps / scale is a lower bound on eps / std(R). None where min or max is not logged.
    """
    lo, hi = q.get("returns_min"), q.get("returns_max")
    if lo is None or hi is None:
        return None
    steps, lo_v, hi_v = _aligned(lo, hi)
    with np.errstate(invalid="ignore", over="ignore"):
        return Series(steps, (hi_v - lo_v) / 2.0)


def _rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    """Median of the window centred on each point (NaN/inf ignored; a window without a finite value gives NaN),
    so a change is dated where it happens, not half a window later. One sort of the (n, window) view."""
    values = values.astype(np.float64)
    if window <= 1 or len(values) < 2:
        return values
    half = window // 2
    clean = np.where(np.isfinite(values), values, np.nan)
    padded = np.concatenate([np.full(half, np.nan), clean, np.full(window - 1 - half, np.nan)])
    ordered = np.sort(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)  # NaN sorts last
    count = np.isfinite(ordered).sum(axis=1)
    rows = np.arange(len(values))
    lo = ordered[rows, np.maximum(count - 1, 0) // 2]
    hi = ordered[rows, np.maximum(count // 2, 0)]
    hi = np.where(count % 2 == 1, lo, hi)
    return np.where(count > 0, (lo + hi) / 2, np.nan)


def _window(n: int) -> int:
    """An odd window (its median is a point's own neighbourhood, centred), about 2 % of the run, at most 51."""
    return 2 * int(max(0, min(25, round(n / 100)))) + 1


# ---------------------------------------------------------------------------------------------------------
# Phases


@dataclass(frozen=True)
class Phase:
    start: int  # first step
    end: int  # last step
    band: str  # where the clip fraction sits: "below", "in", "above" the band; "all" without a clip fraction


def phases(q: RunQuantities, band: tuple[float, float]) -> list[Phase]:
    """The run cut where its (rolling-median) clip fraction crosses the band's edges.

    Stretches shorter than 5 % of the run join the previous phase, and at most ``MAX_PHASES`` are kept (the
    shortest merged first). Without a logged clip fraction the run is one phase per third.
    """
    lo, hi = band
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"band must be 0 <= low <= high <= 1, got {band}")
    clip = q.get("clipfrac")
    all_steps = _all_steps(q)
    if len(all_steps) == 0:
        return []
    if clip is None or not np.isfinite(clip.values).any():
        cuts = np.array_split(all_steps, min(3, len(all_steps)))
        return [Phase(int(c[0]), int(c[-1]), "all") for c in cuts if len(c)]
    smooth = _rolling_median(clip.values, _window(len(clip)))
    labels = np.where(smooth > hi, 2, np.where(smooth < lo, 0, 1))
    labels = np.where(np.isfinite(smooth), labels, -1)
    # forward-fill the steps where the clip fraction is NaN (they belong to the phase around them)
    for i in range(1, len(labels)):
        if labels[i] < 0:
            labels[i] = labels[i - 1]
    if labels[0] < 0:
        known = labels[labels >= 0]
        labels[labels < 0] = known[0] if len(known) else 1
    runs = _run_lengths(labels)
    min_len = max(3, int(0.05 * len(labels)))
    merged: list[list[int]] = []  # [label, start index, end index]
    for label, start, end in runs:
        if merged and (end - start + 1 < min_len or merged[-1][0] == label):
            merged[-1][2] = end
        else:
            merged.append([label, start, end])
    while len(merged) > MAX_PHASES:
        i = min(range(1, len(merged)), key=lambda k: merged[k][2] - merged[k][1])
        merged[i - 1][2] = merged[i][2]
        del merged[i]
    names = {0: "below", 1: "in", 2: "above"}
    out = []
    for k, (label, start, end) in enumerate(merged):
        first = int(clip.steps[start]) if k else int(min(clip.steps[start], all_steps[0]))
        last = int(clip.steps[end]) if k < len(merged) - 1 else int(max(clip.steps[end], all_steps[-1]))
        out.append(Phase(first, last, names[int(label)]))
    return out


def _run_lengths(labels: np.ndarray) -> list[tuple[int, int, int]]:
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change - 1, [len(labels) - 1]])
    return [(int(labels[s]), int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def _all_steps(q: RunQuantities) -> np.ndarray:
    return q.steps


# ---------------------------------------------------------------------------------------------------------
# Evidence per phase


@dataclass(frozen=True)
class PhaseEvidence:
    """The numbers one phase gives the advice: medians over the phase's steps (None: not logged there)."""

    start: int
    end: int
    n_steps: int
    band: str
    eps: float | None
    clipfrac: float | None
    return_mean: float | None
    return_min: float | None
    return_max: float | None
    value_mean: float | None
    value_min: float | None
    value_max: float | None
    explained_variance: float | None
    return_scale: float | None  # median of (max(R) - min(R)) / 2
    eps_over_scale: float | None  # eps / return_scale: a lower bound on eps / std(R)
    loss_first: float | None  # median value loss of the phase's first quarter
    loss_last: float | None  # ... and of its last quarter
    non_finite_loss: int  # NaN / inf values of the loss in this phase
    findings: tuple[str, ...] = ()  # kinds of the detectors' findings that hold in this phase

    @property
    def loss_trend(self) -> float | None:
        """loss_last / loss_first (> 1: the loss grew over the phase)."""
        if self.loss_first is None or self.loss_last is None or self.loss_first == 0:
            return None
        return self.loss_last / self.loss_first


def _median_in(series: Series | None, start: int, end: int) -> float | None:
    if series is None:
        return None
    sel = (series.steps >= start) & (series.steps <= end)
    values = series.values[sel]
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else None


def phase_evidence(q: RunQuantities, phase: Phase, eps: float | None) -> PhaseEvidence:
    """The phase's medians (robust to single spikes; a NaN step does not poison them)."""
    scale = _median_in(q.scale, phase.start, phase.end)
    loss = q.get("value_loss")
    loss_first = loss_last = None
    non_finite = 0
    if loss is not None:
        sel = (loss.steps >= phase.start) & (loss.steps <= phase.end)
        steps, values = loss.steps[sel], loss.values[sel]
        non_finite = int((~np.isfinite(values)).sum())
        if len(steps):
            quarter = max(1, len(steps) // 4)
            loss_first = _median_in(Series(steps[:quarter], values[:quarter]), phase.start, phase.end)
            loss_last = _median_in(Series(steps[-quarter:], values[-quarter:]), phase.start, phase.end)
    n_steps = int(((steps_all := _all_steps(q)) >= phase.start).sum() - (steps_all > phase.end).sum())
    return PhaseEvidence(
        start=phase.start,
        end=phase.end,
        n_steps=n_steps,
        band=phase.band,
        eps=eps,
        clipfrac=_median_in(q.get("clipfrac"), phase.start, phase.end),
        return_mean=_median_in(q.get("returns_mean"), phase.start, phase.end),
        return_min=_median_in(q.get("returns_min"), phase.start, phase.end),
        return_max=_median_in(q.get("returns_max"), phase.start, phase.end),
        value_mean=_median_in(q.get("values_mean"), phase.start, phase.end),
        value_min=_median_in(q.get("values_min"), phase.start, phase.end),
        value_max=_median_in(q.get("values_max"), phase.start, phase.end),
        explained_variance=_median_in(q.get("explained_variance"), phase.start, phase.end),
        return_scale=scale,
        eps_over_scale=(eps / scale) if eps is not None and scale and scale > 0 else None,
        loss_first=loss_first,
        loss_last=loss_last,
        non_finite_loss=non_finite,
    )


# ---------------------------------------------------------------------------------------------------------
# Detectors


# Each detector's finding in a few words (the phase table's column).
FINDING_SHORT = {
    "non_finite": "NaN/inf loss",
    "loss_growth": "loss grew 100x+",
    "explained_variance": "explained var. near 0 or below",
    "values_drift": "values drift from returns",
}


@dataclass(frozen=True)
class RunFinding:
    """One pattern found in the run, when it started, the numbers behind it, and the threads about it."""

    kind: str  # "non_finite", "loss_growth", "explained_variance", "values_drift"
    severity: str  # "warning" or "info"
    title: str
    explanation: str
    start: int  # the step it started at
    links: tuple[Link, ...]


def _non_finite(q: RunQuantities) -> RunFinding | None:
    loss = q.get("value_loss")
    if loss is None:
        return None
    bad = np.flatnonzero(~np.isfinite(loss.values))
    if not len(bad):
        return None
    first = int(bad[0])
    kinds = sorted({"NaN" if math.isnan(v) else ("+inf" if v > 0 else "-inf") for v in loss.values[bad].tolist()})
    others = [
        name
        for name, series in q.series.items()
        if name != "value_loss" and len(series) and not np.isfinite(series.values).all()
    ]
    return RunFinding(
        "non_finite",
        "warning",
        f"The value loss is {' / '.join(kinds)} from step {int(loss.steps[first]):,}",
        f"{q.keys['value_loss']} is not finite at {len(bad):,} of {len(loss):,} logged steps, first at step "
        f"{int(loss.steps[first]):,}"
        + (f" (last finite value before it: {loss.values[first - 1]:.4g})" if first > 0 else "")
        + ". "
        + (f"Also not finite: {', '.join(q.keys[o] for o in others)}. " if others else "")
        + "A NaN or inf value loss poisons the critic's weights from that update on; in the threads below it "
        "followed returns or values that had already grown huge.",
        int(loss.steps[first]),
        threads(*EXPLODING),
    )


def _early_level(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    if len(finite) < 5:
        return None
    head = finite[: max(5, int(EARLY_SHARE * len(finite)))]
    level = float(np.median(np.abs(head)))
    return level if level > 0 else None


def _loss_growth(q: RunQuantities) -> RunFinding | None:
    loss = q.get("value_loss")
    if loss is None:
        return None
    level = _early_level(loss.values)
    if level is None:
        return None
    with np.errstate(invalid="ignore"):
        over = np.flatnonzero(np.isfinite(loss.values) & (np.abs(loss.values) > LOSS_GROWTH * level))
    if not len(over):
        return None
    first = int(over[0])
    peak_i = int(over[np.argmax(np.abs(loss.values[over]))])
    peak = float(loss.values[peak_i])
    orders = math.log10(abs(peak) / level)
    return RunFinding(
        "loss_growth",
        "warning",
        f"The value loss grew {orders:.1f} orders of magnitude, from step {int(loss.steps[first]):,}",
        f"{q.keys['value_loss']} was about {level:.3g} early in the run (median of its first "
        f"{EARLY_SHARE:.0%} of steps) and passed {LOSS_GROWTH:g}x that at step {int(loss.steps[first]):,}, peaking "
        f"at {peak:.4g} at step {int(loss.steps[peak_i]):,} ({abs(peak) / level:.3g}x). In the threads below it "
        "came from returns or values that grew huge (reward outliers, physics blow-ups): look at the returns and "
        "the values' scale at that step.",
        int(loss.steps[first]),
        threads(*EXPLODING),
    )


def _sustained_from(steps: np.ndarray, bad: np.ndarray, min_run: int) -> int | None:
    """The first index of the final stretch of ``bad`` (at least ``min_run`` long and lasting to the end)."""
    if not len(bad) or not bad[-1]:
        return None
    good = np.flatnonzero(~bad)
    start = int(good[-1]) + 1 if len(good) else 0
    return start if len(bad) - start >= min_run else None


def _explained_variance(q: RunQuantities) -> RunFinding | None:
    ev = q.get("explained_variance")
    if ev is None or len(ev) < 5:
        return None
    smooth = _rolling_median(ev.values, _window(len(ev)))
    with np.errstate(invalid="ignore"):
        low = np.isfinite(smooth) & (smooth < EV_NEAR_ZERO)
    start = _sustained_from(ev.steps, low, max(3, int(0.1 * len(ev))))
    if start is None:
        return None
    tail = ev.values[start:]
    tail = tail[np.isfinite(tail)]
    median = float(np.median(tail)) if len(tail) else math.nan
    negative = median < 0
    return RunFinding(
        "explained_variance",
        "warning",
        f"Explained variance is {'negative' if negative else 'near zero'} from step {int(ev.steps[start]):,} on",
        f"{q.keys['explained_variance']} stays below {EV_NEAR_ZERO:g} from step {int(ev.steps[start]):,} to the end "
        f"(median {median:.3g} over those {len(ev) - start:,} steps). "
        + (
            "Below zero the critic's values predict the returns worse than their mean would: the advantages "
            "carry the critic's error, not just the returns' noise."
            if negative
            else "The critic explains almost none of the returns' variance: the advantages are about as noisy "
            "as without a critic."
        )
        + " In verl#498 it was -72 with the values far outside the returns' range.",
        int(ev.steps[start]),
        threads(VERL_498),
    )


def _values_drift(q: RunQuantities) -> RunFinding | None:
    vm, rm, scale = q.get("values_mean"), q.get("returns_mean"), q.scale
    if vm is None or rm is None or scale is None:
        return None
    steps, v, r = _aligned(vm, rm)
    s_steps, s_vals = scale.steps, scale.values
    idx = np.searchsorted(s_steps, steps)
    ok = (idx < len(s_steps)) & (s_steps[np.minimum(idx, len(s_steps) - 1)] == steps)
    steps, v, r = steps[ok], v[ok], r[ok]
    sc = s_vals[idx[ok]]
    if len(steps) < 5:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs(v - r) / sc
    smooth = _rolling_median(np.where(np.isfinite(gap), gap, np.nan), _window(len(gap)))
    with np.errstate(invalid="ignore"):
        drifted = np.isfinite(smooth) & (smooth > DRIFT_SCALES)
    start = _sustained_from(steps, drifted, max(3, int(0.1 * len(steps))))
    if start is None:
        return None
    i = start
    return RunFinding(
        "values_drift",
        "warning",
        f"The values drift away from the returns from step {int(steps[i]):,}",
        f"From step {int(steps[i]):,} to the end, |mean(v_old) − mean(R)| stays above {DRIFT_SCALES:g} return "
        f"scale (half the logged return range). At step {int(steps[i]):,}: values mean {v[i]:.4g}, returns mean "
        f"{r[i]:.4g}, scale {sc[i]:.4g}; at the last step: {v[-1]:.4g} vs {r[-1]:.4g}. A critic this far off "
        "makes every advantage carry its offset; with the value clip, v can move only eps per update toward R. "
        "Check the value head's initialisation and return normalisation before tuning eps (verl#498).",
        int(steps[i]),
        threads(VERL_498),
    )


def detect(q: RunQuantities) -> list[RunFinding]:
    """Every pattern found, ordered by the step it started at."""
    found = [f(q) for f in (_non_finite, _loss_growth, _explained_variance, _values_drift)]
    return sorted((f for f in found if f is not None), key=lambda f: f.start)


# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunAnalysis:
    quantities: RunQuantities
    scale: Series | None
    phases: list[PhaseEvidence]
    findings: list[RunFinding]


def _split_at(cuts: list[Phase], steps: list[int], min_len: int) -> list[Phase]:
    """The phases cut again at each step in ``steps`` (a finding's start) unless a boundary is that close."""
    for step in sorted(set(steps)):
        out = []
        for p in cuts:
            if p.start + min_len <= step <= p.end - min_len + 1 and all(abs(step - q.start) >= min_len for q in cuts):
                out += [Phase(p.start, step - 1, p.band), Phase(step, p.end, p.band)]
            else:
                out.append(p)
        cuts = out
    return cuts


def analyse_run(run: RunLog, mapping: dict[str, str], eps: float | None, band: tuple[float, float]) -> RunAnalysis:
    """The timeline's quantities, the return scale, each phase's evidence and the detectors' findings.

    The phases are cut where the clip fraction crosses the band and again where a finding starts, so each
    phase's numbers describe one state of the run; a finding holds in every phase from its start on.
    """
    if eps is not None and (not math.isfinite(eps) or eps < 0):
        raise ValueError(f"eps must be a finite number >= 0 or None, got {eps}")
    q = quantities_of(run, mapping)
    findings = detect(q)
    cuts = phases(q, band)
    n = len(_all_steps(q))
    cuts = _split_at(cuts, [f.start for f in findings], max(3, int(0.02 * n)))
    evidence = []
    for p in cuts:
        e = phase_evidence(q, p, eps)
        kinds = tuple(f.kind for f in findings if f.start <= p.end)
        evidence.append(dataclasses.replace(e, findings=kinds))
    return RunAnalysis(q, q.scale, evidence, findings)
