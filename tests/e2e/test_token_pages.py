"""The three one-token pages in Chromium: they load, a slider or a click changes the readout, a screenshot each."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from valueloss import axis_values, evaluate_grid, value_loss_terms
from valueloss.teach.explain import REGION_LABELS, fmt
from valueloss.teach.presets import PRESETS

from .helpers import TIMEOUT_MS, assert_no_exception, goto, nudge_slider, shot, wait_for_text, wait_ready

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


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


SNAPSHOT_JS = """() => {
  const ex = window.__vlLive, q = (s) => ex.box.querySelector(s);
  const attr = (s, a) => { const n = q(s); return n ? n.getAttribute(a) : null; };
  return {
    state: { ...ex.live },
    metrics: [...ex.box.querySelectorAll(".vl-metric-value")].map((e) => e.textContent),
    subs: [...ex.box.querySelectorAll(".vl-metric-sub")].map((e) => e.textContent),
    equation: q("[data-testid=vl-equation]").textContent,
    region: Number(ex.box.dataset.region),
    regionText: q("[data-testid=vl-region]").textContent,
    curves: ["unclipped", "clipped", "max", "grad"].map((c) => attr(`[data-curve=${c}]`, "d")).join("|"),
    band: attr(".vl-band", "x") + "," + attr(".vl-band", "width"),
    zero: [...ex.box.querySelectorAll("[data-testid=vl-loss] .vl-zero")].map((r) => r.getAttribute("x") + "," + r.getAttribute("width")).join(";"),
    gradPoint: attr("[data-point=grad]", "cx") + "," + attr("[data-point=grad]", "cy"),
    mapPoint: attr("[data-point=map]", "cx") + "," + attr("[data-point=map]", "cy"),
    handles: Object.fromEntries(Object.entries(ex.handles).map(([k, h]) => [k, h.getAttribute("aria-valuetext")])),
    frames: ex.frames.length,
    url: location.href,
  };
}"""


def snapshot(page) -> dict:
    return page.evaluate(SNAPSHOT_JS)


def next_frame(page) -> None:
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def assert_numbers_are_the_cores(snap: dict) -> None:
    """The four metrics, the equation and the region equal the core's for the state on screen."""
    s = snap["state"]
    t = value_loss_terms(s["v"], s["R"], s["v_old"], s["eps"], s["conv"])
    lu, lc, grad = float(t.loss_unclipped), float(t.loss_clipped), float(t.grad)
    winner = "clipped" if lc > lu else "unclipped" if lu > lc else "both equal"
    assert snap["metrics"] == [fmt(lu), fmt(lc), winner, fmt(grad)], s
    assert snap["region"] == int(t.region)
    assert REGION_LABELS[int(t.region)] in snap["regionText"]
    for number in (float(t.v_clipped), 0.5 * float(t.loss_max), lu, lc):
        assert fmt(number) in snap["equation"], (number, snap["equation"])
    assert f"= {fmt(grad)}" in snap["equation"] or fmt(grad) in snap["equation"].split("=")[-1]


def live_handle(page, name: str):
    return page.locator(f"[data-handle={name}]")


def drag_handle(page, name: str, dx_per_step: float, steps: int) -> list[dict]:
    """Press on a handle, move it step by step (one animation frame each), return a snapshot per frame."""
    handle = live_handle(page, name)
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    snaps = []
    for i in range(1, steps + 1):
        page.mouse.move(x + dx_per_step * i, y)
        next_frame(page)
        snaps.append(snapshot(page))
    return snaps


def release(page) -> None:
    page.mouse.up()
    page.wait_for_timeout(300)  # the rerun the release starts
    wait_ready(page)


def sidebar_value(page, label: str) -> str:
    """The sidebar control's value: a slider's (v, v_old, R), or the typed box's (eps, which goes up to 1000)."""
    slider = page.locator("[data-testid=stSlider]").filter(has_text=label)
    if slider.count():
        return slider.first.locator("input[type=range]").first.input_value()
    return page.locator("[data-testid=stNumberInput]").filter(has_text=label).first.locator("input").first.input_value()


def wait_for_sidebar_value(page, label: str, expected: float) -> None:
    """The sidebar slider shows ``expected`` once the rerun that the release started has rendered."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while float(sidebar_value(page, label)) != expected and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert float(sidebar_value(page, label)) == expected, label


@pytest.mark.e2e
def test_explore_dragging_each_handle_updates_everything_every_frame(page, app_url):
    goto(page, app_url, "")
    assert_no_exception(page)
    live_handle(page, "v").wait_for()
    first = snapshot(page)
    assert first["metrics"] == ["0.81", "0.81", "both equal", "−1.8"]
    assert_numbers_are_the_cores(first)

    # (handle, pixels per frame, frames, the elements that must change on every frame that changes the state)
    moves = [
        ("v", 6, 12, ("metrics", "equation", "gradPoint", "mapPoint", "handles")),
        ("v_old", -5, 10, ("curves", "band", "mapPoint", "equation", "handles")),
        ("R", 7, 10, ("curves", "mapPoint", "equation", "handles")),
        ("eps_hi", 4, 10, ("band", "curves", "equation", "handles")),
    ]
    for name, dx, steps, must_change in moves:
        before = snapshot(page)
        snaps = drag_handle(page, name, dx, steps)
        previous = before
        for snap in snaps:
            assert_numbers_are_the_cores(snap)
            if snap["state"] != previous["state"]:
                for part in must_change:
                    assert snap[part] != previous[part], (name, part, snap["state"])
            assert snap["url"] == before["url"], "no rerun while dragging: the link changes on release"
            previous = snap
        moved = snaps[-1]["state"]
        assert moved != before["state"], name
        assert snaps[-1]["frames"] > before["frames"]
        release(page)
        key = "eps" if name.startswith("eps") else name
        # On release Python takes the numbers: the sidebar slider and the link show them.
        page.wait_for_url(f"**{key}={moved[key]:g}*", timeout=TIMEOUT_MS)
        label = {"v": "v: current", "v_old": "v_old:", "R": "R: return", "eps": "ε: clip"}[key]
        wait_for_sidebar_value(page, label, moved[key])
        assert_numbers_are_the_cores(snapshot(page))
        assert_no_exception(page)

    # Keyboard: every handle is a slider whose value is announced; keys move it, the page follows.
    handle = live_handle(page, "R")
    assert handle.get_attribute("role") == "slider"
    r0 = float(handle.get_attribute("aria-valuenow"))
    handle.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    expect(handle).to_have_attribute("aria-valuenow", f"{round(r0 + 0.05, 2):g}", timeout=TIMEOUT_MS)
    assert handle.get_attribute("aria-valuetext").startswith(f"R = {fmt(round(r0 + 0.05, 2))}")
    page.wait_for_url(f"**R={round(r0 + 0.05, 2):g}*", timeout=TIMEOUT_MS)
    wait_ready(page)
    for name in ("v", "v_old", "eps_lo", "eps_hi"):
        h = live_handle(page, name)
        assert h.get_attribute("tabindex") == "0" and h.get_attribute("aria-valuetext"), name

    # The sidebar slider is the fallback and stays in sync: moving it moves the explorer.
    v_before = snapshot(page)["state"]["v"]
    nudge_slider(page, "v: current prediction", -3)
    expect(live_handle(page, "v")).to_have_attribute(
        "aria-valuenow", f"{round(v_before - 0.03, 2):g}", timeout=TIMEOUT_MS
    )
    assert_numbers_are_the_cores(snapshot(page))

    # A preset puts every number where it says, in the explorer too.
    p = PRESETS["past-band-toward-R"]
    page.get_by_role("button", name=p.title, exact=True).click()
    wait_ready(page)
    wait_for_text(page, p.notice)
    expect(live_handle(page, "v")).to_have_attribute("aria-valuenow", f"{p.v:g}", timeout=TIMEOUT_MS)
    snap = snapshot(page)
    assert snap["metrics"][3] == "0"
    assert REGION_LABELS[1] in snap["regionText"]
    assert_no_exception(page)
    fit_viewport(page)
    shot(page, "explore")


@pytest.mark.e2e
def test_explore_deep_link_from_a_fresh_server_and_the_820px_layout(page, fresh_app_url):
    goto(page, fresh_app_url, "", "v=1.3&R=1&v_old=0&eps=0.2&conv=clamp")
    handle = live_handle(page, "v")
    expect(handle).to_have_attribute("aria-valuenow", "1.3", timeout=TIMEOUT_MS)
    snap = snapshot(page)
    assert snap["state"] == {"v": 1.3, "R": 1.0, "v_old": 0.0, "eps": 0.2, "conv": "clamp"}
    assert_numbers_are_the_cores(snap)
    assert_no_exception(page)

    page.set_viewport_size({"width": 820, "height": 1000})
    page.wait_for_timeout(800)
    overflow = page.evaluate(
        """() => {
          const ex = window.__vlLive, bad = [];
          const main = document.querySelector("[data-testid=stMain]").getBoundingClientRect();
          for (const e of ex.box.querySelectorAll(".vl-metric-label, .vl-metric-value, .vl-equation, .vl-region, .vl-map, .vl-svg")) {
            const r = e.getBoundingClientRect();
            if (e.scrollWidth > e.clientWidth + 1 || r.right > main.right + 1 || r.left < main.left - 1) bad.push(e.className.baseVal ?? e.className);
          }
          for (const e of ex.box.querySelectorAll(".vl-eq-chunk")) {
            const lineHeight = parseFloat(getComputedStyle(e.parentElement).lineHeight);
            if (e.getBoundingClientRect().height > 1.5 * lineHeight) bad.push("equation broken inside: " + e.textContent);
          }
          for (const e of ex.box.querySelectorAll(".vl-metric-label")) {
            if (e.getBoundingClientRect().height > 1.6 * parseFloat(getComputedStyle(e).lineHeight || 20)) bad.push("wrapped label: " + e.textContent);
          }
          return bad;
        }"""
    )
    assert overflow == [], overflow
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explore-820.png"), full_page=True)  # to look at, not for the README


def notice_locator(page):
    return page.locator("[data-testid=stMarkdownContainer]").filter(has_text="What to notice").first


SURFACES_JS = """() => {
  const sf = window.__vlSurfaces;
  const sum = (a) => { let h = 0; for (let i = 0; i < a.length; i += 97) h = (h * 31 + a[i]) % 1e9; return h; };
  return {
    state: { ...sf.live },
    summary: sf.summary.textContent,
    pixels: sf.panels.map((p) => sum(p.canvas.getContext("2d").getImageData(0, 0, p.canvas.width, p.canvas.height).data)),
    frames: sf.frames.length,
    url: location.href,
  };
}"""


def surfaces_share(eps: float, fixed: float = 0.0) -> str:
    """The core's share of the default (v, R) plane where the clipped term wins, as the page words it."""
    axis = axis_values(fixed - 1.5, fixed + 1.5, 200)
    t = evaluate_grid("v", axis, "R", axis, v_old=fixed, eps=eps).terms
    return f"{float(((t.loss_max - t.loss_unclipped) > 0).double().mean()):.0%}"


@pytest.mark.e2e
def test_surfaces_redraw_live_while_eps_is_dragged(page, app_url):
    goto(page, app_url, "surfaces")
    assert_no_exception(page)
    text = notice_locator(page)
    expect(text).to_contain_text("28%", timeout=TIMEOUT_MS)
    summary = page.locator("[data-testid=vs-summary]")
    expect(summary).to_contain_text("28%", timeout=TIMEOUT_MS)

    # Every cell's region and loss equal the core's (float64, bit for bit) on the plane on screen.
    grid = page.evaluate(
        "() => ({ region: [...window.__vlSurfaces.grid.region], max: [...window.__vlSurfaces.grid.loss_max] })"
    )
    axis = axis_values(-1.5, 1.5, 200)
    t = evaluate_grid("v", axis, "R", axis, v_old=0.0, eps=0.2).terms
    assert grid["region"] == t.region.flatten().tolist()
    assert grid["max"] == t.loss_max.flatten().tolist()

    # Drag the component's ε slider: all four panels and the share redraw every frame, no rerun.
    slider = page.locator("[data-control=eps]")
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    x0, y = box["x"] + box["width"] * 0.1, box["y"] + box["height"] / 2
    page.mouse.move(x0, y)
    page.mouse.down()
    before = page.evaluate(SURFACES_JS)
    previous = before
    for i in range(1, 9):
        page.mouse.move(x0 + 6 * i, y)
        next_frame(page)
        snap = page.evaluate(SURFACES_JS)
        assert surfaces_share(snap["state"]["eps"]) in snap["summary"], snap
        if snap["state"] != previous["state"]:
            # (v − R)² does not depend on ε; the clipped term and the pessimism do
            assert snap["pixels"][1] != previous["pixels"][1] and snap["pixels"][3] != previous["pixels"][3]
        assert snap["url"] == before["url"]
        previous = snap
    eps = previous["state"]["eps"]
    assert eps > 0.2
    page.mouse.up()
    page.wait_for_url(f"**sf_eps={eps:g}*", timeout=TIMEOUT_MS)
    wait_ready(page)
    expect(text).to_contain_text(surfaces_share(eps), timeout=TIMEOUT_MS)
    assert_no_exception(page)

    # The sidebar slider (the fallback) moves the live panels too.
    nudge_slider(page, "ε: clip range", -5)
    expect(page.locator("[data-control=eps]")).to_have_value(f"{round(eps - 0.05, 2):g}", timeout=TIMEOUT_MS)
    expect(summary).to_contain_text(surfaces_share(round(eps - 0.05, 2)), timeout=TIMEOUT_MS)
    assert_no_exception(page)

    # The (v, v_old) plane is the core's too, cell by cell.
    axes = page.locator("[data-testid=stRadio]").filter(has_text="Second axis").first
    axes.get_by_text("v_old", exact=True).click()
    page.wait_for_url("**sf_axes=v_old*", timeout=TIMEOUT_MS)
    wait_ready(page)
    page.wait_for_function("() => window.__vlSurfaces.cfg.pair === 'v_old'", timeout=TIMEOUT_MS)
    grid = page.evaluate(
        "() => ({ region: [...window.__vlSurfaces.grid.region], max: [...window.__vlSurfaces.grid.loss_max] })"
    )
    t = evaluate_grid("v", axis, "v_old", axis, R=0.0, eps=round(eps - 0.05, 2)).terms
    assert grid["region"] == t.region.flatten().tolist()
    assert grid["max"] == t.loss_max.flatten().tolist()
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
