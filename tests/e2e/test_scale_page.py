"""The Scale page in Chromium: the core's multiplier, a real distributed run, bad input as an error."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

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
