"""How long a Batch page mode change takes in Chromium, this checkout next to a baseline commit (issue 20.12).

    python -m tests.e2e.batch_mode_benchmark                       # this checkout
    python -m tests.e2e.batch_mode_benchmark --baseline 693b677    # and that commit, side by side

Each app runs on a free 127.0.0.1 port and is opened on /batch in Debian's Chromium at 1400 px. The
``loss_agg_mode`` selectbox is switched to each of the five modes in turn, ``--rounds`` times; one change
is timed from the click on the option until the page shows that mode's vf_loss and the script has
finished (the app is idle again). The first round warms the caches of both apps (a user's first visit
does the same) and is not counted. Not a test: timings vary by machine, so they are printed side by
side, never asserted; the load average is printed with them (target on a quiet machine: < 300 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_FLAGS, serve_app  # noqa: E402
from tests.e2e.helpers import goto, wait_ready  # noqa: E402
from valueloss import AGG_MODES  # noqa: E402

MODE_SHOWN = (
    "(mode) => [...document.querySelectorAll('[data-testid=stMetric]')]"
    ".some(m => m.textContent.startsWith(`vf_loss (${mode})`))"
    " && document.querySelector('[data-test-script-state=notRunning]') !== null"
)


def mode_changes(page, rounds: int) -> list[float]:
    """Seconds per mode change, the first round (cache warm-up) left out."""
    times = []
    for round_number in range(rounds + 1):
        for mode in (*AGG_MODES[1:], AGG_MODES[0]):
            page.locator("[data-testid=stSelectbox]").filter(has_text="verl loss_agg_mode").first.click()
            option = page.get_by_role("option", name=mode, exact=True)
            option.wait_for()
            start = time.perf_counter()
            option.click()
            page.wait_for_function(MODE_SHOWN, arg=mode, timeout=120_000, polling="raf")
            if round_number:
                times.append(time.perf_counter() - start)
    return times


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.e2e.batch_mode_benchmark", description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", help="a git revision to time beside this checkout (e.g. 693b677)")
    ap.add_argument("--rounds", type=int, default=4, help="rounds of five mode changes per app (default 4)")
    args = ap.parse_args(argv)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    with ExitStack() as stack, sync_playwright() as pw:
        trees = {"this checkout": ROOT}
        if args.baseline:
            base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="valueloss-baseline-")))
            archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
            trees = {args.baseline: base} | trees
        urls = {name: stack.enter_context(serve_app(tree)) for name, tree in trees.items()}
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        print(f"{'app':16s} {'changes':>8s} {'p50':>8s} {'p95':>8s} {'max':>8s}")
        for name, url in urls.items():
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            goto(page, url, "batch")
            wait_ready(page)
            times = mode_changes(page, args.rounds)
            print(
                f"{name:16s} {len(times):8d} {pct(times, 50) * 1e3:6.0f}ms {pct(times, 95) * 1e3:6.0f}ms "
                f"{max(times) * 1e3:6.0f}ms",
                flush=True,
            )
            page.close()
        browser.close()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
