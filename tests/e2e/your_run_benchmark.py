"""How fast Your run opens a long run and answers after that (targets: 5,000 steps x 200 metrics < 2 s; 100,000
steps < 30 s with bounded memory; every rerun < 300 ms in Chromium).

Run: ``python -m tests.e2e.your_run_benchmark [--skip-browser]``. Not a test: timings vary by machine, so they
are printed side by side, never asserted.

1. Reading and analysing, in a fresh process per log (its peak memory is the process's maximum resident set
   minus what the imports took; CPU is the process's CPU time for the same work, what the wall time would be
   on an idle machine): read_log + recognise + analyse_run + timeline_figure, for verl JSONL and
   TensorBoard event files of 5,000 steps x 200 metrics and 100,000 steps x 20 metrics, and a zipped verl JSONL
   of 100,000 steps x 200 metrics (past the in-memory budget: only the critic's metrics keep their values).
2. The page in Debian's Chromium: the 5,000 x 200 verl JSONL (zipped: the server's upload cap is 20 MB) dropped
   on the uploader until the timeline is drawn; then eps typed N times (each a new analysis and figure: the
   cache misses) and typed back to a value seen before (cache hits), each until the rerun has finished.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CRITIC = (
    "critic/vf_loss",
    "critic/vf_clipfrac",
    "critic/vpred_mean",
    "critic/grad_norm",
    "critic/vf_explained_var",
    "critic/returns/mean",
    "critic/returns/max",
    "critic/returns/min",
    "critic/values/mean",
    "critic/values/max",
    "critic/values/min",
)


def metric_names(n: int) -> list[str]:
    return list(CRITIC) + [f"actor/metric_{i}" for i in range(n - len(CRITIC))]


def verl_jsonl(steps: int, n_metrics: int, seed: int = 0) -> bytes:
    """verl's file backend lines (as orjson writes them: shortest float repr)."""
    rng = np.random.default_rng(seed)
    names = metric_names(n_metrics)
    out = io.StringIO()
    for step in range(1, steps + 1):
        values = rng.random(n_metrics).round(6).tolist()
        out.write(json.dumps({"step": step, "data": dict(zip(names, values, strict=True))}, separators=(",", ":")))
        out.write("\n")
    return out.getvalue().encode()


def tfevents(steps: int, n_metrics: int, seed: int = 0) -> bytes:
    """One Event per scalar, as SummaryWriter.add_scalar writes them (TFRecord framing)."""
    from tensorboardX.proto import event_pb2, summary_pb2

    rng = np.random.default_rng(seed)
    names = ["Loss/value"] + [f"Extra/m{i}" for i in range(n_metrics - 1)]
    out = io.BytesIO()

    def record(event) -> None:
        body = event.SerializeToString()
        out.write(struct.pack("<Q", len(body)) + b"\0" * 4 + body + b"\0" * 4)

    record(event_pb2.Event(wall_time=0.0, file_version="brain.Event:2"))
    for step in range(steps):
        for name, value in zip(names, rng.random(n_metrics).tolist(), strict=True):
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=name, simple_value=value)])
            record(event_pb2.Event(wall_time=1.0, step=step, summary=summary))
    return out.getvalue()


def zipped(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr(name, data)
    return out.getvalue()


CHILD = """
import resource, sys, time
sys.path.insert(0, {root!r})
from valueloss.tools.runlogs import read_log
from valueloss.tools.runlogs.analysis import analyse_run
from valueloss.tools.runlogs.recognise import is_registry_metric, recognise
from valueloss.viz.run import timeline_figure
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
data = open({path!r}, "rb").read()
t0, c0 = time.perf_counter(), time.process_time()
runs = read_log({name!r}, data, relevant=is_registry_metric)
t1 = time.perf_counter()
run = runs[0]
rec = recognise(run.metrics)
mapping = rec.mapping or {{"value_loss": "Loss/value"}}
analysis = analyse_run(run, mapping, 0.2, (0.01, 0.1))
fig = timeline_figure({{run.name: analysis}}, {{run.name: 0.2}}, (0.01, 0.1), phase_of=run.name)
spec = fig.to_json()
t2, c2 = time.perf_counter(), time.process_time()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(t1 - t0, t2 - t1, (peak - base) / 1024, len(data) / 2**20, run.n_steps, len(run.metrics), len(run.series),
      int(run.complete), len(spec) / 2**20, c2 - c0)
"""


def measure_reading(cases) -> None:
    print(
        f"{'log':46s} {'MB':>6s} {'steps':>8s} {'metrics':>7s} {'kept':>5s} {'read':>7s} {'analyse+fig':>11s} "
        f"{'total':>7s} {'CPU':>7s} {'peak MB':>8s} {'fig MB':>6s}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for label, name, make in cases:
            path = Path(tmp) / name
            path.write_bytes(make())
            code = CHILD.format(root=str(ROOT), path=str(path), name=name)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
            if out.returncode:
                print(f"{label:46s} failed: {out.stderr[-500:]}")
                continue
            read, rest, peak, mb, steps, metrics, kept, complete, fig_mb, cpu = out.stdout.split()
            total = float(read) + float(rest)
            print(
                f"{label:46s} {float(mb):6.1f} {int(steps):8,d} {int(metrics):7d} {int(kept):5d} {float(read):6.2f}s "
                f"{float(rest):10.2f}s {total:6.2f}s {float(cpu):6.2f}s {float(peak):8.0f} {float(fig_mb):6.2f}"
                + ("" if complete == "1" else "  (stopped at a limit)")
            )
            path.unlink()


def measure_browser(repeats: int) -> None:
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_FLAGS, serve_app
    from tests.e2e.helpers import goto, wait_ready

    data = zipped("verl-5000x200.jsonl", verl_jsonl(5000, 200))
    with tempfile.TemporaryDirectory() as tmp, serve_app() as url, sync_playwright() as pw:
        path = Path(tmp) / "verl-5000x200.zip"
        path.write_bytes(data)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        goto(page, url)
        goto(page, url, "your-run")
        start = time.perf_counter()
        page.locator("[data-testid=stFileUploader] input[type=file]").first.set_input_files(str(path))
        page.get_by_text("Phase by phase").first.wait_for(timeout=300_000)
        wait_ready(page, timeout=300_000)
        page.locator("[data-testid=stPlotlyChart] .main-svg").first.wait_for(timeout=60_000)
        opened = time.perf_counter() - start
        print(
            f"\nChromium, 1400 px: a {len(data) / 2**20:.1f} MB zip of a 5,000 x 200 verl JSONL opens in {opened:.2f} s "
            "(upload, read, analysis, timeline drawn)"
        )
        box = page.get_by_label("eps (critic.cliprange_value)", exact=True).first

        def rerun(field, key: str, value: float) -> float:
            """Type a value and press Enter; until the URL carries it and the script has finished."""
            t = time.perf_counter()
            field.fill(f"{value:g}")
            field.press("Enter")
            page.wait_for_url(f"**{key}={value:g}*", timeout=60_000)
            wait_ready(page, timeout=60_000)
            return time.perf_counter() - t

        # values that are never a page's default (0.2 on Batch, 0.5 for verl here): a default leaves the URL
        miss = [rerun(box, "yr_eps0", 0.105 + 0.01 * i) for i in range(repeats)]
        hit = [rerun(box, "yr_eps0", 0.105 + 0.01 * i) for i in range(repeats)]
        # the same gesture on the Batch page, side by side on the same machine: what a rerun costs here at all
        goto(page, url, "batch")
        batch_box = page.get_by_label("eps (cliprange_value, return units)", exact=True).first
        baseline = [rerun(batch_box, "b_eps", 0.105 + 0.01 * i) for i in range(repeats)]
        base = statistics.median(baseline)
        for label, times in (
            ("Your run: eps typed, a new value (cache miss)", miss),
            ("Your run: eps typed, a value seen before", hit),
            ("Batch (baseline): eps typed", baseline),
        ):
            median = statistics.median(times)
            print(
                f"  rerun, {label:46s} median {median * 1e3:6.0f} ms, max {max(times) * 1e3:6.0f} ms, "
                f"{median / base:4.2f}x the Batch page"
            )
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--skip-huge", action="store_true", help="leave out the 100,000 x 200 zipped JSONL")
    parser.add_argument("--skip-reading", action="store_true", help="only the browser part")
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    cases = [
        ("verl JSONL, 5,000 steps x 200 metrics", "verl-5000x200.jsonl", lambda: verl_jsonl(5000, 200)),
        ("TensorBoard, 5,000 steps x 200 tags", "events.out.tfevents.5000x200", lambda: tfevents(5000, 200)),
        ("verl JSONL, 100,000 steps x 20 metrics", "verl-100000x20.jsonl", lambda: verl_jsonl(100_000, 20)),
        ("TensorBoard, 100,000 steps x 20 tags", "events.out.tfevents.100000x20", lambda: tfevents(100_000, 20)),
    ]
    if not args.skip_huge:
        cases.append(
            (
                "verl JSONL zipped, 100,000 steps x 200 metrics",
                "verl-100000x200.zip",
                lambda: zipped("verl-100000x200.jsonl", verl_jsonl(100_000, 200)),
            )
        )
    if not args.skip_reading:
        measure_reading(cases)
    if not args.skip_browser:
        measure_browser(args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
