"""Does value clipping help? Sweep eps over seeds with real PPO runs: ``python -m valueloss.tools.ablate``.

    python -m valueloss.tools.ablate --env CartPole-v1 --dialect verl --eps off,0.2,1,10 --seeds 5 \\
        --steps 100000 --out sweeps/cartpole

Every (value normalisation, eps, seed) is one run of :func:`valueloss.tools.ppo.train` at CleanRL's
settings for the environment. Runs go to a local process pool (``--workers``, a progress bar over
environment steps) or, with ``--ray ADDRESS`` (``auto`` for the cluster this machine belongs to,
``local`` to start one here), each run is a Ray task. Each finished run is written at once under
``OUT/runs/``, so rerunning the same command resumes where it stopped; at the end ``OUT`` holds

- ``curves.csv`` and ``curves.parquet``: one row per run and update (the run's settings, then
  ``valueloss.tools.ppo.UPDATE_COLUMNS``),
- ``runs.csv``: one row per run (its wall time and steps per second),
- ``settings.json``: the sweep, CleanRL's settings used, the library versions, the machine, and each
  session's wall time.

A run is deterministic per seed on CPU (same command, same curves bit for bit); only wall times vary.
Results files are read back with :func:`load_results`, which validates them (CSV or Parquet, never
unpickled) and refuses a file that this tool did not write.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..dialects import check_clip_param, get_dialect
from .ppo import ENVS, MAX_TOTAL_STEPS, UPDATE_COLUMNS, PPOConfig, env_spec, train
from .processes import plain_main

__all__ = [
    "CURVE_COLUMNS",
    "MAX_RUNS",
    "APP_ENVS",
    "SWEEP_LOCK",
    "SweepSpec",
    "eps_label",
    "load_results",
    "load_sweep",
    "main",
    "parse_eps",
    "run_sweep",
]

FORMAT = "valueloss-ablate/1"  # settings.json's "format": a file from elsewhere does not carry it
RUN_COLUMNS = ("env_id", "dialect", "value_norm", "eps_label", "eps", "seed")
CURVE_COLUMNS = RUN_COLUMNS + UPDATE_COLUMNS
MAX_RUNS = 1000  # runs in one sweep
MAX_EPS = 16  # eps values in one sweep
MAX_SEEDS = 200
MAX_SWEEP_STEPS = 2_000_000_000  # environment steps over all runs of one sweep
MAX_RESULTS_BYTES = 64 * 1024 * 1024  # a results file read back
MAX_RESULTS_ROWS = 2_000_000
MAX_RESULTS_UNPACKED = 512 * 1024 * 1024  # a Parquet file's columns, decompressed

# One sweep at a time per server process (the app's "run a small sweep" takes it without waiting). A plain
# module-level lock: Streamlit's caches can be cleared by any visitor, this cannot.
SWEEP_LOCK = threading.Lock()


def parse_eps(text: str) -> tuple[float | None, ...]:
    """``"off,0.2,1,10"`` -> ``(None, 0.2, 1.0, 10.0)``: "off" or numbers >= 0, each at most once."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("eps must be a comma-separated list such as off,0.2,1,10")
    values: list[float | None] = []
    for part in text.split(","):
        word = part.strip().lower()
        if word in ("off", "none"):
            value = None
        else:
            try:
                value = float(word)
            except ValueError:
                raise ValueError(f"eps {part.strip()!r} is neither 'off' nor a number") from None
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"eps must be 'off' or a finite number >= 0, got {part.strip()!r}")
        if value in values:
            raise ValueError(f"eps {part.strip()!r} is listed twice")
        values.append(value)
    if len(values) > MAX_EPS:
        raise ValueError(f"at most {MAX_EPS} eps values in one sweep, got {len(values)}")
    return tuple(values)


def eps_label(eps: float | None) -> str:
    """How a run's eps is named in files and legends: "off", or the number as typed (``0.2``, ``10``)."""
    return "off" if eps is None else f"{eps:g}"


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep: one environment and dialect, every eps x seed (x value normalisation)."""

    env_id: str
    dialect: str = "verl"
    eps: tuple[float | None, ...] = (None, 0.2, 1.0, 10.0)
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    total_steps: int = 100_000
    value_norm: tuple[bool, ...] = (False,)

    def validated(self) -> SweepSpec:
        env_spec(self.env_id)
        get_dialect(self.dialect)
        if not self.eps or len(self.eps) > MAX_EPS:
            raise ValueError(f"a sweep needs 1 to {MAX_EPS} eps values, got {len(self.eps)}")
        for eps in self.eps:
            if eps is not None:
                check_clip_param("eps", self.dialect, eps)
        if not self.seeds or len(self.seeds) > MAX_SEEDS or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"a sweep needs 1 to {MAX_SEEDS} distinct seeds, got {list(self.seeds)[:10]}")
        if self.value_norm not in ((False,), (True,), (False, True)):
            raise ValueError("value_norm must be (False,), (True,) or (False, True)")
        runs = len(self.value_norm) * len(self.eps) * len(self.seeds)
        if runs > MAX_RUNS:
            raise ValueError(f"at most {MAX_RUNS} runs in one sweep, this one has {runs}")
        self.configs_unchecked()  # PPOConfig.for_env checks each seed and the steps, naming a bad one
        total = self.total_steps * runs
        if total > MAX_SWEEP_STEPS:
            raise ValueError(
                f"this sweep would take {total:,} environment steps in all (at most {MAX_SWEEP_STEPS:,}): "
                "fewer steps, seeds or eps values"
            )
        return self

    def configs_unchecked(self) -> list[PPOConfig]:
        return [
            PPOConfig.for_env(
                self.env_id, seed=seed, total_steps=self.total_steps, dialect=self.dialect, eps=eps, value_norm=vn
            )
            for vn in self.value_norm
            for eps in self.eps
            for seed in self.seeds
        ]

    def configs(self) -> list[PPOConfig]:
        """Every run, in a fixed order (value normalisation, eps, seed)."""
        return self.validated().configs_unchecked()

    def to_json(self) -> dict:
        d = asdict(self)
        d["eps"] = [eps_label(e) for e in self.eps]
        return json.loads(json.dumps(d))  # lists, as settings.json reads back


def run_key(config: PPOConfig) -> str:
    """The file name of one run's results."""
    return f"vn-{int(config.value_norm)}__eps-{eps_label(config.eps)}__seed-{config.seed}"


def run_frame(config: PPOConfig, rows: list[dict]) -> pd.DataFrame:
    """One run's rows with its settings in front (the curves table's layout)."""
    frame = pd.DataFrame(rows, columns=list(UPDATE_COLUMNS))
    settings = {
        "env_id": config.env_id,
        "dialect": config.dialect,
        "value_norm": config.value_norm,
        "eps_label": eps_label(config.eps),
        "eps": float("nan") if config.eps is None else float(config.eps),
        "seed": config.seed,
    }
    for i, (name, value) in enumerate(settings.items()):
        frame.insert(i, name, value)
    return frame


def run_one(config: PPOConfig, progress_queue=None) -> dict:
    """One run, in whatever process runs it (a pool worker or a Ray task): its rows and wall time."""
    key = run_key(config)
    on_update = None
    if progress_queue is not None:

        def on_update(row: dict) -> None:
            progress_queue.put((key, row["global_step"]))

    result = train(config, on_update=on_update)
    return {"key": key, "rows": result.rows, "wall_s": result.wall_s, "host": platform.node()}


# ---------------------------------------------------------------------------------------------------------
# Files


def versions() -> dict:
    """The library versions and machine a sweep ran with (settings.json)."""
    import gymnasium
    import torch

    from .. import __version__

    out = {
        "valueloss": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "gymnasium": gymnasium.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads_per_run": 1,
        "code_sha256": code_hash(),
    }
    try:
        import mujoco

        out["mujoco"] = mujoco.__version__
    except ImportError:
        out["mujoco"] = None
    return out


def code_hash() -> str:
    """A hash of the code a run's numbers depend on (the core and the trainer): two sweeps with the same hash
    and settings give the same curves."""
    import hashlib

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted([*root.glob("*.py"), root / "tools" / "ppo.py"]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _prepare_out(spec: SweepSpec, out: Path) -> dict:
    """settings.json for this sweep: a new one, or the one already there when it describes the same sweep
    (then the runs already written are kept). A different sweep in the same folder is refused."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs").mkdir(exist_ok=True)
    path = out / "settings.json"
    if path.exists():
        settings = _read_settings(path)
        if settings["sweep"] != spec.to_json():
            raise ValueError(
                f"{out} holds a different sweep ({settings['sweep']}); choose another --out, or rerun that sweep's "
                "own command to resume it"
            )
        return settings
    first = spec.configs()[0]
    cleanrl = {k: v for k, v in asdict(first).items() if k not in ("env_id", "seed", "eps", "value_norm", "dialect")}
    return {"format": FORMAT, "sweep": spec.to_json(), "trainer": cleanrl, "sessions": []}


def _read_settings(path: Path) -> dict:
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is not a sweep's settings.json ({err})") from err
    if not isinstance(settings, dict) or settings.get("format") != FORMAT:
        raise ValueError(f"{path} was not written by python -m valueloss.tools.ablate (format {FORMAT})")
    return settings


def _done_runs(out: Path) -> dict[str, dict]:
    done = {}
    for meta in (out / "runs").glob("*.json"):
        csv_path = meta.with_suffix(".csv")
        if csv_path.exists():
            done[meta.stem] = json.loads(meta.read_text())
    return done


def _save_run(out: Path, config: PPOConfig, result: dict) -> None:
    frame = run_frame(config, result["rows"])
    _write_atomic(out / "runs" / f"{result['key']}.csv", frame.to_csv(index=False).encode())
    steps = result["rows"][-1]["global_step"] if result["rows"] else 0
    meta = {
        "key": result["key"],
        "eps_label": eps_label(config.eps),
        "seed": config.seed,
        "value_norm": config.value_norm,
        "wall_s": round(result["wall_s"], 3),
        "steps": steps,
        "steps_per_s": round(steps / result["wall_s"], 1) if result["wall_s"] > 0 else None,
        "host": result.get("host"),
    }
    _write_atomic(out / "runs" / f"{result['key']}.json", json.dumps(meta).encode())


def _combine(out: Path, spec: SweepSpec, settings: dict) -> None:
    """curves.csv / curves.parquet / runs.csv from the finished runs, in the sweep's run order."""
    keys = [run_key(c) for c in spec.configs()]
    frames = [pd.read_csv(out / "runs" / f"{k}.csv", keep_default_na=False, na_values=["", "nan", "NaN"]) for k in keys]
    curves = pd.concat(frames, ignore_index=True)
    curves = _typed(curves)
    curves.to_csv(out / "curves.csv", index=False)
    curves.to_parquet(out / "curves.parquet", index=False)
    metas = [json.loads((out / "runs" / f"{k}.json").read_text()) for k in keys]
    pd.DataFrame(metas).to_csv(out / "runs.csv", index=False)
    settings["runs_wall_s"] = round(sum(m["wall_s"] for m in metas), 1)
    settings["steps_per_s_per_run"] = round(float(np.median([m["steps_per_s"] for m in metas])), 1)


def run_sweep(
    spec: SweepSpec,
    out: str | os.PathLike,
    *,
    workers: int = 1,
    ray_address: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run every run of ``spec`` not yet in ``out`` and write the combined results; returns the curves.

    ``workers`` processes locally, or every run as a Ray task when ``ray_address`` is given ("auto", an
    address, or "local" to start Ray on this machine)."""
    spec = spec.validated()
    out = Path(out)
    settings = _prepare_out(spec, out)
    _write_atomic(out / "settings.json", json.dumps(settings, indent=2).encode())
    todo = [c for c in spec.configs() if run_key(c) not in _done_runs(out)]
    session: dict[str, object] = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "executor": "ray" if ray_address else "process pool",
        "workers": None if ray_address else workers,
        "runs": len(todo),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    start = time.perf_counter()
    settings["sessions"].append(session)

    def keep_time(runs_done: int) -> None:
        """The session's wall time so far, written after every finished run: a sweep stopped part way (Ctrl-C,
        a killed job) keeps the time its finished runs took, and the recorded wall time stays true."""
        session.update(wall_s=round(time.perf_counter() - start, 1), runs_done=runs_done)
        settings["wall_s"] = round(sum(s["wall_s"] for s in settings["sessions"]), 1)
        _write_atomic(out / "settings.json", json.dumps(settings, indent=2).encode())

    keep_time(0)
    if todo:
        if ray_address:
            _run_ray(todo, out, address=ray_address, progress=progress, saved=keep_time)
        else:
            _run_pool(todo, out, workers=workers, progress=progress, saved=keep_time)
    keep_time(len(todo))
    session["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    settings["versions"] = versions()
    _combine(out, spec, settings)
    _write_atomic(out / "settings.json", json.dumps(settings, indent=2).encode())
    return load_sweep(out)[0]


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="step", unit_scale=True, disable=not enabled, smoothing=0.05, file=sys.stderr)


def _steps(todo: list[PPOConfig]) -> int:
    """The environment steps these runs take (whole rollouts: a run stops at the last full batch)."""
    return sum(c.num_updates * c.batch_size for c in todo)


def _run_pool(
    todo: list[PPOConfig], out: Path, *, workers: int, progress: bool, saved: Callable[[int], None] = lambda n: None
) -> None:
    """A local process pool (spawned workers: safe beside threads), a progress bar over environment steps
    that the workers report after each update."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")
    workers = max(1, min(int(workers), len(todo)))
    seen: dict[str, int] = {}  # steps shown so far, per run

    def advance(key: str, step: int) -> None:
        bar.update(step - seen.get(key, 0))
        seen[key] = step

    with plain_main(run_one):  # the manager and the workers start here (the pool starts them at the first submit)
        manager = ctx.Manager()
    with manager, ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        queue = manager.Queue()
        bar = _bar(_steps(todo), progress)
        with plain_main(run_one):
            pending = {pool.submit(run_one, c, queue): c for c in todo}
        try:
            while pending:
                finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                while not queue.empty():
                    advance(*queue.get())
                for future in finished:
                    config = pending.pop(future)
                    result = future.result()
                    _save_run(out, config, result)
                    saved(len(todo) - len(pending))
                    advance(result["key"], config.num_updates * config.batch_size)
                    bar.set_postfix_str(f"{len(todo) - len(pending)}/{len(todo)} runs")
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        finally:
            bar.close()


def _run_ray(
    todo: list[PPOConfig], out: Path, *, address: str, progress: bool, saved: Callable[[int], None] = lambda n: None
) -> None:
    """Every run a Ray task (one CPU each) on the cluster at ``address``; the driver writes the files."""
    try:
        import ray
    except ImportError as err:
        raise ValueError("--ray needs Ray: pip install 'valueloss[ray]'") from err
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(run_one)
        pending = {task.remote(c): c for c in todo}
        bar = _bar(_steps(todo), progress)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                config = pending.pop(ready[0])
                result = ray.get(ready[0])
                _save_run(out, config, result)
                saved(len(todo) - len(pending))
                bar.update(config.num_updates * config.batch_size)
                bar.set_postfix_str(f"{len(todo) - len(pending)}/{len(todo)} runs")
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            bar.close()
    finally:
        if started_here:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------------------
# A small sweep inside a server process (the app): bounded, one at a time, cancellable between updates

APP_ENVS = ("CartPole-v1", "Acrobot-v1")  # a few seconds per 10,000 steps
APP_MAX_STEPS = 50_000  # per run
APP_MAX_SEEDS = 3
APP_MAX_EPS = 4


def check_app_bounds(spec: SweepSpec) -> SweepSpec:
    """The limits of a sweep started from the app (a shared server): a ValueError says which one is hit."""
    spec = spec.validated()
    if spec.env_id not in APP_ENVS:
        raise ValueError(f"the app runs {', '.join(APP_ENVS)}; run {spec.env_id} with the CLI")
    if spec.total_steps > APP_MAX_STEPS:
        raise ValueError(f"the app runs at most {APP_MAX_STEPS:,} steps per run, got {spec.total_steps:,}: use the CLI")
    if len(spec.seeds) > APP_MAX_SEEDS or len(spec.eps) > APP_MAX_EPS or len(spec.value_norm) > 1:
        raise ValueError(
            f"the app runs at most {APP_MAX_EPS} eps values x {APP_MAX_SEEDS} seeds, one value normalisation: "
            "use the CLI for more"
        )
    return spec


def run_here(
    spec: SweepSpec,
    on_progress: Callable[[int, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> pd.DataFrame | None:
    """Every run of ``spec`` one after another in this process (the caller holds ``SWEEP_LOCK``).

    ``on_progress(run_index, steps_done, steps_total)`` after each update; ``should_stop()`` is asked
    before each update, and a True ends the sweep (returns None: nothing is kept)."""
    frames = []
    for i, config in enumerate(spec.configs()):

        def progress(row: dict, i: int = i) -> None:
            if on_progress is not None:
                on_progress(i, row["global_step"], spec.total_steps)

        result = train(config, on_update=progress, should_stop=should_stop)
        if not result.finished:
            return None
        frames.append(run_frame(config, result.rows))
    return _checked(pd.concat(frames, ignore_index=True), "this sweep")


def recorded_sweeps(directory: str | os.PathLike, *, checks: bool = False) -> list[Path]:
    """The finished sweeps under ``directory`` (folders with settings.json and curves.parquet), by name: the
    ablations, or with ``checks`` the trainer checks (folders named ``check-...``)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return [p for p in _finished(directory) if p.name.startswith("check-") == checks]


def _finished(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if (p / "settings.json").is_file() and (p / "curves.parquet").is_file()
    )


# ---------------------------------------------------------------------------------------------------------
# Reading results back


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    types = {"env_id": str, "dialect": str, "eps_label": str, "value_norm": bool, "seed": "int64"}
    types.update({c: "int64" for c in ("update", "global_step", "episodes")})
    for name in CURVE_COLUMNS:
        if name not in types:
            types[name] = "float64"
    return frame.astype(types)


class _Refused(ValueError):
    """A file this module read and refused (as opposed to one pyarrow or pandas could not parse)."""


def load_results(data: bytes, name: str) -> pd.DataFrame:
    """A curves file (CSV or Parquet, as this tool writes them), checked column by column.

    Bounded (``MAX_RESULTS_BYTES``, ``MAX_RESULTS_ROWS``); never unpickled; a file that lacks the columns
    this tool writes, or whose numbers cannot be a sweep's, is refused with a message that says why."""
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"results data must be bytes, got {type(data).__name__}")
    if len(data) > MAX_RESULTS_BYTES:
        raise ValueError(
            f"{name}: {len(data) / 2**20:.1f} MiB is more than the {MAX_RESULTS_BYTES // 2**20} MiB allowed"
        )
    lower = str(name).lower()
    try:
        if lower.endswith(".parquet"):
            import pyarrow.parquet as pq

            # The footer first: the row count and the decompressed size are known before anything is read.
            parquet = pq.ParquetFile(io.BytesIO(data))
            meta = parquet.metadata
            missing = [c for c in CURVE_COLUMNS if c not in parquet.schema_arrow.names]
            if missing:
                raise _Refused(_not_ours(name, missing))
            if meta.num_rows > MAX_RESULTS_ROWS:
                raise _Refused(f"{name}: {meta.num_rows:,} rows, at most {MAX_RESULTS_ROWS:,}")
            unpacked = sum(
                meta.row_group(g).column(c).total_uncompressed_size
                for g in range(meta.num_row_groups)
                for c in range(meta.num_columns)
            )
            if unpacked > MAX_RESULTS_UNPACKED:
                raise _Refused(
                    f"{name} unpacks to {unpacked / 2**20:,.0f} MiB, more than {MAX_RESULTS_UNPACKED // 2**20} MiB"
                )
            frame = parquet.read(columns=list(CURVE_COLUMNS)).to_pandas()
        elif lower.endswith(".csv"):
            head = data[:4096].decode("utf-8", errors="replace").splitlines()[:1]
            columns = [c.strip() for c in head[0].split(",")] if head else []
            missing = [c for c in CURVE_COLUMNS if c not in columns]
            if missing:
                raise _Refused(_not_ours(name, missing))
            frame = pd.read_csv(
                io.BytesIO(data),
                usecols=list(CURVE_COLUMNS),
                nrows=MAX_RESULTS_ROWS + 1,
                keep_default_na=False,
                na_values=["", "nan", "NaN"],
                dtype={"env_id": str, "dialect": str, "eps_label": str},
            )
            if len(frame) > MAX_RESULTS_ROWS:
                raise _Refused(f"{name}: more than {MAX_RESULTS_ROWS:,} rows")
        else:
            raise _Refused(
                f"{name}: a results file is curves.csv or curves.parquet, from python -m valueloss.tools.ablate"
            )
    except _Refused:
        raise
    except Exception as err:  # a damaged or foreign file: pyarrow and pandas raise many kinds
        raise ValueError(f"{name} could not be read as a results file ({type(err).__name__}: {err})") from None
    return _checked(frame[list(CURVE_COLUMNS)], name)


def _not_ours(name: str, missing: list[str]) -> str:
    return (
        f"{name} is not a results file of python -m valueloss.tools.ablate: it lacks the columns "
        f"{', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}"
    )


def _typed_frame(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Every column in its dtype (value_norm a bool, "true"/"false" text included), or a ValueError naming the file."""
    try:
        value_norm = frame["value_norm"]
        if not pd.api.types.is_bool_dtype(value_norm):
            value_norm = value_norm.astype(str).str.lower().map({"true": True, "false": False})
            if value_norm.isna().any():
                raise ValueError("value_norm must be True or False")
        return _typed(frame.assign(value_norm=value_norm))
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name}: a column has values of the wrong kind ({err})") from None


def _check_eps_labels(frame: pd.DataFrame, name: str) -> None:
    """At most MAX_EPS eps values, each row's eps the one its label names."""
    labels = frame["eps_label"].unique()
    if len(labels) > MAX_EPS:
        raise ValueError(f"{name}: {len(labels)} eps values, at most {MAX_EPS}")
    for label in labels:
        (eps,) = parse_eps(label)
        rows = frame.loc[frame["eps_label"] == label, "eps"]
        if (eps is None and rows.notna().any()) or (eps is not None and not np.allclose(rows, eps)):
            raise ValueError(f"{name}: the eps column does not match the label {label!r}")


def _checked(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    if frame.empty:
        raise ValueError(f"{name} has no rows")
    frame = _typed_frame(frame, name)
    for column in ("env_id", "dialect"):
        if frame[column].nunique() != 1:
            raise ValueError(f"{name}: a results file holds one sweep (one {column}), found {frame[column].nunique()}")
    env_spec(frame["env_id"].iloc[0])
    get_dialect(frame["dialect"].iloc[0])
    _check_eps_labels(frame, name)
    if frame["seed"].nunique() > MAX_SEEDS or (frame["seed"] < 0).any():
        raise ValueError(f"{name}: seeds must be 0 or more, at most {MAX_SEEDS} of them")
    numbers = frame[list(UPDATE_COLUMNS)].to_numpy(dtype=float)
    if np.isinf(numbers).any():
        raise ValueError(f"{name}: infinite numbers in the results")
    must_be_finite = ["update", "global_step", "episodes", "value_loss", "return_std"]
    if frame[must_be_finite].isna().any().any():
        raise ValueError(f"{name}: missing numbers in {', '.join(must_be_finite)}")
    if (frame["global_step"] > MAX_TOTAL_STEPS).any() or (frame["global_step"] <= 0).any():
        raise ValueError(f"{name}: global_step must be between 1 and {MAX_TOTAL_STEPS:,}")
    clip = frame["vf_clipfrac"].dropna()
    if ((clip < 0) | (clip > 1)).any():
        raise ValueError(f"{name}: vf_clipfrac must lie in [0, 1]")
    runs = frame.groupby(["value_norm", "eps_label", "seed"], sort=False)["global_step"]
    if not runs.apply(lambda s: bool(np.all(np.diff(s.to_numpy()) > 0))).all():
        raise ValueError(f"{name}: global_step must increase within each run")
    return frame.reset_index(drop=True)


def load_sweep(directory: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """A finished sweep folder: its curves (validated) and settings.json."""
    directory = Path(directory)
    settings = _read_settings(directory / "settings.json")
    path = directory / "curves.parquet"
    if not path.exists():
        raise ValueError(f"{directory} has no curves.parquet: the sweep has not finished (rerun its command)")
    return load_results(path.read_bytes(), path.name), settings


# ---------------------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m valueloss.tools.ablate",
        description="Sweep the value-loss clip eps over seeds with real PPO runs (CleanRL's settings).",
    )
    ap.add_argument("--env", required=True, help=f"one of: {', '.join(ENVS)}")
    ap.add_argument("--dialect", default="verl", help="whose value loss the critic trains with (default verl)")
    ap.add_argument("--eps", default="off,0.2,1,10", help="comma-separated: off or numbers >= 0 (default off,0.2,1,10)")
    ap.add_argument("--seeds", default="5", help="a count N (seeds 1..N) or a list such as 1,2,7 (default 5)")
    ap.add_argument(
        "--steps", type=int, default=None, help="environment steps per run (default: CleanRL's for the env)"
    )
    ap.add_argument("--value-norm", choices=("off", "on", "both"), default="off", help="value normalisation")
    ap.add_argument("--out", default=None, help="results folder (default sweeps/<env>-<dialect>); rerun to resume")
    ap.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1), help="local processes")
    ap.add_argument(
        "--ray", metavar="ADDRESS", default=None, help="run each run as a Ray task: auto, an address, or local"
    )
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def parse_seeds(text: str) -> tuple[int, ...]:
    text = str(text).strip()
    try:
        if "," not in text:
            n = int(text)
            if not 1 <= n <= MAX_SEEDS:
                raise ValueError(f"--seeds must be 1 to {MAX_SEEDS}, got {n}")
            return tuple(range(1, n + 1))
        return tuple(int(s) for s in text.split(","))
    except ValueError as err:
        if "--seeds" in str(err):
            raise
        raise ValueError(f"--seeds must be a count or a comma-separated list of whole numbers, got {text!r}") from None


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    steps = args.steps if args.steps is not None else PPOConfig.for_env(args.env).total_steps
    value_norm = {"off": (False,), "on": (True,), "both": (False, True)}[args.value_norm]
    return SweepSpec(
        env_id=args.env,
        dialect=args.dialect,
        eps=parse_eps(args.eps),
        seeds=parse_seeds(args.seeds),
        total_steps=steps,
        value_norm=value_norm,
    ).validated()


def summary_lines(curves: pd.DataFrame) -> Iterable[str]:
    """What the CLI prints after a sweep: the verdict, then each eps's final return and AUC with intervals."""
    from ..teach.ablation import eps_in_sigma, interval_text
    from .ablate_stats import summarize

    summary = summarize(curves)
    yield summary.sentence
    for row in summary.per_eps:
        yield (
            f"eps {row.label:>5}{' (value norm)' if row.value_norm else ''}: final return {interval_text(row.final)}, "
            f"AUC {interval_text(row.auc)}, mean vf_clipfrac {row.mean_clipfrac:.3f}, eps = {eps_in_sigma(row.eps_over_sigma)}"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        spec = spec_from_args(args)
        if args.workers < 1 or args.workers > 256:
            raise ValueError(f"--workers must be 1 to 256, got {args.workers}")
        out = Path(args.out or f"sweeps/{args.env}-{args.dialect}")
        curves = run_sweep(spec, out, workers=args.workers, ray_address=args.ray, progress=not args.no_progress)
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    settings = json.loads((out / "settings.json").read_text())
    print(
        f"{len(spec.configs())} runs in {out}/ (curves.csv, curves.parquet, runs.csv, settings.json); "
        f"wall time {settings['wall_s']:.1f} s, {settings['steps_per_s_per_run']:.0f} steps/s per run"
    )
    for line in summary_lines(curves):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
