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
(exit 124), and says so when ``--port`` is busy (exit 2). No Streamlit here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import queue as queue_mod
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import torch

from .. import scale

__all__ = ["RunConfig", "PortBusyError", "RunTimeout", "RunFailed", "run", "stream", "format_table", "main"]

HOST = "127.0.0.1"
_DTYPES = {"float64": torch.float64, "float32": torch.float32}


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
        """Every check the ranks would hit, in this process, before anything is started."""
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        if not (isinstance(self.timeout_s, (int, float)) and self.timeout_s > 0):
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s!r}")
        scale.get_scheme(self.scheme, self.loss_agg_mode)
        return scale.split_batch(
            list(self.lengths), self.ranks, micro_batches=self.micro_batches, max_token_len=self.max_token_len
        )

    def problem(self) -> scale.ScaleProblem:
        return scale.make_problem(
            list(self.lengths), features=self.features, eps=self.eps, seed=self.seed, dtype=_DTYPES[self.dtype]
        )


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
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()]).tolist()


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
        losses = []
        for j, idx in enumerate(micro):
            idx = list(idx)
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
            out.put(("progress", rank, j + 1, len(micro)))
        logged = sum(losses) if scheme.logged == "sum" else sum(losses) / len(losses)
        out.put(("result", rank, _flat_grad(model.module), losses, logged, local.tolist()))
        dist.barrier()
        dist.destroy_process_group()
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


@dataclass
class _Progress:
    done: dict[int, int] = field(default_factory=dict)
    total: int = 0


def run(cfg: RunConfig, *, port: int = 0, on_progress=None, on_start=None) -> dict:
    """Start ``cfg.ranks`` processes, wait for their gradients, compare. Raises ``PortBusyError``,
    ``RunTimeout`` (ranks stopped), ``RunFailed`` (a rank's error), ``KeyboardInterrupt`` (ranks stopped)."""
    import multiprocessing as mp

    split = cfg.validate()
    port = _check_port(port)
    p = cfg.problem()
    expected = _reference(cfg, split, p)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, asdict(cfg), port, out), daemon=True) for r in range(cfg.ranks)]
    results: dict[int, tuple] = {}
    progress = _Progress(total=cfg.ranks * split.micro_per_rank)
    start = time.monotonic()
    try:
        for proc in procs:
            proc.start()
        if on_start is not None:
            on_start(port)
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
            if kind == "progress":
                progress.done[rank] = msg[2]
                if on_progress is not None:
                    on_progress(sum(progress.done.values()), progress.total)
            else:
                results[rank] = msg[2:]
        for proc in procs:
            proc.join(timeout=max(1.0, cfg.timeout_s - (time.monotonic() - start)))
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        out.close()
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
        "--eps", repr(cfg.eps),
        "--features", str(cfg.features),
        "--seed", str(cfg.seed),
        "--dtype", cfg.dtype,
        "--timeout", repr(cfg.timeout_s),
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


def stream(cfg: RunConfig, *, port: int = 0) -> Iterator[tuple]:
    """Run the CLI in a child process; yields ``("progress", done, total)`` then ``("result", dict)``.

    Raises ``RuntimeError`` with the CLI's own message when it fails. The child is killed if the
    consumer stops early.
    """
    cfg.validate()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "run.json")
        cmd = [
            sys.executable,
            "-m",
            "valueloss.tools.distributed",
            *cli_args(cfg, port=port, json_path=path),
            "--quiet",
        ]
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root, env=env)
        try:
            for line in proc.stdout:
                if line.startswith("progress "):
                    done, total = line.split()[1].split("/")
                    yield ("progress", int(done), int(total))
            err = proc.stderr.read()
            code = proc.wait(timeout=cfg.timeout_s + 30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if code != 0:
            message = err.strip().splitlines()[-1] if err.strip() else f"exit code {code}"
            raise RuntimeError(message)
        with open(path) as f:
            yield ("result", json.load(f))


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
    return ap


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

    def progress(done: int, total: int) -> None:
        print(f"progress {done}/{total}", flush=True)

    def started(port: int) -> None:
        print(f"started {cfg.ranks} ranks on {HOST}:{port}", flush=True)

    try:
        result = run(cfg, port=args.port, on_progress=progress, on_start=started)
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
    raise SystemExit(main())
