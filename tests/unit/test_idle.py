"""The idle release (valueloss/tools/idle.py): once per quiet spell, only after the grace, never while a
tab is connected; and glibc's trim really hands freed heap pages back."""

from __future__ import annotations

import platform
import threading
import time
from pathlib import Path

import pytest

from valueloss.tools import idle


class Server:
    """A fake server: who is connected, a clock the test moves, and the releases it saw."""

    def __init__(self):
        self.connected, self.now, self.released = False, 0.0, 0
        self.watcher = idle.IdleRelease(lambda: self.connected, self.release, grace_s=10.0, clock=lambda: self.now)

    def release(self):
        self.released += 1

    def at(self, seconds: float) -> bool:
        self.now = seconds
        return self.watcher.tick()


def test_nothing_is_released_before_anyone_visited():
    server = Server()
    assert not any(server.at(t) for t in range(0, 100, 5))
    assert server.released == 0


def test_release_comes_once_the_grace_has_passed_without_a_tab_and_only_once():
    server = Server()
    server.connected = True
    server.watcher.visited()
    assert not server.at(0) and not server.at(50)  # a tab is open: never
    server.connected = False
    assert not server.at(51)  # the quiet spell starts
    assert not server.at(60.9)
    assert server.at(61)
    assert server.released == 1
    assert not any(server.at(t) for t in range(62, 200))  # nothing new was cached: no second release
    server.watcher.visited()
    assert not server.at(205) and server.at(215)
    assert server.released == 2


def test_a_reload_within_the_grace_starts_the_quiet_spell_again():
    server = Server()
    server.watcher.visited()
    assert not server.at(0)
    assert not server.at(8)
    server.connected = True  # the tab came back (a reload, a network blip)
    assert not server.at(9)
    server.connected = False
    assert not server.at(12) and not server.at(21.9)
    assert server.at(22)


def test_a_visit_during_the_quiet_spell_restarts_it():
    server = Server()
    server.watcher.visited()
    assert not server.at(0)
    server.now = 9
    server.watcher.visited()  # a script ran (a tab that connected and left between two looks)
    assert not server.at(9.5) and not server.at(18)
    assert server.at(19.5)


def test_watch_starts_one_daemon_per_name_that_releases_and_survives_a_failing_release():
    calls: list[str] = []

    def release():
        calls.append("release")
        if len(calls) == 1:
            raise RuntimeError("the first release fails")

    watcher = idle.watch("test-watch", lambda: False, release, every_s=0.01, grace_s=0.0)
    assert idle.watch("test-watch", lambda: True, lambda: None) is watcher
    threads = [t for t in threading.enumerate() if t.name == "idle-release-test-watch"]
    assert len(threads) == 1 and threads[0].daemon
    watcher.visited()
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    watcher.visited()  # the loop went on after the failure: the next quiet spell releases again
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == ["release", "release"]


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim_returns_freed_heap_pages_that_glibc_keeps_by_itself():
    """64 MiB in 32 KiB blocks (under the mmap threshold: heap), all freed but one kept at the top so the
    heap cannot shrink by itself: the pages stay resident until the trim."""
    blocks = [bytearray(32 * 1024) for _ in range(2048)]
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])  # touch every page
    pin = bytearray(32 * 1024)
    del blocks
    before = _rss_kib()
    assert idle.return_free_heap()
    after = _rss_kib()
    assert before - after > 32 * 1024, (before, after)
    del pin


def _in_use() -> tuple[int, float | None]:
    found = idle.IN_USE.fullmatch(idle.in_use())
    assert found, idle.in_use()
    return int(found["blocks"]), None if found["malloc"] == "n/a" else float(found["malloc"])


def test_in_use_counts_what_objects_hold_and_comes_back_when_they_are_freed():
    blocks, malloc = _in_use()
    objects = [[i] for i in range(20_000)]  # 20,000 small lists: Python blocks
    big = bytearray(16 * 2**20)  # 16 MiB from malloc
    more_blocks, more_malloc = _in_use()
    assert more_blocks - blocks >= 20_000
    if platform.libc_ver()[0] == "glibc":
        assert more_malloc is not None and malloc is not None and more_malloc - malloc >= 15.9
    del objects, big
    back_blocks, back_malloc = _in_use()
    assert abs(back_blocks - blocks) < 2_000
    if back_malloc is not None and malloc is not None:
        assert abs(back_malloc - malloc) < 1.0
