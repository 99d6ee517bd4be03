"""The Scale page in Chromium: the core's multiplier, a real distributed run, bad input as an error."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.unit.test_distributed import descendants
from valueloss import scale

from .helpers import TIMEOUT_MS, assert_no_exception, goto, nudge_slider, shot, wait_for_text, wait_ready


def metric(page, label: str):
    return page.locator("[data-testid=stMetric]").filter(has_text=label).first


def multiplier(k: int) -> str:
    lengths = scale.spread_lengths(16, 12, 0.8, 0)
    split = scale.split_batch(lengths, 2, micro_batches=k)
    return f"{scale.scheme_weights(split, scale.make_problem(lengths).mask, 'verl-engine-local').multiplier:.4g}×"


@pytest.mark.e2e
def test_scale_page_predicts_and_runs_on_real_processes(page, app_url):
    goto(page, app_url, "scale")
    assert_no_exception(page)
    expect(metric(page, "learning-rate multiplier")).to_contain_text(multiplier(4), timeout=TIMEOUT_MS)
    link = page.get_by_role("link", name="verl#6957").first
    expect(link).to_have_attribute("href", "https://github.com/verl-project/verl/pull/6957")
    # fewer micro-batches per rank: the multiplier follows
    nudge_slider(page, "micro-batches per rank", -1)
    expect(metric(page, "learning-rate multiplier")).to_contain_text(multiplier(3), timeout=TIMEOUT_MS)
    assert "sc_k=3" in page.url
    page.get_by_role("button", name="Run on real processes").click()
    wait_for_text(page, "rank 1: ", timeout=TIMEOUT_MS)  # a bar per rank while it runs
    wait_for_text(page, "Measured vs predicted", timeout=240_000)
    assert_no_exception(page)
    expect(page.locator("[data-testid=stAlertContentError]")).to_have_count(0)
    page.set_viewport_size({"width": 1400, "height": 2200})
    wait_ready(page)
    shot(page, "scale")


@pytest.mark.e2e
def test_scale_page_says_what_to_fix(page, app_url):
    goto(page, app_url, "scale", "sc_dp=8&sc_n=4")
    wait_for_text(page, "dp_size (8) is larger than the number of sequences (4)")
    assert_no_exception(page)
    expect(page.get_by_role("link", name="torchtune#1875").first).to_be_visible()


def server_pid(app_url: str) -> int:
    """The pid of the process listening on the app's port (from /proc/net/tcp and each process's fds)."""
    port = urlsplit(app_url).port
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = {str(fd.readlink()) for fd in (proc / "fd").iterdir()}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            return int(proc.name)
    raise RuntimeError(f"no process listens on port {port}")


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_ten_quick_clicks_run_once_and_leave_no_process(page, app_url):
    """Issue 21.1 as it was found: this link, the button clicked ten times quickly, gave 42 processes."""
    server = server_pid(app_url)
    before = descendants(server)
    goto(page, app_url, "scale", "sc_dp=4&sc_n=16&sc_len=6&sc_k=2")
    button = page.get_by_role("button", name="Run on real processes")
    peak: set[int] = set()
    for _ in range(10):
        button.click(force=True, no_wait_after=True, timeout=TIMEOUT_MS)  # a disabled button takes no click
        peak |= descendants(server) - before
    expect(button).to_be_disabled(timeout=TIMEOUT_MS)
    wait_for_text(page, "rank 3: ", timeout=TIMEOUT_MS)
    deadline = time.monotonic() + 240
    while page.get_by_text("Measured vs predicted").count() == 0 and time.monotonic() < deadline:
        peak |= descendants(server) - before
        page.wait_for_timeout(200)
    wait_for_text(page, "Measured vs predicted", timeout=TIMEOUT_MS)
    expect(button).to_be_enabled(timeout=TIMEOUT_MS)
    after = descendants(server) - before
    print(f"server processes at the peak of ten quick clicks: {len(peak)}; after the run: {len(after)}")
    assert len(peak) <= 4 + 3, peak  # 4 ranks, the CLI, its forkserver (and its resource tracker)
    assert not after, after
    assert_no_exception(page)


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_closing_the_tab_stops_the_run(browser, app_url):
    """The session ends mid-run: within the abandon time (10 s) every process of the run is gone."""
    server = server_pid(app_url)
    before = descendants(server)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    goto(tab, app_url, "scale", "sc_dp=4&sc_n=16&sc_len=6&sc_k=2")
    tab.get_by_role("button", name="Run on real processes").click()
    wait_for_text(tab, "Running for", timeout=TIMEOUT_MS)
    assert descendants(server) - before
    context.close()
    deadline = time.monotonic() + 60
    while descendants(server) - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not descendants(server) - before
