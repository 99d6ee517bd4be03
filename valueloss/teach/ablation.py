"""Words for "does value clipping help?": the verdict a sweep's numbers support, and the published findings.

Every sentence here is built from the numbers passed in (the same ones the page plots); the published
findings are quotations with their sources, checked when they were added (see each ``checked`` note).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CLEANRL_PPO",
    "Comparison",
    "Finding",
    "Interval",
    "PUBLISHED",
    "PublishedReturn",
    "eps_in_sigma",
    "interval_text",
    "trainer_check",
    "verdict",
]


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and its 95 % bootstrap interval (``n`` seeds; NaN bounds when n < 2)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.n >= 2 and (self.low > 0 or self.high < 0)


@dataclass(frozen=True)
class Comparison:
    """One clipped setting against "off": the difference of their mean final returns (eps minus off)."""

    label: str  # the eps as named in the sweep ("0.2")
    difference: Interval
    eps_over_sigma: float  # eps in units of the returns' standard deviation the clip saw (median over updates)


def _num(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.3g}"


def interval_text(iv: Interval) -> str:
    """``-12 (95 % CI -40 to 15)``; with one seed, no interval."""
    if iv.n < 2 or not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return f"{_num(iv.mean)} (one seed: no interval)"
    return f"{_num(iv.mean)} (95 % CI {_num(iv.low)} to {_num(iv.high)})"


def eps_in_sigma(eps_over_sigma: float) -> str:
    return "n/a" if not math.isfinite(eps_over_sigma) else f"{eps_over_sigma:.2g} σ_R"


def verdict(env_id: str, steps: int, n_seeds: int, comparisons: list[Comparison]) -> str:
    """The one sentence the data support: which eps ended detectably above or below "off" in final return
    (the 95 % bootstrap interval of the difference excludes 0), and which showed no detectable difference
    at this many seeds."""
    if not comparisons:
        return f"{env_id}: this sweep has no clipped setting to compare with off."
    worse = [c for c in comparisons if c.difference.excludes_zero and c.difference.high < 0]
    better = [c for c in comparisons if c.difference.excludes_zero and c.difference.low > 0]
    same = [c for c in comparisons if c not in worse and c not in better]
    head = f"On {env_id} after {steps:,} steps per run ({n_seeds} seeds), final return with eps minus without: "
    parts = []
    for group, words in ((worse, "lower than off"), (better, "higher than off")):
        for c in group:
            parts.append(
                f"eps {c.label} ({eps_in_sigma(c.eps_over_sigma)}) ends {words}, {interval_text(c.difference)}"
            )
    if same:
        listed = ", ".join(f"eps {c.label}: {interval_text(c.difference)}" for c in same)
        parts.append(f"no detectable difference at {n_seeds} seeds for {listed}")
    return head + "; ".join(parts) + "."


@dataclass(frozen=True)
class Band:
    """A mean over seeds at each step with its 95 % bootstrap band."""

    steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


@dataclass(frozen=True)
class EpsSummary:
    label: str
    value_norm: bool
    n_seeds: int
    final: Interval
    auc: Interval
    final_vs_off: Interval | None  # eps minus off, same value normalisation (None for off itself)
    mean_clipfrac: float  # over every update and seed (NaN: the dialect logs none, or off)
    eps_over_sigma: float  # eps / median sigma_R the clip saw (NaN for off)
    mean_gap_over_eps: float  # mean |R - v_old| / eps over every update and seed (NaN for off)
    returns: Band
    clipfrac: Band
    explained_variance: Band


@dataclass(frozen=True)
class SweepSummary:
    env_id: str
    dialect: str
    total_steps: int
    n_seeds: int
    per_eps: list[EpsSummary]
    sentence: str


@dataclass(frozen=True)
class Finding:
    """A published finding on value clipping, quoted, with its source."""

    who: str
    quote: str
    source: str
    url: str
    checked: str  # where the quotation was checked


PUBLISHED: tuple[Finding, ...] = (
    Finding(
        who="Andrychowicz et al. 2021, What Matters In On-Policy Reinforcement Learning? (choice C13, §3.4)",
        quote="PPO-style value loss clipping (C13) hurts the performance regardless of the clipping threshold. "
        "[...] Use GAE with λ = 0.9 but neither Huber loss nor PPO-style value loss clipping.",
        source="ICLR 2021, five MuJoCo tasks, 250,000 agents; their code clips the normalised value",
        url="https://arxiv.org/abs/2006.05990",
        checked="quoted in several independent summaries of §3.4 found with the search tool",
    ),
    Finding(
        who="Engstrom et al. 2020, Implementation Matters in Deep Policy Gradients (as summarised by Huang et al. 2022)",
        quote="Engstrom, Ilyas, et al., (2020) find no evidence that the value function loss clipping helps with "
        "the performance.",
        source="The 37 Implementation Details of Proximal Policy Optimization, detail 9 (ICLR blog track 2022); "
        "the paper's released Hopper config sets value_clipping to False",
        url="https://iclr-blog-track.github.io/2022/03/25/ppo-implementation-details/",
        checked="the blog's sentence and MadryLab/implementation-matters configs/hopper_ppo.py",
    ),
    Finding(
        who="Chris Lu, author of PureJaxRL (luchris429/purejaxrl#11)",
        quote="works investigating it find that it does not help performance, and sometimes can even harm "
        "performance. However, I include it for the same reasons that Costa does.",
        source="answer to 'Question about critic loss', 2023-11-06",
        url="https://github.com/luchris429/purejaxrl/issues/11",
        checked="the issue thread",
    ),
)


@dataclass(frozen=True)
class PublishedReturn:
    """A return a reference implementation publishes: mean ± standard deviation over its seeds."""

    env_id: str
    mean: float
    std: float
    seeds: int
    steps: int
    settings: str
    url: str


# CleanRL's docs, "Experiment results" of ppo.py (the table reads "CartPole-v1 | 490.04 ± 6.12" and
# "Acrobot-v1 | -86.36 ± 1.32"; benchmark/ppo.sh runs 3 seeds of the defaults, 500,000 steps).
CLEANRL_PPO: dict[str, PublishedReturn] = {
    env: PublishedReturn(
        env,
        mean,
        std,
        3,
        500_000,
        "ppo.py defaults (clip_vloss=True, eps = clip_coef = 0.2)",
        "https://docs.cleanrl.dev/rl-algorithms/ppo/#experiment-results",
    )
    for env, mean, std in (("CartPole-v1", 490.04, 6.12), ("Acrobot-v1", -86.36, 1.32))
}
SPREAD = 2.0  # "within the published spread": our mean within their mean ± SPREAD standard deviations


def trainer_check(env_id: str, finals: list[float], steps: int, eps_label: str = "off") -> tuple[bool, str]:
    """Whether our runs land within CleanRL's published spread, and the sentence (``eps_label`` "off": no
    value clipping; "0.2": CleanRL's own default, clip_vloss=True with clip_coef 0.2)."""
    ref = CLEANRL_PPO[env_id]
    values = [float(x) for x in finals if math.isfinite(x)]
    n = len(values)
    mean = sum(values) / n if n else math.nan
    std = math.sqrt(sum((x - mean) ** 2 for x in values) / (n - 1)) if n > 1 else math.nan
    ok = n > 0 and abs(mean - ref.mean) <= SPREAD * ref.std
    inside = sum(abs(x - ref.mean) <= SPREAD * ref.std for x in values)
    verdict_words = "within" if ok else "outside"
    return ok, (
        f"{env_id}, {'no value clipping' if eps_label == 'off' else f'value clipping at eps {eps_label}'}, "
        f"{n} seeds x {steps:,} steps: final return {mean:.2f} ± {std:.2f} "
        f"(mean ± std over seeds); CleanRL publishes {ref.mean:.2f} ± {ref.std:.2f} for ppo.py ({ref.seeds} seeds, "
        f"{ref.settings}): the mean is {verdict_words} its spread (mean ± {SPREAD:g} std), and {inside} of {n} seeds "
        "are inside it."
    )
