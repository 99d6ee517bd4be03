"""How long the tour's "Check my answer" and a Critic dynamics re-run take in Chromium, this tree next to another.

Run: ``python -m tests.e2e.interaction_benchmark --base OLD``, OLD a tree to compare with (e.g.
``git archive 693b677 | tar -x -C OLD``). Not a test: timings vary by machine, so both trees are measured in one
run, in Debian's Chromium at the same window size, and printed side by side, never asserted. Each app runs on a
free 127.0.0.1 port; every time is a wall time from the click until the answer is on screen and the script has
finished (``data-test-script-state=notRunning``).

- check: on each of the tour's steps, one answer picked and "Check my answer" clicked, until the feedback shows;
  every step once per round, on a fresh page each round (the first round fills the server's caches);
- dynamics, new: "Run simulation" after a change the server has not simulated yet (a new seed);
- dynamics, again: "Run simulation" with settings it has simulated before (from its caches);
  a dynamics run is on screen once every figure and the moving wall name the new run (their data revisions).
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

# Notes every change of the app's script state, including a run that starts and ends between two checks.
WATCH = """() => { window.__ran = false; new MutationObserver((records) => { for (const r of records)
  if (r.oldValue === 'running' || r.target.getAttribute('data-test-script-state') === 'running') window.__ran = true;
}).observe(document.body, {attributes: true, attributeOldValue: true, subtree: true,
  attributeFilter: ['data-test-script-state']}); }"""
# What names each drawn run on Critic dynamics: a Plotly figure's layout.datarevision, the data-revision of the
# app's own components (inside their shadow roots).
# A re-run served from the caches can finish before the browser ever shows the "running" state (React renders
# only the last of two quick changes), so a dynamics run is done when every one of them names the new run.
REVISIONS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(p => p.layout && p.layout.datarevision)
  .concat([...document.querySelectorAll('*')].filter(e => e.shadowRoot)
    .flatMap(e => [...e.shadowRoot.querySelectorAll('[data-revision]')].map(c => c.dataset.revision)))"""
SHOWS_NEW_RUN = f"""(before) => {{ const now = ({REVISIONS})();
  const idle = document.querySelector('[data-test-script-state=notRunning]') !== null;
  if (!before.some((r) => r != null)) return window.__ran && idle;  // a tree whose figures carry no revision
  return idle && now.length === before.length && now.every((r, i) => r !== before[i]); }}"""


def _armed(page) -> None:
    """From now on, wait for a run that starts after this call."""
    page.evaluate("() => { window.__ran = false; }")


def _finished(page, condition: str) -> None:
    """Wait for the run after the click: until ``condition`` holds (content only that run can show) and the app is
    idle. A quick run can end before the browser ever shows "running" (React renders only the last of two quick
    changes), so its new content is the sign, not the running state."""
    idle = "document.querySelector('[data-test-script-state=notRunning]') !== null"
    page.wait_for_function(f"() => ({condition})() && {idle}", timeout=120_000)


def tour_checks(page, url: str, rounds: int) -> list[list[float]]:
    """Seconds per "Check my answer", one list per round (step order)."""
    out = []
    for _ in range(rounds):
        goto(page, url, "tour")
        times = []
        for tab in page.get_by_role("tab").all():
            tab.click()
            wait_ready(page)
            panel = page.locator("[data-testid=stTabPanel]:visible").first
            panel.locator("[data-testid=stRadioGroup] label").first.click()
            wait_ready(page)
            t0 = time.perf_counter()
            panel.get_by_role("button", name="Check my answer").click()
            _finished(
                page,
                "() => [...document.querySelectorAll('[data-testid=stTabPanel]')].some(p => "
                "p.offsetParent && p.querySelector('[data-testid=stAlertContentSuccess], "
                "[data-testid=stAlertContentError]'))",
            )
            times.append(time.perf_counter() - t0)
        out.append(times)
    return out


def dynamics_runs(page, url: str, rounds: int) -> dict[str, list[float]]:
    """Seconds per "Run simulation": with a seed not simulated yet, and back on one simulated before."""
    goto(page, url, "dynamics")
    page.evaluate(WATCH)
    out = {"new": [], "again": []}
    seed = page.get_by_label("seed", exact=True).first
    button = page.get_by_role("button", name="Run simulation")
    metric = "[...document.querySelectorAll('[data-testid=stMetric]')].map(m => m.textContent).join('|')"
    for i in range(rounds):
        for kind, value in (("new", 100 + i), ("again", 0)):
            seed.fill(str(value))
            before = page.evaluate(REVISIONS)
            _armed(page)
            t0 = time.perf_counter()
            button.click()
            page.wait_for_function(SHOWS_NEW_RUN, arg=before, timeout=120_000)
            out[kind].append(time.perf_counter() - t0)
            assert page.evaluate(metric)
    return out


def _summary(xs: list[float]) -> str:
    ms = sorted(1000 * x for x in xs)
    return f"median {statistics.median(ms):6.0f} ms   max {ms[-1]:6.0f} ms   (n = {len(ms)})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the tree to compare with")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    results = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        for label, tree in (("base", Path(args.base)), ("this tree", ROOT)):
            with serve_app(tree, args.python) as url:
                context = browser.new_context(viewport={"width": args.width, "height": 1000}, device_scale_factor=1)
                page = context.new_page()
                page.set_default_timeout(120_000)
                checks = tour_checks(page, url, args.rounds)
                results[label] = {"check, first visit": checks[0], "check, later": sum(checks[1:], [])}
                results[label].update({f"dynamics, {k}": v for k, v in dynamics_runs(page, url, args.rounds).items()})
                context.close()
        browser.close()
    print(f"Chromium {args.width} px; base = {args.base}")
    for what in results["base"]:
        print(what)
        for label in results:
            print(f"  {label:10s} {_summary(results[label][what])}")
    per_step = zip(*(results[label]["check, later"] for label in results), strict=True)
    print("check, later, per step (base -> this tree, ms):")
    for i, pair in enumerate(per_step):
        print(f"  step {i % 9 + 1}: " + " -> ".join(f"{1000 * x:.0f}" for x in pair))
    return 0


if __name__ == "__main__":
    sys.exit(main())
