"""Hand memory back once a server has had no visitor for a while.

A class of twenty visitors fills the app's bounded caches (about 9 MB) and leaves garbage cycles only a
full collection frees (the app turns Streamlit's collection after every run off, for speed). So once no
tab has been connected for ``grace_s``, the server empties its caches (the next visitor recomputes, as
after Streamlit's "Clear caches"), collects cycles and hands glibc's free heap pages back to the OS, and
logs what its objects then hold (:func:`in_use`). ``python -m tests.load`` reads that line: after a class,
what is in use is back to where it was before it (to 0.1 %), while the resident size keeps the
allocators' high-water mark of the class's peak (+22 to +25 MB: CPython's 1 MiB arenas, which it returns
only when empty, and glibc's partly used pages), memory the next class reuses (a second class adds +3 MB).

Module state on purpose, as in :mod:`.exclusive`: one watcher per server process, started by the first
script run. No Streamlit here: the app says how to ask whether anyone is connected and how to empty its
caches.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["GRACE_S", "IN_USE", "IdleRelease", "in_use", "return_free_heap", "watch"]

_LOG = logging.getLogger(__name__)
GRACE_S = 10.0  # seconds without a connected tab before the server lets go: longer than a page reload takes


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]  # fmt: skip


def _glibc(name: str, argtypes: list, restype) -> Callable | None:
    """A function of glibc's malloc, or None where the C library is another (macOS, musl, Windows) or older."""
    path = ctypes.util.find_library("c")
    try:
        function = getattr(ctypes.CDLL(path), name) if path else None
    except (OSError, AttributeError):
        return None
    if function is not None:
        function.argtypes, function.restype = argtypes, restype
    return function


_TRIM = _glibc("malloc_trim", [ctypes.c_size_t], ctypes.c_int)
_MALLINFO2 = _glibc("mallinfo2", [], _MallInfo2)  # glibc 2.33 and later
# How the release line states what the heap holds; tests/load.py reads it back from the server's log.
IN_USE = re.compile(r"in use: (?P<blocks>\d+) Python blocks, (?P<malloc>[\d.]+|n/a) MB from malloc")


def in_use() -> str:
    """What the process's objects occupy, as opposed to what its allocators keep: Python's blocks in use,
    and the bytes glibc has handed out and not had back ("n/a" without glibc's mallinfo2). Unlike the
    resident size, both go back to where they were once what a class allocated has been freed."""
    info = _MALLINFO2() if _MALLINFO2 is not None else None
    malloc = "n/a" if info is None else f"{(info.uordblks + info.hblkhd) / 2**20:.2f}"
    return f"in use: {sys.getallocatedblocks()} Python blocks, {malloc} MB from malloc"


def return_free_heap() -> bool | None:
    """glibc's ``malloc_trim(0)``: the free pages of every heap arena go back to the operating system
    (by itself glibc returns only the top of its main heap). Whether any did; None without glibc."""
    return None if _TRIM is None else bool(_TRIM(0))


@dataclass
class IdleRelease:
    """Releases once per quiet spell: when no session has been connected for ``grace_s`` seconds since
    the last visit. A page reload (a few seconds without a connection) releases nothing."""

    connected: Callable[[], bool]
    release: Callable[[], None]
    grace_s: float = GRACE_S
    clock: Callable[[], float] = time.monotonic
    _quiet_since: float | None = None
    _owed: bool = False  # a visit since the last release: there may be something to give back
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def visited(self) -> None:
        """A script ran: whatever it cached is released at the next quiet spell."""
        with self._lock:
            self._owed, self._quiet_since = True, None

    def tick(self) -> bool:
        """One look at the server; True when this look released."""
        with self._lock:
            if not self._owed:
                return False
            if self.connected():
                self._quiet_since = None
                return False
            now = self.clock()
            if self._quiet_since is None:
                self._quiet_since = now
            if now - self._quiet_since < self.grace_s:
                return False
            self._owed, self._quiet_since = False, None
        self.release()
        collected = gc.collect()
        trimmed = return_free_heap()
        said = "no malloc_trim here (not glibc)" if trimmed is None else (
            "free heap pages returned to the OS" if trimmed else "no free heap page to return")  # fmt: skip
        _LOG.info("no visitor for %.0f s: caches emptied, %d objects collected, %s; %s", self.grace_s, collected,
                  said, in_use())  # fmt: skip
        return True


_WATCHERS: dict[str, IdleRelease] = {}
_WATCHERS_LOCK = threading.Lock()


def watch(name: str, connected: Callable[[], bool], release: Callable[[], None], *, every_s: float = 1.0,
          grace_s: float = GRACE_S) -> IdleRelease:  # fmt: skip
    """The process's watcher called ``name`` (created and started on the first call, a daemon thread
    looking every ``every_s`` seconds); a later call returns the same one."""
    with _WATCHERS_LOCK:
        watcher = _WATCHERS.get(name)
        if watcher is None:
            watcher = _WATCHERS[name] = IdleRelease(connected, release, grace_s=grace_s)
            threading.Thread(target=_loop, args=(watcher, every_s), name=f"idle-release-{name}", daemon=True).start()
    return watcher


def _loop(watcher: IdleRelease, every_s: float) -> None:
    while True:
        time.sleep(every_s)
        try:
            watcher.tick()
        except Exception:  # a failed release must not end the watch; the server log says why
            _LOG.exception("idle release failed")
