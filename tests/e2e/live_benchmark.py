"""How fast the One token page answers a hand: the live explorer (this tree) next to the server rerun (main).

Run: ``python -m tests.e2e.live_benchmark --main OLD [--width 1400]``, OLD a tree whose pages still rerun on the
server (main's One token page no longer does: ``git archive f28e4be^ | tar -x -C OLD`` for it). Not a test: timings vary
by machine, so they are printed side by side, never asserted. Both apps run on free 127.0.0.1 ports in
Debian's Chromium at the same window size; every time is a wall time measured the same way.

- frame: while a handle is dragged (one mouse move per animation frame), the explorer's own record of
  each frame's work (JavaScript and layout, ``performance.now()`` around the redraw), p50 / p95 / max,
  after one warm-up round of drags (the first frames run before the JIT has compiled the math);
- key step, visible: one arrow key until the Unclipped number on screen changes (new: the explorer's
  metric; old: the ``st.metric`` after the server rerun);
- release to settled: mouse released (new) or arrow key pressed (old) until the server has rerun and the
  link and the sidebar slider show the new value;
- 20 quick keys: 20 arrow presses until the page has settled on the final value;
- Loss surfaces: frame work while the live ε / fixed-value slider is dragged, and release to settled next to
  one ε arrow-key step of the sidebar slider on main (a rerun that rebuilds the four plotly heatmaps).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_FLAGS, serve_app  # noqa: E402
from tests.e2e.helpers import goto, wait_ready  # noqa: E402

UNCLIPPED_NEW = "() => window.__vlLive.box.querySelector('[data-metric=unclipped] .vl-metric-value').textContent"
UNCLIPPED_OLD = (
    "() => [...document.querySelectorAll('[data-testid=stMetric]')].find(m => m.textContent.startsWith('Unclipped'))"
    ".querySelector('[data-testid=stMetricValue]').textContent"
)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def settled(page, key: str, value: float, timeout=60_000):
    page.wait_for_url(f"**{key}={value:g}*", timeout=timeout)
    wait_ready(page)


def sidebar_input(page, label: str):
    return page.locator("[data-testid=stSlider]").filter(has_text=label).first.locator("input[type=range]").first


def quick_keys(page, control, value, rounds: int = 3) -> list[float]:
    """Seconds from 20 quick ArrowLeft presses on ``control`` (``value()`` reads v) until the page has settled,
    ``rounds`` times."""
    times = []
    for _ in range(rounds):
        control.focus()
        v0 = value()
        t0 = time.perf_counter()
        for _ in range(20):
            page.keyboard.press("ArrowLeft")
        settled(page, "v", round(v0 - 0.2, 2))
        times.append(time.perf_counter() - t0)
    return times


def measure_new(page, url: str, repeats: int) -> dict:
    goto(page, url, "")
    page.locator("[data-handle=v]").wait_for()
    out = {"frame": [], "visible": [], "release": []}
    # drags: each handle in turn, one mouse move per animation frame; the first round warms the JIT up
    rounds = (("v", 3), ("v_old", -3), ("R", 3), ("eps_hi", 2))
    for n, (name, dx) in enumerate(rounds * (1 + max(1, repeats // 4))):
        handle = page.locator(f"[data-handle={name}]")
        handle.scroll_into_view_if_needed()
        box = handle.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        start = page.evaluate("() => window.__vlLive.frames.length")
        page.mouse.move(x, y)
        page.mouse.down()
        for i in range(1, 41):
            page.mouse.move(x + dx * i, y)
            page.evaluate("() => new Promise(r => requestAnimationFrame(r))")
        frames = page.evaluate(f"() => window.__vlLive.frames.slice({start})")
        if n >= len(rounds):
            out["frame"] += [f["script"] for f in frames]
        state = page.evaluate("() => ({...window.__vlLive.live})")
        key = "eps" if name.startswith("eps") else name
        t0 = time.perf_counter()
        page.mouse.up()
        settled(page, key, state[key])
        out["release"].append(time.perf_counter() - t0)
    handle = page.locator("[data-handle=v]")
    for _ in range(repeats):
        handle.focus()
        before = page.evaluate(UNCLIPPED_NEW)
        t0 = time.perf_counter()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"(b) => ({UNCLIPPED_NEW})() !== b", arg=before)
        out["visible"].append(time.perf_counter() - t0)
        settled(page, "v", float(handle.get_attribute("aria-valuenow")))
    out["keys20"] = quick_keys(page, handle, lambda: float(handle.get_attribute("aria-valuenow")))
    return out


def measure_old(page, url: str, repeats: int) -> dict:
    goto(page, url, "")
    out = {"visible": [], "release": []}
    slider = sidebar_input(page, "v: current prediction")
    for _ in range(repeats):
        slider.focus()
        before = page.evaluate(UNCLIPPED_OLD)
        v0 = float(slider.input_value())
        t0 = time.perf_counter()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"(b) => ({UNCLIPPED_OLD})() !== b", arg=before, timeout=60_000)
        out["visible"].append(time.perf_counter() - t0)
        settled(page, "v", round(v0 + 0.01, 2))
        out["release"].append(time.perf_counter() - t0)
    out["keys20"] = quick_keys(page, slider, lambda: float(slider.input_value()))
    return out


def measure_surfaces_new(page, url: str, repeats: int) -> dict:
    goto(page, url, "surfaces")
    page.locator("[data-control=eps]").wait_for()
    out = {"frame": [], "release": []}
    for n in range(1 + repeats // 2):
        for control in ("eps", "fixed"):
            slider = page.locator(f"[data-control={control}]")
            slider.scroll_into_view_if_needed()
            box = slider.bounding_box()
            x, y = box["x"] + box["width"] * (0.1 if control == "eps" else 0.5), box["y"] + box["height"] / 2
            start = page.evaluate("() => window.__vlSurfaces.frames.length")
            page.mouse.move(x, y)
            page.mouse.down()
            for i in range(1, 21):
                page.mouse.move(x + (2 if n % 2 == 0 else -2) * i, y)
                page.evaluate("() => new Promise(r => requestAnimationFrame(r))")
            frames = page.evaluate(f"() => window.__vlSurfaces.frames.slice({start})")
            if n > 0:  # the first round warms the JIT up
                out["frame"] += [f["script"] for f in frames]
            value = page.evaluate(f"() => window.__vlSurfaces.live.{control}")
            t0 = time.perf_counter()
            page.mouse.up()
            settled(page, f"s_{control}", value)
            out["release"].append(time.perf_counter() - t0)
    return out


def measure_surfaces_old(page, url: str, repeats: int) -> dict:
    goto(page, url, "surfaces")
    out = {"release": []}
    slider = sidebar_input(page, "ε: clip range")
    for _ in range(repeats):
        slider.focus()
        e0 = float(slider.input_value())
        t0 = time.perf_counter()
        page.keyboard.press("ArrowRight")
        settled(page, "sf_eps", round(e0 + 0.01, 2))
        out["release"].append(time.perf_counter() - t0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--main", default="/work/main", help="a tree whose pages rerun on the server")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--pages", default="token,surfaces", help="which pages to measure: token, surfaces or both")
    args = ap.parse_args(argv)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        results = {}
        runs = (
            ("live (this tree)", ROOT, measure_new, measure_surfaces_new),
            ("rerun (main)", Path(args.main), measure_old, measure_surfaces_old),
        )
        for label, tree, token_fn, surfaces_fn in runs:
            with serve_app(tree, args.python) as url:
                context = browser.new_context(viewport={"width": args.width, "height": 1000}, device_scale_factor=1)
                page = context.new_page()
                page.set_default_timeout(60_000)
                if "token" in args.pages:
                    results[label] = token_fn(page, url, args.repeats)
                if "surfaces" in args.pages:
                    results["surfaces " + label] = surfaces_fn(page, url, args.repeats)
                context.close()
        browser.close()
    if "token" in args.pages:
        report_token(results, args)
    if "surfaces" in args.pages:
        report_surfaces(results, args)
    return 0


def report_token(results, args) -> None:
    new, old = results["live (this tree)"], results["rerun (main)"]
    ms = 1000.0
    print(f"One token page, Chromium at {args.width} px ({args.repeats} repeats; wall times)")
    print(
        f"frame work while dragging (n={len(new['frame'])}): p50 {pct(new['frame'], 50):.1f} ms, "
        f"p95 {pct(new['frame'], 95):.1f} ms, max {max(new['frame']):.1f} ms (target p95 < 16 ms)"
    )
    print(f"{'':28s} {'live':>10s} {'rerun (main)':>13s} {'ratio':>7s}")
    for key, text in (
        ("visible", "key step, visible (median)"),
        ("release", "to settled (median)"),
        ("keys20", "20 quick keys, settled (med.)"),
    ):
        a, b = statistics.median(new[key]) * ms, statistics.median(old[key]) * ms
        print(f"{text:28s} {a:8.0f}ms {b:11.0f}ms {b / a:6.1f}x")


def report_surfaces(results, args) -> None:
    ms = 1000.0
    snew, sold = results["surfaces live (this tree)"], results["surfaces rerun (main)"]
    print(f"\nLoss surfaces (200 x 200, four panels), Chromium at {args.width} px")
    print(
        f"frame work while ε or the fixed value is dragged (n={len(snew['frame'])}): p50 {pct(snew['frame'], 50):.1f} ms, "
        f"p95 {pct(snew['frame'], 95):.1f} ms, max {max(snew['frame']):.1f} ms (target p95 < 16 ms)"
    )
    a, b = statistics.median(snew["release"]) * ms, statistics.median(sold["release"]) * ms
    print(
        f"{'release / ε key to settled':28s} {a:8.0f}ms {b:11.0f}ms {b / a:6.1f}x  (live: drag release; main: one ε key step)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
