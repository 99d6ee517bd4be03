"""The critic at scale on real processes: torch.distributed (gloo, CPU, 127.0.0.1 only).

``python -m valueloss.tools.distributed --ranks 2 --micro-batches 4 --scheme verl-engine-local`` starts one
process per rank. Each rank builds the same small critic problem (a linear value head on fixed random
features, ``valueloss.scale.make_problem``), takes its shard of the split (``scale.split_batch``),
all-reduces the token and sequence counts the way verl and OpenRLHF do, and runs the trainer's loop:
per micro-batch ``compute_value_loss`` with the scheme's arguments, ``(loss * scale).backward()``
under ``DistributedDataParallel.no_sync()`` except for the last micro-batch, whose backward lets DDP
average the accumulated gradients over ranks. Rank 0's final gradient is compared with the
single-process gradient of the un-split batch and with the core's closed-form prediction.

Prints a table, writes JSON (``--json``), stops cleanly on Ctrl-C (exit 130) or ``--timeout``
(exit 124), and says so when ``--port`` is busy (exit 2). Its arguments are bounded (ranks, features,
sequences, tokens, seconds: ``LIMITS``), so no command line can allocate gigabytes. No Streamlit here.

The ranks are forked from a forkserver that has imported torch and DDP once (spawning each rank
re-imported them: 15 s instead of 5 for four ranks on two busy cores). For the app, :class:`BackgroundRun`
starts the CLI in a process group of its own, so one ``killpg`` ends the CLI, its forkserver and every
rank, and :class:`RunSlot` keeps to one run per server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import queue as queue_mod
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta

import torch

from .. import _validate as check
from .. import scale
from .processes import plain_main

__all__ = [
    "LIMITS",
    "RunConfig",
    "PortBusyError",
    "RunTimeout",
    "RunFailed",
    "run",
    "stream",
    "parse_line",
    "BackgroundRun",
    "RunSlot",
    "ServerBusy",
    "format_table",
    "main",
]

HOST = "127.0.0.1"
_DTYPES = {"float64": torch.float64, "float32": torch.float32}
# What one run may ask for. Every rank builds the whole (sequences x longest x features) problem in
# float64, so "elements" bounds each process's memory (32 MB); `--features 100000000` used to allocate 89.6 GB.
LIMITS = {"ranks": 8, "features": 256, "sequences": 4096, "length": 8192, "elements": 2**22, "timeout_s": 600.0}
# Modules every rank needs, imported once by the forkserver the ranks are forked from.
_PRELOAD = ["torch", "torch.distributed", "torch.nn.parallel", "torch._dynamo"]


class PortBusyError(RuntimeError):
    """The rendezvous port on 127.0.0.1 is taken."""


class RunTimeout(TimeoutError):
    """The ranks did not finish in time (they are stopped)."""


class RunFailed(RuntimeError):
    """A rank raised; the message carries its traceback's last line."""


@dataclass(frozen=True)
class RunConfig:
    lengths: tuple[int, ...]
    ranks: int = 2
    micro_batches: int | None = 2
    max_token_len: int | None = None
    scheme: str = "verl-global"
    loss_agg_mode: str = "token-mean"
    eps: float = 0.2
    features: int = 4
    seed: int = 0
    dtype: str = "float64"
    timeout_s: float = 60.0

    def validate(self) -> scale.Split:
        """Every check the ranks would hit, and the size limits (``LIMITS``), before anything is started."""
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        timeout = check.real_scalar("timeout_s", self.timeout_s, allow_tensor=False)
        if not 0 < timeout <= LIMITS["timeout_s"]:
            raise ValueError(f"timeout_s must be > 0 and at most {LIMITS['timeout_s']:g} s, got {self.timeout_s!r}")
        check.clip_range("eps", self.eps)
        _bounded("ranks", self.ranks, 1, LIMITS["ranks"])
        _bounded("features", self.features, 1, LIMITS["features"])
        _bounded("seed", self.seed, 0, 2**63 - 1)
        _bounded("the number of sequences", len(self.lengths), 1, LIMITS["sequences"])
        longest = _bounded("the longest sequence", max(self.lengths), 0, LIMITS["length"])
        elements = len(self.lengths) * max(longest, 1) * self.features
        if elements > LIMITS["elements"]:
            raise ValueError(
                f"{len(self.lengths):,} sequences x {longest:,} tokens x {self.features:,} features = {elements:,} "
                f"numbers per rank; the limit is {LIMITS['elements']:,}: use fewer features or shorter sequences"
            )
        scale.get_scheme(self.scheme, self.loss_agg_mode)
        return scale.split_batch(
            list(self.lengths), self.ranks, micro_batches=self.micro_batches, max_token_len=self.max_token_len
        )

    def problem(self) -> scale.ScaleProblem:
        return scale.make_problem(
            list(self.lengths), features=self.features, eps=self.eps, seed=self.seed, dtype=_DTYPES[self.dtype]
        )


def _bounded(name: str, value, low: int, high: float) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, got {type(value).__name__}")
    if not low <= value <= high:
        shown = f"{value:,}" if abs(value) < 10**18 else check.shown_value(value)
        raise ValueError(f"{name} must be between {low:,} and {high:,}, got {shown}")
    return value


def _check_port(port: int) -> int:
    """A free port on 127.0.0.1 (``port=0`` picks one), or ``PortBusyError`` naming the port."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer in 0..65535, got {port!r}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError as err:
            raise PortBusyError(
                f"port {port} on {HOST} is busy ({err.strerror}); pass another --port, or --port 0 to pick a free one"
            ) from err
        return s.getsockname()[1]


def _linear(problem: scale.ScaleProblem) -> torch.nn.Linear:
    f = problem.features.shape[-1]
    model = torch.nn.Linear(f, 1, dtype=problem.features.dtype)
    with torch.no_grad():
        model.weight.copy_(problem.theta[None, :])
        model.bias.copy_(problem.bias.reshape(1))
    return model


def _flat_grad(model: torch.nn.Module) -> list[float]:
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)  # called after backward()
    return torch.cat([g.reshape(-1) for g in grads if g is not None]).tolist()


def _worker(rank: int, config: dict, port: int, out) -> None:
    """One rank: its shard, the trainer's accumulation loop, DDP's average. Reports through ``out``."""
    torch.set_num_threads(1)
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from ..losses import compute_value_loss

    try:
        cfg = RunConfig(**config)
        split = cfg.validate()
        p = cfg.problem()
        scheme = scale.get_scheme(cfg.scheme, cfg.loss_agg_mode)
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://{HOST}:{port}",
            rank=rank,
            world_size=cfg.ranks,
            timeout=timedelta(seconds=max(5.0, cfg.timeout_s)),
        )
        rows = list(split.rank_rows(rank))
        # What the trainers all-reduce: the global token and sequence counts of the mini-batch.
        local = torch.tensor([float(p.mask[rows].sum()), float((p.mask[rows].sum(-1) > 0).sum())], dtype=torch.float64)
        dist.all_reduce(local, op=dist.ReduceOp.SUM)
        model = DDP(_linear(p))
        micro = split.ranks[rank]
        out.put(("connected", rank, len(micro)))
        losses = []
        for j, micro_rows in enumerate(micro):
            idx = list(micro_rows)
            kwargs, factor = scale.micro_loss_kwargs(scheme, split, p.mask, rank, j)
            if scheme.normalise == "global":
                n, g = float(local[0]), float(local[1])
                if scheme.counts_per_gas:
                    n, g = n / len(micro), g / len(micro)
                kwargs = {
                    "dp_size": dist.get_world_size(),
                    "batch_num_tokens": n or None,
                    "global_batch_size": g or None,
                }
            sync = contextlib.nullcontext() if j == len(micro) - 1 else model.no_sync()
            with sync:
                v = model(p.features[idx]).squeeze(-1)
                loss, _ = compute_value_loss(
                    v, p.returns[idx], p.values[idx], p.mask[idx], p.eps, cfg.loss_agg_mode, **kwargs
                )
                (loss * factor).backward()
            losses.append(float(loss.detach()))
            out.put(("step", rank, j + 1, len(micro)))
        logged = sum(losses) if scheme.logged == "sum" else sum(losses) / len(losses)
        out.put(("result", rank, _flat_grad(model.module), losses, logged, local.tolist()))
        dist.barrier()
        dist.destroy_process_group()
        out.close()
        out.join_thread()  # the result is in the pipe: skip the interpreter's slow teardown (torch, dynamo)
        os._exit(0)
    except KeyboardInterrupt:
        out.put(("error", rank, "interrupted"))
    except BaseException as err:  # noqa: BLE001 - report every failure to the parent, then exit
        last = traceback.format_exception_only(type(err), err)[-1].strip()
        out.put(("error", rank, last))


def _reference(cfg: RunConfig, split: scale.Split, p: scale.ScaleProblem) -> dict:
    """Single-process gradient of the un-split batch, and the core's prediction of the split run."""
    from ..losses import compute_value_loss

    model = _linear(p)
    loss, _ = compute_value_loss(model(p.features).squeeze(-1), p.returns, p.values, p.mask, p.eps, cfg.loss_agg_mode)
    loss.backward()
    reference = _flat_grad(model)
    rep = scale.analyse(p, split, cfg.scheme, cfg.loss_agg_mode)
    # chain rule through the linear head: dv/dtheta = x, dv/dbias = 1
    pred_v = rep.predicted
    predicted = torch.cat([(pred_v[..., None] * p.features).sum((0, 1)), pred_v.sum().reshape(1)]).tolist()
    return {
        "reference": reference,
        "reference_loss": float(loss.detach()),
        "predicted": predicted,
        "predicted_logged": rep.logged,
        "multiplier": rep.weights.multiplier,
        "relative_weight_range": list(rep.weights.relative_range()),
        "notes": rep.notes,
    }


def _ratio(g: list[float], ref: list[float]) -> float:
    num = sum(a * b for a, b in zip(g, ref, strict=True))
    den = sum(b * b for b in ref)
    return num / den if den > 0 else math.nan


def _max_abs(a: list[float], b: list[float]) -> float:
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)


def _stop_ranks(procs, out) -> None:
    """Terminate the ranks still alive, kill those that ignore it within 5 s, close the queue. Ranks that never
    started (a start that failed) are skipped, so the failure that stopped them is the one raised."""
    started = [proc for proc in procs if proc.pid is not None]
    for proc in started:
        if proc.is_alive():
            proc.terminate()
    for proc in started:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
    out.close()


def run(cfg: RunConfig, *, port: int = 0, on_progress=None, on_start=None, on_connect=None) -> dict:
    """Start ``cfg.ranks`` processes, wait for their gradients, compare. Raises ``PortBusyError``,
    ``RunTimeout`` (ranks stopped), ``RunFailed`` (a rank's error), ``KeyboardInterrupt`` (ranks stopped).

    Callbacks: ``on_start(port)`` once the processes exist, ``on_connect(rank)`` when a rank has joined
    the group, ``on_progress(rank, step, steps, done, total)`` after each micro-batch of a rank.
    """
    import multiprocessing as mp

    split = cfg.validate()
    port = _check_port(port)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, asdict(cfg), port, out), daemon=True) for r in range(cfg.ranks)]
    results: dict[int, tuple] = {}
    total = cfg.ranks * split.micro_per_rank
    done: dict[int, int] = {}
    start = time.monotonic()
    try:
        with plain_main(_worker):
            for proc in procs:
                proc.start()
        if on_start is not None:
            on_start(port)
        # The single-process reference is computed while the ranks start up.
        p = cfg.problem()
        expected = _reference(cfg, split, p)
        while len(results) < cfg.ranks:
            if time.monotonic() - start > cfg.timeout_s:
                raise RunTimeout(f"the {cfg.ranks} ranks did not finish within {cfg.timeout_s:g} s; they were stopped")
            try:
                msg = out.get(timeout=0.2)
            except queue_mod.Empty:
                dead = [i for i, pr in enumerate(procs) if pr.exitcode not in (None, 0) and i not in results]
                if dead:
                    raise RunFailed(f"rank {dead[0]} exited with code {procs[dead[0]].exitcode}") from None
                continue
            kind, rank = msg[0], msg[1]
            if kind == "error":
                raise RunFailed(f"rank {rank}: {msg[2]}")
            if kind == "connected":
                if on_connect is not None:
                    on_connect(rank)
            elif kind == "step":
                done[rank] = msg[2]
                if on_progress is not None:
                    on_progress(rank, msg[2], msg[3], sum(done.values()), total)
            else:
                results[rank] = msg[2:]
        for proc in procs:  # every result is in: a rank that is slow to exit is killed below
            proc.join(timeout=2.0)
    finally:
        _stop_ranks(procs, out)
    measured = results[0][0]
    per_rank_gap = max(_max_abs(results[r][0], measured) for r in results)
    reference = expected["reference"]
    return {
        "config": asdict(cfg),
        "split": [[list(mb) for mb in rank] for rank in split.ranks],
        "micro_tokens": split.micro_tokens(),
        "port": port,
        "elapsed_s": time.monotonic() - start,
        "measured": measured,
        "predicted": expected["predicted"],
        "reference": reference,
        "max_abs_measured_vs_predicted": _max_abs(measured, expected["predicted"]),
        "max_abs_measured_vs_reference": _max_abs(measured, reference),
        "max_abs_between_ranks": per_rank_gap,
        "measured_ratio": _ratio(measured, reference),
        "predicted_ratio": _ratio(expected["predicted"], reference),
        "multiplier": expected["multiplier"],
        "relative_weight_range": expected["relative_weight_range"],
        "logged_per_rank": [results[r][2] for r in sorted(results)],
        "predicted_logged_per_rank": expected["predicted_logged"],
        "micro_losses": [results[r][1] for r in sorted(results)],
        "global_counts": results[0][3],
        "reference_loss": expected["reference_loss"],
        "notes": expected["notes"],
    }


def format_table(result: dict) -> str:
    """The measured, predicted and single-process gradients side by side, then the summary."""
    names = [f"w[{i}]" for i in range(len(result["measured"]) - 1)] + ["bias"]
    lines = [f"{'param':>8} {'measured (DDP)':>18} {'predicted (core)':>18} {'single process':>18}"]
    for name, m, p, r in zip(names, result["measured"], result["predicted"], result["reference"], strict=True):
        lines.append(f"{name:>8} {m:>18.12g} {p:>18.12g} {r:>18.12g}")
    cfg = result["config"]
    lines += [
        "",
        f"scheme {cfg['scheme']}, {cfg['loss_agg_mode']}, {cfg['ranks']} ranks x "
        f"{len(result['split'][0])} micro-batches, tokens per micro-batch {result['micro_tokens']}",
        f"learning-rate multiplier (core, token-weighted): {result['multiplier']:.6g}; "
        f"gradient ratio <g, g_ref>/|g_ref|^2: measured {result['measured_ratio']:.6g}, "
        f"predicted {result['predicted_ratio']:.6g}",
        f"max |measured - predicted| = {result['max_abs_measured_vs_predicted']:.3g}; "
        f"max |measured - single process| = {result['max_abs_measured_vs_reference']:.3g}; "
        f"ranks agree to {result['max_abs_between_ranks']:.3g}",
        "logged loss per rank: " + ", ".join(f"{x:.6g}" for x in result["logged_per_rank"]),
    ]
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Running the CLI from another program (the app) with progress


def cli_args(cfg: RunConfig, *, port: int = 0, json_path: str | None = None) -> list[str]:
    args = [
        "--ranks", str(cfg.ranks),
        "--lengths", ",".join(str(n) for n in cfg.lengths),
        "--scheme", cfg.scheme,
        "--agg", cfg.loss_agg_mode,
        "--eps", repr(float(cfg.eps)),
        "--features", str(cfg.features),
        "--seed", str(cfg.seed),
        "--dtype", cfg.dtype,
        "--timeout", repr(float(cfg.timeout_s)),
        "--port", str(port),
    ]  # fmt: skip
    args += (
        ["--micro-batches", str(cfg.micro_batches)]
        if cfg.micro_batches
        else ["--max-token-len", str(cfg.max_token_len)]
    )
    if json_path:
        args += ["--json", json_path]
    return args


def parse_line(line: str) -> tuple | None:
    """One line the CLI prints while it runs, as an event: ``("started", ranks, port)``,
    ``("connected", rank)`` or ``("progress", done, total, rank, step, steps)``; None for anything else."""
    words = line.split()
    try:
        if words[:1] == ["started"] and len(words) == 5:
            return ("started", int(words[1]), int(words[4].rsplit(":", 1)[1]))
        if words[:1] == ["rank"] and words[2:] == ["connected"]:
            return ("connected", int(words[1]))
        if words[:1] == ["progress"] and len(words) == 6:
            done, total = words[1].split("/")
            step, steps = words[5].split("/")
            return ("progress", int(done), int(total), int(words[3]), int(step), int(steps))
    except (IndexError, ValueError):
        return None
    return None


def _start_cli(cfg: RunConfig, json_path: str, stderr, port: int = 0) -> subprocess.Popen:
    """The CLI in a new session (its own process group: the CLI, its forkserver and every rank), told to
    stop with its parent, so nothing outlives the program that started it."""
    cmd = [
        sys.executable,
        "-m",
        "valueloss.tools.distributed",
        *cli_args(cfg, port=port, json_path=json_path),
        "--quiet",
        "--exit-with-parent",
    ]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=root, env=env, start_new_session=True
    )


def _kill_group(proc: subprocess.Popen, passes_for_s: float = 1.0) -> None:
    """SIGKILL the run's whole process group (the group id is the CLI's pid), then reap the CLI.

    Again every 50 ms until the group is empty (at most ``passes_for_s``): a rank the forkserver was
    forking while the first signal went out joins the group just after it."""
    end = time.monotonic() + passes_for_s
    while True:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            break
        proc.poll()  # reap the CLI, so that only the ranks' processes keep the group alive
        if time.monotonic() > end:
            break
        time.sleep(0.05)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _failure(code: int, stderr_path: str) -> str:
    with open(stderr_path, errors="replace") as f:
        lines = [line.strip() for line in f.read().strip().splitlines() if line.strip()]
    message = lines[-1] if lines else f"exit code {code}"
    return message.removeprefix("error: ")


def stream(cfg: RunConfig, *, port: int = 0) -> Iterator[tuple]:
    """Run the CLI in a child process group; yields its events (:func:`parse_line`), then ``("result", dict)``.

    Raises ``RuntimeError`` with the CLI's own message when it fails. The whole group is killed when
    the consumer stops early (close the generator, or let an exception pass through it).
    """
    cfg.validate()
    with tempfile.TemporaryDirectory(prefix="valueloss-run-") as tmp:
        path, err_path = os.path.join(tmp, "run.json"), os.path.join(tmp, "stderr.txt")
        with open(err_path, "w") as err:
            proc = _start_cli(cfg, path, err, port)
        assert proc.stdout is not None  # _start_cli pipes stdout
        try:
            for line in proc.stdout:
                event = parse_line(line)
                if event is not None:
                    yield event
            code = proc.wait(timeout=cfg.timeout_s + 30)
        finally:
            _kill_group(proc)
            proc.stdout.close()
        if code != 0:
            raise RuntimeError(_failure(code, err_path))
        with open(path) as f:
            yield ("result", json.load(f))


class BackgroundRun:
    """One run of the CLI for the app, read by a thread while the page polls it.

    The CLI runs in a process group of its own; :meth:`stop` kills that whole group (CLI, forkserver,
    ranks). A run that nobody has looked at (:meth:`touch`) for ``abandon_after_s`` seconds is stopped
    by a watchdog: the tab was closed, the session ended or the visitor left the page. While it runs,
    ``connected`` and ``steps`` say where each rank is; when it has ended, ``result`` or ``error``.
    """

    def __init__(self, cfg: RunConfig, *, key=None, abandon_after_s: float = 10.0) -> None:
        self.split = cfg.validate()
        self.cfg, self.key = cfg, key
        self.steps_per_rank = self.split.micro_per_rank
        self.started = self.seen = time.monotonic()
        self.ended: float | None = None
        self.connected: set[int] = set()
        self.steps: dict[int, int] = dict.fromkeys(range(cfg.ranks), 0)
        self.result: dict | None = None
        self.error: str | None = None
        self._abandon_after = abandon_after_s
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="valueloss-run-")
        self._json = os.path.join(self._tmp.name, "run.json")
        self._stderr = os.path.join(self._tmp.name, "stderr.txt")
        with open(self._stderr, "w") as err:
            self.proc = _start_cli(cfg, self._json, err)
        self._reader = threading.Thread(target=self._read, name="valueloss-run-reader", daemon=True)
        self._reader.start()
        threading.Thread(target=self._watch, name="valueloss-run-watchdog", daemon=True).start()

    @property
    def done(self) -> bool:
        return self.ended is not None

    @property
    def elapsed_s(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def touch(self) -> None:
        """Someone is still watching this run (the page calls this on every poll)."""
        self.seen = time.monotonic()

    def stop(self, reason: str = "stopped") -> None:
        """Kill the whole process group now; the run ends with ``error = reason`` unless it had finished."""
        with self._lock:
            if self.ended is None and self.error is None:
                self.error = reason
        _kill_group(self.proc)
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout=5)  # the reader sees the pipe close and marks the run ended

    def _read(self) -> None:
        assert self.proc.stdout is not None  # _start_cli pipes stdout
        try:
            for line in self.proc.stdout:
                event = parse_line(line)
                if event is None:
                    continue
                with self._lock:
                    if event[0] == "connected":
                        self.connected.add(event[1])
                    elif event[0] == "progress":
                        self.connected.add(event[3])
                        self.steps[event[3]] = event[4]
            code = self.proc.wait()
            with self._lock:
                if self.error is None:
                    if code == 0:
                        with open(self._json) as f:
                            self.result = json.load(f)
                    else:
                        self.error = _failure(code, self._stderr)
        except (OSError, ValueError) as err:  # a torn pipe or a half-written JSON after a kill
            with self._lock:
                self.error = self.error or f"the run's output could not be read ({type(err).__name__})"
        finally:
            _kill_group(self.proc)
            self.proc.stdout.close()
            self._tmp.cleanup()
            self.ended = time.monotonic()

    def _watch(self) -> None:
        while self.ended is None:
            now = time.monotonic()
            if now - self.seen > self._abandon_after:
                self.stop(f"stopped: nobody watched it for {self._abandon_after:g} s (the page was closed or left)")
            elif now - self.started > self.cfg.timeout_s + 30:
                self.stop(f"stopped: it did not finish within {self.cfg.timeout_s + 30:g} s")
            time.sleep(0.25)


class ServerBusy(RuntimeError):
    """Another run is under way on this server; ``run`` is that run (for its age and progress)."""

    def __init__(self, run: BackgroundRun) -> None:
        super().__init__(f"another run is under way (started {run.elapsed_s:.0f} s ago)")
        self.run = run


class RunSlot:
    """At most one run on real processes per server: ``start`` refuses with ``ServerBusy`` while one is
    under way. Keep one instance in module state (never in a cache that a client can clear)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._run: BackgroundRun | None = None

    def active(self) -> BackgroundRun | None:
        with self._lock:
            if self._run is not None and self._run.done:
                self._run = None
            return self._run

    def start(self, cfg: RunConfig, *, key=None, abandon_after_s: float = 10.0) -> BackgroundRun:
        with self._lock:
            if self._run is not None and not self._run.done:
                raise ServerBusy(self._run)
            self._run = BackgroundRun(cfg, key=key, abandon_after_s=abandon_after_s)
            return self._run

    def stop(self, reason: str = "stopped: the server is shutting down") -> None:
        with self._lock:
            run = self._run
        if run is not None:
            run.stop(reason)


# ---------------------------------------------------------------------------------------------
# CLI


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m valueloss.tools.distributed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", type=int, default=2, help="data-parallel processes (default 2)")
    ap.add_argument("--lengths", default="3,9,2,14,5,7,1,11", help="real tokens per sequence, comma-separated")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--micro-batches", type=int, help="micro-batches per rank (fixed count; default 2)")
    group.add_argument("--max-token-len", type=int, help="token budget per micro-batch (verl's use_dynamic_bsz)")
    ap.add_argument("--scheme", default="verl-global", choices=scale.SCHEME_KEYS)
    ap.add_argument("--agg", default="token-mean", help="loss_agg_mode (default token-mean)")
    ap.add_argument("--eps", type=float, default=0.2, help="cliprange_value")
    ap.add_argument("--features", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="float64", choices=tuple(_DTYPES))
    ap.add_argument("--port", type=int, default=0, help="rendezvous port on 127.0.0.1 (0 = pick a free one)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before the ranks are stopped")
    ap.add_argument("--json", help="write the full result here")
    ap.add_argument("--quiet", action="store_true", help="progress lines only, no table")
    ap.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop the ranks and exit if the program that started this one dies (the app passes it)",
    )
    return ap


def _exit_with_parent() -> None:
    """Watch the parent; when it is gone, end this run: the whole group when this process leads one."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        lengths = tuple(int(x) for x in args.lengths.split(",") if x.strip())
    except ValueError:
        print(f"error: --lengths must be integers separated by commas, got {args.lengths!r}", file=sys.stderr)
        return 2
    micro = args.micro_batches if args.max_token_len is None else None
    if micro is None and args.max_token_len is None:
        micro = 2
    cfg = RunConfig(
        lengths=lengths,
        ranks=args.ranks,
        micro_batches=micro,
        max_token_len=args.max_token_len,
        scheme=args.scheme,
        loss_agg_mode=args.agg,
        eps=args.eps,
        features=args.features,
        seed=args.seed,
        dtype=args.dtype,
        timeout_s=args.timeout,
    )

    def progress(rank: int, step: int, steps: int, done: int, total: int) -> None:
        print(f"progress {done}/{total} rank {rank} step {step}/{steps}", flush=True)

    def connected(rank: int) -> None:
        print(f"rank {rank} connected", flush=True)

    def started(port: int) -> None:
        print(f"started {cfg.ranks} ranks on {HOST}:{port}", flush=True)

    if args.exit_with_parent:
        _exit_with_parent()
    try:
        result = run(cfg, port=args.port, on_progress=progress, on_start=started, on_connect=connected)
    except (ValueError, TypeError, PortBusyError, RunFailed) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RunTimeout as err:
        print(f"error: {err}", file=sys.stderr)
        return 124
    except KeyboardInterrupt:
        print("error: interrupted; the ranks were stopped", file=sys.stderr)
        return 130
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    if not args.quiet:
        print(format_table(result))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the ranks are stopped and the JSON is written: skip torch's slow interpreter teardown
