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

    dialect: str | None  # the registry entry picked (None: nothing matched)
    candidates: tuple[str, ...]  # every entry with the best score (the same names, other releases)
    mapping: dict[str, str]  # quantity -> the run's metric name
    matched: dict[str, LoggedMetric]  # quantity -> the registry record it was matched to
    policy_only: tuple[str, ...]  # run metrics that are the POLICY's clip fraction (never read as the critic's)
    score: int


def mapping_for(dialect: str, metric_names: list[str]) -> tuple[dict[str, str], dict[str, LoggedMetric], list[str]]:
    """The run's metric for each quantity that entry ``dialect`` logs (exact names before prefixed ones), the
    records matched, and the run's metrics that are that entry's policy clip fraction."""
    entry = DIALECTS[dialect]
    mapping: dict[str, str] = {}
    matched: dict[str, LoggedMetric] = {}
    policy: list[str] = []
    for record in entry.metrics:
        hits = [n for n in metric_names if matches(n, record.key)]
        if not hits:
            continue
        best = min(hits, key=lambda n: (n != record.key, len(n)))
        if record.quantity == "policy_clipfrac":
            policy += hits
            continue
        if record.quantity not in mapping:
            mapping[record.quantity] = best
            matched[record.quantity] = record
    return mapping, matched, policy


def recognise(metric_names: list[str]) -> Recognition:
    """The registry entry that explains most of the run's metrics (a tie: the current release first).

    The score counts the quantities matched, the value loss twice (the one metric every entry names). An
    entry whose only match is a generic name shared by many (one quantity) is not enough: nothing is picked.
    """
    scores: dict[str, int] = {}
    results = {}
    for name in DIALECTS:
        mapping, matched, policy = mapping_for(name, metric_names)
        score = len(mapping) + (1 if "value_loss" in mapping else 0)
        # releases: an entry whose matched records are its own (releases == "") beats one matched through
        # records of other releases only.
        own = sum(1 for r in matched.values() if not r.releases)
        scores[name] = score * 100 + own
        results[name] = (mapping, matched, policy, score)
    best = max(scores.values(), default=0)
    if best < 200:
        return Recognition(None, (), {}, {}, (), 0)
    top = [n for n, s in scores.items() if s == best]
    top.sort(key=lambda n: (not DIALECTS[n].current, list(DIALECTS).index(n)))
    mapping, matched, policy, score = results[top[0]]
    return Recognition(top[0], tuple(top), mapping, matched, tuple(policy), score)
