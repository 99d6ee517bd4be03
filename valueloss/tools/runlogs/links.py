"""A phase's evidence as the query of a Sanity check or Batch link (their URL keys, pages/registry.py), and as
the rows of the phase table.

Sanity check takes the log's summary statistics; the trainers log the returns' and values' mean, min and max,
so the "std" fields get half the logged range, which is never less than the std (Popoviciu): the link says so
by its numbers, the page beside it in words. Values are rounded to 4 significant digits and kept inside each
widget's range.
"""

from __future__ import annotations

from .analysis import FINDING_SHORT, PhaseEvidence

__all__ = ["sanity_query", "batch_query", "phase_rows"]


def _num(x: float, low: float, high: float) -> str:
    return f"{min(max(x, low), high):.4g}"


def _half_range(lo: float | None, hi: float | None) -> float | None:
    return None if lo is None or hi is None else (hi - lo) / 2.0


def sanity_query(p: PhaseEvidence, library: str, band: tuple[float, float]) -> dict[str, str]:
    """Sanity check with this phase's statistics: the library, eps, the band's top as the target, the logged
    clip fraction, and the returns' and values' mean with half their range as the spread."""
    query = {"s_lib": library, "s_source": "summary statistics", "s_target": _num(band[1], 0, 1)}
    if p.eps is not None:
        query["s_eps"] = _num(p.eps, 0, 1000)
    if p.clipfrac is not None:
        query |= {"s_has_logged": "true", "s_logged": _num(p.clipfrac, 0, 1)}
    if p.return_mean is not None:
        query["s_r_mean"] = _num(p.return_mean, -1e6, 1e6)
    if p.return_scale is not None:
        query["s_r_std"] = _num(p.return_scale, 0, 1e6)
    if p.value_mean is not None:
        query["s_v_mean"] = _num(p.value_mean, -1e6, 1e6)
    value_spread = _half_range(p.value_min, p.value_max)
    if value_spread is not None:
        query["s_v_std"] = _num(value_spread, 0, 1e6)
    return query


def batch_query(p: PhaseEvidence) -> dict[str, str]:
    """Batch's synthetic batch at this phase's scale: eps, the final reward's mean and spread from the returns
    (verl's default gamma = lambda = 1 makes the return the final reward, less the KL penalty), and the critic's
    offset (values mean - returns mean)."""
    query = {"b_source": "synthetic"}
    if p.eps is not None:
        query["b_eps"] = _num(p.eps, 0, 1000)
    if p.return_mean is not None:
        query["b_reward_mean"] = _num(p.return_mean, -1000, 1000)
    if p.return_scale is not None:
        query["b_reward_std"] = _num(p.return_scale, 0, 1000)
    if p.value_mean is not None and p.return_mean is not None:
        query["b_value_bias"] = _num(p.value_mean - p.return_mean, -1000, 1000)
    return query


def phase_rows(phases: list[PhaseEvidence]) -> list[dict]:
    """One row per phase, the numbers as the phase cards show them."""

    def fmt(x, spec):
        return None if x is None else float(f"{x:{spec}}")

    return [
        {
            "phase": k + 1,
            "steps": f"{p.start:,} – {p.end:,}",
            "clip fraction vs band": p.band,
            "clip fraction": fmt(p.clipfrac, ".4g"),
            "eps / return scale": fmt(p.eps_over_scale, ".3g"),
            "returns mean": fmt(p.return_mean, ".4g"),
            "values mean": fmt(p.value_mean, ".4g"),
            "explained variance": fmt(p.explained_variance, ".3g"),
            "value loss last / first": fmt(p.loss_trend, ".3g"),
            "NaN/inf losses": p.non_finite_loss,
            "findings that hold": ", ".join(FINDING_SHORT[k] for k in p.findings),
        }
        for k, p in enumerate(phases)
    ]
