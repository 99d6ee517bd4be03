"""The Batch and Sanity-check pages in Chromium: they load, an input changes a number, a bad upload shows an error."""

from __future__ import annotations

import pickle

import pytest
from playwright.sync_api import expect

from valueloss.tools.batch import synthetic_batch
from valueloss.tools.batch_reports import batch_stats

from .helpers import TIMEOUT_MS, assert_no_exception, goto, set_input, shot, wait_for_text, wait_ready

EPS_LABEL = "eps (cliprange_value, return units)"


def metric(page, label: str):
    return page.locator("[data-testid=stMetric]").filter(has_text=label).first


def clipfrac(eps: float) -> str:
    return f"{batch_stats(synthetic_batch(), eps).loss_clipfrac:.1%}"


@pytest.mark.e2e
def test_batch_page_follows_eps(page, app_url):
    goto(page, app_url, "batch")
    assert_no_exception(page)
    clip = metric(page, "loss clip fraction")
    expect(clip).to_contain_text(clipfrac(0.2), timeout=TIMEOUT_MS)
    page.set_viewport_size({"width": 1400, "height": 1900})
    wait_ready(page)
    shot(page, "batch")
    set_input(page, EPS_LABEL, 0.5)
    expect(clip).to_contain_text(clipfrac(0.5), timeout=TIMEOUT_MS)
    assert "b_eps=0.5" in page.url
    assert_no_exception(page)


@pytest.mark.e2e
def test_batch_page_refuses_a_hostile_upload(page, app_url):
    goto(page, app_url, "batch", "b_source=upload")
    uploader = page.locator("[data-testid=stFileUploader] input[type=file]").first
    uploader.set_input_files(
        files=[{"name": "evil.npz", "mimeType": "application/octet-stream", "buffer": pickle.dumps({"x": 1})}]
    )
    wait_for_text(page, "not a valid .npz")
    expect(page.locator("[data-testid=stAlertContentError]").first).to_contain_text("evil.npz")
    assert_no_exception(page)
    # The page is still alive: the eps box still works.
    set_input(page, EPS_LABEL, 0.3)
    assert_no_exception(page)


@pytest.mark.e2e
def test_sanity_page_warns_about_a_scale_mismatch(page, app_url):
    goto(page, app_url, "sanity-check")
    assert_no_exception(page)
    expect(metric(page, "eps / std(R)")).to_contain_text("0.5 σ_R", timeout=TIMEOUT_MS)
    set_input(page, "value mean", 12)
    set_input(page, "value std", 8)
    wait_for_text(page, "Values and returns live on different scales")
    link = page.get_by_role("link", name="verl-project/verl#498").first
    expect(link).to_have_attribute("href", "https://github.com/verl-project/verl/issues/498")
    assert_no_exception(page)
    page.set_viewport_size({"width": 1400, "height": 1900})
    wait_ready(page)
    shot(page, "sanity")


@pytest.mark.e2e
def test_sanity_page_does_not_give_a_green_light_at_84_percent(page, app_url):
    q = "s_r_mean=5.0&s_r_std=3.0&s_v_mean=0.0&s_v_std=1.0&s_eps=0.3"
    goto(page, app_url, "sanity-check", q)
    assert_no_exception(page)
    wait_for_text(page, "84.0% clipped, above your 10% target: eps is too small for this return scale")
    wait_for_text(page, "This estimate assumes one update moves the critic 0.15 of the way to R.")
    assert page.locator("[data-testid=stAlertContentSuccess]").count() == 0
