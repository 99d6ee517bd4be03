"""The Timing page in Chromium: it leads with the answer and keeps the detail in tabs (a short page),
a tiny benchmark runs on the button and fills the table, a long run can be cancelled (and the next run
goes ahead), and a bad size shows an error while the rest of the page stays."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .helpers import TIMEOUT_MS, assert_no_exception, goto, set_input, shot, wait_for_text, wait_ready

SIZES_LABEL = "sizes (batch x response length, comma-separated)"
MAIN_HEIGHT = "() => document.querySelector('[data-testid=stMain]').scrollHeight"


@pytest.mark.e2e
def test_timing_page_runs_a_tiny_benchmark(page, app_url):
    # verl eager and fused only, 3 repeats: a run of a few seconds (the fused pass compiles once)
    goto(page, app_url, "timing", "tm_impls=verl-eager&tm_impls=fused&tm_repeats=3&tm_sizes=8x128,64x512")
    assert_no_exception(page)
    wait_for_text(page, "Recorded results")
    # the answer first: the recording's headline, with "roofline" said in plain words where it first appears
    expect(page.get_by_text("the fused forward+backward takes").first).to_be_visible()
    expect(page.get_by_text("the roofline is the time a kernel takes").first).to_be_visible()
    expect(page.get_by_text("no GPU").first).to_be_visible()
    assert page.evaluate(MAIN_HEIGHT) < 2600, "the page should lead with the answer and keep the detail in tabs"
    tables = page.locator("[data-testid=stDataFrame]")
    recorded_tables = tables.count()
    page.get_by_role("button", name="Run benchmark").click()
    wait_for_text(page, "Live run on this server", timeout=3 * TIMEOUT_MS)
    wait_ready(page, timeout=3 * TIMEOUT_MS)
    expect(tables).to_have_count(recorded_tables + 1, timeout=TIMEOUT_MS)
    assert page.get_by_text("the fused forward+backward takes").count() >= 2  # the live run's answer too
    page.get_by_role("tab", name="Table and CSV").first.click()
    expect(tables.first).to_be_visible()
    assert_no_exception(page)
    page.set_viewport_size({"width": 1400, "height": 1800})
    wait_ready(page)
    shot(page, "timing")

    set_input(page, SIZES_LABEL, "8 by 128")
    wait_for_text(page, "is not BxT")
    expect(page.get_by_text("Recorded results").first).to_be_visible()
    assert "tm_sizes=8+by+128" in page.url or "tm_sizes=8%20by%20128" in page.url
    assert_no_exception(page)


@pytest.mark.e2e
def test_a_long_run_can_be_cancelled_and_the_next_run_goes_ahead(page, app_url):
    # the eager formulas at two large sizes, 20 repeats: a run of minutes, cancelled once it is under way
    goto(
        page, app_url, "timing", "tm_impls=verl-eager&tm_impls=openrlhf-eager&tm_repeats=20&tm_sizes=512x4096,1024x4096"
    )
    page.get_by_role("button", name="Run benchmark").click()
    wait_for_text(page, "512x4096: warm-up", timeout=TIMEOUT_MS)  # timing has started (past any compilation)
    page.get_by_role("button", name="Cancel run").click()
    wait_for_text(page, "cancelled before it finished", timeout=TIMEOUT_MS)
    wait_ready(page)
    assert page.get_by_text("Live run on this server").count() == 0
    set_input(page, SIZES_LABEL, "4x16")
    for _ in range(20):  # the cancelled run stops after the step under way, then releases the lock
        page.get_by_role("button", name="Run benchmark").click()
        wait_ready(page, timeout=3 * TIMEOUT_MS)
        if page.get_by_text("Live run on this server").count():
            break
        # Still locked (the AppTest checks the message that says so), or the click raced a rerun: again.
        page.wait_for_timeout(3000)
    wait_for_text(page, "Live run on this server")
    assert_no_exception(page)
