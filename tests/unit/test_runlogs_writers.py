"""The run readers on logs written by the real writers: verl's own ``Tracking`` (pinned verl, ``file`` and
``tensorboard`` backends) and console logger, ``torch.utils.tensorboard.SummaryWriter`` (old and new-style
scalars), Stable-Baselines3's logger from a short real training run (its CSV, JSON and TensorBoard outputs),
W&B's export formats and MLflow's stores (their documented layouts: installing mlflow would bring ~150 MB of
server dependencies for two tables and a folder of text files).

Each test compares what the reader returns with what was handed to the writer, value by value.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.upstream import _harness
from valueloss.tools.runlogs import read_log

VERL_METRICS = ("critic/vf_loss", "critic/vf_clipfrac", "critic/returns/mean", "critic/values/max", "timing_s/gen")


def verl_data(step: int) -> dict:
    """One step's metrics as verl's trainer hands them to Tracking.log: floats, numpy floats, ints, NaN and inf."""
    return {
        "critic/vf_loss": 0.5 / step if step < 8 else (math.nan if step < 10 else math.inf),
        "critic/vf_clipfrac": np.float64(0.01 * step),
        "critic/returns/mean": np.float32(0.25 + step / 7),
        "critic/values/max": -1.5 * step,
        "timing_s/gen": 10,
    }


@pytest.fixture(scope="module")
def verl_site():
    site = _harness.ensure_installed()
    _harness.activate(site)
    return site


def load_verl_tracking(site: Path):
    """verl's own Tracking, FileLogger and _TensorboardAdapter from the pinned release, run verbatim (importing
    the package whole pulls in ray; these classes need os, orjson and torch's SummaryWriter only)."""
    import orjson

    namespace = {"os": os, "orjson": orjson, "logging": logging, "logger": logging.getLogger("verl-tracking")}
    path = site / "verl" / "utils" / "tracking.py"
    return _harness.load_functions(path, ["Tracking", "FileLogger", "_TensorboardAdapter"], namespace)["Tracking"]


def write_with_verl(site: Path, folder: Path, steps: list[tuple[int, dict]], backends=("file",)) -> Path:
    """Log ``(step, data)`` pairs through verl's Tracking into ``folder``; the file backend's JSONL path."""
    tracking_class = load_verl_tracking(site)
    saved = {k: os.environ.get(k) for k in ("VERL_FILE_LOGGER_ROOT", "TENSORBOARD_DIR", "VERL_FILE_LOGGER_PATH")}
    os.environ["VERL_FILE_LOGGER_ROOT"] = str(folder / "files")
    os.environ["TENSORBOARD_DIR"] = str(folder / "tb")
    os.environ.pop("VERL_FILE_LOGGER_PATH", None)
    try:
        tracking = tracking_class("proj", "gsm8k-ppo", default_backend=list(backends))
        for step, data in steps:
            tracking.log(data=data, step=step)
        tracking.finish()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return folder / "files" / "proj" / "gsm8k-ppo.jsonl"


@pytest.fixture(scope="module")
def verl_tracking(verl_site):
    return load_verl_tracking(verl_site)


def test_verl_file_and_tensorboard_backends(verl_tracking, tmp_path, monkeypatch):
    monkeypatch.setenv("VERL_FILE_LOGGER_ROOT", str(tmp_path / "files"))
    monkeypatch.setenv("TENSORBOARD_DIR", str(tmp_path / "tb"))
    tracking = verl_tracking("proj", "exp-1", default_backend=["file", "tensorboard"])
    for step in range(1, 12):
        tracking.log(data=verl_data(step), step=step)
    tracking.finish()
    jsonl = tmp_path / "files" / "proj" / "exp-1.jsonl"
    (run,) = read_log(jsonl.name, jsonl.read_bytes())
    assert run.name == "exp-1" and run.source == "verl file backend (JSONL)"
    assert set(run.metrics) == set(VERL_METRICS)
    for key in VERL_METRICS:
        series = run.series[key]
        assert series.steps.tolist() == list(range(1, 12))
        expected = [float(verl_data(s)[key]) for s in range(1, 12)]
        if key == "critic/vf_loss":  # orjson writes NaN and inf as null: both read back as NaN
            assert series.values[:7].tolist() == expected[:7]
            assert np.isnan(series.values[7:]).all()
        elif key == "critic/returns/mean":  # orjson writes a float32 by its shortest float32 digits
            np.testing.assert_array_equal(series.values.astype(np.float32), np.float32(expected))
        else:
            assert series.values.tolist() == expected, key
    assert any("null" in n and "orjson" in n for n in run.notes)

    (event_file,) = (tmp_path / "tb").iterdir()
    (tb,) = read_log(event_file.name, event_file.read_bytes())
    assert tb.source == "TensorBoard event file" and set(tb.metrics) == set(VERL_METRICS)
    for key in VERL_METRICS:
        expected = np.array([float(verl_data(s)[key]) for s in range(1, 12)], dtype=np.float32)
        assert tb.series[key].steps.tolist() == list(range(1, 12))
        np.testing.assert_array_equal(tb.series[key].values, expected.astype(np.float64))  # NaN and inf kept


def test_verl_console_lines_as_its_logger_prints_them(verl_site):
    """LocalLogger prints concat_dict_to_str: ``step:N - key:pformat(value) - ...`` (numpy scalars as np.float64(..))."""
    import numbers
    import pprint

    namespace = {"numbers": numbers, "pprint": pprint}
    path = verl_site / "verl" / "utils" / "logger" / "aggregate_logger.py"
    concat = _harness.load_functions(path, ["concat_dict_to_str"], namespace)["concat_dict_to_str"]
    text = "\n".join(
        [
            "(TaskRunner pid=2915798) Training Progress: 0%|",
            *[f"(TaskRunner pid=1) {concat(verl_data(s), step=s)}" for s in range(1, 12)],
        ]
    )
    assert "np.float64(" in text  # the case the reader must unwrap
    (run,) = read_log("train.log", text.encode())
    assert run.source.startswith("verl console lines")
    for key in VERL_METRICS:  # pformat prints each number's shortest repr (a float32's in float32 digits)
        expected = np.array([float(str(verl_data(s)[key])) for s in range(1, 12)])
        np.testing.assert_array_equal(run.series[key].values, expected)


def test_a_console_line_pasted_from_an_issue():
    """verl#498's first line as its user pasted it (three decimals; nan): read as written."""
    line = (
        "step:1 - global_seqlen/min:2780.000 - critic/vf_loss:nan - critic/vf_clipfrac:0.000 - critic/vpred_mean:nan "
        "- critic/returns/mean:0.592 - critic/values/mean:-2.047 - critic/values/max:13.812 - "
        "critic/vf_explained_var:-72.348 - timing_s/gen:10.7"
    )
    (run,) = read_log("verl498.txt", line.encode())
    assert math.isnan(run.series["critic/vf_loss"].values[0])
    assert run.series["critic/vf_explained_var"].values.tolist() == [-72.348]
    assert run.series["critic/values/max"].steps.tolist() == [1]


def test_torch_summary_writer_old_and_new_style_scalars(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "run-a"))
    for step in range(0, 50, 5):
        writer.add_scalar("train/value_loss", 1.0 / (step + 1), step)
        writer.add_scalar("train/explained_variance", step / 100, step, new_style=True)  # a tensor, plugin "scalars"
        writer.add_histogram("weights", np.arange(10.0) + step, step)  # not a scalar: ignored
        writer.add_text("note", f"step {step}", step)
    writer.close()
    (path,) = (tmp_path / "run-a").iterdir()
    (run,) = read_log(path.name, path.read_bytes())
    assert set(run.metrics) == {"train/value_loss", "train/explained_variance"}
    steps = list(range(0, 50, 5))
    np.testing.assert_array_equal(
        run.series["train/value_loss"].values, np.array([1.0 / (s + 1) for s in steps], np.float32).astype(float)
    )
    np.testing.assert_array_equal(
        run.series["train/explained_variance"].values, np.array([s / 100 for s in steps], np.float32).astype(float)
    )
    assert run.series["train/value_loss"].steps.tolist() == steps


def test_a_resumed_tensorboard_run_in_a_zip_keeps_the_last_write(tmp_path):
    """Two event files in one folder (a run resumed from step 20): TensorBoard's rule, the later write wins."""
    from torch.utils.tensorboard import SummaryWriter

    first = SummaryWriter(str(tmp_path / "logs" / "exp"), filename_suffix=".a")
    for step in range(30):
        first.add_scalar("Loss/value", float(step), step)
    first.close()
    second = SummaryWriter(str(tmp_path / "logs" / "exp"), filename_suffix=".b")
    for step in range(20, 40):
        second.add_scalar("Loss/value", 100.0 + step, step)
    second.close()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted((tmp_path / "logs").rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(tmp_path))
    (run,) = read_log("logs.zip", buffer.getvalue())
    assert run.name == "logs/exp" and run.source == "TensorBoard event files"
    series = run.series["Loss/value"]
    assert series.steps.tolist() == list(range(40))
    assert series.values.tolist() == [float(s) for s in range(20)] + [100.0 + s for s in range(20, 40)]
    assert any("repeated" in n for n in run.notes)


@pytest.fixture(scope="module")
def sb3_logs(verl_site, tmp_path_factory):
    """A short real PPO run (CartPole, 2 updates) logging to CSV, JSON and TensorBoard, and what it logged."""
    import gymnasium as gym
    import stable_baselines3 as sb3
    import torch
    from stable_baselines3.common.logger import KVWriter, configure

    folder = tmp_path_factory.mktemp("sb3")
    written: list[dict] = []

    class Recorder(KVWriter):
        def write(self, key_values, key_excluded, step=0):
            written.append({k: float(v) for k, v in key_values.items() if isinstance(v, int | float | np.number)})

        def close(self):
            pass

    torch.manual_seed(0)
    model = sb3.PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu")
    logger = configure(str(folder), ["csv", "json", "tensorboard"])
    logger.output_formats.append(Recorder())
    model.set_logger(logger)
    model.learn(total_timesteps=192)
    logger.close()
    return folder, [w for w in written if "train/value_loss" in w]


def test_sb3_logger_outputs(sb3_logs):
    folder, written = sb3_logs
    assert len(written) >= 2
    steps = [int(w["time/total_timesteps"]) for w in written]
    expected = [w["train/value_loss"] for w in written]
    (csv_run,) = read_log("progress.csv", (folder / "progress.csv").read_bytes())
    (json_run,) = read_log("progress.json", (folder / "progress.json").read_bytes())
    (event_file,) = [p for p in folder.rglob("*tfevents*")]
    (tb_run,) = read_log(event_file.name, event_file.read_bytes())
    for run in (csv_run, json_run):
        series = run.series["train/value_loss"]
        assert series.steps.tolist() == steps
        assert series.values.tolist() == pytest.approx(expected, rel=1e-6)  # CSV keeps SB3's printed digits
    assert tb_run.series["train/value_loss"].steps.tolist() == steps
    np.testing.assert_array_equal(tb_run.series["train/value_loss"].values, np.float32(expected).astype(float))
    assert "train/clip_fraction" in tb_run.metrics  # the policy's: recognition must not read it as the critic's


def test_wandb_panel_export_and_run_history(tmp_path):
    """A panel's Export CSV ("Step", "<run> - <metric>", sampled __MIN/__MAX) and a run's history (_step)."""
    panel = pd.DataFrame(
        {
            "Step": [0, 10, 20, 30],
            "ppo-eps0.2 - critic/vf_clipfrac": [0.1, 0.2, "", 0.4],
            "ppo-eps0.2 - critic/vf_clipfrac__MIN": [0.05, 0.1, "", 0.3],
            "ppo-eps0.2 - critic/vf_clipfrac__MAX": [0.2, 0.3, "", 0.5],
            "ppo-eps0.5 - critic/vf_clipfrac": [0.01, "", 0.03, "NaN"],
        }
    )
    runs = read_log("wandb_export.csv", panel.to_csv(index=False).encode())
    assert [r.name for r in runs] == ["ppo-eps0.2", "ppo-eps0.5"]
    a, b = runs
    assert a.source == "W&B panel export (CSV)" and a.metrics == ["critic/vf_clipfrac"]
    assert a.series["critic/vf_clipfrac"].steps.tolist() == [0, 10, 30]  # the empty cell: not logged at 20
    assert a.series["critic/vf_clipfrac"].values.tolist() == [0.1, 0.2, 0.4]
    assert b.series["critic/vf_clipfrac"].steps.tolist() == [0, 20, 30]
    assert math.isnan(b.series["critic/vf_clipfrac"].values[-1])  # a logged NaN is kept

    history = pd.DataFrame(
        {"_step": [0, 1, 2], "_runtime": [1.0, 2.0, 3.0], "critic/vf_loss": [0.3, np.nan, 0.1], "text": ["a", "b", "c"]}
    )
    (csv_run,) = read_log("history.csv", history.to_csv(index=False).encode())
    assert csv_run.source == "W&B run history (CSV)"
    assert csv_run.series["critic/vf_loss"].steps.tolist() == [0, 2]  # pandas writes NaN as an empty cell
    assert "text" not in csv_run.series and any("text (3)" in n for n in csv_run.notes)
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"_step": [0, 1, 2, 3], "critic/vf_loss": pa.array([0.3, math.nan, None, 0.1], pa.float64())})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    (pq_run,) = read_log("history.parquet", buffer.getvalue())
    assert pq_run.series["critic/vf_loss"].steps.tolist() == [0, 1, 3]  # null: not logged; NaN: logged as NaN
    assert math.isnan(pq_run.series["critic/vf_loss"].values[1])


def _mlflow_sqlite(path: Path) -> None:
    """MLflow's SQL store as its schema defines it (mlflow/store/tracking/dbmodels/models.py): runs and metrics,
    NaN as is_nan = 1 with value 0, inf as ±1.7976931348623157e308 (SqlAlchemyStore.log_metric)."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name VARCHAR(256));
        CREATE TABLE runs (run_uuid VARCHAR(32) PRIMARY KEY, name VARCHAR(250), experiment_id INTEGER);
        CREATE TABLE metrics (key VARCHAR(250), value FLOAT NOT NULL, timestamp BIGINT, run_uuid VARCHAR(32),
            step BIGINT NOT NULL DEFAULT 0, is_nan BOOLEAN NOT NULL DEFAULT 0,
            PRIMARY KEY (key, timestamp, step, run_uuid, value, is_nan));
        INSERT INTO experiments VALUES (1, 'proj');
        INSERT INTO runs VALUES ('a1', 'exp-1', 1), ('b2', 'exp-2', 1);
        """
    )
    rows = []
    for step in range(5):
        rows.append(("critic/vf_loss", 0.5 / (step + 1), 1000 + step, "a1", step, 0))
        rows.append(("critic/vf_loss", 2.0, 1000 + step, "b2", step, 0))
    rows.append(("critic/vf_loss", 0.0, 2000, "a1", 5, 1))  # NaN
    rows.append(("critic/vf_loss", 1.7976931348623157e308, 2001, "a1", 6, 0))  # +inf
    rows.append(("critic/vf_loss", 9.0, 3000, "a1", 2, 0))  # step 2 logged again, later: it wins
    conn.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


def test_mlflow_sqlite_store(tmp_path):
    path = tmp_path / "mlruns.db"
    _mlflow_sqlite(path)
    runs = read_log(path.name, path.read_bytes())
    by_name = {r.name: r for r in runs}
    assert set(by_name) == {"exp-1", "exp-2"}
    a = by_name["exp-1"].series["critic/vf_loss"]
    assert a.steps.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert a.values[:5].tolist() == [0.5, 0.25, 9.0, 0.125, 0.1]
    assert math.isnan(a.values[5]) and a.values[6] == math.inf
    assert by_name["exp-2"].series["critic/vf_loss"].values.tolist() == [2.0] * 5


def test_an_sqlite_file_that_is_not_an_mlflow_store(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE VIEW metrics AS SELECT 1 AS key")  # a view named like the table: refused
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match="not an MLflow store"):
        read_log(path.name, path.read_bytes())


def test_mlflow_file_store_folder_zipped(tmp_path):
    """mlruns/<experiment>/<run>/metrics/<key> with lines ``timestamp value step`` (FileStore), meta.yaml for
    the run's name; keys with slashes are nested folders."""
    run_dir = tmp_path / "mlruns" / "1" / "0a1b"
    (run_dir / "metrics" / "critic").mkdir(parents=True)
    (run_dir / "meta.yaml").write_text("artifact_uri: file:///x\nrun_name: verl-gsm8k\nstatus: 3\n")
    (run_dir / "metrics" / "critic" / "vf_loss").write_text("1000 0.5 0\n1001 0.25 1\n1002 nan 2\n1003 inf 3\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(tmp_path.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(tmp_path))
    (run,) = read_log("mlruns.zip", buffer.getvalue())
    assert run.name == "verl-gsm8k" and run.source == "MLflow run folder (mlruns)"
    values = run.series["critic/vf_loss"].values
    assert values[:2].tolist() == [0.5, 0.25] and math.isnan(values[2]) and values[3] == math.inf


def test_jsonl_with_a_step_key_and_without(tmp_path):
    lines = [json.dumps({"_step": s, "loss/value_avg": s / 10, "media": {"_type": "image"}}) for s in (3, 1, 2)]
    (run,) = read_log("wandb-history.jsonl", "\n".join(lines).encode())
    assert run.series["loss/value_avg"].steps.tolist() == [1, 2, 3]  # sorted
    assert "media" not in run.metrics
    assert any("go back" in n for n in run.notes)
    (rows,) = read_log("x.jsonl", b'{"a": 1}\n{"a": 2}\n')
    assert rows.series["a"].steps.tolist() == [0, 1] and any("line number" in n for n in rows.notes)
