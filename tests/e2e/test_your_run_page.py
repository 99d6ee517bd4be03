"""The Your run page in Chromium: a verl run written by verl's own Tracking is dropped on the uploader, the
page recognises it, draws the timeline and dates what went wrong; the eps input reruns it; screenshots at
1400 px (docs/screenshots/your-run.png), 820 and 390 px (artifacts/screenshots/)."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.unit.test_runlogs_writers import write_with_verl
from tests.upstream import _harness
from valueloss.tools.runlogs.example import example_run_jsonl

from .helpers import SCREENSHOTS, TIMEOUT_MS, assert_no_exception, goto, set_input, shot, wait_for_text, wait_ready

NARROW = SCREENSHOTS.parents[1] / "artifacts" / "screenshots"  # ignored by git: for reading, not for the README


@pytest.fixture(scope="module")
def verl_jsonl(tmp_path_factory):
    """The example run's numbers, logged through verl's own Tracking (file backend): a verl run's real file."""
    site = _harness.ensure_installed()
    steps = [(x["step"], x["data"]) for x in map(json.loads, example_run_jsonl().decode().splitlines())]
    steps = [(s, {k: (float("nan") if v is None else v) for k, v in d.items()}) for s, d in steps]
    return write_with_verl(site, tmp_path_factory.mktemp("verl"), steps)


def open_your_run(page, app_url):
    """The page, after one visit to "/": a fresh server's first deep link to a url_path that differs from the
    page's file name shows Streamlit's "Page not found" dialog over the page (Sanity check's too)."""
    goto(page, app_url)
    goto(page, app_url, "your-run")


@pytest.mark.e2e
def test_a_verl_run_is_read_and_its_problems_dated(page, app_url, verl_jsonl):
    open_your_run(page, app_url)
    assert_no_exception(page)
    page.locator("[data-testid=stFileUploader] input[type=file]").first.set_input_files(str(verl_jsonl))
    wait_for_text(page, "What the detectors found")
    wait_ready(page)
    assert_no_exception(page)
    expect(page.locator("[data-testid=stAlertContentWarning]").first).to_contain_text("from step", timeout=TIMEOUT_MS)
    wait_for_text(page, "The value loss is NaN from step 385")
    expect(page.locator("[data-testid=stPlotlyChart]").first).to_be_visible()
    page.set_viewport_size({"width": 1400, "height": 1900})
    wait_ready(page)
    shot(page, "your-run")
    set_input(page, "eps (critic.cliprange_value)", 0.2)
    assert "yr_eps0=0.2" in page.url
    page.get_by_text("eps against the return scale, step by step").first.click()  # drawn once opened
    wait_ready(page)
    wait_for_text(page, "eps / return scale")
    assert_no_exception(page)
    for width in (820, 390):
        page.set_viewport_size({"width": width, "height": 1400})
        wait_ready(page)
        shot(page, f"your-run-{width}", folder=NARROW)
    assert_no_exception(page)


@pytest.mark.e2e
def test_a_hostile_upload_shows_a_message(page, app_url):
    open_your_run(page, app_url)
    page.locator("[data-testid=stFileUploader] input[type=file]").first.set_input_files(
        files=[{"name": "model.pt", "mimeType": "application/octet-stream", "buffer": b"\x80\x04\x95" + b"\0" * 30}]
    )
    wait_for_text(page, "never unpickles")
    assert_no_exception(page)
