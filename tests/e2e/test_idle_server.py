"""Issue 21, a class's memory: the real server lets go of what its visitors cached once no tab has been
connected for the grace (valueloss/tools/idle.py), never while one is, and serves the next visitor as before.

Driven with the load script's websocket client (tests/load.py), which speaks to the server as Chromium does
(in its own thread: in a full run Playwright's sync API owns this thread's event loop).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.load import Session
from valueloss.tools.idle import GRACE_S

from .conftest import ROOT, serve_app
from .helpers import run_client

pytestmark = pytest.mark.slow
RELEASED = "no visitor for"


async def _visit(url: str, eps: float, *, stay_s: float = 0.0) -> int:
    """Open Batch, set eps, stay, leave; the number of widgets the page drew."""
    session = Session(url, "batch")
    await session.open()
    await session.set("b_eps", eps)
    await asyncio.sleep(stay_s)
    await session.close()
    return len(session.widgets)


def _releases(log) -> list[str]:
    return [line for line in log.read_text().splitlines() if RELEASED in line]


def _wait_for_releases(log, count: int, within_s: float) -> list[str]:
    deadline = time.monotonic() + within_s
    while len(_releases(log)) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    return _releases(log)


def test_the_server_releases_once_nobody_is_connected_and_serves_the_next_visitor(tmp_path):
    log = tmp_path / "server.log"
    with serve_app(ROOT, log_path=log) as url:
        # a tab open past the grace: nothing is released while it is connected
        widgets = run_client(_visit(url, 0.25, stay_s=GRACE_S + 4))
        assert widgets and _releases(log) == [], "released while a tab was connected"
        # it closes: one release after the grace, with the caches emptied and the heap trimmed
        lines = _wait_for_releases(log, 1, GRACE_S + 15)
        assert len(lines) == 1, log.read_text()[-2000:]
        assert "caches emptied" in lines[0] and "objects collected" in lines[0]
        time.sleep(3)
        assert len(_releases(log)) == 1, "released again with no visit in between"
        # the next visitor recomputes what was cached and gets the same page
        assert run_client(_visit(url, 0.25)) == widgets
        assert len(_wait_for_releases(log, 2, GRACE_S + 15)) == 2
