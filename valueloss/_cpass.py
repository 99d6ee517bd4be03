"""The fused pass as a plain C loop, for small CPU batches.

Inductor's compiled pass runs a 1,024-token batch in a few microseconds but its Python wrapper takes
about 20 more on every call; a training step on a small batch pays that twice (forward, then the
rare exact backward). This loop (``_cpass.c``) does the same operations in the same float type, so
``u`` and the counts are the compiled pass's bits, and is called through ``ctypes`` for about 2 us.
It is built once per machine with the system C compiler (the one inductor needs on CPU anyway) into
a cache folder; where no compiler works, :func:`library` returns None and the compiled pass runs.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("_cpass.c")
# dtype -> (C float type, per-lane count type of the same width, name suffix). double counts: the
# vectoriser has no 64-bit integer reductions on baseline x86-64; they stay exact below 2^53.
TYPES = {torch.float32: ("float", "int32_t", "float32"), torch.float64: ("double", "double", "float64")}
# IEEE arithmetic as written (no fused multiply-add, no fast-math); see _cpass.c for the other two.
FLAGS = ("-O3", "-std=c99", "-shared", "-fPIC", "-ffp-contract=off", "-fno-trapping-math", "-fopenmp-simd")
_CACHE_ENV = "VALUELOSS_CACHE_DIR"

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_functions: dict = {}  # dtype -> (pass loop, scale)
_status: dict = {"state": "not built"}


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def _cache_dir() -> Path:
    base = os.environ.get(_CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "valueloss"
    )
    return Path(base)


def _unit_source() -> str:
    """One translation unit: the loop included once per float type."""
    include = SOURCE.resolve().as_posix()
    return "".join(
        f"#define T {ctype}\n#define I {itype}\n#define NAME valueloss_pass_{suffix}\n"
        f'#define SCALE_NAME valueloss_scale_{suffix}\n#include "{include}"\n'
        "#undef T\n#undef I\n#undef NAME\n#undef SCALE_NAME\n"
        for ctype, itype, suffix in TYPES.values()
    )


def _build(compiler: str) -> Path:
    """Compile into the cache (keyed by source, compiler and flags) unless already there."""
    key = hashlib.sha256("\0".join([SOURCE.read_text(), compiler, *FLAGS]).encode()).hexdigest()[:16]
    folder = _cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / "valueloss"
        folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"cpass-{key}.so"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        unit = Path(tmp) / "unit.c"
        unit.write_text(_unit_source())
        built = Path(tmp) / target.name
        subprocess.run([compiler, *FLAGS, str(unit), "-o", str(built)], check=True, capture_output=True, timeout=120)
        os.replace(built, target)  # atomic: a concurrent build of the same key writes the same file
    return target


def library() -> ctypes.CDLL | None:
    """The loaded loop, built on first use; None where that is impossible (see :func:`status`)."""
    global _library
    if _status["state"] == "not built":
        with _lock:
            if _status["state"] == "not built":
                compiler = _compiler()
                try:
                    if compiler is None:
                        raise FileNotFoundError("no C compiler (cc, gcc or clang) on PATH")
                    lib = ctypes.CDLL(str(_build(compiler)))
                    ptr, i64 = ctypes.c_void_p, ctypes.c_int64
                    for dtype, (*_, suffix) in TYPES.items():
                        real = ctypes.c_float if dtype == torch.float32 else ctypes.c_double
                        loop, scale = (
                            getattr(lib, f"valueloss_pass_{suffix}"),
                            getattr(lib, f"valueloss_scale_{suffix}"),
                        )
                        loop.argtypes, loop.restype = [ptr, ptr, ptr, ptr, real, i64, i64, ptr, ptr, ptr, ptr], None
                        scale.argtypes, scale.restype = [ptr, i64, real], None
                        _functions[dtype] = (loop, scale)
                    _library = lib
                    _status.update(state="ready", compiler=compiler)
                except (OSError, subprocess.SubprocessError, AttributeError) as err:
                    detail = getattr(err, "stderr", b"") or b""
                    message = f"{type(err).__name__}: {err} {detail.decode(errors='replace')}".strip()
                    _status.update(state="unavailable", error=message[:300])
    return _library


def status() -> dict:
    """``state``: not built / ready / unavailable (with the error)."""
    return dict(_status)


def supports(v: torch.Tensor) -> bool:
    return v.device.type == "cpu" and v.dtype in TYPES


def run_pass(kind: str, v, returns, values, mask, eps: float):
    """The C loop with the outputs of ``valueloss.fused``'s pass ``kind`` (tokens, rows or loss).

    Inputs: contiguous CPU tensors of one dtype in :data:`TYPES`, at most two dimensions as (rows,
    columns); ``eps`` a Python float (rounded to the tensors' type, as CPU eager does).
    """
    fn = _functions[v.dtype][0]
    rows, cols = v.shape
    stats = torch.empty(5, dtype=torch.float64)
    u = torch.empty_like(v)  # written even for "loss": a store under a condition keeps the loop slower
    sums = tokens = None
    if kind != "tokens":
        sums = torch.empty(rows, dtype=torch.float64)
        tokens = torch.empty(rows, dtype=torch.int32)
    fn(
        v.data_ptr(), returns.data_ptr(), values.data_ptr(), mask.data_ptr(), eps, rows, cols,
        u.data_ptr(),
        None if sums is None else sums.data_ptr(),
        None if tokens is None else tokens.data_ptr(),
        stats.data_ptr(),
    )  # fmt: skip
    if kind == "tokens":
        return stats, u
    if kind == "rows":
        return stats, sums, tokens, u
    return stats, sums, tokens


def scale(u: torch.Tensor, weight: float) -> torch.Tensor:
    """``u *= weight`` in place for a contiguous CPU tensor of :data:`TYPES` (``weight`` exact in its
    dtype): the same products as ``u.mul_(weight)``, without torch's cost inside a backward."""
    _functions[u.dtype][1](u.data_ptr(), u.numel(), weight)
    return u
