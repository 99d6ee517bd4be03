"""Readers for the logs trainers write: verl's file backend and console lines, TensorBoard event files,
MLflow (SQLite store and mlruns folders), W&B CSV / Parquet exports, generic CSV / JSONL, and zips of them.

Each reader streams its input into a :class:`RunBuilder` (bounded memory and time, one rule for repeated
steps). Nothing is unpickled or executed: JSON is parsed by ``json``, event files by protobuf, SQLite is
opened read-only with untrusted schemas refused, and a zip's members are read with their sizes capped.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import sqlite3
import struct
import tempfile
import time
import zipfile
from array import array
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import orjson
import pandas as pd

from .model import LIMITS, Limits, RunBuilder, RunLog, RunLogError, _as_step

__all__ = [
    "MAX_UPLOAD_BYTES",
    "MAX_ZIP_MEMBERS",
    "MAX_UNZIPPED_BYTES",
    "STEP_COLUMNS",
    "FORMATS_MARKDOWN",
    "read_log",
]

# One uploaded file; the server's own cap (.streamlit/config.toml server.maxUploadSize) may be lower.
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
MAX_ZIP_MEMBERS = 10_000
MAX_UNZIPPED_BYTES = 2 * 1024**3  # all members together, as their headers declare (a zip bomb stops here)
MAX_TABLE_BYTES = 256 * 1024**2  # a CSV / Parquet / SQLite file is read whole: this much at most
MAX_CSV_COLUMNS = 5_000
MAX_EVENT_RECORD = 64 * 1024**2  # one TFRecord; a larger length means a corrupt or foreign file

# The step column of a table, in order of preference (case-insensitive). W&B history uses _step, SB3's
# progress.csv time/total_timesteps (the step of its TensorBoard log), most tools "step".
STEP_COLUMNS = ("step", "_step", "global_step", "time/total_timesteps", "iteration", "iter", "time/iterations")

FORMATS_MARKDOWN = f"""
- **verl**: the `file` backend's JSONL (`$VERL_FILE_LOGGER_ROOT/<project>/<experiment>.jsonl`), the console lines
  (`step:N - key:value - ...`, pasted into a `.log` / `.txt` file), the `tensorboard` backend's event files and
  the `mlflow` backend's SQLite store (`mlruns.db`, `mlflow.db`).
- **TensorBoard** event files (`events.out.tfevents.*`) from any trainer, old `simple_value` and new tensor scalars.
- **MLflow** SQLite stores and `mlruns/` folders (zip the folder).
- **Weights & Biases**: a panel's *Export CSV*, a run's history as CSV or Parquet (`_step` column),
  `wandb-history.jsonl`. An offline run (`run-<id>.wandb`) needs `wandb sync` first, then an export.
- **Any CSV / JSONL / Parquet** with a step column ({", ".join(f"`{c}`" for c in STEP_COLUMNS)}; else the
  row number is the step).
- **A zip** of any of these (several runs at once: each folder or file is one run).

Limits: {MAX_UPLOAD_BYTES // 2**20} MB per upload, {MAX_UNZIPPED_BYTES // 2**30} GB unzipped, {MAX_ZIP_MEMBERS:,}
files per zip, {LIMITS.max_points:,} values and {LIMITS.max_seconds:g} s of reading per run (past these the page
says where it stopped). Logs are parsed as data: nothing in them is ever executed or unpickled.
"""

Progress = Callable[[float], None] | None

_SQLITE_MAGIC = b"SQLite format 3\x00"
_PARQUET_MAGIC = b"PAR1"
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP = b"PK\x05\x06"
_CONSOLE_STEP = re.compile(r"(?:^|[\s(\[])step:\s*(-?\d+)\s+-\s+")
_NUMPY_REPR = re.compile(r"^np\.\w+\((.*)\)$")


def read_log(
    name: str,
    data: bytes,
    *,
    relevant: Callable[[str], bool] | None = None,
    limits: Limits = LIMITS,
    progress: Progress = None,
) -> list[RunLog]:
    """Every run in one uploaded file (a zip may hold several), read safely.

    ``relevant(metric)`` says which metrics keep their values once a log passes ``limits.keep_all_points``
    (see :class:`Limits`). Raises :class:`RunLogError` (a ``ValueError``) with a message that says what the
    file is and what to upload instead.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be the file's name, got {type(name).__name__}")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be the file's bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise RunLogError("the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise RunLogError(
            f"the file is {len(data) / 2**20:.0f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB: zip it, or upload "
            "the event file / JSONL of one run"
        )
    if data.startswith((_ZIP_MAGIC, _EMPTY_ZIP)):
        return _read_zip(name, data, relevant, limits, progress)
    return _read_stream(name, io.BytesIO(data), len(data), relevant, limits, progress)


# ---------------------------------------------------------------------------------------------------------
# What a file is


def _kind(name: str, head: bytes) -> str:
    """The reader for a file, from its first bytes first (an extension can lie), then its name."""
    lower = name.lower()
    if head.startswith(_SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    if head.startswith((_ZIP_MAGIC, _EMPTY_ZIP)):
        return "zip"
    if "tfevents" in lower or _looks_like_tfrecord(head):
        return "tfevents"
    if (
        head[:1] == b"\x80"
        and lower.endswith((".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".bin"))
        or head[:2]
        in (
            b"\x80\x02",
            b"\x80\x03",
            b"\x80\x04",
            b"\x80\x05",
        )
    ):
        raise RunLogError(
            f"{_short(name)} is a pickle (a checkpoint or a saved Python object): this page never unpickles "
            "anything. Upload the run's log instead (JSONL, CSV, event file)"
        )
    if head.startswith(b":W&B"):
        raise RunLogError(
            f"{_short(name)} is a W&B offline run (run-<id>.wandb). Reading it needs the wandb package (99 MB), "
            "which this app does not ship: run `wandb sync` on its folder, then export the run's history as CSV "
            "(W&B: Runs table, Export as CSV; or `wandb.Api().run(path).history()`), and upload that"
        )
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if lower.endswith((".jsonl", ".ndjson", ".json")) or text.startswith(b"{"):
        return "jsonl"
    if lower.endswith(".parquet") or lower.endswith(".pq"):
        return "parquet"
    if _CONSOLE_STEP.search(head.decode("utf-8", "replace")):
        return "console"
    if lower.endswith((".csv", ".tsv")):
        return "csv"
    if b"\x00" in head[:4096]:
        raise RunLogError(
            f"{_short(name)} is a binary file this page does not read (not an event file, Parquet, SQLite or zip). "
            "Upload the run's log: " + _WHAT
        )
    if lower.endswith((".log", ".txt", ".out", ".err")):
        return "console"
    return "csv"


_WHAT = "verl JSONL or console lines, a TensorBoard event file, an MLflow store or folder, a W&B CSV export"


def _looks_like_tfrecord(head: bytes) -> bool:
    """An event file starts with a TFRecord whose Event holds ``file_version`` ("brain.Event:2")."""
    if len(head) < 16:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 0 < length < 4096 and b"brain.Event" in head[12 : 12 + length]


def _big(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf  # copysign would convert it to float, and overflow again


def _short(name: str) -> str:
    return name if len(name) <= 80 else name[:77] + "..."


def _read_stream(name, stream, size, relevant, limits, progress) -> list[RunLog]:
    """The runs in one (non-zip) file."""
    head = stream.read(8192)
    stream.seek(0)
    kind = _kind(name, head)
    if kind == "zip":
        raise RunLogError(f"{_short(name)} is a zip inside a zip: unzip the outer one and upload the inner zip")
    if kind == "sqlite":
        return _read_mlflow_sqlite(stream, size, relevant, limits, progress, name)
    if kind == "csv":
        return _read_csv(stream, size, relevant, limits, progress, name)
    builder = RunBuilder(relevant=relevant, limits=limits, progress=progress)
    run_name = _run_name(name)
    if kind == "tfevents":
        _read_tfevents(stream, size, builder, name)
        return [builder.build(run_name, "TensorBoard event file")]
    if kind == "parquet":
        _read_parquet(stream, size, builder, name)
        return [builder.build(run_name, "Parquet table (e.g. a W&B run history)")]
    if kind == "jsonl":
        source = _read_jsonl(stream, size, builder, name)
        return [builder.build(run_name, source)]
    _read_console(stream, size, builder, name)
    return [builder.build(run_name, "verl console lines (step:N - key:value)")]


def _run_name(path: str) -> str:
    """A run's name from its path: verl's file backend names the file after the experiment."""
    p = PurePosixPath(path.replace("\\", "/"))
    stem = p.name
    for suffix in (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".pq", ".log", ".txt", ".out"):
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)] or stem
    if "tfevents" in stem and len(p.parts) > 1:
        return p.parts[-2]
    return stem


# ---------------------------------------------------------------------------------------------------------
# Line formats: JSONL and console lines


def _lines(stream, size: int, builder: RunBuilder, what: str):
    """(line number, bytes) of a stream, skipping (and counting) lines over the length limit."""
    long_lines = 0
    done = 0
    number = 0
    limit = builder.limits.max_line_bytes
    while True:
        line = stream.readline(limit + 1)
        if not line:
            break
        number += 1
        done += len(line)
        if len(line) > limit and not line.endswith(b"\n"):
            long_lines += 1
            while True:  # skip the rest of this line
                rest = stream.readline(limit + 1)
                done += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            continue
        if number % 2000 == 0 and not builder.tick(done / max(size, 1)):
            break
        yield number, line
    if long_lines:
        builder.notes.append(f"{long_lines:,} line(s) of {what} longer than {limit // 1024:,} KB were skipped.")
    builder.tick(1.0)


_ABSENT = object()


def _loads(line: bytes):
    """orjson (3x faster) for strict JSON; Python's json for what orjson refuses (NaN, Infinity: json.dumps)."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


def _add_kept(builder: RunBuilder, items: dict, step, step_int: int) -> int:
    """Past the memory budget: one line's values of the kept metrics only (the caller checked that the line
    names no new metric); the nulls among them."""
    nulls = n = 0
    for key, pair in builder.fast.items():
        value = items.get(key, _ABSENT)
        kind = type(value)
        if kind is float or kind is int:
            pair[0](step_int)
            pair[1](float(value) if kind is float or abs(value) < 2**53 else _big(value))
            n += 1
        elif value is None:
            nulls += 1
            builder.add(key, step, math.nan)
        elif value is not _ABSENT and kind is not dict:
            builder.add(key, step, value)
    builder.count(n)
    return nulls


def _add_all(builder: RunBuilder, items: dict, step, step_int: int | None) -> int:
    """One line's values, numbers on the fast path; the nulls among them (read as NaN)."""
    fast = builder.fast
    nulls = n = 0
    for key, value in items.items():
        kind = type(value)
        if step_int is not None and (kind is float or kind is int):
            pair = fast.get(key) or builder.appenders(key)
            if pair is not None:
                pair[0](step_int)
                pair[1](float(value) if kind is float or abs(value) < 2**53 else _big(value))
                n += 1
            continue
        if value is None:
            nulls += 1
            value = math.nan
        elif kind is dict:  # W&B writes histograms and media as nested objects
            continue
        builder.add(str(key), step, value)
    builder.count(n)
    return nulls


def _add_line(builder: RunBuilder, items: dict, step, step_int: int | None) -> int:
    """One line's values (the nulls among them): past the memory budget only the kept metrics are looked up,
    unless the line names a new one."""
    if builder.filtering and step_int is not None and builder.known.issuperset(items):
        return _add_kept(builder, items, step, step_int)
    return _add_all(builder, items, step, step_int)


_NUMBERS_OR_NULL = frozenset({float, int, type(None)})
_BLOCK_ROWS = 512


class _Block:
    """Consecutive lines that name the same metrics, each value a number or null (every line of a verl log):
    converted column by column with numpy (``None`` reads as NaN) instead of value by value."""

    def __init__(self, builder: RunBuilder):
        self.builder = builder
        self.keys: tuple = ()
        self.steps: list[int] = []
        self.rows: list[tuple] = []

    def take(self, items: dict, step_int: int) -> bool:
        """Add the line (True), or False where it does not fit (the caller flushes and reads it the usual way)."""
        values = tuple(items.values())
        if not _NUMBERS_OR_NULL.issuperset(map(type, values)):
            return False
        keys = tuple(items)
        if keys != self.keys:
            if self.rows:
                return False
            self.keys = keys
        self.steps.append(step_int)
        self.rows.append(values)
        return True

    @property
    def full(self) -> bool:
        return len(self.rows) >= _BLOCK_ROWS

    def flush(self) -> int:
        """Hand the block to the builder; the nulls in it."""
        if not self.rows:
            return 0
        rows, steps, self.rows, self.steps = self.rows, self.steps, [], []
        builder, limits = self.builder, self.builder.limits
        room = limits.max_points if builder.filtering else min(limits.max_points, limits.keep_all_points + 1)
        values = None
        if len(rows) * len(self.keys) <= room - builder.points:
            with contextlib.suppress(OverflowError):  # an int past float64 (the line path reads it as inf)
                values = np.array(rows, dtype=np.float64)
        if values is None:  # that, or a limit within the block: line by line, so the limit falls where it always did
            lines = zip(steps, rows, strict=True)
            return sum(_add_line(builder, dict(zip(self.keys, r, strict=True)), s, s) for s, r in lines)
        at = np.array(steps, dtype=np.int64)
        for j, key in enumerate(self.keys):
            builder.add_column(key, at, values[:, j])
        return sum(r.count(None) for r in rows)


def _read_jsonl(stream, size: int, builder: RunBuilder, name: str) -> str:
    """verl's ``{"step": n, "data": {...}}`` lines, or flat objects with a step key (W&B's _step, ...)."""
    verl_lines = flat_lines = bad = 0
    step_key = None
    nulls = 0
    row = 0
    block = _Block(builder)
    for _, line in _lines(stream, size, builder, "JSON"):
        line = line.strip()
        if not line:
            continue
        try:
            obj = _loads(line)
        except (ValueError, RecursionError):
            bad += 1
            if bad > 100 and verl_lines + flat_lines == 0:
                raise RunLogError(f"{_short(name)} is not JSON lines (no line parses as a JSON object)") from None
            continue
        if not isinstance(obj, dict):
            bad += 1
            continue
        row += 1
        if "data" in obj and "step" in obj and isinstance(obj["data"], dict):
            verl_lines += 1
            step, items = obj["step"], obj["data"]
        else:
            flat_lines += 1
            if step_key is None:
                step_key = next((k for c in STEP_COLUMNS for k in obj if k.lower() == c), "")
            step = obj.get(step_key, row - 1) if step_key else row - 1
            items = {k: v for k, v in obj.items() if k != step_key}
        step_int = _as_step(step)
        if step_int is not None and not builder.filtering and block.take(items, step_int):
            if block.full:
                nulls += block.flush()
        else:
            nulls += block.flush()  # the lines before this one first: values stay in write order
            nulls += _add_line(builder, items, step, step_int)
        if builder.stopped:
            break
    nulls += block.flush()
    return _jsonl_notes(builder, name, verl_lines, flat_lines, bad, nulls, step_key)


def _jsonl_notes(
    builder: RunBuilder, name: str, verl_lines: int, flat_lines: int, bad: int, nulls: int, step_key: str | None
) -> str:
    """The notes a JSON-lines read leaves (skipped lines, nulls, no step key), and the format it read."""
    if verl_lines == 0 and flat_lines == 0:
        raise RunLogError(f"{_short(name)} holds no JSON object per line: " + _WHAT)
    if bad:
        builder.notes.append(f"{bad:,} line(s) that are not a JSON object were skipped.")
    if verl_lines >= flat_lines:
        if nulls:
            builder.notes.append(
                f"{nulls:,} null value(s) read as NaN: verl's file backend writes with orjson, which turns NaN and "
                "±inf into null (so a null may have been ±inf)."
            )
        return "verl file backend (JSONL)"
    if nulls:
        builder.notes.append(f"{nulls:,} null value(s) were read as NaN.")
    if not step_key:
        builder.notes.append("No step key (" + ", ".join(STEP_COLUMNS) + "): the line number is the step.")
    return f"JSON lines (step: {step_key or 'line number'})"


def _read_console(stream, size: int, builder: RunBuilder, name: str) -> None:
    """verl's console lines ``step:N - key:value - ...`` (LocalLogger / concat_dict_to_str), anywhere in a line
    (Ray's ``(TaskRunner pid=...)`` prefix included); other lines are ignored."""
    found = 0
    for _, raw in _lines(stream, size, builder, "text"):
        line = raw.decode("utf-8", "replace")
        match = _CONSOLE_STEP.search(line)
        if not match:
            continue
        found += 1
        step = int(match.group(1))
        for part in line[match.end() :].rstrip().split(" - "):
            key, sep, value = part.rpartition(":")
            if not sep or not key:
                continue
            value = value.strip()
            numpy_repr = _NUMPY_REPR.match(value)  # pprint of a numpy scalar: np.float64(0.5)
            builder.add(key.strip(), step, numpy_repr.group(1) if numpy_repr else value)
        if builder.stopped:
            break
    if not found:
        raise RunLogError(
            f"{_short(name)} has no line like `step:1 - critic/vf_loss:0.5 - ...` (verl's console output): " + _WHAT
        )


# ---------------------------------------------------------------------------------------------------------
# TensorBoard event files


def _event_proto():
    from tensorboardX.proto import event_pb2  # protobuf messages only: parsing data, never running it

    return event_pb2


_TENSOR_DTYPES = {1: ("<f4", "float_val"), 2: ("<f8", "double_val"), 3: ("<i4", "int_val"), 9: ("<i8", "int64_val")}
_HALF = 19
_BFLOAT16 = 14


def _tensor_scalar(tensor) -> float | None:
    """The number in a scalar TensorProto (new-style TensorBoard scalars), or None if it holds something else."""
    if len(tensor.tensor_shape.dim) and math.prod(d.size for d in tensor.tensor_shape.dim) != 1:
        return None
    dtype = tensor.dtype
    if dtype in _TENSOR_DTYPES:
        fmt, field_name = _TENSOR_DTYPES[dtype]
        if tensor.tensor_content:
            arr = np.frombuffer(tensor.tensor_content, dtype=fmt)
            return float(arr[0]) if arr.size == 1 else None
        vals = getattr(tensor, field_name)
        return float(vals[0]) if len(vals) == 1 else None
    if dtype in (_HALF, _BFLOAT16):
        if tensor.tensor_content and len(tensor.tensor_content) == 2:
            bits = int.from_bytes(tensor.tensor_content, "little")
        elif len(tensor.half_val) == 1:
            bits = tensor.half_val[0]
        else:
            return None
        if dtype == _HALF:
            return float(np.array([bits], dtype=np.uint16).view(np.float16)[0])
        return float(np.array([bits << 16], dtype=np.uint32).view(np.float32)[0])
    return None


_EVENT_CHUNK = 8 * 1024**2  # event files are read in chunks of whole records: memory stays bounded


def _read_tfevents(stream, size: int, builder: RunBuilder, name: str) -> None:
    """TFRecord framing (length, masked CRC, Event, masked CRC), read in chunks of whole records.

    Lengths are bounded before anything is read; a record that does not parse ends the read with a note (a
    file still being written ends mid-record). The records ``add_scalar`` writes (wall time, step, one
    ``simple_value``) are decoded together with numpy (:func:`_fast_scalars`, checked field by field against
    the protobuf wire format); every other record is parsed by protobuf: tensor values of the ``scalars``
    plugin or any one-element numeric tensor (new-style ``tf.summary.scalar``) are scalars too.
    """
    state: dict[str, Any] = {"plugin_of": {}, "records": 0, "done": 0}
    carry = b""
    while not builder.stopped:
        chunk = stream.read(_EVENT_CHUNK)
        data = carry + chunk if carry else chunk
        if not data:
            break
        starts, lengths, end, problem = _frame(data)
        if len(starts) == 0 and state["records"] == 0 and problem:
            raise RunLogError(f"{_short(name)} is not a TensorBoard event file (its first record is not one)")
        stop = _decode_records(data, starts, lengths, builder, state, name)
        state["done"] += end
        if stop or not builder.tick(state["done"] / max(size, 1)):
            break
        if problem:
            builder.notes.append(problem.format(at=f"{state['done']:,}"))
            break
        carry = data[end:]
        if not chunk:
            if carry:
                builder.notes.append(
                    f"The event file ends inside a record at byte {state['done']:,} (still being written?)."
                )
            break
    if state["records"] == 0:
        raise RunLogError(f"{_short(name)} is empty or not a TensorBoard event file")
    builder.tick(1.0)


def _frame(data: bytes) -> tuple[np.ndarray, np.ndarray, int, str]:
    """The body offset and length of each whole record in ``data``, where the whole records end, and what
    stopped the framing early (a length over ``MAX_EVENT_RECORD``), if anything.

    Runs of records whose Event starts with its wall time (every writer's scalars) are chained with numpy
    (:class:`_Chain`); a record that does not (an Event without a wall time) is stepped over on its own,
    and the chain resumes after it (at most ``_CHAIN_TRIES`` times per chunk, then record by record)."""
    chain = _Chain(data)
    parts_s, parts_l = [], []
    loose_s, loose_l = array("q"), array("q")
    unpack = struct.unpack_from
    n = len(data)
    pos, tries, problem = 0, 0, ""
    while pos + 12 <= n:
        if tries < _CHAIN_TRIES and data[pos + 12 : pos + 13] == b"\x09":
            tries += 1
            starts, lengths, after = chain.from_offset(pos)
            if len(starts):
                parts_s.append(starts)
                parts_l.append(lengths)
                pos = after
                continue
        (length,) = unpack("<Q", data, pos)
        if length > MAX_EVENT_RECORD:
            problem = "Read stopped at byte {at}: a record claims " + f"{length:,} bytes (corrupt file)."
            break
        if pos + 16 + length > n:
            break
        loose_s.append(pos + 12)
        loose_l.append(length)
        pos += 16 + length
    parts_s.append(np.frombuffer(loose_s, np.int64) if len(loose_s) else np.empty(0, np.int64))
    parts_l.append(np.frombuffer(loose_l, np.int64) if len(loose_l) else np.empty(0, np.int64))
    starts, lengths = np.concatenate(parts_s), np.concatenate(parts_l)
    order = np.argsort(starts, kind="stable")  # chained and loose records back in file order
    return starts[order], lengths[order], pos, problem


_CHAIN_TRIES = 64


class _Chain:
    """Record chains without a Python loop per record.

    Candidates are the offsets whose 8-byte length is below 2**24 and whose body starts with 0x09 (the
    Event's wall_time field); each points at the offset its length leads to. The chain from a record is found
    by pointer doubling (log2(n) vectorised steps) and ends at a non-candidate or at the last whole record."""

    def __init__(self, data: bytes):
        buf = np.frombuffer(data, dtype=np.uint8)
        self.n = n = len(buf)
        pos = np.flatnonzero(buf[12 : max(n - 3, 12)] == 0x09)
        pos = pos[(buf[pos + 3] | buf[pos + 4] | buf[pos + 5] | buf[pos + 6] | buf[pos + 7]) == 0]
        self.length = (
            buf[pos].astype(np.int64) | buf[pos + 1].astype(np.int64) << 8 | buf[pos + 2].astype(np.int64) << 16
        )
        self.following = pos + 16 + self.length
        m = len(pos)
        at = np.searchsorted(pos, self.following)
        jump = np.where((at < m) & (pos[np.minimum(at, m - 1)] == self.following), at, m)  # m: a sink
        self.jump = np.append(jump, m)
        self.pos = pos

    def from_offset(self, offset: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(body starts, lengths, where the chain ends) of the chain of whole records from ``offset``."""
        empty = np.empty(0, dtype=np.int64)
        m = len(self.pos)
        i = int(np.searchsorted(self.pos, offset))
        if i >= m or self.pos[i] != offset:
            return empty, empty, offset
        reach = np.zeros(m + 1, dtype=bool)
        reach[i] = True
        step = self.jump
        while True:
            grown = reach.copy()
            grown[step[reach]] = True
            if np.array_equal(grown, reach):
                break
            reach, step = grown, step[step]
        chain = np.flatnonzero(reach[:m])
        whole = chain[self.following[chain] <= self.n]  # the last record may continue in the next chunk
        if not len(whole):
            return empty, empty, offset
        return self.pos[whole] + 12, self.length[whole], int(self.following[whole[-1]])


def _varint(buf: np.ndarray, pos: np.ndarray, limit: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints starting at ``pos`` (vectorised, one byte position at a time over the varints still
    going): their values (up to 9 bytes) and byte lengths (``limit + 1`` where none ends within ``limit``)."""
    value = np.zeros(len(pos), dtype=np.uint64)
    length = np.full(len(pos), limit + 1, dtype=np.int64)
    active = np.arange(len(pos))
    last = len(buf) - 1
    for k in range(limit):
        byte = buf[np.minimum(pos[active] + k, last)].astype(np.uint64)
        if k < 9:
            value[active] |= (byte & np.uint64(0x7F)) << np.uint64(7 * k)
        done = byte < 128
        length[active[done]] = k + 1
        active = active[~done]
        if not len(active):
            break
    return value, length


_LONGEST_FAST_TAG = 512


def _tag_ids(buf: np.ndarray, start: np.ndarray, length: np.ndarray, ids_of: dict[bytes, int]) -> np.ndarray:
    """Each tag's id in ``ids_of`` (new tags added): the tag bytes compared whole, 65,536 records at a time
    (np.unique over the rows of bytes), so the Python work is per distinct tag, not per record."""
    out = np.empty(len(start), dtype=np.int64)
    last = len(buf) - 1
    for lo in range(0, len(start), 65_536):
        s, n = start[lo : lo + 65_536], length[lo : lo + 65_536]
        width = int(n.max()) if len(n) else 0
        cols = np.arange(width)
        rows = np.where(cols < n[:, None], buf[np.minimum(s[:, None] + cols, last)], 0).astype(np.uint8)
        rows = np.concatenate([rows, n.astype("<u2").view(np.uint8).reshape(-1, 2)], axis=1)
        keys = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1]))).ravel()
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        codes = np.array(
            [ids_of.setdefault(bytes(buf[s[i] : s[i] + n[i]]), len(ids_of)) for i in first.tolist()], dtype=np.int64
        )
        out[lo : lo + 65_536] = codes[inverse.ravel()]
    return out


def _fast_scalars(data: bytes, starts: np.ndarray, lengths: np.ndarray):
    """For each record: whether it is exactly ``Event{wall_time, [step], summary{value{tag, simple_value}}}``
    (the wire bytes add_scalar writes), and then its step, tag span and float32 value."""
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = starts + lengths
    ok = (lengths >= 16) & (buf[np.minimum(starts, len(buf) - 1)] == 0x09)  # field 1, fixed64: wall_time
    pos = starts + 9
    has_step = buf[np.minimum(pos, len(buf) - 1)] == 0x10  # field 2, varint: step (absent when 0)
    step_value, step_len = _varint(buf, np.minimum(pos + 1, len(buf) - 1))
    ok &= ~has_step | (step_len <= 9)
    step = np.where(has_step, step_value.astype(np.int64), 0)
    pos = np.where(has_step, pos + 1 + step_len, pos)
    ok &= buf[np.minimum(pos, len(buf) - 1)] == 0x2A  # field 5, bytes: summary
    summary_len, n1 = _varint(buf, np.minimum(pos + 1, len(buf) - 1), 5)
    pos = pos + 1 + n1
    ok &= pos + summary_len.astype(np.int64) == ends
    ok &= buf[np.minimum(pos, len(buf) - 1)] == 0x0A  # Summary field 1: one value
    value_len, n2 = _varint(buf, np.minimum(pos + 1, len(buf) - 1), 5)
    pos = pos + 1 + n2
    ok &= pos + value_len.astype(np.int64) == ends
    ok &= buf[np.minimum(pos, len(buf) - 1)] == 0x0A  # Value field 1: tag
    tag_len, n3 = _varint(buf, np.minimum(pos + 1, len(buf) - 1), 5)
    tag_start = pos + 1 + n3
    tag_end = tag_start + tag_len.astype(np.int64)
    ok &= (tag_end + 5 == ends) & (n3 <= 4) & (tag_len <= _LONGEST_FAST_TAG)
    ok &= buf[np.minimum(tag_end, len(buf) - 1)] == 0x15  # Value field 2, fixed32: simple_value
    floats = np.zeros(len(starts), dtype=np.float32)
    if ok.any():
        at = tag_end[ok] + 1
        floats[ok] = buf[at[:, None] + np.arange(4)].copy().view("<f4").ravel()
    return ok, step, tag_start, tag_end, floats


def _decode_records(data: bytes, starts, lengths, builder: RunBuilder, state: dict, name: str) -> bool:
    """Add the scalars of these records to ``builder`` in write order; True when a record does not parse."""
    from google.protobuf.message import DecodeError

    if not len(starts):
        return False
    ok, step, tag_start, tag_end, floats = _fast_scalars(data, starts, lengths)
    tag_ids: dict[bytes, int] = {}
    ids = np.full(len(starts), -1, dtype=np.int64)
    fast = np.flatnonzero(ok)
    ids[fast] = _tag_ids(np.frombuffer(data, dtype=np.uint8), tag_start[fast], tag_end[fast] - tag_start[fast], tag_ids)
    slow_index, slow_tags, slow_steps, slow_values = [], [], [], []
    event_pb2 = _event_proto()
    stop = False
    for i in np.flatnonzero(~ok).tolist():
        try:
            event = event_pb2.Event.FromString(data[starts[i] : starts[i] + lengths[i]])
        except DecodeError:
            if state["records"] + i == 0:
                raise RunLogError(
                    f"{_short(name)} is not a TensorBoard event file (its first record does not parse)"
                ) from None
            builder.notes.append(
                f"Read stopped at record {state['records'] + i + 1:,}: it does not parse (corrupt file)."
            )
            ok[i:] = False
            ids[i:] = -1
            starts = starts[:i]
            stop = True
            break
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            number = _summary_number(value, state["plugin_of"])
            if number is not None:
                slow_index.append(i)
                slow_tags.append(value.tag.encode())
                slow_steps.append(event.step)
                slow_values.append(number)
    n = len(starts)
    state["records"] += n
    keep = np.flatnonzero(ids[:n] >= 0)
    order_index = np.concatenate([keep, np.asarray(slow_index, dtype=np.int64)])
    tag_of = np.concatenate([ids[keep], np.asarray([tag_ids.setdefault(t, len(tag_ids)) for t in slow_tags], np.int64)])
    steps_all = np.concatenate([step[keep], np.asarray(slow_steps, dtype=np.int64)])
    values_all = np.concatenate([floats[keep].astype(np.float64), np.asarray(slow_values, dtype=np.float64)])
    order = np.lexsort((order_index, tag_of))  # by tag, then write order
    tag_of, steps_all, values_all = tag_of[order], steps_all[order], values_all[order]
    bounds = np.flatnonzero(np.diff(tag_of)) + 1
    names = {v: k.decode("utf-8", "replace") for k, v in tag_ids.items()}
    for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(tag_of)]]), strict=True):
        if hi > lo:
            builder.add_column(names[int(tag_of[lo])], steps_all[lo:hi], values_all[lo:hi])
            if builder.stopped:
                return True
    return stop


def _summary_number(value, plugin_of: dict[str, str]) -> float | None:
    """The scalar in one ``Summary.Value`` (old ``simple_value`` or a new-style scalar tensor), else None."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return value.simple_value
    if kind != "tensor":
        return None
    if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
        plugin_of[value.tag] = value.metadata.plugin_data.plugin_name
    if plugin_of.get(value.tag, "scalars") != "scalars":
        return None
    return _tensor_scalar(value.tensor)


# ---------------------------------------------------------------------------------------------------------
# Tables: CSV, Parquet


def _capped_bytes(stream, size: int, name: str) -> io.BytesIO:
    if size > MAX_TABLE_BYTES:
        raise RunLogError(
            f"{_short(name)} is {size / 2**20:.0f} MB; tables (CSV, Parquet, SQLite) are read whole, up to "
            f"{MAX_TABLE_BYTES // 2**20} MB"
        )
    return io.BytesIO(stream.read(MAX_TABLE_BYTES + 1))


def _step_column(columns) -> str | None:
    lowered = {str(c).lower(): c for c in columns}
    return next((lowered[c] for c in STEP_COLUMNS if c in lowered), None)


_NAN_TEXT = {"nan", "-nan", "+nan"}
Column = tuple[np.ndarray, np.ndarray, int]  # values (float64), present (a value was logged), cells of text


def _text_column(cells: pd.Series) -> Column:
    """A CSV column read as text: numbers (``nan``, ``inf`` included) are present, empty cells are steps where
    the metric was not logged, anything else is text (counted, never stored)."""
    cells = cells.astype("string")
    lowered = cells.str.strip().str.lower()
    written_nan = lowered.isin(list(_NAN_TEXT)).to_numpy(dtype=bool, na_value=False)
    numbers = pd.to_numeric(cells, errors="coerce")
    parsed = numbers.notna().to_numpy(dtype=bool, na_value=False)
    filled = cells.notna().to_numpy(dtype=bool, na_value=False) & (lowered != "").to_numpy(dtype=bool, na_value=False)
    values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    values[written_nan] = np.nan
    present = parsed | written_nan
    return values, present, int((filled & ~present).sum())


def _arrow_column(column) -> Column:
    """A Parquet column: nulls are steps where the metric was not logged, NaN is a logged NaN."""
    import pyarrow as pa
    import pyarrow.compute as pc

    present = column.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        return np.where(present, values, np.nan).astype(np.float64), present, 0
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        values, parsed, text = _text_column(pd.Series(column.to_pylist(), dtype="string"))
        return values, parsed, text
    return np.full(len(present), np.nan), np.zeros(len(present), dtype=bool), int(present.sum())


def _read_columns(columns: dict[str, Column], step_col: str | None, builder: RunBuilder, name: str) -> None:
    """One run's table: a step column (or the row number) and one metric per other column."""
    if len(columns) > MAX_CSV_COLUMNS:
        raise RunLogError(f"{_short(name)} has {len(columns):,} columns; at most {MAX_CSV_COLUMNS:,} are read")
    n_rows = len(next(iter(columns.values()))[0]) if columns else 0
    if step_col is not None:
        steps_f, present, _ = columns[step_col]
        usable = present & np.isfinite(steps_f)
        usable[usable] = steps_f[usable] == np.round(steps_f[usable])
        if not usable.all():
            builder.notes.append(f"{int((~usable).sum()):,} row(s) without a whole-number {step_col} were skipped.")
        steps = np.where(usable, steps_f, 0).astype(np.int64)
    else:
        usable = np.ones(n_rows, dtype=bool)
        steps = np.arange(n_rows, dtype=np.int64)
        builder.notes.append("No step column (" + ", ".join(STEP_COLUMNS) + "): the row number is the step.")
    for i, (column, (values, present, text)) in enumerate(columns.items()):
        if column == step_col or column in _TIME_COLUMNS:
            continue
        keep = present & usable
        builder.add_column(str(column), steps[keep], values[keep], n_text=text)
        if builder.stopped or (i % 50 == 0 and not builder.tick(i / max(len(columns), 1))):
            break
    builder.tick(1.0)


_TIME_COLUMNS = {"_runtime", "_timestamp", "wall_time", "Wall time", "timestamp", "time/time_elapsed"}


def _read_parquet(stream, size, builder: RunBuilder, name: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = _capped_bytes(stream, size, name)
    try:
        table = pq.read_table(raw)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise RunLogError(f"{_short(name)} is not a Parquet file this page can read ({type(err).__name__})") from None
    if table.num_columns > MAX_CSV_COLUMNS:
        raise RunLogError(f"{_short(name)} has {table.num_columns:,} columns; at most {MAX_CSV_COLUMNS:,} are read")
    columns = {str(n): _arrow_column(table.column(n).combine_chunks()) for n in table.column_names}
    _read_columns(columns, _step_column(columns), builder, name)


_WANDB_PANEL = re.compile(r"^(?P<run>.+?) - (?P<metric>.+?)(?P<agg>__MIN|__MAX)?$")


def _read_csv(stream, size, relevant, limits, progress, name) -> list[RunLog]:
    """A CSV: a W&B panel export (``Step``, ``<run> - <metric>`` columns, one run per prefix) or one run's table."""
    raw = _capped_bytes(stream, size, name).getvalue()
    text_head = raw[:65536].decode("utf-8", "replace")
    first = text_head.splitlines()[0] if text_head else ""
    try:
        dialect = csv.Sniffer().sniff(first, delimiters=",\t;") if first else None
        sep = dialect.delimiter if dialect else ","
    except csv.Error:
        sep = ","
    n_columns = first.count(sep) + 1
    if n_columns > MAX_CSV_COLUMNS:
        raise RunLogError(f"{_short(name)} has {n_columns:,} columns; at most {MAX_CSV_COLUMNS:,} are read")
    if n_columns < 2:
        raise RunLogError(
            f"{_short(name)} is not a table of metrics (one column at most) and not a log this page reads: " + _WHAT
        )
    try:
        frame = pd.read_csv(io.BytesIO(raw), sep=sep, dtype=str, keep_default_na=False, na_values=[""], engine="c")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise RunLogError(f"{_short(name)} is not a CSV this page can read ({type(err).__name__})") from None
    columns = {str(c): _text_column(frame[c]) for c in frame.columns}
    panel = {c: _WANDB_PANEL.match(c) for c in columns}
    step_col = _step_column(columns)
    runs_in_panel = {m.group("run") for m in panel.values() if m}
    if step_col is not None and runs_in_panel and all(m or c == step_col for c, m in panel.items()):
        out = []
        dropped_agg = False
        for run in sorted(runs_in_panel):
            mine = {step_col: columns[step_col]}
            for c, m in panel.items():
                if m and m.group("run") == run:
                    if m.group("agg"):
                        dropped_agg = True
                    else:
                        mine[m.group("metric")] = columns[c]
            builder = RunBuilder(relevant=relevant, limits=limits, progress=progress)
            _read_columns(mine, step_col, builder, name)
            notes = ["The __MIN / __MAX columns of a sampled W&B panel are left out; the plain column is used."]
            out.append(builder.build(run, "W&B panel export (CSV)", notes if dropped_agg else ()))
        return out
    builder = RunBuilder(relevant=relevant, limits=limits, progress=progress)
    _read_columns(columns, step_col, builder, name)
    source = "W&B run history (CSV)" if step_col == "_step" else f"CSV table (step: {step_col or 'row number'})"
    return [builder.build(_run_name(name), source)]


# ---------------------------------------------------------------------------------------------------------
# MLflow


def _read_mlflow_sqlite(stream, size, relevant, limits, progress, name) -> list[RunLog]:
    """MLflow's SQL store (``sqlite:///mlflow.db``; verl's default ``sqlite:////tmp/mlruns.db``), read-only.

    Only the ``metrics`` and ``runs`` tables are read, each checked to be a plain table; a query that runs
    past the time limit is interrupted. MLflow stores NaN as ``is_nan = 1`` and ±inf as ±1.797e308.
    """
    raw = _capped_bytes(stream, size, name).getvalue()
    with tempfile.TemporaryDirectory(prefix="valueloss-mlflow-") as tmp:
        path = os.path.join(tmp, "store.db")
        with open(path, "wb") as fh:
            fh.write(raw)
        del raw
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.Error as err:
            raise RunLogError(f"{_short(name)} is not a readable SQLite file ({err})") from None
        try:
            return _mlflow_runs_from(conn, relevant, limits, progress, name)
        except sqlite3.DatabaseError as err:
            raise RunLogError(f"{_short(name)} could not be read as an MLflow store ({str(err)[:200]})") from None
        finally:
            conn.close()


def _mlflow_run(conn, run_id, builder: RunBuilder, limits: Limits) -> int:
    """One run's metrics into ``builder``, a column per key; how many values were MLflow's stand-in for ±inf."""
    rows = conn.execute(
        "SELECT key, step, value, is_nan FROM metrics WHERE run_uuid = ? ORDER BY key, timestamp", (run_id,)
    )
    current = None
    steps: list[int] = []
    values: list[float] = []

    def flush(key, steps, values):
        if key is not None:
            builder.add_column(str(key), np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64))

    inf = 0
    try:
        for key, step, value, is_nan in rows:
            if key != current:
                flush(current, steps, values)
                current, steps, values = key, [], []
            if is_nan:
                value = math.nan
            elif isinstance(value, float) and abs(value) >= 1.7976931348623157e308:
                value = math.copysign(math.inf, value)
                inf += 1
            steps.append(int(step))
            values.append(float(value))
        flush(current, steps, values)
    except sqlite3.OperationalError as err:
        if "interrupted" not in str(err):
            raise
        builder.notes.append(f"Read stopped: the query ran past {limits.max_seconds:g} s.")
    return inf


def _mlflow_runs_from(conn, relevant, limits, progress, name) -> list[RunLog]:
    deadline = time.monotonic() + limits.max_seconds
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 100_000)
    with contextlib.suppress(sqlite3.DatabaseError):
        conn.execute("PRAGMA trusted_schema = OFF")
    conn.execute("PRAGMA query_only = ON")
    kinds = dict(conn.execute("SELECT name, type FROM sqlite_master WHERE name IN ('metrics', 'runs', 'experiments')"))
    if kinds.get("metrics") != "table":
        raise RunLogError(f"{_short(name)} is an SQLite file but not an MLflow store (it has no metrics table)")
    names = {}
    if kinds.get("runs") == "table":
        with contextlib.suppress(sqlite3.DatabaseError):
            names = {str(r): str(n or r) for r, n in conn.execute("SELECT run_uuid, name FROM runs")}
    run_ids = [r for (r,) in conn.execute("SELECT DISTINCT run_uuid FROM metrics")]
    if not run_ids:
        raise RunLogError(f"{_short(name)} is an MLflow store without any logged metric")
    out = []
    for i, run_id in enumerate(run_ids[:100]):
        builder = RunBuilder(relevant=relevant, limits=limits, progress=progress)
        inf = _mlflow_run(conn, run_id, builder, limits)
        if progress is not None:
            progress((i + 1) / len(run_ids))
        notes = []
        if inf:
            notes.append(f"{inf:,} value(s) stored as ±1.797e308 (MLflow's way of storing ±inf) are read as ±inf.")
        if len(run_ids) > 100 and i == 0:
            notes.append(f"The store holds {len(run_ids):,} runs; the first 100 are read.")
        out.append(builder.build(names.get(str(run_id), str(run_id)), "MLflow SQLite store", notes))
    return out


_META_RUN_NAME = re.compile(r"^run_name:\s*['\"]?(.*?)['\"]?\s*$", re.M)


def _read_mlruns(files: dict[str, zipfile.ZipInfo], zf: zipfile.ZipFile, relevant, limits, progress) -> list[RunLog]:
    """MLflow's file store: ``<experiment>/<run>/metrics/<key>`` files of ``timestamp value step`` lines."""
    by_run: dict[str, list[tuple[str, zipfile.ZipInfo]]] = {}
    for path, info in files.items():
        head, sep, key = path.partition("/metrics/")
        if sep and key:
            by_run.setdefault(head, []).append((key, info))
    out = []
    for run_dir, members in sorted(by_run.items()):
        builder = RunBuilder(relevant=relevant, limits=limits, progress=progress)
        bad = 0
        for key, info in sorted(members, key=lambda m: m[0]):
            steps, values, stamps = [], [], []
            for line in _member_text(zf, info).splitlines():
                parts = line.split()
                if len(parts) < 2:
                    continue
                try:
                    stamp, value = int(parts[0]), float(parts[1])
                    step = int(parts[2]) if len(parts) > 2 else 0
                except ValueError:
                    bad += 1
                    continue
                stamps.append(stamp)
                steps.append(step)
                values.append(value)
            order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")  # write order: the timestamps
            builder.add_column(key, np.asarray(steps, np.int64)[order], np.asarray(values, np.float64)[order])
            if builder.stopped:
                break
        notes = [f"{bad:,} metric line(s) that are not `timestamp value step` were skipped."] if bad else []
        meta = files.get(run_dir + "/meta.yaml")
        match = _META_RUN_NAME.search(_member_text(zf, meta)) if meta else None
        run_name = match.group(1) if match and match.group(1) else PurePosixPath(run_dir).name
        out.append(builder.build(run_name, "MLflow run folder (mlruns)", notes))
    return out


def _member_text(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    if info.file_size > MAX_TABLE_BYTES:
        raise RunLogError(
            f"{_short(info.filename)} is {info.file_size / 2**20:.0f} MB unzipped; at most "
            f"{MAX_TABLE_BYTES // 2**20} MB per file"
        )
    with zf.open(info) as fh:
        return fh.read(MAX_TABLE_BYTES + 1).decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------------------
# Zips


def _zip_members(name: str, data: bytes) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo], int]:
    """The zip, its files this page may read (by path, "/" separated) and its unzipped size, after the checks
    that bound what reading it costs (member count, unzipped size, no password)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise RunLogError(f"{_short(name)} is not a readable zip ({err})") from None
    if len(infos) > MAX_ZIP_MEMBERS:
        raise RunLogError(f"{_short(name)} holds {len(infos):,} files; at most {MAX_ZIP_MEMBERS:,} are read")
    total = sum(i.file_size for i in infos)
    if total > MAX_UNZIPPED_BYTES:
        raise RunLogError(
            f"{_short(name)} unzips to {total / 2**30:.1f} GB; at most {MAX_UNZIPPED_BYTES / 2**30:.0f} GB: zip fewer runs"
        )
    if any(i.flag_bits & 0x1 for i in infos):
        raise RunLogError(f"{_short(name)} is encrypted: zip it without a password")
    files = {i.filename.replace("\\", "/"): i for i in infos if not _ignored(i.filename)}
    if not files:
        raise RunLogError(f"{_short(name)} holds no file this page reads: " + _WHAT)
    return zf, files, total


def _zip_member(zf: zipfile.ZipFile, path: str, info: zipfile.ZipInfo, relevant, limits, progress) -> list[RunLog]:
    """The runs of one log file in a zip (not a TensorBoard event file); a RunLogError says why it is skipped."""
    with zf.open(info) as fh:
        try:
            head = fh.read(8192)
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise RunLogError(str(err)) from None
    if _kind(path, head) == "zip":
        raise RunLogError("a zip inside the zip")
    stream = _Seekable(zf, info)
    try:
        return _read_stream(path, stream, info.file_size, relevant, limits, progress)
    finally:
        stream.close()


def _zip_groups(files: dict[str, zipfile.ZipInfo]):
    """The zip's files as (MLflow metric files, TensorBoard event files by folder, other files): the files of an
    mlruns run other than its metrics, and YAML files, are in none."""
    mlruns = {p: i for p, i in files.items() if "/metrics/" in p and _is_mlruns_metric(p)}
    run_dirs = tuple(r.rsplit("/metrics/", 1)[0] + "/" for r in mlruns)
    event_dirs: dict[str, list[zipfile.ZipInfo]] = {}
    others: list[tuple[str, zipfile.ZipInfo]] = []
    for path, info in sorted(files.items()):
        if path in mlruns or path.endswith(("meta.yaml", ".yaml", ".yml")) or (run_dirs and path.startswith(run_dirs)):
            continue
        if "tfevents" in PurePosixPath(path).name:
            event_dirs.setdefault(str(PurePosixPath(path).parent), []).append(info)
        else:
            others.append((path, info))
    return mlruns, event_dirs, others


def _read_zip(name, data, relevant, limits, progress) -> list[RunLog]:
    """Each TensorBoard folder, mlruns run, and other log file in the zip is one run."""
    zf, files, total = _zip_members(name, data)
    runs: list[RunLog] = []
    skipped: list[str] = []
    mlruns, event_dirs, others = _zip_groups(files)
    if mlruns:
        meta = {p: i for p, i in files.items() if p.endswith("/meta.yaml")}
        runs += _read_mlruns(mlruns | meta, zf, relevant, limits, progress)
    done_bytes = 0

    def sub_progress(start, width):
        if progress is None:
            return None
        return lambda f: progress(min((start + f * width) / max(total, 1), 1.0))

    for folder, members in sorted(event_dirs.items()):
        builder = RunBuilder(relevant=relevant, limits=limits)
        width = sum(m.file_size for m in members)
        builder.progress = sub_progress(done_bytes, width)
        for info in sorted(members, key=lambda m: m.filename):  # TensorBoard reads a folder's files in name order
            with zf.open(info) as fh:
                try:
                    _read_tfevents(fh, info.file_size, builder, info.filename)
                except RunLogError as err:
                    builder.notes.append(str(err) + ".")
            if builder.stopped:
                break
        done_bytes += width
        run_name = folder if folder not in (".", "") else _run_name(name)
        runs.append(
            builder.build(run_name, "TensorBoard event files" if len(members) > 1 else "TensorBoard event file")
        )
    for path, info in others:
        try:
            runs += _zip_member(zf, path, info, relevant, limits, sub_progress(done_bytes, info.file_size))
        except RunLogError as err:
            skipped.append(f"{_short(path)} ({err})")
        done_bytes += info.file_size
    if not runs:
        reasons = "; ".join(skipped[:5]) if skipped else "no log files"
        raise RunLogError(f"{_short(name)} holds no run this page reads: {reasons}")
    if skipped:
        note = "Files in the zip that are not a log this page reads: " + "; ".join(skipped[:5])
        note += f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        runs = [
            RunLog(r.name, r.source, r.series, r.counts, r.notes + (note + ".",), r.complete) if i == 0 else r
            for i, r in enumerate(runs)
        ]
    if progress is not None:
        progress(1.0)
    return runs


def _ignored(path: str) -> bool:
    parts = PurePosixPath(path.replace("\\", "/")).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _is_mlruns_metric(path: str) -> bool:
    head = path.split("/metrics/", 1)[0]
    return len(PurePosixPath(head).parts) >= 2  # <experiment>/<run>/metrics/...


class _Seekable:
    """A zip member as a stream that can go back to its start (readers peek at the first bytes)."""

    def __init__(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo):
        self._zf, self._info = zf, info
        self._fh = self._open()

    def _open(self) -> io.BufferedReader:
        # ZipExtFile.readline is Python code; a BufferedReader over it splits lines in C (a fifth of a zipped
        # JSONL's read time)
        return io.BufferedReader(self._zf.open(self._info), buffer_size=1 << 20)  # type: ignore[arg-type]

    def read(self, n: int = -1) -> bytes:
        return self._fh.read(n)

    def readline(self, n: int = -1) -> bytes:
        return self._fh.readline(n)

    def seek(self, pos: int) -> None:
        if pos != 0:
            raise ValueError("a zip member can only go back to its start")
        self._fh.close()
        self._fh = self._open()

    def close(self) -> None:
        self._fh.close()
