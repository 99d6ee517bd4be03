"""Which trainer (and release) wrote a run, from its metric names, by the registry's ``LoggedMetric`` fields.

A run's metric matches a registry key when it is the key, or ends with ``/`` + key (a tracker's prefix such as
HuggingFace's ``train/``), or is the key as verl's MLflow adapter sanitises it. Every entry is scored by the
quantities it explains; the best-scoring entries are the candidates, the current release of the best family
first. No metric name is listed here: they all come from ``valueloss.dialects``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ...dialects import DIALECTS, LoggedMetric

__all__ = ["Recognition", "recognise", "matches", "is_registry_metric", "mapping_for"]

# verl's MLflow adapter: "@" -> "_at_", runs of "/" -> one, other characters outside [/\w.\- :] -> "_".
_MLFLOW_INVALID = re.compile(r"[^/\w.\- :]")


@lru_cache(maxsize=4096)
def _mlflow_key(key: str) -> str:
    return _MLFLOW_INVALID.sub("_", re.sub(r"/+", "/", key.replace("@", "_at_")))


def matches(name: str, key: str) -> bool:
    """Whether a run's metric ``name`` is the registry ``key`` (exactly, behind a tracker prefix, or sanitised)."""
    return name == key or name.endswith("/" + key) or (name == _mlflow_key(key) != key)


@lru_cache(maxsize=1)
def _all_keys() -> frozenset[str]:
    return frozenset(k for d in DIALECTS.values() for m in d.metrics for k in (m.key, _mlflow_key(m.key)))


def is_registry_metric(name: str) -> bool:
    """Whether some registry entry logs a metric under ``name`` (the readers keep these when memory is tight)."""
    keys = _all_keys()
    if name in keys:
        return True
    parts = name.split("/")
    return any("/".join(parts[i:]) in keys for i in range(1, len(parts)))


@dataclass(frozen=True)
class Recognition:
    """The entries whose metric names the run carries, best first, and the run's metric for each quantity."""

    dialect: str | None  # the registry entry picked (None: nothing matched well enough)
    candidates: tuple[str, ...]  # every entry with the best score (the same names: other releases or options)
    mapping: dict[str, str]  # quantity -> the run's metric name
    matched: dict[str, tuple[LoggedMetric, ...]]  # quantity -> the registry records of that name (per release)
    policy_only: tuple[str, ...]  # run metrics that are the POLICY's clip fraction (never read as the critic's)
    score: int


# A match by the exact dashboard name counts twice a match behind a prefix; the value loss, the one metric every
# entry names, counts again. Below MIN_SCORE (an exact value loss, or a prefixed one and one more quantity)
# nothing is picked: the user maps the metrics.
EXACT, PREFIXED, VALUE_LOSS_BONUS, MIN_SCORE = 2, 1, 2, 4


def mapping_for(
    dialect: str, metric_names: list[str]
) -> tuple[dict[str, str], dict[str, tuple[LoggedMetric, ...]], list[str]]:
    """The run's metric for each quantity that entry ``dialect`` logs (exact names before prefixed ones), the
    registry records of the names matched, and the run's metrics that are that entry's policy clip fraction."""
    mapping, matched, policy, _ = _match(dialect, tuple(metric_names))
    return mapping, matched, policy


def _match(dialect: str, metric_names: tuple[str, ...]):
    entry = DIALECTS[dialect]
    mapping: dict[str, str] = {}
    matched: dict[str, tuple[LoggedMetric, ...]] = {}
    policy: list[str] = []
    score = 0
    for record in entry.metrics:
        hits = [n for n in metric_names if matches(n, record.key)]
        if not hits:
            continue
        best = min(hits, key=lambda n: (n != record.key, len(n)))
        weight = EXACT if best == record.key else PREFIXED
        if record.quantity == "policy_clipfrac":
            policy += hits
            score += weight // 2
            continue
        if record.quantity not in mapping:
            mapping[record.quantity] = best
            score += weight + (VALUE_LOSS_BONUS if record.quantity == "value_loss" else 0)
        if mapping[record.quantity] == best:
            matched[record.quantity] = matched.get(record.quantity, ()) + (record,)
    return mapping, matched, policy, score


def recognise(metric_names: list[str]) -> Recognition:
    """The registry entry that explains the run's metrics best (a tie: the current release first, then the
    registry's order); None when no entry reaches ``MIN_SCORE``."""
    names = tuple(metric_names)
    results = {d: _match(d, names) for d in DIALECTS}
    best = max(r[3] for r in results.values())
    if best < MIN_SCORE or not any("value_loss" in r[0] for r in results.values() if r[3] == best):
        return Recognition(None, (), {}, {}, (), best)
    top = [d for d, r in results.items() if r[3] == best and "value_loss" in r[0]]
    top.sort(key=lambda d: (not DIALECTS[d].current, list(DIALECTS).index(d)))
    mapping, matched, policy, score = results[top[0]]
    return Recognition(top[0], tuple(top), mapping, matched, tuple(policy), score)
