"""Bad and hostile logs: every one ends in a clear RunLogError (a ValueError) or a note saying what was left out,
with memory and time bounded; nothing is unpickled or executed."""

from __future__ import annotations

import io
import json
import math
import pickle
import sqlite3
import struct
import time
import zipfile

import numpy as np
import pytest

from tests.words import numbers_in
from valueloss.tools.runlogs import Limits, RunLogError, read_log
from valueloss.tools.runlogs import readers as readers_module


def verl_lines(steps, **extra) -> bytes:
    return b"".join(
        json.dumps({"step": s, "data": {"critic/vf_loss": 1.0 / (s + 1), **extra}}).encode() + b"\n" for s in steps
    )


def event_record(body: bytes) -> bytes:
    return struct.pack("<Q", len(body)) + b"\0" * 4 + body + b"\0" * 4


def scalar_event(tag: str, step: int, value: float) -> bytes:
    from tensorboardX.proto import event_pb2, summary_pb2

    value_proto = summary_pb2.Summary.Value(tag=tag, simple_value=value)
    return event_pb2.Event(step=step, summary=summary_pb2.Summary(value=[value_proto])).SerializeToString()


def version_event() -> bytes:
    from tensorboardX.proto import event_pb2

    return event_pb2.Event(file_version="brain.Event:2").SerializeToString()


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.jsonl", b"", "empty"),
        ("model.pt", pickle.dumps({"weights": [1, 2]}), "never unpickles"),
        ("run.pkl", pickle.dumps([1.0]), "never unpickles"),
        ("run-abc.wandb", b":W&B\x00\x01" + b"\x00" * 64, "wandb sync"),
        ("plot.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "binary file"),
        ("notes.txt", b"hello\nworld\n", "has no line like `step:1"),
        ("nothing.jsonl", b"[1, 2]\n[3]\n", "no JSON object"),
        ("console.log", b"epoch 1 loss 0.5\nno steps here\n", "has no line like `step:1"),
        ("table.csv", b"only_one_column\n1\n2\n", "one column at most"),
        ("inner.zip", b"PK\x05\x06" + b"\x00" * 18, "holds no file"),
    ],
)
def test_files_that_are_not_logs_get_a_clear_message(name, data, message):
    with pytest.raises(RunLogError, match=message):
        read_log(name, data)


def test_an_upload_over_the_cap_is_refused_before_reading(monkeypatch):
    monkeypatch.setattr(readers_module, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(RunLogError, match="limit is 0 MB: zip it"):
        read_log("big.jsonl", verl_lines(range(100)))


def test_a_record_claiming_a_gigabyte_is_refused_without_allocating_it():
    """A 1 GB event record (a corrupt or foreign file) is refused from its 12-byte header."""
    head = struct.pack("<Q", 2**30) + b"\0" * 4 + b"x" * 32
    with pytest.raises(RunLogError, match="not a TensorBoard event file"):
        read_log("events.out.tfevents.1", head)
    good = event_record(version_event()) + event_record(scalar_event("Loss/value", 1, 0.5))
    (run,) = read_log("events.out.tfevents.2", good + head)
    assert run.series["Loss/value"].values.tolist() == [0.5]
    assert any(2**30 in numbers_in(n) for n in run.notes)  # the note quotes the size the header claims


def test_a_truncated_or_corrupt_event_file_keeps_what_came_before():
    good = event_record(version_event()) + b"".join(event_record(scalar_event("a", s, float(s))) for s in range(5))
    (cut,) = read_log("events.out.tfevents.x", good[:-7])
    assert cut.series["a"].steps.tolist() == [0, 1, 2, 3] and any("still being written" in n for n in cut.notes)
    (bad,) = read_log("events.out.tfevents.y", good + event_record(b"\xff\xff\xff"))
    assert bad.series["a"].steps.tolist() == [0, 1, 2, 3, 4] and any("does not parse" in n for n in bad.notes)


def test_string_metrics_nan_inf_and_numbers_as_text():
    lines = [
        {
            "step": 1,
            "data": {"loss": "nan", "lr": "1e-4", "name": "run-7", "ok": True, "vals": [1, 2], "inf": float("inf")},
        },
        {"step": 2, "data": {"loss": 0.5, "lr": 2e-4, "name": "run-7", "ok": False, "vals": [3], "inf": -1e400}},
    ]
    data = "\n".join(json.dumps(x) for x in lines).encode()  # json writes Infinity: orjson refuses it, json reads it
    (run,) = read_log("run.jsonl", data)
    assert math.isnan(run.series["loss"].values[0]) and run.series["loss"].values[1] == 0.5
    assert run.series["lr"].values.tolist() == [1e-4, 2e-4]  # numbers written as text are numbers
    assert run.series["inf"].values.tolist() == [math.inf, -math.inf]
    assert {"name", "ok", "vals"}.isdisjoint(run.series)
    assert any("not numbers were skipped" in n and "name (2)" in n for n in run.notes)


def test_out_of_order_and_repeated_steps():
    data = verl_lines([0, 1, 2, 3, 4]) + b'{"step": 2, "data": {"critic/vf_loss": 99.0}}\n' + verl_lines([5])
    (run,) = read_log("run.jsonl", data)
    series = run.series["critic/vf_loss"]
    assert series.steps.tolist() == [0, 1, 2, 3, 4, 5]
    assert series.values[2] == 99.0  # the later write of step 2 wins
    assert any("go back" in n for n in run.notes) and any("repeated" in n for n in run.notes)


def test_steps_that_are_not_whole_numbers_are_skipped_and_counted():
    data = b'{"step": 1.5, "data": {"a": 1}}\n{"step": "x", "data": {"a": 2}}\n{"step": 3, "data": {"a": 3}}\n'
    (run,) = read_log("run.jsonl", data)
    assert run.series["a"].steps.tolist() == [3]
    assert any(numbers_in(n) == [2] and "step" in n for n in run.notes)  # step 1.5 and step "x"


def test_a_million_steps_stop_at_the_point_limit_with_a_note():
    """Memory stays bounded: past max_points the read stops and says where."""
    limits = Limits(keep_all_points=500, max_points=1000)
    (run,) = read_log(
        "run.jsonl", verl_lines(range(5000), other=1.0), limits=limits, relevant=lambda m: m == "critic/vf_loss"
    )
    assert not run.complete
    assert run.counts["other"] < 5000 and "other" not in run.series  # dropped once past keep_all_points
    assert len(run.series["critic/vf_loss"]) <= 1000
    assert any("Read stopped" in n for n in run.notes) and any("keep their name" in n for n in run.notes)


def test_the_time_limit_stops_a_slow_read(monkeypatch):
    clock = iter(np.arange(0.0, 1e6, 1.0))
    monkeypatch.setattr(time, "monotonic", lambda: float(next(clock)))
    (run,) = read_log("run.jsonl", verl_lines(range(20_000)), limits=Limits(max_seconds=3))
    kept = len(run.series["critic/vf_loss"])
    assert not run.complete and 0 < kept < 20_000
    # the note quotes the time limit it stopped at and how far into the file (the share of the steps kept)
    (seconds, share) = next(numbers_in(n) for n in run.notes if "stopped" in n)
    assert seconds == 3 and share == pytest.approx(kept / 20_000, abs=0.01)


def test_too_long_lines_and_too_many_metrics():
    long_line = b'{"step": 0, "data": {"a": "' + b"x" * 5000 + b'"}}\n'
    (run,) = read_log("run.jsonl", long_line + verl_lines([1]), limits=Limits(max_line_bytes=1000))
    assert run.metrics == ["critic/vf_loss"] and any("longer than" in n for n in run.notes)
    wide = json.dumps({"step": 0, "data": {f"m{i}": 1.0 for i in range(50)}}).encode()
    (run,) = read_log("run.jsonl", wide, limits=Limits(max_series=10))
    assert len(run.metrics) == 10 and any(numbers_in(n)[:1] == [10] and "metrics" in n for n in run.notes)


def test_csv_with_too_many_columns():
    header = ",".join(f"c{i}" for i in range(readers_module.MAX_CSV_COLUMNS + 1))
    with pytest.raises(RunLogError, match="columns; at most"):
        read_log("wide.csv", (header + "\n" + header + "\n").encode())


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_of_folders_reads_every_run_and_names_what_it_skipped():
    data = zip_of(
        {
            "runs/a/exp-a.jsonl": verl_lines(range(3)),
            "runs/b/exp-b.jsonl": verl_lines(range(4)),
            "runs/b/checkpoint.pt": pickle.dumps([1]),
            "runs/inner.zip": zip_of({"x.jsonl": verl_lines([0])}),
            "__MACOSX/._exp-a.jsonl": b"\x00\x05\x16\x07",
            "runs/.hidden.jsonl": verl_lines([0]),
        }
    )
    runs = read_log("runs.zip", data)
    assert [r.name for r in runs] == ["exp-a", "exp-b"]
    assert [len(r.series["critic/vf_loss"]) for r in runs] == [3, 4]
    skipped = [n for n in runs[0].notes if n.startswith("Files in the zip")]
    assert skipped and "checkpoint.pt" in skipped[0] and "inner.zip" in skipped[0]


def test_a_zip_bomb_is_refused_from_its_headers(monkeypatch):
    monkeypatch.setattr(readers_module, "MAX_UNZIPPED_BYTES", 10_000)
    data = zip_of({"big.jsonl": b" " * 50_000})
    assert len(data) < 1000
    with pytest.raises(RunLogError, match="unzips to"):
        read_log("bomb.zip", data)


def test_a_zip_of_nothing_readable():
    with pytest.raises(RunLogError, match="holds no run"):
        read_log("junk.zip", zip_of({"a.pt": pickle.dumps(1), "b.png": b"\x89PNG\r\n\x1a\n\x00\x00"}))


def test_an_sqlite_store_with_a_slow_view_cannot_run_past_the_time_limit(tmp_path):
    """A store whose 'metrics' is a recursive view would run forever: only plain tables are read."""
    path = tmp_path / "slow.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE runs (run_uuid TEXT, name TEXT);"
        "CREATE VIEW metrics AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
        "SELECT 'k' AS key, x AS value, 0 AS timestamp, 'r' AS run_uuid, x AS step, 0 AS is_nan FROM c;"
    )
    conn.close()
    start = time.perf_counter()
    with pytest.raises(RunLogError, match="not an MLflow store"):
        read_log(path.name, path.read_bytes())
    assert time.perf_counter() - start < 5


def test_bad_arguments_are_type_errors():
    with pytest.raises(TypeError, match="name"):
        read_log(None, b"x")
    with pytest.raises(TypeError, match="data"):
        read_log("a.jsonl", "text")


def reference_scalars(data: bytes) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of an event file read record by record with protobuf alone (the plain way)."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
        pos += 16 + length
        for value in event.summary.value:
            if value.WhichOneof("value") == "simple_value":
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_the_vectorised_event_decoder_equals_protobuf(seed):
    """Random event files (long and unicode tags, steps 0, huge and negative, NaN/inf, several values per event,
    events without a wall time, odd chunk sizes): the numpy path and protobuf read the same numbers."""
    from tensorboardX.proto import event_pb2, summary_pb2

    rng = np.random.default_rng(seed)
    tags = ["Loss/value", "a" * 200, "Épisode/récompense", "x", "critic/returns/mean", "critic/returns/max", "t" * 600]
    records = [
        event_record(event_pb2.Event(wall_time=float(rng.random()), file_version="brain.Event:2").SerializeToString())
    ]
    for _ in range(3000):
        n_values = 1 if rng.random() < 0.9 else 2
        values = [
            summary_pb2.Summary.Value(
                tag=str(rng.choice(tags)), simple_value=float(rng.choice([rng.normal(), np.nan, np.inf, -0.0]))
            )
            for _ in range(n_values)
        ]
        step = int(rng.choice([0, rng.integers(0, 2**40), -int(rng.integers(1, 100)), rng.integers(0, 1000)]))
        wall = 0.0 if rng.random() < 0.05 else float(rng.random() * 1e9)
        records.append(
            event_record(
                event_pb2.Event(
                    wall_time=wall, step=step, summary=summary_pb2.Summary(value=values)
                ).SerializeToString()
            )
        )
    data = b"".join(records)
    expected = reference_scalars(data)
    original = readers_module._EVENT_CHUNK
    try:
        readers_module._EVENT_CHUNK = int(rng.integers(1000, 50_000))  # records cut across chunk edges
        (run,) = read_log("events.out.tfevents.random", data)
    finally:
        readers_module._EVENT_CHUNK = original
    assert set(run.metrics) == set(expected)
    for tag, pairs in expected.items():
        last = {}
        for step, value in pairs:  # the last write of a step wins
            last[step] = value
        steps = sorted(last)
        series = run.series[tag]
        assert series.steps.tolist() == steps
        np.testing.assert_array_equal(series.values, np.array([last[s] for s in steps], dtype=np.float32).astype(float))


# ---- the column-wise fast path for JSONL reads exactly what the line-by-line path reads

_VALUES = [0.5, -2.0, 3, 0, None, True, "text", "1e3", {"hist": [1]}, 2**60, 10**400, -(10**400), float("inf")]


def _jsonl_log(seed: int, lines: int) -> bytes:
    """verl lines whose keys change now and then, whose values are mostly numbers and now and then anything."""
    rng = np.random.default_rng(seed)
    keys = ["critic/vf_loss", "critic/vf_clipfrac", "actor/a", "actor/b"]
    out = []
    for i in range(lines):
        if rng.random() < 0.02:
            keys = [k for k in keys if rng.random() < 0.8] or ["critic/vf_loss"]
            keys.append(f"extra/{i}")
        data = {}
        for k in keys:
            data[k] = _VALUES[rng.integers(len(_VALUES))] if rng.random() < 0.1 else float(rng.normal())
        step = i if rng.random() < 0.95 else int(rng.integers(0, i + 1))  # repeated and out-of-order steps too
        text = json.dumps({"step": step, "data": data})
        out.append(text.encode())
    return b"\n".join(out) + b"\n"


def _as_dict(run) -> dict:
    return {
        "series": {k: (s.steps.tolist(), np.asarray(s.values).tobytes()) for k, s in run.series.items()},
        "counts": run.counts,
        "notes": run.notes,
        "complete": run.complete,
    }


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "limits",
    [Limits(), Limits(keep_all_points=700, max_points=5_000), Limits(keep_all_points=300, max_points=1_111)],
    ids=["no limit", "keep-all limit within the log", "both limits within a block"],
)
def test_the_column_path_reads_what_the_line_path_reads(monkeypatch, seed, limits):
    data = _jsonl_log(seed, 1_500)
    relevant = lambda name: name.startswith("critic/")  # noqa: E731
    fast = [_as_dict(r) for r in read_log("run.jsonl", data, relevant=relevant, limits=limits)]
    monkeypatch.setattr(readers_module._Block, "take", lambda self, items, step: False)
    slow = [_as_dict(r) for r in read_log("run.jsonl", data, relevant=relevant, limits=limits)]
    assert fast == slow


def test_a_clean_verl_log_is_read_column_by_column(monkeypatch):
    """Every line of a verl log names the same metrics with numbers or nulls: none goes value by value."""

    def value_by_value(*args):
        raise AssertionError("a clean verl line took the value-by-value path")

    monkeypatch.setattr(readers_module, "_add_all", value_by_value)
    monkeypatch.setattr(readers_module, "_add_kept", value_by_value)
    data = b"".join(
        json.dumps({"step": s, "data": {"critic/vf_loss": 1.0 / (s + 1), "critic/vf_clipfrac": None, "n": s}}).encode()
        + b"\n"
        for s in range(2_000)
    )
    (run,) = read_log("run.jsonl", data)
    assert run.series["critic/vf_loss"].values[-1] == 1.0 / 2_000
    assert np.isnan(run.series["critic/vf_clipfrac"].values).all() and run.series["n"].values[-1] == 1_999
