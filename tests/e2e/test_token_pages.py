"""The three one-token pages in Chromium: they load, a slider or a click changes the readout, a screenshot each."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from valueloss.anatomy import REGION_LABELS, REGION_ZERO_GRAD
from valueloss.explain import fmt
from valueloss.presets import PRESETS

from .helpers import TIMEOUT_MS, assert_no_exception, goto, nudge_slider, shot, wait_for_text, wait_ready


def metric_value(page, label: str):
    return page.locator("[data-testid=stMetric]").filter(has_text=label).first.locator("[data-testid=stMetricValue]")


def fit_viewport(page) -> None:
    """Grow the window to the page's height so the screenshot shows the whole page, charts redrawn."""
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": int(min(max(height, 1000), 3200))})
    page.evaluate("document.activeElement && document.activeElement.blur()")  # no focus ring or tooltip
    page.mouse.move(2, 2)
    wait_ready(page)
    page.wait_for_timeout(800)  # plotly redraws on resize


@pytest.mark.e2e
def test_explore_slider_and_click_move_v(page, app_url):
    # The default page is served at the app's root.
    goto(page, app_url, "")
    assert_no_exception(page)
    grad = metric_value(page, "Gradient d max/dv")
    expect(grad).to_have_text("−1.8", timeout=TIMEOUT_MS)

    # 40 steps of 0.01 take v from 0.1 to 0.5: past the band, toward R = 1.
    nudge_slider(page, "v: current prediction", 40)
    expect(grad).to_have_text("0", timeout=TIMEOUT_MS)
    wait_for_text(page, REGION_LABELS[REGION_ZERO_GRAD])  # "past the band toward R, nearer R than the band edge"
    assert "v=0.5" in page.url  # the scenario is in the link
    assert_no_exception(page)

    # Clicking the L(v) chart near its left edge moves v there: away from R, full gradient again.
    chart = page.locator("[data-testid=stPlotlyChart]").first
    drag = chart.locator(".nsewdrag").first
    box = drag.bounding_box()
    drag.click(position={"x": box["width"] * 0.06, "y": box["height"] * 0.5})
    expect(grad).not_to_have_text("0", timeout=TIMEOUT_MS)
    wait_for_text(page, "restoring: moved away from R")
    assert_no_exception(page)

    # A preset puts every slider where it says, and its note appears.
    p = PRESETS["past-band-toward-R"]
    page.get_by_role("button", name=p.title, exact=True).click()
    wait_ready(page)
    expect(grad).to_have_text(fmt(0.0), timeout=TIMEOUT_MS)
    wait_for_text(page, p.notice)
    fit_viewport(page)
    shot(page, "explore")


def notice_locator(page):
    return page.locator("[data-testid=stMarkdownContainer]").filter(has_text="What to notice").first


@pytest.mark.e2e
def test_surfaces_eps_slider_changes_where_clipping_bites(page, app_url):
    goto(page, app_url, "surfaces")
    assert_no_exception(page)
    text = notice_locator(page)
    expect(text).to_contain_text("28%", timeout=TIMEOUT_MS)
    expect(page.locator("[data-testid=stPlotlyChart]")).to_have_count(1)
    nudge_slider(page, "ε: clip range", 10)  # 0.2 -> 0.3 in steps of 0.01
    expect(text).not_to_contain_text("28%", timeout=TIMEOUT_MS)
    page.wait_for_url("**s_eps=0.3*", timeout=TIMEOUT_MS)
    assert_no_exception(page)
    fit_viewport(page)
    shot(page, "surfaces")


@pytest.mark.e2e
def test_gradients_eps_slider_changes_the_frozen_share(page, app_url):
    goto(page, app_url, "gradients")
    assert_no_exception(page)
    share = page.locator("[data-testid=stMarkdownContainer]").filter(has_text="exactly 0").first
    expect(share).to_contain_text("28%", timeout=TIMEOUT_MS)
    expect(page.locator("[data-testid=stPlotlyChart]")).to_have_count(2)
    nudge_slider(page, "ε: clip range", 10)
    expect(share).not_to_contain_text("28%", timeout=TIMEOUT_MS)
    assert_no_exception(page)
    nudge_slider(page, "ε: clip range", -10)
    expect(share).to_contain_text("28%", timeout=TIMEOUT_MS)
    fit_viewport(page)
    shot(page, "gradients")
