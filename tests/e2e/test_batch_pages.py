"""The Batch and Sanity-check pages in Chromium: they load, an input changes a number, a bad upload shows an error,
and the verdicts of issue 20's cases read as the core writes them at 1400, 820 and 390 px."""

from __future__ import annotations

import pickle

import pytest
from playwright.sync_api import expect

from valueloss.tools.batch import synthetic_batch
from valueloss.tools.batch_reports import batch_stats
from valueloss.tools.clipfrac import SummaryStats
from valueloss.tools.findings import batch_verdict
from valueloss.tools.sanity import sanity_from_summary

from .helpers import SCREENSHOTS, TIMEOUT_MS, assert_no_exception, goto, set_input, shot, wait_for_text, wait_ready

WIDTHS = (1400, 820, 390)
NARROW = SCREENSHOTS.parents[1] / "artifacts" / "screenshots"  # ignored by git: for reading, not for the README

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
    wait_for_text(page, "values and returns live on different scales")
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
    rep = sanity_from_summary(SummaryStats(5.0, 3.0, 0.0, 1.0), 0.3, "verl", 0.1)
    wait_for_text(page, rep.verdict.title)
    assert rep.verdict.title == "84.0% clipped, above your 10% target: eps is too small for this return scale"
    wait_for_text(page, "This estimate assumes one update moves the critic 0.15 of the way to R.")
    assert page.locator("[data-testid=stAlertContentSuccess]").count() == 0


CASES = {
    # issue 20 item 1: summary statistics, eps 0.3, logged 0.6
    "sanity-logged": ("sanity-check", "s_eps=0.3&s_has_logged=true&s_logged=0.6", SummaryStats(0.5, 1.0, 0.0, 0.5)),
    # item 2: std 0.05 at eps 10
    "sanity-inactive": ("sanity-check", "s_r_std=0.05&s_v_std=0.05&s_eps=10.0", SummaryStats(0.5, 0.05, 0.0, 0.05)),
    # item 4: returns 100 +- 1, values 0 +- 1, eps 0.5
    "sanity-offset": ("sanity-check", "s_r_mean=100.0&s_v_std=1.0&s_eps=0.5", SummaryStats(100.0, 1.0, 0.0, 1.0)),
}


@pytest.mark.e2e
@pytest.mark.parametrize("case", list(CASES))
def test_the_sanity_verdict_reads_as_the_core_writes_it_at_every_width(page, app_url, case):
    path, query, stats = CASES[case]
    eps = float(dict(kv.split("=") for kv in query.split("&"))["s_eps"])
    logged = 0.6 if "s_logged" in query else None
    rep = sanity_from_summary(stats, eps, "verl", 0.1, logged=logged)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 1000})
        goto(page, app_url, path, query)
        assert_no_exception(page)
        wait_for_text(page, rep.verdict.title)
        expect(metric(page, "eps for ≤ 10% clipped")).to_contain_text(
            dict((m[0], m[1]) for m in rep.metrics)["eps for ≤ 10% clipped"]
        )
        shot(page, f"{case}-{width}", folder=NARROW)


@pytest.mark.e2e
@pytest.mark.parametrize("eps", [0.2, 5.0])
def test_the_batch_verdict_and_its_reading_at_every_width(page, app_url, eps):
    v = batch_verdict(synthetic_batch(), eps)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 1000})
        goto(page, app_url, "batch", f"b_eps={eps}")
        assert_no_exception(page)
        wait_for_text(page, v.verdict.title)
        wait_for_text(page, v.reading.explanation[:120])
        shot(page, f"batch-eps{eps:g}-{width}", folder=NARROW)
