"""Start the real app once per session and drive it with Playwright in Debian's Chromium.

Only 127.0.0.1 is ever contacted. Outside CI the browser tests skip where Chromium is absent;
in CI (``CI=true``) a missing browser is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium_available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


def pytest_collection_modifyitems(config, items):
    if _chromium_available():
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("CI needs Debian's chromium for the browser tests: apt-get install -y chromium")
    skip = pytest.mark.skip(reason="Debian chromium is not installed (apt-get install -y chromium)")
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(tree: Path = ROOT, python: str = sys.executable, log_path: Path | None = None):
    """``streamlit run app.py`` in ``tree`` on a free 127.0.0.1 port; yields its URL once /_stcore/health answers.

    The server's output goes to ``log_path`` (quoted when it does not start), or nowhere.
    """
    port = _free_port()
    cmd = [python, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.address", "127.0.0.1"]
    cmd += ["--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    with open(log_path or os.devnull, "w") as log:
        proc = subprocess.Popen(cmd, cwd=tree, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 90
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.time() > deadline:
                    shown = f"; see {log_path}:\n{log_path.read_text()[-3000:]}" if log_path else ""
                    raise RuntimeError(f"streamlit in {tree} did not start{shown}")
                time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def running_app(log_name: str):
    """The app of this checkout, its server log in artifacts/."""
    log_path = ROOT / "artifacts" / log_name
    log_path.parent.mkdir(exist_ok=True)
    with serve_app(log_path=log_path) as url:
        yield url


@pytest.fixture(scope="session")
def app_url():
    with running_app("streamlit-e2e.log") as url:
        yield url


@pytest.fixture
def fresh_app_url():
    """A server nobody has visited yet (for first-visit behaviour such as deep links)."""
    with running_app("streamlit-e2e-fresh.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        exe = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()
