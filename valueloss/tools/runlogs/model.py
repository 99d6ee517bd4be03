"""A training run's logged scalars as arrays, and the one builder every reader fills.

Every reader turns a log into ``(name, step, value)`` triples and hands them to :class:`RunBuilder`, which
keeps the memory bounded, applies one rule to repeated and out-of-order steps, and says what it did in
``RunLog.notes``. Nothing here knows any trainer's metric names.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

__all__ = [
    "Series",
    "RunLog",
    "RunBuilder",
    "RunLogError",
    "Limits",
    "LIMITS",
]


class RunLogError(ValueError):
    """A log that cannot be read: the message says what is wrong and what to upload instead."""


@dataclass(frozen=True)
class Limits:
    """How much of a log is kept and for how long a reader may run (memory and time stay bounded).

    Up to ``keep_all_points`` values every metric is kept; past that only the metrics ``relevant`` says
    the page can use (the critic's, by the registry) keep their values, the others keep their name and
    count (a mapping that picks one of them reads the file again with it kept). ``max_points`` stops the
    read altogether, ``max_seconds`` likewise; both say where the read stopped.
    """

    keep_all_points: int = 4_000_000
    max_points: int = 8_000_000
    max_seconds: float = 60.0
    max_line_bytes: int = 1 << 20  # a JSONL / console / CSV line longer than this is skipped
    max_series: int = 20_000  # distinct metric names


LIMITS = Limits()


@dataclass(frozen=True)
class Series:
    """One metric: strictly increasing ``steps`` (int64) and the value logged at each (float64, NaN/inf kept)."""

    steps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)


@dataclass(frozen=True)
class RunLog:
    """One run as read: its metrics by name, where it came from, and what the reader had to decide."""

    name: str
    source: str  # the format, in words ("verl file backend (JSONL)", "TensorBoard event file", ...)
    series: dict[str, Series]
    counts: dict[str, int]  # every metric seen, with how many values it had (kept or not)
    notes: tuple[str, ...] = ()
    complete: bool = True  # False: the read stopped at a limit (the notes say where)

    @property
    def metrics(self) -> list[str]:
        """Every metric name the log holds, kept or not, in a stable order."""
        return sorted(self.counts)

    @cached_property  # a sort of every kept value's step: a tenth of a page rerun when recomputed each time
    def n_steps(self) -> int:
        """The number of distinct steps over the kept metrics."""
        if not self.series:
            return 0
        steps = [s.steps for s in self.series.values()]
        if all(np.array_equal(a, steps[0]) for a in steps[1:]):  # most logs: every metric at every step
            return len(steps[0])  # a Series' steps are strictly increasing
        return len(np.unique(np.concatenate(steps)))


@dataclass
class _Buffer:
    steps: array = field(default_factory=lambda: array("q"))
    values: array = field(default_factory=lambda: array("d"))


class RunBuilder:
    """Collects ``(name, step, value)`` in write order and builds a :class:`RunLog`.

    The rule for steps (TensorBoard's, for a resumed run): a step logged twice keeps the value written
    last, and steps are sorted. Non-numeric values (text, lists, booleans) are counted and named in the
    notes, never stored. ``relevant(name)`` says which metrics keep their values once the log passes
    ``limits.keep_all_points``.
    """

    def __init__(
        self,
        *,
        relevant: Callable[[str], bool] | None = None,
        limits: Limits = LIMITS,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        self.limits = limits
        self.relevant = relevant or (lambda name: True)
        self.progress = progress
        self._buffers: dict[str, _Buffer] = {}
        self.fast: dict[str, tuple] = {}  # name -> (steps.append, values.append) of the kept metrics
        self.known: set[str] = set()  # every name seen, kept or not
        self._dropped: dict[str, int] = {}  # names whose values are not kept -> how many were seen
        self._text: dict[str, int] = {}
        self._bad_steps = 0
        self.points = 0
        self.notes: list[str] = []
        self.stopped = False
        self._started = time.monotonic()
        self._keep_all = True

    # -- adding values
    def add(self, name: str, step, value) -> None:
        """One logged value (``value`` may be any JSON/protobuf scalar; non-numbers are only counted)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            if isinstance(value, str):
                parsed = _number_from_text(value)
                if parsed is None:
                    self._text[name] = self._text.get(name, 0) + 1
                    return
                value = parsed
            else:
                self._text[name] = self._text.get(name, 0) + 1
                return
        step_int = _as_step(step)
        if step_int is None:
            self._bad_steps += 1
            return
        append = self.fast.get(name) or self.appenders(name)
        if append is not None:
            append[0](step_int)
            append[1](_float(value))
            self.count(1)

    def appenders(self, name: str):
        """``(steps.append, values.append)`` of a kept metric (made on first sight), or None if its values are
        not kept. Readers call the pair in their hot loop (``self.fast`` caches it), then :meth:`count`."""
        pair = self.fast.get(name)
        if pair is not None or self.stopped:
            return pair
        if name in self._dropped:
            self._dropped[name] += 1
            return None
        self.known.add(name)
        if len(self._buffers) + len(self._dropped) >= self.limits.max_series:
            self._stop(f"the log names more than {self.limits.max_series:,} metrics; the rest are left out")
            return None
        if not self._keep_all and not self.relevant(name):
            self._dropped[name] = 1
            return None
        buf = self._buffers[name] = _Buffer()
        pair = self.fast[name] = (buf.steps.append, buf.values.append)
        return pair

    @property
    def filtering(self) -> bool:
        """Past ``keep_all_points``: only the relevant metrics keep values (readers may then look up only those,
        and the dropped metrics' counts stop growing)."""
        return not self._keep_all

    def count(self, n: int) -> None:
        """``n`` more values were appended: apply the memory limits."""
        self.points += n
        if self.points > self.limits.keep_all_points and self._keep_all:
            self._drop_irrelevant()
        if self.points >= self.limits.max_points:
            self._stop(
                f"the log holds more than {self.limits.max_points:,} values of the metrics used here; the read "
                "stopped there, so later steps are missing"
            )

    def add_column(self, name: str, steps: np.ndarray, values: np.ndarray, n_text: int = 0) -> None:
        """A whole column at once (CSV, Parquet, SQL): ``steps`` int64, ``values`` float64, in write order."""
        if n_text:
            self._text[name] = self._text.get(name, 0) + n_text
        room = max(self.limits.max_points - self.points, 0)
        if len(steps) > room:
            steps, values = steps[:room], values[:room]
        if not len(steps):
            return
        if self.appenders(name) is None:
            if name in self._dropped:
                self._dropped[name] += len(steps) - 1
            return
        buf = self._buffers[name]
        buf.steps.frombytes(np.ascontiguousarray(steps, dtype=np.int64).tobytes())
        buf.values.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
        self.count(len(steps))

    def _drop_irrelevant(self) -> None:
        self._keep_all = False
        for name in list(self._buffers):
            if not self.relevant(name):
                self._dropped[name] = len(self._buffers.pop(name).steps)
                del self.fast[name]
        self.points = sum(len(b.steps) for b in self._buffers.values())
        self.notes.append(
            f"More than {self.limits.keep_all_points:,} values: only the metrics this page reads keep their values "
            f"({len(self._dropped):,} others keep their name; mapping one of them reads the file again)."
        )

    def _stop(self, why: str) -> None:
        if not self.stopped:
            self.stopped = True
            self.notes.append(f"Read stopped: {why}.")

    def tick(self, fraction: float) -> bool:
        """Report progress (0..1) and check the time limit; returns False once the read must stop."""
        if self.progress is not None:
            self.progress(min(max(fraction, 0.0), 1.0))
        if time.monotonic() - self._started > self.limits.max_seconds:
            self._stop(
                f"reading took more than {self.limits.max_seconds:g} s (at {fraction:.0%} of the file); the steps "
                "after that point are missing"
            )
        return not self.stopped

    # -- the result
    def build(self, name: str, source: str, extra_notes: Iterable[str] = ()) -> RunLog:
        notes = list(extra_notes) + self.notes
        series: dict[str, Series] = {}
        repeated: dict[str, int] = {}
        out_of_order: list[str] = []
        for metric, buf in self._buffers.items():
            if not len(buf.steps):
                continue
            steps = np.frombuffer(buf.steps, dtype=np.int64) if len(buf.steps) else np.empty(0, np.int64)
            values = np.frombuffer(buf.values, dtype=np.float64) if len(buf.values) else np.empty(0)
            if len(steps) > 1 and not bool(np.all(steps[1:] > steps[:-1])):
                if bool(np.any(steps[1:] < steps[:-1])):
                    out_of_order.append(metric)
                # the last write of each step wins: sort stably by step, keep each step's last entry
                order = np.argsort(steps, kind="stable")
                steps, values = steps[order], values[order]
                last = np.ones(len(steps), dtype=bool)
                last[:-1] = steps[1:] != steps[:-1]
                n_repeated = int(len(steps) - last.sum())
                if n_repeated:
                    repeated[metric] = n_repeated
                steps, values = steps[last], values[last]
            series[metric] = Series(np.array(steps, dtype=np.int64), np.array(values, dtype=np.float64))
        if out_of_order:
            notes.append(
                f"Steps go back in {len(out_of_order)} metric(s) (e.g. {out_of_order[0]}): a resumed or restarted "
                "run. Steps are sorted; where a step was logged twice the value written last is used."
            )
        if repeated:
            total = sum(repeated.values())
            example = next(iter(repeated))
            notes.append(
                f"{total:,} repeated step(s) over {len(repeated)} metric(s) (e.g. {example}: {repeated[example]}): "
                "the value written last is used."
            )
        if self._text:
            shown = ", ".join(f"{k} ({n:,})" for k, n in list(self._text.items())[:5])
            more = f" and {len(self._text) - 5} more" if len(self._text) > 5 else ""
            notes.append(f"Values that are not numbers were skipped: {shown}{more}.")
        if self._bad_steps:
            notes.append(f"{self._bad_steps:,} value(s) without a usable step (not a whole number) were skipped.")
        counts = {metric: len(buf.steps) for metric, buf in self._buffers.items()} | self._dropped
        for metric in self._text:
            counts.setdefault(metric, 0)
        return RunLog(
            name=name, source=source, series=series, counts=counts, notes=tuple(notes), complete=not self.stopped
        )


def _float(value) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


_TEXT_NUMBERS = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}
_TEXT_NUMBERS |= {"infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf}


def _number_from_text(text: str) -> float | None:
    """A number written as text (CSV cells, console lines, ``"NaN"``); None for anything else."""
    text = text.strip()
    if not text or len(text) > 64:
        return None
    special = _TEXT_NUMBERS.get(text.lower())
    if special is not None:
        return special
    try:
        return float(text)
    except ValueError:
        return None


def _as_step(step) -> int | None:
    """A step as an int64: whole numbers only (``3.0`` is fine, ``3.5``, NaN and text are not)."""
    if isinstance(step, bool):
        return None
    if isinstance(step, int):
        return step if -(2**63) <= step < 2**63 else None
    if isinstance(step, float):
        return int(step) if math.isfinite(step) and step == int(step) and abs(step) < 2**63 else None
    if isinstance(step, str):
        number = _number_from_text(step)
        return _as_step(number) if number is not None else None
    if isinstance(step, np.integer | np.floating):
        return _as_step(step.item())
    return None
