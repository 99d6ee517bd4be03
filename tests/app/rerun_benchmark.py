"""How long one rerun of each page takes on the server at default settings (target: < 150 ms).

Run: ``make bench-app`` (or ``python -m tests.app.rerun_benchmark``). Each page is run once to warm
its caches (as a user's first visit does), then rerun N times as a widget change would; the median
and the worst of those reruns are printed side by side for every page. Not a test: timings vary by
machine, so they are reported, never asserted.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.app.test_app import registered_pages  # noqa: E402


def time_page(path: str, repeats: int) -> tuple[float, float, float]:
    at = AppTest.from_file(str(ROOT / path), default_timeout=300)
    start = time.perf_counter()
    at.run()
    first = time.perf_counter() - start
    if at.exception:
        raise RuntimeError(f"{path} raised: {at.exception}")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
    return first * 1e3, statistics.median(times) * 1e3, max(times) * 1e3


def main(repeats: int = 10) -> int:
    print(f"{'page':28s} {'first run':>10s} {'rerun median':>13s} {'rerun max':>10s}")
    worst = 0.0
    for path, url in registered_pages():
        first, median, slowest = time_page(path, repeats)
        worst = max(worst, median)
        print(f"{url or '(default) explore':28s} {first:8.0f}ms {median:11.1f}ms {slowest:8.1f}ms")
    print(f"slowest median rerun: {worst:.1f} ms (target < 150 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
