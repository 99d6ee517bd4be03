"""2. The CPU path for small batches: the fused pass as a plain C loop (``cloop.c``), called through ctypes.

Inductor's compiled pass runs a 1,024-token batch in a few microseconds but its Python wrapper takes
about 20 more on every call; a training step on a small batch pays that twice (forward, then the
rare exact backward). This loop does the same operations in the same float type, so ``u`` and the
counts are the compiled pass's bits, and is called for about 2 us. It is built once per machine with
the system C compiler (the one inductor needs on CPU anyway, ``$CC`` with its arguments if set) into a
cache folder; where no compiler works, :func:`library` returns None, says why in :func:`status` (and a
one-time warning where a compiler was expected), and the compiled pass runs.

The cache folder (``$VALUELOSS_CACHE_DIR``, else ``$XDG_CACHE_HOME/valueloss`` or
``~/.cache/valueloss``) is private: created 0700 and used only when it is a real directory owned by this
user. The library is opened once, without following links (``O_NOFOLLOW``); the *open file* is checked
(``fstat``: a regular file of this user's that no one else can write) and that very file is loaded
(``/proc/self/fd/N``), so whoever owns a parent folder cannot swap it between the check and the load.
Where ``/proc`` is missing (macOS, BSD), every folder from the file up to the root must belong to root
or this user and be writable by no one else (or be sticky, as /tmp) before the path is loaded.
Anything untrusted is removed and rebuilt, and a library that does not compute a known answer is
rebuilt too. The file name is keyed
by everything that shapes the build (source, compiler command and version, flags, machine). Where the
folder cannot be made private, the loop is built into a fresh ``mkdtemp`` folder for this process,
never into a shared guessable place.
"""

from __future__ import annotations

import _ctypes
import ctypes
import errno
import functools
import hashlib
import os
import platform
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["SMALL_TOKENS", "library", "run_pass", "scale", "status", "supports"]

SOURCE = Path(__file__).with_name("cloop.c")
# Up to this many tokens, "auto" runs the pass as this loop on CPU: below it inductor's ~20 us Python
# wrapper costs more than the loop's single thread loses (measured crossover: ~5k float32 and ~8k float64
# tokens on a 2-core machine).
SMALL_TOKENS = 4096
# dtype -> (C float type, per-lane count type of the same width, name suffix). double counts: the
# vectoriser has no 64-bit integer reductions on baseline x86-64; they stay exact below 2^53.
TYPES = {torch.float32: ("float", "int32_t", "float32"), torch.float64: ("double", "double", "float64")}
# IEEE arithmetic as written (no fused multiply-add, no fast-math); see cloop.c for the other two.
FLAGS = ("-O3", "-std=c99", "-shared", "-fPIC", "-ffp-contract=off", "-fno-trapping-math", "-fopenmp-simd")
_CACHE_ENV = "VALUELOSS_CACHE_DIR"
_PROC_FD = Path("/proc/self/fd")


class UnsafeCache(OSError):
    """The cache folder or a file in it could be written by someone else: never load from it."""


@dataclass(frozen=True)
class Loop:
    """The C loop as loaded once per process: the library and its functions, or why there is none.

    ``descriptor`` is the open file the library was loaded from (kept open while it is loaded, so that
    its ``/proc/self/fd`` name stays unique); ``notes``: what the build met on the way (a rebuilt file,
    a private folder for this process).
    """

    state: str  # "ready" or "unavailable"
    library: ctypes.CDLL | None = None
    functions: dict = field(default_factory=dict)  # dtype -> (pass loop, scale)
    compiler: str | None = None
    error: str | None = None
    descriptor: int | None = None
    notes: dict = field(default_factory=dict)


def _compiler() -> list[str] | None:
    """The compiler command as an argument list: ``$CC`` split like a shell would (``"gcc -O1"``,
    ``"ccache cc"``), else cc, gcc or clang on PATH; None where there is none. A ``$CC`` that does not
    parse or whose program is not found raises ``FileNotFoundError`` naming it (never a silent skip)."""
    text = os.environ.get("CC", "").strip()
    if not text:
        found = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        return [found] if found else None
    try:
        command = shlex.split(text)
    except ValueError as err:
        raise FileNotFoundError(f"CC={text!r} is not a command line: {err}") from None
    program = shutil.which(command[0]) if command else None
    if program is None:
        raise FileNotFoundError(f"CC={text!r}: the program {command[0]!r} is not found (no such file or not on PATH)")
    return [program, *command[1:]]


def _compiler_version(command: list[str]) -> str:
    """``<compiler> --version`` (first lines): part of the build key, so an upgraded compiler rebuilds."""
    try:
        done = subprocess.run([*command, "--version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return f"unknown ({type(err).__name__})"
    return done.stdout.decode(errors="replace")[:500]


def build_key(command: list[str]) -> str:
    """Everything that shapes the built file: the source and the translation unit (float types), the
    compiler command with its arguments, its version, our flags, the machine and OS."""
    parts = [
        SOURCE.read_text(),
        _unit_source(),
        "\x01".join(command),
        _compiler_version(command),
        *FLAGS,
        platform.machine(),
        sys.platform,
        str(ctypes.sizeof(ctypes.c_void_p)),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def _cache_dir() -> Path:
    base = os.environ.get(_CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "valueloss"
    )
    return Path(base)


def _private_folder(folder: Path) -> Path:
    """``folder`` created 0700 if missing, checked to be a real directory owned by this user that no
    one else can write to (modes it owns but left open are tightened to 0700); ``UnsafeCache`` else."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeCache(f"{folder} is not a directory (a symbolic link or a file)")
    if info.st_uid != os.getuid():
        raise UnsafeCache(f"{folder} belongs to user id {info.st_uid}, not to this user ({os.getuid()})")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(folder, 0o700)  # ours: close it before using it
        if stat.S_IMODE(os.lstat(folder).st_mode) & 0o077:
            raise UnsafeCache(f"{folder} could not be made private (mode {stat.S_IMODE(info.st_mode):o})")
    return folder


def _check_file(path: Path, info: os.stat_result) -> None:
    """``UnsafeCache`` unless ``info`` is a regular file of this user's that no one else can write."""
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeCache(f"{path} is not a regular file (a symbolic link or something else)")
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o022:
        raise UnsafeCache(f"{path} is owned by another user or writable by others: not loaded")


def _open_trusted(path: Path) -> int:
    """``path`` opened once, without following a link, and checked through the open descriptor:
    whatever the folders do afterwards, that descriptor names the file that was checked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UnsafeCache(f"{path} is a symbolic link: not loaded") from None
        raise
    try:
        _check_file(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_folders(path: Path) -> None:
    """Without ``/proc``: every folder from ``path`` up to the root belongs to root or this user and
    no one else can write to it, so nobody else can swap the file between the check and the load."""
    for folder in path.resolve().parents:
        info = os.stat(folder)
        mode = stat.S_IMODE(info.st_mode)
        shared = mode & 0o022 and not mode & stat.S_ISVTX  # a sticky folder (/tmp): others cannot rename our files
        if info.st_uid not in (0, os.getuid()) or shared:
            raise UnsafeCache(f"{folder} could be changed by another user: the C loop is not loaded from below it")


def _unit_source() -> str:
    """One translation unit: the loop included once per float type."""
    include = SOURCE.resolve().as_posix()
    return "".join(
        f"#define T {ctype}\n#define I {itype}\n#define NAME valueloss_pass_{suffix}\n"
        f'#define SCALE_NAME valueloss_scale_{suffix}\n#include "{include}"\n'
        "#undef T\n#undef I\n#undef NAME\n#undef SCALE_NAME\n"
        for ctype, itype, suffix in TYPES.values()
    )


def _compile(command: list[str], folder: Path, target: Path) -> None:
    with tempfile.TemporaryDirectory(dir=folder) as tmp:  # private: mkdtemp makes it 0700
        unit = Path(tmp) / "unit.c"
        unit.write_text(_unit_source())
        built = Path(tmp) / target.name
        subprocess.run([*command, *FLAGS, str(unit), "-o", str(built)], check=True, capture_output=True, timeout=120)
        os.chmod(built, 0o500)
        os.replace(built, target)  # atomic: a concurrent build of the same key writes the same file


def _build(command: list[str] | str, notes: dict | None = None) -> Path:
    """The built loop's path in the private cache (compiled there unless a file is already there).

    Where the cache folder cannot be made private (not creatable, someone else's), the loop is built
    into a fresh private temporary folder for this process only: nothing is ever loaded from a
    shared, guessable place. ``notes`` collects what happened on the way.
    """
    notes = {} if notes is None else notes
    command = [command] if isinstance(command, str) else list(command)
    key = build_key(command)
    try:
        folder = _private_folder(_cache_dir())
    except OSError as err:
        notes["cache"] = f"private build folder for this process ({type(err).__name__}: {err})"
        folder = Path(tempfile.mkdtemp(prefix="valueloss-cpass-"))
    target = folder / f"cpass-{key}.so"
    if not os.path.lexists(target):
        _compile(command, folder, target)
    return target


def _dlopen(path: Path) -> tuple[ctypes.CDLL, int | None]:
    """Load the file ``path`` names now, checked: through its open descriptor where ``/proc`` exists."""
    if _PROC_FD.is_dir():
        fd = _open_trusted(path)
        try:
            return ctypes.CDLL(str(_PROC_FD / str(fd))), fd
        except BaseException:
            os.close(fd)
            raise
    os.close(_open_trusted(path))
    _check_folders(path)
    return ctypes.CDLL(str(path)), None


_PROBE = ((0.5, 0.0, 0.0, 1.0), (2.0, 1.0, 0.0, 1.0), (-1.0, 0.0, 0.0, 0.0))  # (v, R, v_old, mask)


def _bind(lib: ctypes.CDLL) -> dict:
    """The loop and scale of every float type, each checked on a tiny batch (a damaged file fails)."""
    ptr, i64 = ctypes.c_void_p, ctypes.c_int64
    functions = {}
    for dtype, (*_, suffix) in TYPES.items():
        real = ctypes.c_float if dtype == torch.float32 else ctypes.c_double
        loop, scale_fn = getattr(lib, f"valueloss_pass_{suffix}"), getattr(lib, f"valueloss_scale_{suffix}")
        loop.argtypes, loop.restype = [ptr, ptr, ptr, ptr, real, i64, i64, ptr, ptr, ptr, ptr], None
        scale_fn.argtypes, scale_fn.restype = [ptr, i64, real], None
        v, r, o, m = (torch.tensor([[row[k] for row in _PROBE]], dtype=dtype) for k in range(4))
        u, stats = torch.empty_like(v), torch.zeros(5, dtype=torch.float64)
        inputs = (v.data_ptr(), r.data_ptr(), o.data_ptr(), m.data_ptr())
        loop(*inputs, 0.2, 1, 3, u.data_ptr(), None, None, stats.data_ptr())
        scale_fn(u.data_ptr(), 3, 0.5)
        # v = 0.5, R = 0: loss_u 0.25 beats loss_c 0.04, u = 2 * 0.5 = 1; v = 2, R = 1: loss_u 1 beats
        # loss_c 0.64, u = 2; both halved by the scale. Totals: 0 clipped, 2 real, 0 care, 0 bad.
        if u.tolist()[0][:2] != [0.5, 1.0] or stats.tolist()[1:] != [0.0, 2.0, 0.0, 0.0]:
            raise OSError(f"the built loop computes wrong numbers ({suffix}): damaged or miscompiled")
        functions[dtype] = (loop, scale_fn)
    return functions


def _unload(lib: ctypes.CDLL, fd: int | None) -> None:
    """Unload a library that proved unusable (or dlopen would hand back this copy again)."""
    _ctypes.dlclose(lib._handle)
    if fd is not None:
        os.close(fd)


def _load(command: list[str]) -> Loop:
    """Build (or find) the loop, load it checked; a file that is untrusted, does not load or computes
    wrong numbers is deleted and rebuilt once."""
    notes: dict = {}
    for attempt in (1, 2):
        path = _build(command, notes)
        lib = fd = None
        try:
            lib, fd = _dlopen(path)
            return Loop("ready", lib, _bind(lib), " ".join(command), descriptor=fd, notes=notes)
        except (OSError, AttributeError) as err:
            if lib is not None:
                _unload(lib, fd)
            if attempt == 2 or (isinstance(err, UnsafeCache) and "could be changed" in str(err)):
                raise
            why = str(err) if isinstance(err, UnsafeCache) else f"{type(err).__name__}: {str(err)[:120]}"
            notes["rebuilt"] = f"the cached {path.name} was unusable ({why}): removed and rebuilt"
            path.unlink(missing_ok=True)
    raise AssertionError("unreachable")


_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _loaded() -> Loop:
    """The loop, built and loaded on first use (once per process: a cache, cleared by tests)."""
    try:
        command = _compiler()
        if command is None:
            raise FileNotFoundError("no C compiler (cc, gcc or clang) on PATH")
        return _load(command)
    except (OSError, subprocess.SubprocessError, AttributeError) as err:
        detail = getattr(err, "stderr", b"") or b""
        message = f"{type(err).__name__}: {err} {detail.decode(errors='replace')}".strip()[:400]
        if os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc"):
            warnings.warn(
                "valueloss: the C loop for small CPU batches is unavailable, so the compiled pass runs "
                f"instead (same numbers, slower on small batches): {message}",
                RuntimeWarning,
                stacklevel=4,
            )
        return Loop("unavailable", error=message)


def library() -> ctypes.CDLL | None:
    """The loaded loop, built on first use; None where that is impossible (see :func:`status`), with a
    one-time ``RuntimeWarning`` saying why when a compiler was there or ``$CC`` was set."""
    with _LOCK:
        return _loaded().library


def status() -> dict:
    """``state`` (not built / ready / unavailable), the compiler or the error, and any build notes."""
    if _loaded.cache_info().currsize == 0:
        return {"state": "not built"}
    loop = _loaded()
    info = {"state": loop.state, **loop.notes}
    info.update({"compiler": loop.compiler} if loop.state == "ready" else {"error": loop.error})
    return info


def supports(v: torch.Tensor) -> bool:
    return v.device.type == "cpu" and v.dtype in TYPES


def run_pass(kind: str, v, returns, values, mask, eps: float):
    """The C loop with the outputs of the torch pass ``kind`` (tokens, rows or loss).

    Inputs: contiguous CPU tensors of one dtype in :data:`TYPES`, at most two dimensions as (rows,
    columns); ``eps`` a Python float (rounded to the tensors' type, as CPU eager does).
    """
    fn = _loaded().functions[v.dtype][0]
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
    _loaded().functions[u.dtype][1](u.data_ptr(), u.numel(), weight)
    return u
