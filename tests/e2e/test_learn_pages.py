"""The Learn pages in Chromium: the tour checks an answer, keeps it across pages and in the link;
the dynamics page runs a scenario, follows its link and plays its moving wall. A screenshot each."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from valueloss.teach.explain import fmt
from valueloss.teach.simulate import SimConfig, simulate
from valueloss.teach.tour import STEPS, get_step
from valueloss.viz.dynamics import wall_data

from .helpers import TIMEOUT_MS, assert_no_exception, goto, shot, wait_for_text, wait_ready


def metric_value(page, label: str):
    return page.locator("[data-testid=stMetric]").filter(has_text=label).first.locator("[data-testid=stMetricValue]")


def fit_viewport(page, cap: int = 3200) -> None:
    """Grow the window to the page's height so the screenshot shows the whole page, charts redrawn."""
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": int(min(max(height, 1000), cap))})
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.mouse.move(2, 2)
    wait_ready(page)
    page.wait_for_timeout(800)  # plotly redraws on resize


def open_nav(page, title: str, url_glob: str) -> None:
    page.locator("[data-testid=stSidebarNav]").get_by_text(title, exact=True).first.click()
    page.wait_for_url(url_glob, timeout=TIMEOUT_MS)
    wait_ready(page)


@pytest.mark.e2e
def test_tour_checks_an_answer_and_keeps_it(page, app_url):
    goto(page, app_url, "tour")
    assert_no_exception(page)
    wait_for_text(page, f"Answered 0 of {len(STEPS)}")

    step = get_step("active-term")
    right_text = step.choice(step.expected).text
    panel = page.locator("[data-testid=stTabPanel]:visible").first  # hidden tabs stay in the DOM
    # Choices are shuffled per visitor: find the right one by its text, then click its letter.
    option = panel.locator("[data-testid=stRadioGroup] > div").filter(has_text=right_text).first
    option.locator("label").first.click()
    panel.get_by_role("button", name="Check my answer").click()
    wait_for_text(page, "Right: ")
    wait_for_text(page, f"Answered 1 of {len(STEPS)} · 1 right")
    expect(metric_value(page, "(v − R)²")).to_have_text("81", timeout=TIMEOUT_MS)
    assert "t_progress=r" + "-" * (len(STEPS) - 1) in page.url  # progress is in the link, the answer is not
    assert "t_a1=" not in page.url
    # Locked once revealed: the answer cannot be changed any more.
    expect(panel.locator("[data-testid=stRadio] input").first).to_be_disabled()
    # The live explorer mounts when its expander is opened, on the step's own token.
    assert panel.locator("[data-handle=v]").count() == 0
    panel.get_by_text("Drag it yourself").first.click()
    expect(panel.locator("[data-handle=v]").first).to_have_attribute("aria-valuenow", "1", timeout=TIMEOUT_MS)
    # The step opens its scenario live on One token.
    expect(panel.get_by_role("link", name="One token →")).to_have_attribute(
        "href", "./explore?v_old=5&R=10&eps=0.2&v=1"
    )
    assert_no_exception(page)
    fit_viewport(page)
    shot(page, "tour")
    page.set_viewport_size({"width": 1400, "height": 1000})

    # Jump straight to another step: the tab is in the link too.
    page.get_by_role("tab", name=STEPS[5].tab).click()
    wait_ready(page)
    expect(page.get_by_text(STEPS[5].question).first).to_be_visible(timeout=TIMEOUT_MS)
    assert "t_step=" in page.url

    # Leave for another page and come back: progress survives.
    open_nav(page, "Critic dynamics", "**/dynamics**")
    open_nav(page, "Guided tour", "**/tour**")
    wait_for_text(page, f"Answered 1 of {len(STEPS)} · 1 right")
    assert_no_exception(page)


@pytest.mark.e2e
def test_tour_link_shares_progress_without_answers(page, app_url):
    goto(page, app_url, "tour", (f"t_step={STEPS[7].tab}&t_progress=r-w" + "-" * (len(STEPS) - 3)).replace(" ", "%20"))
    assert_no_exception(page)
    wait_for_text(page, f"2 of {len(STEPS)} answered, 1 right (right: step 1; wrong: step 3)")
    wait_for_text(page, f"Answered 0 of {len(STEPS)}")


@pytest.mark.e2e
def test_dynamics_runs_a_scenario_and_plays(page, app_url):
    goto(page, app_url, "dynamics")
    assert_no_exception(page)
    expect(metric_value(page, "rule of thumb: rollouts")).to_have_text("8.0", timeout=TIMEOUT_MS)

    page.locator("[data-testid=stSidebar]").get_by_role("button", name="Shared net").click()
    wait_for_text(page, "Pushed while frozen")
    assert "d_critic=shared" in page.url and "d_lr=0.03" in page.url
    expected = simulate(SimConfig(critic="shared", lr=0.03))
    expect(metric_value(page, "max move with own gradient 0")).to_have_text(
        f"{expected.max_moved_while_frozen:.4g}", timeout=TIMEOUT_MS
    )
    assert_no_exception(page)

    # The moving wall draws this run: Play for a moment, Pause, and the table reads the run where it stopped.
    data = wall_data(expected)
    wall, label = page.get_by_test_id("vl-wall"), page.get_by_test_id("vl-wall-label")
    expect(wall).to_have_attribute("data-revision", data["revision"], timeout=TIMEOUT_MS)
    last = len(data["labels"]) - 1
    expect(label).to_have_text(f"update 0 of {last}: start")
    play = page.get_by_test_id("vl-wall-play")
    play.click()
    expect(play).to_have_text("❚❚ Pause")
    page.wait_for_timeout(1200)
    play.click()
    expect(wall).to_have_attribute("data-playing", "false")
    u = int(wall.get_attribute("data-state"))
    assert 0 < u < last
    expect(label).to_have_text(f"update {u} of {last}: {data['labels'][u]}")
    rows = page.get_by_test_id("vl-wall-readout").locator("tr")
    for i, c in enumerate(expected.tracked, start=1):
        cells = rows.nth(i).locator("td").all_inner_texts()
        k = int(expected.rollout[u - 1])
        own = "0" if expected.frozen_after[u - 1, c] else "≠ 0"
        v, v_old = float(expected.values[u, c]), float(expected.v_old[k, c])  # the browser's float64 arithmetic
        assert cells == [str(c), fmt(v_old), fmt(expected.targets[k, c]), fmt(v), fmt(v - v_old), own]
    # the slider answers the keyboard; a press on a history moves to the update under the pointer
    page.get_by_role("slider", name="update shown").press("End")
    expect(label).to_have_text(f"update {last} of {last}: {data['labels'][last]}")
    history = page.get_by_test_id("vl-wall-history")
    history.scroll_into_view_if_needed()
    box = history.bounding_box()
    page.mouse.click(box["x"] + 0.3 * box["width"], box["y"] + 0.3 * box["height"])
    expect(wall).not_to_have_attribute("data-state", str(last))  # drawn on the next frame
    u = int(wall.get_attribute("data-state"))
    assert 0.15 * last < u < 0.45 * last

    # The training logs follow the wall: their readout is the run's logs at the wall's update ...
    logs, readout = page.get_by_test_id("vl-logs"), page.get_by_test_id("vl-logs-readout")
    expect(logs).to_have_attribute("data-update", str(u))
    expect(readout).to_have_text(
        f"update {u} ({data['labels'][u]}), as on the wall: RMSE {fmt(expected.value_error[u])} · RMSE without "
        f"clipping {fmt(expected.baseline_value_error[u])} · explained var. {fmt(expected.explained_var[u])} · "
        f"vf_loss {fmt(expected.vf_loss[u - 1])} · vf_clipfrac {fmt(expected.vf_clipfrac[u - 1])}"
    )
    # ... pointing at them reads another update, and a press there moves the wall to it
    svg = page.get_by_test_id("vl-logs-svg")
    svg.scroll_into_view_if_needed()
    box = svg.bounding_box()
    page.mouse.move(box["x"] + 0.8 * box["width"], box["y"] + 0.5 * box["height"])
    expect(readout).not_to_contain_text("as on the wall")
    pointed = int(logs.get_attribute("data-update"))
    assert pointed > 0.6 * last
    page.mouse.down()
    page.mouse.up()
    expect(wall).to_have_attribute("data-state", str(pointed))
    expect(label).to_have_text(f"update {pointed} of {last}: {data['labels'][pointed]}")

    # The eps sweep runs only when asked: opening it draws the same run at other eps, with the eps in use marked.
    expect(page.locator("[data-testid=stPlotlyChart]")).to_have_count(0)
    page.get_by_text("The eps sweep: the same run at other eps").click()
    expect(page.locator("[data-testid=stPlotlyChart]").get_by_text("your eps = 0.5")).to_be_visible(timeout=TIMEOUT_MS)
    wait_ready(page)
    assert_no_exception(page)
    fit_viewport(page)
    shot(page, "dynamics")


@pytest.mark.e2e
def test_dynamics_link_reproduces_the_run(page, app_url):
    goto(page, app_url, "dynamics", "d_eps=0.25")
    assert_no_exception(page)
    expect(metric_value(page, "rule of thumb: rollouts")).to_have_text("16.0", timeout=TIMEOUT_MS)
    closed = simulate(SimConfig(eps=0.25)).rollouts_to_close
    expect(metric_value(page, "rollouts to close 90% of the gap")).to_have_text(
        "—" if closed is None else str(closed), timeout=TIMEOUT_MS
    )


@pytest.mark.e2e
@pytest.mark.parametrize("path", ["explore", ""])
def test_the_default_page_works_at_its_path_and_at_the_root(page, app_url, path):
    """/explore?v=0.5 answered "Page not found": the default page is served at "/" only, so app.py also
    registers One token at /explore (visible) and keeps the root (hidden default)."""
    goto(page, app_url, path, "v=0.5")
    assert_no_exception(page)
    assert page.get_by_text("Page not found").count() == 0
    expect(page.locator("h1").first).to_have_text("One token")
    slider = page.locator("[data-testid=stSlider]").filter(has_text="v: current prediction").first
    expect(slider.locator("[data-testid=stSliderThumbValue]").first).to_have_text("0.50")


@pytest.mark.e2e
@pytest.mark.parametrize("key", ["clipfrac-counts", "return-units", "micro-batches"])
def test_a_steps_see_it_live_link_opens_its_own_batch(page, app_url, key):
    """Steps 5, 7 and 9 linked to batches other than their own (step 9's micro-batches 12/16/12/12 became
    [24, 33, 24, 60] on Scale): answer the step, click its first link, and compare the page with the reveal."""
    from tests.app.test_tour_links import numbers
    from valueloss.teach.tour import live_links, reveal
    from valueloss.tools.batch import synthetic_batch

    step = get_step(key)
    r = reveal(key, make_batch=synthetic_batch)
    goto(page, app_url, "tour", urlencode({"t_step": step.tab}))
    panel = page.locator("[data-testid=stTabPanel]:visible").first
    panel.locator("[data-testid=stRadioGroup] > div").filter(has_text=step.choice(step.expected).text).first.locator(
        "label"
    ).first.click()
    panel.get_by_role("button", name="Check my answer").click()
    wait_for_text(page, "Right: ")
    title, url = live_links(key)[0]
    link = panel.get_by_role("link", name=f"{title} →")
    expect(link).to_have_attribute("href", url)
    target = page
    if link.get_attribute("target") == "_blank":
        with page.context.expect_page() as opened:
            link.click()
        target = opened.value
    else:
        link.click()
    target.set_default_timeout(TIMEOUT_MS)
    wait_ready(target)
    expect(target.locator("h1").first).to_have_text(title, timeout=TIMEOUT_MS)
    assert_no_exception(target)
    assert target.get_by_text("This link asked for values").count() == 0
    shown = numbers(r)
    if key == "micro-batches":
        wait_for_text(target, f"rank 0: {r.data['micro_tokens']}")
    elif key == "clipfrac-counts":
        expect(metric_value(target, "loss clip fraction")).to_have_text(shown["vf_clipfrac (verl)"])
    else:
        expect(metric_value(target, "clip fraction at eps")).to_have_text(shown["vf_clipfrac at scale 10"])
