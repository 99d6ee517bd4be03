"""Timing harness for the clipped value loss: ``python -m valueloss.tools.bench``.

Times the implementations a user would choose between, on the same inputs, forward alone and
forward+backward, and measures in the same run what bounds them: a streaming kernel that moves the bytes
the loss cannot avoid moving (the memory-bandwidth roofline), and the per-call floor (an autograd
Function that does nothing, and one tiny kernel). Every result is reported as time, achieved GB/s, a
ratio to verl's eager formula and a share of that roofline.

- ``verl-eager``: :func:`valueloss.compute_value_loss` (verl's formula, eager, with our input checks).
- ``openrlhf-eager``: :class:`valueloss.ValueLoss` (OpenRLHF's module, eager).
- ``compiled``: ``torch.compile`` of :func:`valueloss.compute_value_loss` (what a user gets by wrapping
  it). On GPUs compiled for each size (static shapes: a kernel compiled for the first size runs badly at
  the others) and on CPU compiled once with dynamic shapes (a compile there takes tens of seconds);
  either way warmed up at each size before timing, and the run's ``compile_mode`` says which.
- ``fused``: :func:`valueloss.fused_value_loss` (one pass, exact gradient: the Triton kernel on CUDA; on
  CPU the C loop for batches up to ``valueloss.fused.SMALL_TOKENS`` tokens, inductor's pass above).
- ``fused-kernel`` (where the Triton kernel runs): the same kernel's launches without autograd, so the
  difference to ``fused`` is what autograd and the argument checks cost.

Method: inputs are allocated once per size (``v``, ``v_old``, ``R`` random normal, a 0/1 mask in the
values' dtype with 20 % padding); every call allocates its own outputs, as in training. Each
implementation is warmed up first (the first call, which compiles where there is something to
compile, is reported apart as ``compile_s``); then repeats run round-robin across implementations so
that background load hits all of them alike; each repeat times enough back-to-back calls to last about
a millisecond, with device synchronisation around it on GPUs. Reported: median (and quartiles, min)
per call. The gradient is taken with ``torch.autograd.grad`` (no accumulation into ``.grad``).

Bytes per token: forward reads ``v``, ``v_old``, ``R`` and the mask; forward+backward also writes the
gradient (20 bytes per float32 token). The roofline kernel reads four tensors of the same size and
(for forward+backward) writes one, compiled into a single loop. At small sizes its time is the compiled
call's overhead, not bandwidth, so a share of the roofline above 100 % is possible there. The floors do
not depend on the size: ``floor-autograd`` is a custom ``autograd.Function`` whose forward allocates
a 0-d result and whose backward returns a view (no kernel at all), ``floor-kernel`` one launch of a
one-element kernel.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import io
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..fused import fused_value_loss
from ..losses import ValueLoss, compute_value_loss

IMPLEMENTATIONS = ("verl-eager", "openrlhf-eager", "compiled", "fused", "fused-kernel")
DEFAULT_IMPLS = IMPLEMENTATIONS[:4]  # and fused-kernel where the Triton kernel runs (see default_impls)
FLOORS = ("floor-autograd", "floor-kernel")  # measured in every run, with the roofline
PASSES = ("forward", "forward+backward")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}
DEFAULT_SIZES = "8x128,64x1024,512x4096"
MAX_SIDE = 1 << 22
MAX_SIZES = 32  # sizes in one run (the Timing page allows fewer, see pages/timing.py)
CSV_FIELDS = (
    "device",
    "dtype",
    "impl",
    "pass",
    "batch",
    "length",
    "tokens",
    "status",
    "median_ms",
    "p25_ms",
    "p75_ms",
    "min_ms",
    "calls_per_repeat",
    "repeats",
    "compile_s",
    "bytes",
    "gbps",
    "roofline_ms",
    "roofline_gbps",
    "roofline_share",
    "speedup_vs_verl_eager",
    "page_faults_per_call",
)


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run. Sizes are (batch, response_length) pairs."""

    sizes: tuple[tuple[int, int], ...]
    dtype: str = "float32"
    device: str = "cpu"
    impls: tuple[str, ...] = DEFAULT_IMPLS
    passes: tuple[str, ...] = PASSES
    repeats: int = 15
    threads: int | None = None
    eps: float = 0.2
    min_sample_s: float = 1e-3
    seed: int = 0
    compile_per_shape: bool | None = None  # torch.compile static per size; None: on GPUs yes, on CPU no


@dataclass
class BenchResult:
    """Rows (one per size x pass x implementation, plus the roofline) and what they were measured on."""

    meta: dict
    rows: list[dict] = field(default_factory=list)

    def ok_rows(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "ok"]


# ---------------------------------------------------------------- inputs and validation


def parse_sizes(text: str, max_sizes: int = MAX_SIZES) -> tuple[tuple[int, int], ...]:
    """``"8x128,512x4096"`` -> ((8, 128), (512, 4096)), repeats dropped; a clear ``ValueError`` otherwise,
    also for more than ``max_sizes`` sizes (counted before anything is parsed)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("sizes must be a comma-separated list like 8x128,512x4096 (batch x response_length)")
    parts = [part for part in text.replace(";", ",").split(",") if part.strip()]
    if len(parts) > max_sizes:
        raise ValueError(f"{len(parts):,} sizes given; at most {max_sizes} per run (drop some, or run them in turns)")
    if len(text) > 40 * max_sizes:
        raise ValueError(f"sizes: {len(text):,} characters is too long for {max_sizes} sizes at most")
    sizes: dict[tuple[int, int], None] = {}  # ordered, and a repeat costs one lookup
    for part in parts:
        part = part.strip().lower().replace("×", "x").replace("*", "x")
        if not part:
            continue
        m = re.fullmatch(r"(\d{1,12})\s*x\s*(\d{1,12})", part)
        if m is None:
            if len(part) > 40:
                part = part[:37] + "..."
            raise ValueError(f"size {part!r} is not BxT (e.g. 512x4096: batch 512, response length 4096)")
        b, t = int(m.group(1)), int(m.group(2))
        if b < 1 or t < 1:
            raise ValueError(f"size {part!r}: batch and response length must be at least 1")
        if b > MAX_SIDE or t > MAX_SIDE:
            raise ValueError(f"size {part!r}: each side must be at most {MAX_SIDE}")
        sizes[(b, t)] = None
    if not sizes:
        raise ValueError("sizes must list at least one BxT size, e.g. 8x128")
    return tuple(sizes)


def check_budget(sizes, max_tokens_each: int, max_total_tokens: int, where: str = "this page") -> None:
    """``ValueError`` naming the sizes over ``max_tokens_each`` tokens, or the total over ``max_total_tokens``."""
    too_big = [format_size(b, t) for b, t in sizes if b * t > max_tokens_each]
    if too_big:
        raise ValueError(
            f"{', '.join(too_big)} is more than {where} runs ({max_tokens_each:,} tokens at most per size); "
            "use python -m valueloss.tools.bench for bigger sizes"
        )
    total = sum(b * t for b, t in sizes)
    if total > max_total_tokens:
        raise ValueError(
            f"these sizes add up to {total:,} tokens; {where} runs at most {max_total_tokens:,} in one run "
            "(drop a size, or run them in turns)"
        )


def format_size(batch: int, length: int) -> str:
    return f"{batch}x{length}"


def available_devices() -> list[str]:
    """Devices this machine can time on: cpu, plus cuda and mps where present."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def free_memory_bytes(device: str) -> int:
    """Free memory on ``device`` (CPU: MemAvailable from /proc/meminfo, else a conservative 2 GiB)."""
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    if device == "mps":
        rec = getattr(torch.mps, "recommended_max_memory", None)
        used = getattr(torch.mps, "driver_allocated_memory", None)
        if rec is not None and used is not None:
            return max(int(rec()) - int(used()), 0)
        return 2 << 30
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2 << 30


def max_tokens(device: str, dtype: str, fraction: float = 0.5) -> int:
    """Largest B*T that fits: eager forward+backward holds about 30 full-size tensors at its peak."""
    itemsize = DTYPES[dtype].itemsize
    return max(int(free_memory_bytes(device) * fraction / (30 * itemsize)), 1)


def validate_config(config: BenchConfig) -> BenchConfig:
    """Check every field; ``ValueError`` / ``TypeError`` name what to fix."""
    if config.dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {config.dtype!r}")
    device = config.device
    base = device.split(":")[0]
    if base not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be cpu, cuda or mps, got {device!r}")
    if base not in available_devices():
        raise ValueError(f"device {device!r} is not available here; available: {', '.join(available_devices())}")
    unknown = [i for i in config.impls if i not in IMPLEMENTATIONS]
    if unknown or not config.impls:
        raise ValueError(f"impls must be chosen from {', '.join(IMPLEMENTATIONS)}, got {list(config.impls)!r}")
    if "fused-kernel" in config.impls and not triton_runs(device):
        raise ValueError("fused-kernel times the Triton kernel: it runs on CUDA (or on CPU under TRITON_INTERPRET=1)")
    bad_pass = [p for p in config.passes if p not in PASSES]
    if bad_pass or not config.passes:
        raise ValueError(f"passes must be chosen from {', '.join(PASSES)}, got {list(config.passes)!r}")
    if isinstance(config.repeats, bool) or not isinstance(config.repeats, int) or not 1 <= config.repeats <= 1000:
        raise ValueError(f"repeats must be an integer from 1 to 1000, got {config.repeats!r}")
    if config.threads is not None and (
        isinstance(config.threads, bool) or not isinstance(config.threads, int) or config.threads < 1
    ):
        raise ValueError(f"threads must be a positive integer, got {config.threads!r}")
    if not (isinstance(config.eps, (int, float)) and math.isfinite(config.eps) and config.eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {config.eps!r}")
    if not config.sizes:
        raise ValueError("sizes must list at least one BxT size")
    return config


# ---------------------------------------------------------------- the implementations


def triton_runs(device: str) -> bool:
    """Whether the fused Triton kernel runs on ``device``: CUDA where Triton imports, CPU under its interpreter."""
    from ..fused import dispatch

    if dispatch.triton_status() is not None:
        return False
    from ..fused.kernel import interpreting

    return device.startswith("cuda") or (device == "cpu" and interpreting())


def default_impls(device: str) -> tuple[str, ...]:
    """What a run times unless told otherwise: every implementation, the bare kernel where it is compiled."""
    return DEFAULT_IMPLS + (("fused-kernel",) if device.startswith("cuda") and triton_runs(device) else ())


def _stream_write(a, b, c, d):
    return a + b + c + d


def _stream_reduce(a, b, c, d):
    return (a + b + c + d).sum()


def compiles_per_shape(config: BenchConfig) -> bool:
    """torch.compile per size (static shapes) on GPUs; on CPU once, with dynamic shapes (a compile there
    takes tens of seconds), unless the config says otherwise."""
    per_shape = config.compile_per_shape
    return config.device.split(":")[0] != "cpu" if per_shape is None else per_shape


def compile_mode(config: BenchConfig) -> str:
    """How ``compiled`` was compiled, in words for the recording and the Timing page."""
    if compiles_per_shape(config):
        return "torch.compile compiled for each size (static shapes), warmed up at each size before timing"
    return "torch.compile compiled once with dynamic shapes, warmed up at each size before timing"


def _make_impl(name: str, eps: float, per_shape: bool) -> Callable:
    """A callable ``(v, R, v_old, mask) -> loss`` for each implementation (``fused-kernel``: see ``_kernel_calls``)."""
    if name == "verl-eager":
        return lambda v, r, v_old, m: compute_value_loss(v, r, v_old, m, eps)[0]
    if name == "openrlhf-eager":
        module = ValueLoss(clip_eps=eps)
        return lambda v, r, v_old, m: module(v, v_old, r, m)
    if name == "compiled":  # the canonical function itself, as a user would wrap it
        compiled = torch.compile(compute_value_loss, dynamic=not per_shape)
        return lambda v, r, v_old, m: compiled(v, r, v_old, m, eps)[0]
    if name == "fused":
        return lambda v, r, v_old, m: fused_value_loss(v, r, v_old, m, eps)[0]
    if name == "fused-kernel":
        return lambda v, r, v_old, m: None  # built per size, from the inputs (see _kernel_calls)
    raise ValueError(f"unknown implementation {name!r}")


def _kernel_calls(v, r, v_old, mask, eps: float) -> dict[str, Callable]:
    """The Triton kernel's launches without autograd: the forward (pass and finalize) and, for
    forward+backward, the backward kernel after it, for token-mean's weight at an upstream of 1."""
    from ..fused import dispatch, kernel

    forward_only = dispatch._verl_call(v, r, v_old, mask, eps, "token-mean", "triton")
    with torch.enable_grad():
        with_grad = dispatch._verl_call(v.detach().requires_grad_(True), r, v_old, mask, eps, "token-mean", "triton")
    weight = torch.full((), 0.5 / max(int(mask.count_nonzero()), 1), dtype=v.dtype, device=v.device)

    def both():
        u = kernel.forward(with_grad)[-1]
        return kernel.backward(with_grad, weight, None, u)

    return {"forward": lambda: kernel.forward(forward_only), "forward+backward": both}


class _Nothing(torch.autograd.Function):
    """The per-call floor of a custom autograd Function: no kernel in either direction."""

    @staticmethod
    def forward(ctx, v):
        ctx.shape = v.shape
        return v.new_empty(())

    @staticmethod
    def backward(ctx, grad):
        return grad.expand(ctx.shape)


def _floor_calls(v, v_train) -> dict[tuple[str, str], Callable]:
    """(floor, pass) -> call: the empty autograd Function (forward under no_grad; forward+backward
    through torch.autograd.grad, as every implementation is timed) and one launch of a one-element kernel."""
    tiny = v.new_zeros(1)

    def empty_forward():
        with torch.no_grad():
            return _Nothing.apply(v)

    return {
        ("floor-autograd", "forward"): empty_forward,
        ("floor-autograd", "forward+backward"): lambda: torch.autograd.grad(_Nothing.apply(v_train), v_train),
        ("floor-kernel", "forward"): lambda: torch.neg(tiny),
        ("floor-kernel", "forward+backward"): lambda: torch.neg(tiny),
    }


def _make_roofline(kind: str, device: torch.device, dtype: torch.dtype) -> tuple[Callable, str]:
    """The streaming kernel compiled into one loop or, where compilation fails, a plain torch op."""
    fn = _stream_write if kind == "forward+backward" else _stream_reduce
    # On GPUs, static shapes (one compile per size): on an H200 the dynamic-shape sum ran at 15 GB/s
    # (3.1 TB/s static), and a roofline must be the fastest way to move the bytes, not a slow one.
    compiled = torch.compile(fn, dynamic=device.type == "cpu")
    try:
        probe = torch.ones((3, 5), device=device, dtype=dtype)
        compiled(probe, probe, probe, probe)
    except Exception:  # noqa: BLE001 - no compiler here: a plain single-pass op instead
        return (lambda v, r, v_old, m: torch.addcmul(v, r, v_old)), "plain torch.addcmul (reads 3, writes 1)"
    target = "one output" if fn is _stream_write else "a sum"
    return (lambda v, r, v_old, m: compiled(v, r, v_old, m)), f"torch.compile of a+b+c+d into {target}"


# ---------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


class _Case:
    """One (implementation, pass) at one size: a zero-argument call and its timings."""

    def __init__(self, impl: str, pass_: str, call: Callable[[], object], device: torch.device, threads=None):
        self.impl, self.pass_, self.call, self.device, self.threads = impl, pass_, call, device, threads
        self.samples: list[float] = []
        self.faults = 0
        self.calls = 0
        self.inner = 1
        self.first_s = math.nan
        self.status = "ok"

    def warm_up(self, min_sample_s: float) -> None:
        self._threads()
        _sync(self.device)
        start = time.perf_counter()
        self.call()
        _sync(self.device)
        self.first_s = time.perf_counter() - start
        best = math.inf
        for _ in range(2):
            start = time.perf_counter()
            self.call()
            _sync(self.device)
            best = min(best, time.perf_counter() - start)
        self.inner = max(1, min(200, math.ceil(min_sample_s / max(best, 1e-7))))

    def _threads(self) -> None:
        # torch's thread count is process-wide: re-assert it in case another caller changed it meanwhile
        if self.threads is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def sample(self) -> None:
        self._threads()
        faults = _minor_faults()
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(self.inner):
            self.call()
        _sync(self.device)
        self.samples.append((time.perf_counter() - start) / self.inner)
        self.faults += _minor_faults() - faults
        self.calls += self.inner


def _bytes_per_token(dtype: torch.dtype, pass_: str) -> int:
    """v, v_old, R and the mask (in the values' dtype) read; the gradient written for a backward."""
    itemsize = dtype.itemsize
    return 4 * itemsize + (itemsize if pass_ == "forward+backward" else 0)


def _inputs(batch: int, length: int, dtype: torch.dtype, device: torch.device, seed: int):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    shape = (batch, length)
    v, r, v_old = (torch.randn(shape, generator=gen).to(device=device, dtype=dtype) for _ in range(3))
    mask = (torch.rand(shape, generator=gen) > 0.2).to(device=device, dtype=dtype)
    return v, r, v_old, mask


def _timed_call(fn: Callable, pass_: str, v, r, v_old, mask, v_train) -> Callable:
    """An implementation as it is timed: forward under no_grad, forward+backward through ``torch.autograd.grad``."""
    if pass_ == "forward":

        def forward():
            with torch.no_grad():
                return fn(v, r, v_old, mask)

        return forward
    return lambda: torch.autograd.grad(fn(v_train, r, v_old, mask), v_train)


def _cases_for_size(config, batch, length, device, impls: dict, rooflines: dict) -> list[_Case]:
    """Every (implementation or reference, pass) at one size as a zero-argument call: the implementations,
    the roofline, the floors, and the bare kernel's launches where it is timed."""
    dtype = DTYPES[config.dtype]
    v, r, v_old, mask = _inputs(batch, length, dtype, device, config.seed)
    v_train = v.clone().requires_grad_(True)
    calls = _floor_calls(v, v_train)
    kernel = _kernel_calls(v, r, v_old, mask, config.eps) if "fused-kernel" in impls else {}
    for pass_ in config.passes:
        calls[("roofline", pass_)] = functools.partial(rooflines[pass_][0], v, r, v_old, mask)
        for impl, fn in impls.items():
            calls[(impl, pass_)] = (
                kernel[pass_] if impl == "fused-kernel" else _timed_call(fn, pass_, v, r, v_old, mask, v_train)
            )
    return [
        _Case(impl, pass_, calls[(impl, pass_)], device, config.threads)
        for pass_ in config.passes
        for impl in (*config.impls, "roofline", *FLOORS)
    ]


def allocator_regime(device: torch.device) -> str:
    """How output memory is obtained, which on CPU can cost more than the loss itself."""
    if device.type == "cpu":
        preload = os.environ.get("LD_PRELOAD", "")
        lib = next((name for name in ("jemalloc", "tcmalloc", "mimalloc") if name in preload), "glibc malloc")
        tuning = [f"{k}={os.environ[k]}" for k in _MALLOC_ENV if os.environ.get(k)]
        settings = ", ".join(tuning) if tuning else "default settings"
        note = (
            " glibc hands blocks above its mmap threshold (at most 32 MiB by default) straight to the kernel, so "
            "each such output is faulted in page by page on every call."
            if lib == "glibc malloc" and not tuning
            else ""
        )
        return (
            f"CPU allocator: {lib} ({settings}). Inputs are allocated once per size; every call allocates its own "
            "outputs (the gradient and any intermediates), as in training, and so does the roofline kernel; "
            "page_faults_per_call counts the first-touch page faults inside the timed calls (0: freed blocks "
            f"were reused).{note}"
        )
    if device.type == "cuda":
        conf = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "unset")
        return (
            f"PyTorch CUDA caching allocator (PYTORCH_CUDA_ALLOC_CONF={conf}); outputs are allocated per call "
            "from the cache, which is warm after the warm-up calls."
        )
    return "PyTorch MPS allocator; outputs are allocated per call."


def allocator_short(device: torch.device) -> str:
    """A few words for labels: which allocator, tuned or not."""
    if device.type != "cpu":
        return f"{device.type} caching allocator"
    preload = os.environ.get("LD_PRELOAD", "")
    lib = next((name for name in ("jemalloc", "tcmalloc", "mimalloc") if name in preload), "glibc malloc")
    tuning = [f"{k}={os.environ[k]}" for k in _MALLOC_ENV if os.environ.get(k)]
    return f"{lib}, {', '.join(tuning)}" if tuning else f"{lib}, default"


_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "GLIBC_TUNABLES")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} logical CPUs)"


def _gpu_versions(device: torch.device) -> dict:
    """The CUDA runtime torch was built with and the driver, so a recording can be compared fairly."""
    if device.type != "cuda":
        return {}
    index = device.index if device.index is not None else torch.cuda.current_device()
    driver = None
    try:
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", "-i", str(index)]
        driver = subprocess.run(query, capture_output=True, text=True, timeout=20, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    props = torch.cuda.get_device_properties(device)
    return {
        "cuda_runtime": torch.version.cuda,
        "driver": driver,
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "multiprocessors": props.multi_processor_count,
    }


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def run_benchmark(config: BenchConfig, progress: Callable[[int, int, str], None] | None = None) -> BenchResult:
    """Time every implementation and pass at every size; never raises for one size's out-of-memory.

    ``progress(done, total, label)`` is called before each step (for a progress bar).
    """
    validate_config(config)
    threads_before = torch.get_num_threads()
    try:
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        # compiled per size: one recompilation per size and pass (dynamo's default limit is 8)
        limits = {"recompile_limit": 256, "accumulated_recompile_limit": 4096} if compiles_per_shape(config) else {}
        with torch._dynamo.config.patch(limits):
            return _run(config, progress)
    finally:
        torch.set_num_threads(threads_before)


def _run(config: BenchConfig, progress) -> BenchResult:
    device = torch.device(config.device)
    dtype = DTYPES[config.dtype]
    impls = {name: _make_impl(name, config.eps, compiles_per_shape(config)) for name in config.impls}
    rooflines = {p: _make_roofline(p, device, dtype) for p in config.passes}
    from .. import __version__

    meta = {
        "tool": f"valueloss {__version__} (python -m valueloss.tools.bench)",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "device_name": _device_name(device),
        "dtype": config.dtype,
        "mask_dtype": config.dtype,
        "torch": torch.__version__,
        "python": platform.python_version(),
        **_gpu_versions(device),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "allocator": allocator_regime(device),
        "allocator_short": allocator_short(device),
        "load_average_start": _load_average(),
        "eps": config.eps,
        "loss_agg_mode": "token-mean",
        "repeats": config.repeats,
        "sizes": [format_size(b, t) for b, t in config.sizes],
        "impls": list(config.impls),
        "passes": list(config.passes),
        "roofline_method": {p: rooflines[p][1] for p in config.passes},
        "compile_mode": compile_mode(config),
        "floor_method": "floor-autograd: a custom autograd.Function doing nothing (forward allocates a 0-d "
        "result, backward returns a view); floor-kernel: one launch of a one-element kernel (torch.neg)",
        "triton": _triton_version(),
        "bytes_per_token": {p: _bytes_per_token(dtype, p) for p in config.passes},
        "timing": "median of repeats; each repeat times back-to-back calls lasting about "
        f"{config.min_sample_s * 1e3:g} ms; warm-up and compile excluded; repeats interleaved across implementations",
    }
    result = BenchResult(meta=meta)
    n_cases = len(config.passes) * (len(config.impls) + 1 + len(FLOORS))
    total = len(config.sizes) * n_cases * (1 + config.repeats)
    done = 0

    def tick(label: str) -> None:
        if progress is not None:
            progress(done, total, label)

    for batch, length in config.sizes:
        size = format_size(batch, length)
        cases: list[_Case] = []
        try:
            cases = _cases_for_size(config, batch, length, device, impls, rooflines)
            for case in cases:
                tick(f"{size}: warm-up {case.impl} {case.pass_}")
                try:
                    case.warm_up(config.min_sample_s)
                except Exception as err:  # one implementation failing must not end the run
                    if _is_oom(err):
                        raise
                    case.status = f"error: {type(err).__name__}: {str(err)[:160]}"
                done += 1
            live = [c for c in cases if c.status == "ok"]
            done += config.repeats * (len(cases) - len(live))
            for rep in range(config.repeats):
                for case in live:
                    tick(f"{size}: repeat {rep + 1}/{config.repeats} {case.impl} {case.pass_}")
                    case.sample()
                    done += 1
        except Exception as err:  # out of memory at this size: report it and go on with the next size
            if not _is_oom(err):
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            done = min(total, done + n_cases * (1 + config.repeats))
            for pass_ in config.passes:
                for impl in (*config.impls, "roofline", *FLOORS):
                    result.rows.append(_row(config, device, impl, pass_, batch, length, status="out of memory"))
            cases = []
            continue
        result.rows.extend(_rows_from_cases(config, device, batch, length, cases))
        cases = []
    if progress is not None:
        progress(total, total, "done")
    meta["load_average_end"] = _load_average()
    from ..fused import fused_backend_report

    meta["fused_paths"] = [r for r in fused_backend_report() if r["state"] == "ran"]
    return result


def _triton_version() -> str | None:
    try:
        import triton
    except Exception:  # noqa: BLE001 - not installed (CPU builds of torch): nothing to record
        return None
    return triton.__version__


def _row(config, device, impl, pass_, batch, length, status="ok", **values) -> dict:
    row = dict.fromkeys(CSV_FIELDS)
    row.update(
        device=str(device),
        dtype=config.dtype,
        impl=impl,
        **{"pass": pass_},
        batch=batch,
        length=length,
        tokens=batch * length,
        status=status,
        bytes=0 if impl in FLOORS else batch * length * _bytes_per_token(DTYPES[config.dtype], pass_),
    )
    row.update(values)
    return row


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _rows_from_cases(config, device, batch, length, cases: list[_Case]) -> list[dict]:
    rows = []
    medians = {(c.impl, c.pass_): statistics.median(c.samples) for c in cases if c.samples}
    for case in cases:
        if not case.samples:
            rows.append(_row(config, device, case.impl, case.pass_, batch, length, status=case.status))
            continue
        median = medians[(case.impl, case.pass_)]
        loss = case.impl not in FLOORS  # the floors move no loss bytes: no bandwidth, no ratios
        roof = medians.get(("roofline", case.pass_)) if loss else None
        eager = medians.get(("verl-eager", case.pass_)) if loss else None
        nbytes = batch * length * _bytes_per_token(DTYPES[config.dtype], case.pass_)
        rows.append(
            _row(
                config,
                device,
                case.impl,
                case.pass_,
                batch,
                length,
                median_ms=median * 1e3,
                p25_ms=_quantile(case.samples, 0.25) * 1e3,
                p75_ms=_quantile(case.samples, 0.75) * 1e3,
                min_ms=min(case.samples) * 1e3,
                calls_per_repeat=case.inner,
                repeats=len(case.samples),
                compile_s=max(case.first_s - median, 0.0),
                gbps=nbytes / median / 1e9 if loss else None,
                roofline_ms=roof * 1e3 if roof else None,
                roofline_gbps=nbytes / roof / 1e9 if roof else None,
                roofline_share=roof / median if roof else None,
                speedup_vs_verl_eager=(eager / median) if eager else None,
                page_faults_per_call=(case.faults / case.calls) if device.type == "cpu" and case.calls else None,
            )
        )
    return rows


# ---------------------------------------------------------------- output


def _fmt(value, spec: str, empty: str = "-") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return empty
    return format(value, spec)


def format_table(result: BenchResult) -> str:
    """The results as a plain-text table (one line per size x pass x implementation)."""
    meta = result.meta
    lines = [
        f"device: {meta['device']} ({meta['device_name']}), dtype {meta['dtype']}, threads {meta['threads']}, "
        f"torch {meta['torch']}, load average {meta.get('load_average_start')}",
        f"allocator: {meta['allocator']}",
        f"compiled: {meta.get('compile_mode')}",
        "",
    ]
    header = (
        f"{'size':>11} {'pass':<17} {'implementation':<16} {'median':>10} {'GB/s':>7} "
        f"{'x verl eager':>12} {'% roofline':>10} {'compile s':>9} {'faults/call':>11}"
    )
    lines += [header, "-" * len(header)]
    for r in result.rows:
        size = format_size(r["batch"], r["length"])
        if r["status"] != "ok":
            lines.append(f"{size:>11} {r['pass']:<17} {r['impl']:<16} {r['status']}")
            continue
        median = r["median_ms"]
        time_text = f"{median * 1e3:.1f} us" if median < 1 else f"{median:.2f} ms"
        lines.append(
            f"{size:>11} {r['pass']:<17} {r['impl']:<16} {time_text:>10} {_fmt(r['gbps'], '.1f'):>7} "
            f"{_fmt(r['speedup_vs_verl_eager'], '.1f'):>12} "
            f"{_fmt(None if r['roofline_share'] is None else 100 * r['roofline_share'], '.0f'):>10} "
            f"{_fmt(r['compile_s'] if r['compile_s'] and r['compile_s'] > 0.05 else None, '.1f'):>9} "
            f"{_fmt(r['page_faults_per_call'], '.1f'):>11}"
        )
    return "\n".join(lines)


def to_csv(result: BenchResult) -> str:
    """CSV text: one row per result, with the run's device, date, torch version and threads."""
    buf = io.StringIO()
    extra = ("device_name", "date", "torch", "threads")
    writer = csv.DictWriter(buf, fieldnames=(*CSV_FIELDS, *extra), lineterminator="\n")
    writer.writeheader()
    for row in result.rows:
        writer.writerow({**row, **{k: result.meta.get(k) for k in extra}})
    return buf.getvalue()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40]


def write_results(result: BenchResult, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``bench-<device>-<dtype>-<date>.csv`` and ``.json`` (meta + rows) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = result.meta
    stamp = meta["date"].replace(":", "").replace("-", "").replace("+0000", "Z")[:15]
    device = _slug(meta["device"] if not meta["device"].startswith("cpu") else f"cpu-{meta['threads']}t")
    stem = f"bench-{device}-{meta['dtype']}-{stamp}"
    csv_path, json_path = out / f"{stem}.csv", out / f"{stem}.json"
    csv_path.write_text(to_csv(result))
    json_path.write_text(json.dumps({"meta": meta, "rows": result.rows}, indent=1, default=str) + "\n")
    return csv_path, json_path


def load_recorded(directory: str | os.PathLike) -> list[tuple[Path, BenchResult]]:
    """Every ``*.json`` benchmark recording in ``directory`` (unreadable files are skipped), newest first."""
    found = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            meta, rows = data["meta"], data["rows"]
            if not isinstance(meta, dict) or not isinstance(rows, list):
                continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append((path, BenchResult(meta=meta, rows=rows)))
    found.sort(key=lambda item: str(item[1].meta.get("date", "")), reverse=True)
    return found


def is_gpu_recording(result: BenchResult) -> bool:
    return str(result.meta.get("device", "")).split(":")[0] in ("cuda", "mps")


# ---------------------------------------------------------------- command line


class _ProgressLine:
    """A one-line progress bar on stderr (redrawn in place on a terminal, every 10 % otherwise)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last_decile = -1

    def __call__(self, done: int, total: int, label: str) -> None:
        fraction = done / max(total, 1)
        width = 28
        bar = "#" * int(width * fraction) + "." * (width - int(width * fraction))
        line = f"[{bar}] {done}/{total} {label[:60]}"
        if self.tty:
            self.stream.write(f"\r{line:<100}" + ("\n" if done >= total else ""))
        elif int(10 * fraction) > self.last_decile or done >= total:
            self.last_decile = int(10 * fraction)
            self.stream.write(line + "\n")
        self.stream.flush()


def _parse_impls(values: list[str] | None, device: str) -> tuple[str, ...]:
    names = []
    for value in values or ():
        names += [v.strip() for v in value.split(",") if v.strip()]
    if not names or "all" in names:
        return default_impls(device)
    return tuple(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m valueloss.tools.bench",
        description="Time the clipped value loss (verl eager, OpenRLHF eager, torch.compile, fused) "
        "against a memory-bandwidth roofline and the per-call floor, measured in the same run.",
    )
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"BxT list (default {DEFAULT_SIZES})")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or mps")
    parser.add_argument(
        "--impl",
        action="append",
        help=f"implementations, comma-separated or repeated: {', '.join(IMPLEMENTATIONS)} "
        "(default: all that run on the device; fused-kernel needs Triton on CUDA)",
    )
    parser.add_argument(
        "--compile",
        choices=("auto", "per-size", "dynamic"),
        default="auto",
        help="torch.compile per size (static shapes) or once with dynamic shapes (default: per size on GPUs)",
    )
    parser.add_argument("--passes", default=",".join(PASSES), help="forward, forward+backward (default both)")
    parser.add_argument("--repeats", type=int, default=15, help="timed repeats per case (default 15)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--eps", type=float, default=0.2, help="cliprange_value (default 0.2)")
    parser.add_argument("--out", default="bench-out", help="directory for the CSV and JSON (default bench-out)")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = BenchConfig(
            sizes=parse_sizes(args.sizes),
            dtype=args.dtype,
            device=args.device,
            impls=_parse_impls(args.impl, args.device),
            passes=tuple(p.strip() for p in args.passes.split(",") if p.strip()),
            repeats=args.repeats,
            threads=args.threads,
            eps=args.eps,
            compile_per_shape={"auto": None, "per-size": True, "dynamic": False}[args.compile],
        )
        validate_config(config)
        limit = max_tokens(config.device, config.dtype)
        too_big = [format_size(b, t) for b, t in config.sizes if b * t > limit]
        if too_big:
            raise ValueError(f"sizes {', '.join(too_big)} need more memory than is free ({limit:,} tokens at most)")
    except ValueError as err:
        parser.error(str(err))
    result = run_benchmark(config, progress=None if args.no_progress else _ProgressLine())
    print(format_table(result))
    csv_path, json_path = write_results(result, args.out)
    print(f"\nwrote {csv_path} and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
