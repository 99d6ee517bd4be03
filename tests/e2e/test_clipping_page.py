"""The "Does clipping help?" page in Chromium: it opens on the recorded sweep's verdict (or says there is
none), a tiny sweep runs on the button with a progress bar per run and is then shown, and a longer sweep
can be cancelled, leaving the server free for the next."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from valueloss.tools import ablate

from .helpers import TIMEOUT_MS, assert_no_exception, goto, shot, wait_for_text, wait_ready


@pytest.mark.e2e
def test_the_page_shows_the_recorded_sweep_and_runs_a_tiny_one(page, app_url):
    goto(page, app_url, "clipping", "ab_eps=off,0.5&ab_seeds=1&ab_steps=2048")
    assert_no_exception(page)
    if ablate.recorded_sweeps(Path(__file__).resolve().parents[2] / "docs" / "sweeps"):
        wait_for_text(page, "final return with eps minus without")
        expect(page.locator(".js-plotly-plot")).to_have_count(3, timeout=TIMEOUT_MS)
    else:
        wait_for_text(page, "No recorded sweep")
    expect(page.get_by_text("What the papers found").first).to_be_visible()
    expect(page.get_by_role("link", name="https://arxiv.org/abs/2006.05990")).to_be_visible()
    page.set_viewport_size({"width": 1400, "height": 1000})
    shot(page, "clipping")

    page.get_by_role("button", name="Run sweep").click()
    wait_for_text(page, "Your sweep, run on this server", timeout=3 * TIMEOUT_MS)
    wait_ready(page, timeout=3 * TIMEOUT_MS)
    wait_for_text(page, "On CartPole-v1 after 2,048 steps per run (1 seeds)")
    expect(page.locator(".js-plotly-plot")).to_have_count(3, timeout=TIMEOUT_MS)
    assert_no_exception(page)


@pytest.mark.e2e
def test_a_longer_sweep_can_be_cancelled_and_the_next_one_goes_ahead(page, app_url):
    goto(page, app_url, "clipping", "ab_eps=off,0.2,1,10&ab_seeds=3&ab_steps=50000")
    page.get_by_role("button", name="Run sweep").click()
    # under way, a bar per run (the count moves every update: match any)
    wait_for_text(page, re.compile(r"eps off, seed 1: [\d,]+ / 50,000 steps"), timeout=TIMEOUT_MS)
    expect(page.get_by_text("eps 10, seed 3: waiting")).to_be_visible()
    page.get_by_role("button", name="Cancel sweep").click()
    wait_for_text(page, "cancelled before it finished", timeout=TIMEOUT_MS)
    wait_ready(page)
    assert page.get_by_text("Your sweep, run on this server").count() == 0
    goto(page, app_url, "clipping", "ab_eps=off&ab_seeds=1&ab_steps=2048")  # the lock is free again
    page.get_by_role("button", name="Run sweep").click()
    wait_for_text(page, "Your sweep, run on this server", timeout=3 * TIMEOUT_MS)
    assert_no_exception(page)


@pytest.mark.e2e
def test_bad_sweep_settings_show_an_error(page, app_url):
    goto(page, app_url, "clipping", "ab_eps=off,-1")
    wait_for_text(page, "Sweep settings")
    expect(page.get_by_text("eps must be 'off' or a finite number").first).to_be_visible()
    assert_no_exception(page)
