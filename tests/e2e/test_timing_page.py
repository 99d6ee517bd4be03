"""The Timing page in Chromium: it loads with its recorded results, a tiny benchmark runs on the button
and fills the table, and a bad size shows an error while the rest of the page stays."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .helpers import TIMEOUT_MS, assert_no_exception, goto, shot, wait_for_text, wait_ready

SIZES_LABEL = "sizes (batch x response length, comma-separated)"


def set_text(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True).first
    box.fill(value)
    box.press("Enter")
    wait_ready(page)


@pytest.mark.e2e
def test_timing_page_runs_a_tiny_benchmark(page, app_url):
    # verl eager and fused only, 3 repeats: a run of a few seconds (the fused pass compiles once)
    goto(page, app_url, "timing", "tm_impls=verl-eager&tm_impls=fused&tm_repeats=3&tm_sizes=8x128,64x512")
    assert_no_exception(page)
    wait_for_text(page, "Recorded results")
    expect(page.get_by_text("no GPU").first).to_be_visible()
    live = page.locator("[data-testid=stDataFrame]")
    recorded_tables = live.count()
    page.get_by_role("button", name="Run benchmark").click()
    wait_for_text(page, "Live run on this server", timeout=3 * TIMEOUT_MS)
    wait_ready(page, timeout=3 * TIMEOUT_MS)
    expect(live).to_have_count(recorded_tables + 1, timeout=TIMEOUT_MS)
    expect(page.get_by_text("the fused forward+backward takes").first).to_be_visible()
    assert_no_exception(page)
    page.set_viewport_size({"width": 1400, "height": 1800})
    wait_ready(page)
    shot(page, "timing")

    set_text(page, SIZES_LABEL, "8 by 128")
    wait_for_text(page, "is not BxT")
    expect(page.get_by_text("Recorded results").first).to_be_visible()
    assert "tm_sizes=8+by+128" in page.url or "tm_sizes=8%20by%20128" in page.url
    assert_no_exception(page)
