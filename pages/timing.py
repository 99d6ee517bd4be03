"""Timing: the benchmark (verl eager, OpenRLHF eager, torch.compile, fused) against the bandwidth roofline.

Thin page: widgets in the sidebar, every number from ``valueloss.tools.bench``, one plot builder per figure.
A run starts only on the button, one at a time across all sessions, with a progress bar and a Cancel
button; its sizes are capped in count and tokens. The page leads with the answer (one sentence from the
numbers) and keeps the detail in tabs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import streamlit as st

from pages.common import number_table, page_setup, share_link, shows_errors
from valueloss.fused import SMALL_TOKENS
from valueloss.tools import bench
from valueloss.tools.exclusive import BENCHMARK_LOCK
from valueloss.viz.timing import (
    FLOORS,
    IMPL_LABELS,
    bandwidth_figure,
    failures,
    fixed_cost_note,
    floor_note,
    headline,
    headline_sentence,
    summary_records,
    table_records,
    time_figure,
)

RECORDED_DIR = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
APP_MAX_TOKENS = 8 * 1024 * 1024  # a live run on a shared server stays short: per size,
APP_MAX_TOTAL_TOKENS = 16 * 1024 * 1024  # over all sizes of one run,
APP_MAX_SIZES = 6  # and this many sizes at most
ADD_GPU_RESULTS = (
    "No recorded GPU results yet; run `python -m valueloss.tools.bench --device cuda --out docs/benchmarks/` "
    "on a GPU machine to add them."
)


@st.cache_data(ttl=60, show_spinner=False)
def recorded_results(directory: str) -> list[tuple[str, bench.BenchResult]]:
    return [(path.name, result) for path, result in bench.load_recorded(directory)]


def recording_label(name: str, result: bench.BenchResult) -> str:
    meta = result.meta
    allocator = f" · {meta['allocator_short']}" if meta.get("allocator_short") else ""
    return (
        f"{meta.get('device_name', meta.get('device'))} · {meta.get('dtype')} · {meta.get('threads')} threads"
        f"{allocator} · {str(meta.get('date'))[:10]} ({name})"
    )


def describe(result: bench.BenchResult, live: bool) -> None:
    meta = result.meta
    where = "Live run on this server" if live else "Recorded, not live"
    gpu = f"CUDA {meta['cuda_runtime']}, driver {meta.get('driver') or 'unknown'}, " if meta.get("cuda_runtime") else ""
    st.markdown(
        f"**{where}:** {meta.get('device_name')} (`{meta.get('device')}`), {meta.get('dtype')}, "
        f"{meta.get('threads')} threads, torch {meta.get('torch')}, {gpu}"
        f"{str(meta.get('date'))[:19].replace('T', ' ')} UTC, "
        f"load average {meta.get('load_average_start')}."
    )
    compiled = f" {meta['compile_mode']}." if meta.get("compile_mode") else ""
    st.caption(
        f"{meta.get('allocator', '')} Timing: {meta.get('timing', '')}.{compiled} A live run shares this server's CPUs with "
        "everything else on it (other sessions, a browser on the same machine): compare load averages before "
        "trusting a number, and prefer `python -m valueloss.tools.bench` on an idle machine for figures you quote."
    )


def show_result(result: bench.BenchResult, *, live: bool, key: str) -> None:
    """The answer first (one sentence from the numbers), then the detail in tabs: the two figures,
    the table with its CSV, and how the run was measured."""
    sentence = headline_sentence(headline(result.rows))
    if sentence is not None:
        st.markdown(sentence)
    problems = failures(result.rows)
    if problems:
        st.warning("Not measured: " + "; ".join(problems))
    ok = result.ok_rows()
    where = "live run on this server" if live else "recorded, not live"
    tab_time, tab_bw, tab_table, tab_how = st.tabs(
        ["Time per call", "Bandwidth", "Table and CSV", f"How it was measured ({where})"]
    )
    with tab_time:
        if ok:
            st.plotly_chart(time_figure(ok), width="stretch", key=f"{key}_time")
        floors = " (the grey floor lines measure the least of it)" if any(r["impl"] in FLOORS for r in ok) else ""
        st.caption(
            "**How to read it.** Where a line runs flat at small sizes, the call's time is Python and launch "
            f"overhead, not bytes{floors}. The roofline kernel is itself a "
            "compiled call, so at small sizes it measures its own overhead, and a share above 100 % only means "
            f"the fused call costs less than that call (on CPU, batches up to {SMALL_TOKENS:,} tokens run the "
            "pass as a plain C loop and skip the compiled call). At large sizes the eager formulas run dozens of "
            "full-size kernels (and on CPU fault fresh pages in for their intermediates); the fused pass reads "
            "the inputs once and writes one gradient buffer, which the backward scales in place."
        )
        for note in (floor_note(ok), fixed_cost_note(ok)):
            if note is not None:
                st.caption(note)
    with tab_bw:
        if ok:
            st.plotly_chart(bandwidth_figure(ok), width="stretch", key=f"{key}_bw")
    with tab_table:
        st.dataframe(table_records(result.rows), hide_index=True, key=f"{key}_table")
        st.download_button(
            "Download CSV",
            bench.to_csv(result),
            file_name=f"valueloss-bench-{result.meta.get('device', 'cpu')}-{result.meta.get('dtype')}.csv",
            mime="text/csv",
            key=f"{key}_csv",
        )
    with tab_how:
        describe(result, live)


def run_with_cancel(config: bench.BenchConfig) -> None:
    """Run the benchmark under the server-wide lock, with a progress bar and a Cancel button.

    Pressing Cancel (or any widget, or closing the tab) makes Streamlit stop this script run at its
    next progress update, i.e. after the step under way (a first compilation can take a while); the
    lock is released on the way out. The run marks itself in the session
    before it starts and unmarks itself when it finishes, so the next script run (which may start before
    this one has unwound) knows that it was cancelled.
    """
    lock = BENCHMARK_LOCK  # module state: a client's clear-cache message cannot recreate it
    if not lock.acquire(blocking=False):
        st.warning(
            "Another session is running a benchmark right now (or your cancelled run is finishing its current "
            "step). One runs at a time so that the timings do not disturb each other: press the button again in "
            "a moment."
        )
        return
    st.session_state["tm_running"] = True
    try:
        cancel = st.empty()
        cancel.button("Cancel run", key="tm_cancel", icon=":material/cancel:", help="Stop this run; nothing is kept.")
        bar = st.progress(0.0, text="starting")
        last = [0.0]

        def progress(done: int, total: int, label: str) -> None:
            # a few updates a second: every message makes the browser redraw, which on a small
            # server competes with the very kernels being timed; each update is also where a
            # cancel takes effect
            now = time.monotonic()
            if now - last[0] > 0.3 or done >= total:
                last[0] = now
                bar.progress(min(done / max(total, 1), 1.0), text=label)

        st.session_state["tm_result"] = bench.run_benchmark(config, progress)
        st.session_state.pop("tm_running", None)
        bar.empty()
        cancel.empty()
    except Exception:  # a failure, not a cancel: it shows as itself
        st.session_state.pop("tm_running", None)
        raise
    finally:
        lock.release()


page_setup(
    "Timing",
    "How much faster is the fused loss than verl's and OpenRLHF's eager formulas, "
    "and how close does it get to the memory-bandwidth limit?",
)
share_link()

devices = bench.available_devices()
with st.sidebar:
    st.subheader("Benchmark")
    device = st.selectbox("device", devices, key="tm_device", bind="query-params", help="The devices this server has.")
    dtype = st.selectbox("dtype", list(bench.DTYPES), key="tm_dtype", bind="query-params")
    sizes_text = st.text_input(
        "sizes (batch x response length, comma-separated)",
        "8x128,64x1024,512x4096",
        key="tm_sizes",
        bind="query-params",
        help=f"For example 8x128,512x4096: at most {APP_MAX_SIZES} sizes, {APP_MAX_TOKENS:,} tokens each and "
        f"{APP_MAX_TOTAL_TOKENS:,} in all (and by free memory).",
    )
    runnable = list(bench.default_impls(device))
    impls = st.multiselect(
        "implementations",
        runnable,
        default=runnable,
        key="tm_impls",
        bind="query-params",
        help="; ".join(f"{name}: {IMPL_LABELS[name]}" for name in runnable)
        + ". Every run also measures the roofline and the per-call floor.",
    )
    repeats = st.number_input("repeats", 3, 50, 7, 1, key="tm_repeats", bind="query-params")
    threads = st.number_input(
        "CPU threads",
        1,
        max(os.cpu_count() or 1, 1),
        max(os.cpu_count() or 1, 1),
        1,
        key="tm_threads",
        bind="query-params",
        help="torch's intra-op threads during the run (the rest of the app uses one).",
    )
    run = st.button("Run benchmark", key="tm_run", type="primary", icon=":material/timer:")
    st.caption(
        "Runs only when you press the button; the first run compiles the fused pass and torch.compile's "
        "graph (seconds, reported apart, not in the timings)."
    )

config = None
with shows_errors("Benchmark settings"):
    sizes = bench.parse_sizes(sizes_text, max_sizes=APP_MAX_SIZES)
    cap = min(bench.max_tokens(device, dtype), APP_MAX_TOKENS)
    bench.check_budget(sizes, cap, APP_MAX_TOTAL_TOKENS)
    if not impls:
        raise ValueError("choose at least one implementation")
    config = bench.BenchConfig(
        sizes=sizes, dtype=dtype, device=device, impls=tuple(impls), repeats=int(repeats), threads=int(threads)
    )

if st.session_state.pop("tm_running", False):  # a run of this session that did not finish
    st.info("The benchmark run was cancelled before it finished; nothing from it was kept.")
if run and config is not None:
    run_with_cancel(config)

live = st.session_state.get("tm_result")
if live is not None:
    st.header("Live run on this server")
    show_result(live, live=True, key="tm_live")

st.header("Recorded results")
recordings = recorded_results(str(RECORDED_DIR))
if recordings:
    st.caption(
        "Every recording side by side: the fused forward+backward at each run's largest size, and the fastest "
        "implementation there. Choose one below for its figures, table and how it was measured."
    )
    number_table(
        summary_records(recordings),
        {"fused fwd+bwd ms": "%.3g", "x verl eager": "%.1f", "% of roofline": "%.0f"},
    )
    labels = [recording_label(name, result) for name, result in recordings]
    latest = max(range(len(recordings)), key=lambda i: str(recordings[i][1].meta.get("date", "")))
    choice = st.selectbox(
        "recording", range(len(labels)), index=latest, format_func=lambda i: labels[i], key="tm_recording"
    )
    show_result(recordings[choice][1], live=False, key="tm_rec")
else:
    st.caption(f"No recordings in {RECORDED_DIR.relative_to(RECORDED_DIR.parents[1])}/ yet.")

has_gpu = any(d != "cpu" for d in devices)
notes = []
if not has_gpu:
    notes.append(
        "This server has no GPU: a live benchmark runs on its CPU; GPU numbers, if any, are recordings made "
        "elsewhere, not live results."
    )
if not any(bench.is_gpu_recording(result) for _, result in recordings):
    notes.append(ADD_GPU_RESULTS)
if notes:
    st.info(" ".join(notes))
if live is None:
    st.caption("To time this server yourself, choose the settings in the sidebar and press **Run benchmark**.")
