"""The numbers a sweep is judged by: learning curves with 95 % bootstrap bands over seeds, final return and
area under the curve per eps, their differences from "off", and the critic's clip fraction and explained
variance over training. The page, the CLI's summary and the verdict sentence all read :func:`summarize`.

Definitions (per run, then over seeds):

- the curve at an update: the mean return of the episodes that ended in the trailing ``SMOOTH_FRACTION``
  of the run's steps (weighted by episodes; NaN before the first episode ends);
- final return: the mean return of the episodes that ended in the last ``FINAL_FRACTION`` of its steps;
- AUC: the curve's mean over the run's updates (the area under it divided by the steps: the average return
  during training);
- intervals: 95 % percentile bootstrap of the mean over seeds (``N_BOOT`` resamples, a fixed generator, so
  the same file gives the same numbers); a difference resamples the seeds of both settings independently.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import pandas as pd

from ..teach.ablation import Band, Comparison, EpsSummary, Interval, SweepSummary, verdict

__all__ = ["SMOOTH_FRACTION", "FINAL_FRACTION", "N_BOOT", "EpsSummary", "Band", "SweepSummary", "summarize"]

SMOOTH_FRACTION = 0.05
FINAL_FRACTION = 0.10
N_BOOT = 2000
MAX_POINTS = 200  # curve points per band: bounded work whatever the file's length


def _bootstrap(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap means of ``values`` (seeds along axis 0): shape (N_BOOT, *values.shape[1:])."""
    n = values.shape[0]
    idx = rng.integers(0, n, size=(N_BOOT, n))
    with _quiet():
        return np.nanmean(values[idx], axis=1)


@contextlib.contextmanager
def _quiet():
    """nanmean of an all-NaN slice is NaN, as wanted: without the warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield


def interval(values, seed: int = 0) -> Interval:
    """Mean over seeds and its 95 % percentile bootstrap interval."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    if n == 1:
        return Interval(float(values[0]), math.nan, math.nan, 1)
    boots = _bootstrap(values, np.random.default_rng(seed))
    low, high = np.percentile(boots, [2.5, 97.5])
    return Interval(float(values.mean()), float(low), float(high), n)


def difference(a, b, seed: int = 0) -> Interval:
    """mean(a) - mean(b), seeds resampled independently within each group."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    n = min(len(a), len(b))
    if n < 2:
        return Interval(float(a.mean() - b.mean()), math.nan, math.nan, n)
    rng = np.random.default_rng(seed)
    boots = _bootstrap(a, rng) - _bootstrap(b, rng)
    low, high = np.percentile(boots, [2.5, 97.5])
    return Interval(float(a.mean() - b.mean()), float(low), float(high), n)


def smoothed_curve(run: pd.DataFrame) -> np.ndarray:
    """The run's return curve: at each update, the episode-weighted mean over the trailing window."""
    steps = run["global_step"].to_numpy(dtype=float)
    counts = run["episodes"].to_numpy(dtype=float)
    totals = np.nan_to_num(run["episodic_return"].to_numpy(dtype=float)) * counts
    window = max(SMOOTH_FRACTION * steps[-1], steps[0])
    cum_n = np.concatenate([[0.0], np.cumsum(counts)])
    cum_r = np.concatenate([[0.0], np.cumsum(totals)])
    first = np.searchsorted(steps, steps - window, side="right")  # updates strictly after step - window
    n = cum_n[1:] - cum_n[first]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (cum_r[1:] - cum_r[first]) / n, np.nan)


def final_return(run: pd.DataFrame) -> float:
    steps = run["global_step"].to_numpy(dtype=float)
    last = run[steps > (1 - FINAL_FRACTION) * steps[-1]]
    n = last["episodes"].sum()
    if n == 0:
        return math.nan
    return float((last["episodic_return"].fillna(0) * last["episodes"]).sum() / n)


def _band(steps: np.ndarray, matrix: np.ndarray, seed: int) -> Band:
    """Mean and 95 % bootstrap band over the seeds (rows) at up to MAX_POINTS steps."""
    pick = np.unique(np.linspace(0, matrix.shape[1] - 1, min(MAX_POINTS, matrix.shape[1])).round().astype(int))
    sub = matrix[:, pick]
    with _quiet():
        mean = np.nanmean(sub, axis=0)
    if sub.shape[0] < 2:
        nan = np.full_like(mean, np.nan)
        return Band(steps[pick], mean, nan, nan)
    boots = _bootstrap(sub, np.random.default_rng(seed))
    with _quiet():
        low, high = np.nanpercentile(boots, [2.5, 97.5], axis=0)
    return Band(steps[pick], mean, low, high)


def _stack(runs: list[pd.DataFrame], column: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Seeds x updates (truncated to the shortest run), for a column or (None) the smoothed return curve."""
    length = min(len(r) for r in runs)
    rows = [smoothed_curve(r)[:length] if column is None else r[column].to_numpy(float)[:length] for r in runs]
    return runs[0]["global_step"].to_numpy(float)[:length], np.vstack(rows)


def summarize(curves: pd.DataFrame) -> SweepSummary:
    """Everything the page and the CLI report about a (validated) curves table."""
    env_id = str(curves["env_id"].iloc[0])
    dialect = str(curves["dialect"].iloc[0])
    per_run = {key: run for key, run in curves.groupby(["value_norm", "eps_label", "seed"], sort=False)}
    groups: dict[tuple[bool, str], list[pd.DataFrame]] = {}
    for (vn, label, _seed), run in per_run.items():
        groups.setdefault((bool(vn), str(label)), []).append(run.sort_values("global_step"))

    def stats(runs):
        return [final_return(r) for r in runs], [float(np.nanmean(smoothed_curve(r))) for r in runs]

    out: list[EpsSummary] = []
    for i, ((vn, label), runs) in enumerate(groups.items()):
        finals, aucs = stats(runs)
        off = groups.get((vn, "off"))
        final_vs = None
        if off is not None and label != "off":
            final_vs = difference(finals, stats(off)[0], seed=i)
        steps, returns = _stack(runs, None)
        _, clip = _stack(runs, "vf_clipfrac")
        _, ev = _stack(runs, "explained_variance")
        eps = runs[0]["eps"].iloc[0]
        sigma = float(np.median(np.concatenate([r["return_std"].to_numpy(float) for r in runs])))
        _, gap = _stack(runs, "gap_over_eps")
        with _quiet():
            mean_clip = float(np.nanmean(clip)) if label != "off" else math.nan
            mean_gap = float(np.nanmean(gap)) if label != "off" else math.nan
        out.append(
            EpsSummary(
                label=label,
                value_norm=vn,
                n_seeds=len(runs),
                final=interval(finals, seed=i),
                auc=interval(aucs, seed=i),
                final_vs_off=final_vs,
                mean_clipfrac=mean_clip,
                eps_over_sigma=float(eps / sigma) if math.isfinite(eps) and sigma > 0 else math.nan,
                mean_gap_over_eps=mean_gap,
                returns=_band(steps, returns, seed=i),
                clipfrac=_band(steps, clip, seed=i),
                explained_variance=_band(steps, ev, seed=i),
            )
        )
    total_steps = int(curves["global_step"].max())
    n_seeds = int(curves["seed"].nunique())
    comparisons = [
        Comparison(e.label + (" (value norm)" if e.value_norm else ""), e.final_vs_off, e.eps_over_sigma)
        for e in out
        if e.final_vs_off is not None
    ]
    return SweepSummary(env_id, dialect, total_steps, n_seeds, out, verdict(env_id, total_steps, n_seeds, comparisons))


def summary_records(summary: SweepSummary) -> list[dict]:
    """The per-eps table the page shows and the CLI prints."""
    rows = []
    for e in summary.per_eps:
        rows.append(
            {
                "eps": e.label,
                "value norm": "on" if e.value_norm else "off",
                "seeds": e.n_seeds,
                "eps in σ_R": e.eps_over_sigma,
                "final return": e.final.mean,
                "final 95% low": e.final.low,
                "final 95% high": e.final.high,
                "AUC": e.auc.mean,
                "AUC 95% low": e.auc.low,
                "AUC 95% high": e.auc.high,
                "final − off": math.nan if e.final_vs_off is None else e.final_vs_off.mean,
                "mean vf_clipfrac": e.mean_clipfrac,
                "mean |R − v_old| / eps": e.mean_gap_over_eps,
            }
        )
    return rows
