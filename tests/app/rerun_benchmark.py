"""How long one rerun of each page takes on the server at default settings (target: < 150 ms).

    make bench-app                                        # or: python -m tests.app.rerun_benchmark
    python -m tests.app.rerun_benchmark --baseline 693b677   # side by side with that commit
    python -m tests.app.rerun_benchmark --pages batch scale --repeats 20

Each page is run once to warm its caches (as a user's first visit does), then rerun N times as a widget
change that hits the caches would; the median and the worst of those reruns are printed for every page,
and the median CPU time of a rerun (this process's CPU seconds: the page's own work, barely affected by
other programs on the machine, so the number to compare on a shared machine).
With ``--baseline REF`` the same page of that commit (exported with ``git archive`` to a temporary
folder) is timed right before this checkout's, each in a fresh interpreter, round after round, so both
see the same machine load; the ratio is baseline / this checkout. Not a test: timings vary by machine,
so they are reported, never asserted. The load average is printed before and after: on a shared machine
compare ratios, not milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def time_page(path: str, repeats: int, root: Path = ROOT) -> tuple[float, float, float, float]:
    """(first run, median rerun, slowest rerun, median CPU time of a rerun) in ms of ``root/path`` under AppTest."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(root / path), default_timeout=300)
    start = time.perf_counter()
    at.run()
    first = time.perf_counter() - start
    if at.exception:
        raise RuntimeError(f"{path} raised: {at.exception}")
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        at.run()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return first * 1e3, statistics.median(times) * 1e3, max(times) * 1e3, statistics.median(cpu) * 1e3


def _time_in_fresh_interpreter(root: Path, path: str, repeats: int) -> tuple[float, float, float, float]:
    """This file's time_page in a new interpreter whose imports (pages, valueloss) come from ``root``."""
    out = subprocess.run(
        [sys.executable, __file__, "--time-one", str(root), path, str(repeats)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def _pages(root: Path) -> list[tuple[str, str]]:
    """(script, url path) of every page the app registers at ``root`` (run there: its own registry)."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); "
        "from tests.app.test_app import registered_pages; print(json.dumps(registered_pages()))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(root)], cwd=root, capture_output=True, text=True, check=True)
    return [tuple(p) for p in json.loads(out.stdout.strip().splitlines()[-1])]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--time-one"]:  # the child of _time_in_fresh_interpreter
        root = Path(argv[1])
        sys.path.insert(0, str(root))
        print(json.dumps(time_page(argv[2], int(argv[3]), root)))
        return 0
    ap = argparse.ArgumentParser(prog="python -m tests.app.rerun_benchmark", description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", help="a git revision to time side by side (e.g. 693b677)")
    ap.add_argument("--repeats", type=int, default=10, help="reruns per page (default 10)")
    ap.add_argument("--rounds", type=int, default=2, help="with --baseline: alternating rounds per page (best kept)")
    ap.add_argument("--pages", nargs="*", help="url paths to time (default: every page)")
    args = ap.parse_args(argv)
    print(f"load average before: {_load()} ({os.cpu_count()} CPUs)")
    pages = [(p, u) for p, u in _pages(ROOT) if not args.pages or (u or "(default)") in args.pages or u in args.pages]
    if not args.baseline:
        print(f"{'page':28s} {'first run':>10s} {'rerun median':>13s} {'rerun max':>10s} {'CPU per rerun':>14s}")
        worst = 0.0
        for path, url in pages:
            first, median, slowest, cpu = _time_in_fresh_interpreter(ROOT, path, args.repeats)
            worst = max(worst, median)
            print(
                f"{url or '(default) explore':28s} {first:8.0f}ms {median:11.1f}ms {slowest:8.1f}ms {cpu:12.1f}ms",
                flush=True,
            )
        print(f"slowest median rerun: {worst:.1f} ms (target < 150 ms); load average after: {_load()}")
        return 0
    with tempfile.TemporaryDirectory(prefix="valueloss-baseline-") as tmp:
        base = Path(tmp)
        archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        base_pages = dict(_pages(base))
        print(
            f"median rerun per page (wall clock, and CPU time: compare CPU on a busy machine), {args.repeats} "
            f"reruns, best of {args.rounds} alternating rounds; ratio = {args.baseline} / this checkout"
        )
        head = f"{'wall ' + args.baseline[:9]:>15s} {'wall now':>10s} {'ratio':>6s}"
        print(f"{'page':22s} {head} {'CPU ' + args.baseline[:9]:>14s} {'CPU now':>9s} {'ratio':>6s}")
        for path, url in pages:
            if path not in base_pages:
                print(f"{url or '(default) explore':28s} {'(no page)':>14s}")
                continue
            before, after = [], []
            for _ in range(args.rounds):
                before.append(_time_in_fresh_interpreter(base, path, args.repeats))
                after.append(_time_in_fresh_interpreter(ROOT, path, args.repeats))
            b, a = min(t[1] for t in before), min(t[1] for t in after)
            bc, ac = min(t[3] for t in before), min(t[3] for t in after)
            print(
                f"{url or '(default) explore':22s} {b:13.1f}ms {a:8.1f}ms {b / a:5.2f}x "
                f"{bc:12.1f}ms {ac:7.1f}ms {bc / ac:5.2f}x",
                flush=True,
            )
    print(f"load average after: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
