"""The Timing page as a user drives it: a tiny benchmark on the button, the no-GPU message, recorded
results labelled as such, bad sizes as st.error, and one benchmark at a time across sessions."""

from __future__ import annotations

import ast
import threading

import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.app.helpers import ROOT, run_page
from tests.words import numbers_in
from valueloss.tools import bench
from valueloss.viz.timing import _percent, fixed_cost_note, floor_note, headline


def run(query: dict | None = None):
    return run_page("timing", query, timeout=120)


pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


def page_constant(name: str):
    """A module-level constant of pages/timing.py, read without running the page (importing it would)."""
    tree = ast.parse((ROOT / "pages" / "timing.py").read_text(encoding="utf-8"))
    (value,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == name]
    return eval(compile(ast.Expression(value), name, "eval"), {"__builtins__": {}})  # e.g. 16 * 1024 * 1024


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def press_run(at: AppTest, sizes: str = "2x16,4x32", impls=("verl-eager", "fused"), repeats: int = 3) -> AppTest:
    at.text_input(key="tm_sizes").set_value(sizes)
    at.multiselect(key="tm_impls").set_value(list(impls))
    at.number_input(key="tm_repeats").set_value(repeats)
    at.button(key="tm_run").click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_opens_without_running_anything():
    at = run()
    assert "press **Run benchmark**" in texts(at.caption)
    assert "tm_result" not in at.session_state


def test_button_runs_a_tiny_benchmark_and_shows_table_figures_and_csv():
    at = press_run(run())
    result = at.session_state["tm_result"]
    assert {r["impl"] for r in result.rows} == {"verl-eager", "fused", "roofline", "floor-autograd", "floor-kernel"}
    assert all(r["status"] == "ok" for r in result.rows)
    body = texts(at.markdown)
    assert "Live run on this server" in body and "the fused forward+backward takes" in body
    table = at.dataframe[0].value
    assert list(table["size"].unique()) == ["2x16", "4x32"]
    assert {"median (ms)", "GB/s", "× verl eager", "% of roofline"} <= set(table.columns)
    charts = [c for c in at.get("plotly_chart")]
    assert len(charts) >= 2  # time and bandwidth for the live run (more if recordings exist)
    assert any("Download CSV" in str(b.proto.label) for b in at.get("download_button"))
    # the per-call floor, measured in the same run, and what it is of the fused call at the smallest size
    assert {"floor-autograd", "floor-kernel"} <= {r["impl"] for r in result.rows}
    note = floor_note(result.ok_rows())
    assert note is not None and note in texts(at.caption)
    assert "no implementation behind autograd can remove" in note or "no more than the floor" in note
    assert result.meta["compile_mode"] in texts(at.caption)  # how torch.compile was compiled, said


def test_query_parameters_set_the_scenario():
    at = run({"tm_sizes": "3x5", "tm_dtype": "float64", "tm_repeats": "4", "tm_impls": ["verl-eager", "fused"]})
    assert at.text_input(key="tm_sizes").value == "3x5"
    assert at.multiselect(key="tm_impls").value == ["verl-eager", "fused"]
    assert at.selectbox(key="tm_dtype").value == "float64"
    assert at.number_input(key="tm_repeats").value == 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_so_and_shows_recorded_results_labelled():
    at = run()
    info = texts(at.info)
    assert "no GPU" in info
    recorded = bench.load_recorded(ROOT / "docs" / "benchmarks")
    if not any(bench.is_gpu_recording(r) for _, r in recorded):
        assert "No recorded GPU results yet" in info and "--device cuda --out docs/benchmarks/" in info
    if recorded:
        assert "Recorded, not live" in texts(at.markdown)
        assert at.selectbox(key="tm_recording").options


@pytest.mark.parametrize(
    ("sizes", "message"),
    [("8by128", "not BxT"), ("", "comma-separated"), ("0x5", "at least 1"), ("100000x100000", "more than this page")],
)
def test_bad_sizes_give_an_error_and_no_run(sizes, message):
    at = run()
    at.text_input(key="tm_sizes").set_value(sizes)
    at.button(key="tm_run").click()
    at.run()
    assert not at.exception
    errors = texts(at.error)
    assert message in errors and errors.startswith("Benchmark settings")
    assert "tm_result" not in at.session_state
    assert at.header[-1].value == "Recorded results"  # the rest of the page is still there


def test_no_implementation_chosen_is_an_error():
    at = run()
    at.multiselect(key="tm_impls").set_value([])
    at.run()
    assert "choose at least one implementation" in texts(at.error)


def test_a_second_session_waits_for_the_running_benchmark(monkeypatch):
    started, release = threading.Event(), threading.Event()
    real = bench.run_benchmark

    def slow(config, progress=None):
        started.set()
        release.wait(timeout=60)
        return real(config, progress)

    monkeypatch.setattr(bench, "run_benchmark", slow)
    first = run()
    worker = threading.Thread(target=press_run, args=(first,), kwargs={"impls": ("verl-eager",)})
    worker.start()
    try:
        assert started.wait(timeout=60)
        second = press_run(run(), impls=("verl-eager",))
        assert "Another session is running a benchmark" in texts(second.warning)
        assert "tm_result" not in second.session_state
    finally:
        release.set()
        worker.join(timeout=120)
    assert "tm_result" in first.session_state


def test_ten_thousand_sizes_are_refused_quickly_with_a_clear_message():
    # issue 11.7: 10,000 sizes used to be accepted (an O(n^2) duplicate check, then hours of timing)
    at = run()
    at.text_input(key="tm_sizes").set_value(",".join(f"{i}x1" for i in range(1, 10_001)))
    at.button(key="tm_run").click()
    at.run()
    assert not at.exception
    assert numbers_in(texts(at.error)) == [10_000, page_constant("APP_MAX_SIZES")]  # the sizes given and the page's cap
    assert "tm_result" not in at.session_state
    assert at.header[-1].value == "Recorded results"


def test_the_total_token_count_of_a_run_is_capped(monkeypatch):
    monkeypatch.setattr(bench, "max_tokens", lambda *a, **k: 1 << 40)  # whatever memory this machine has free
    at = run()
    at.text_input(key="tm_sizes").set_value("2048x4096,4096x2048,1024x4096")
    at.run()
    total = 2048 * 4096 + 4096 * 2048 + 1024 * 4096
    assert numbers_in(texts(at.error))[:2] == [total, page_constant("APP_MAX_TOTAL_TOKENS")]


def test_a_stopped_run_releases_the_lock_and_says_it_was_cancelled(monkeypatch):
    # what the Cancel button does: Streamlit stops the script at the run's next progress update
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException

    def stopped(config, progress=None):
        progress(0, 10, "warm-up")
        raise StopException()

    monkeypatch.setattr(bench, "run_benchmark", stopped)
    at = press_run(run())
    assert at.button(key="tm_cancel").label == "Cancel run"
    assert "tm_result" not in at.session_state
    at.run()
    assert "cancelled before it finished" in texts(at.info)
    monkeypatch.undo()
    at = press_run(at)  # the lock was released: the next run goes ahead
    assert "tm_result" in at.session_state and "Another session" not in texts(at.warning)


def test_the_page_leads_with_the_answer_and_says_what_the_roofline_is():
    at = run()
    recorded = bench.load_recorded(ROOT / "docs" / "benchmarks")
    if not recorded:
        pytest.skip("no recordings")
    first = at.markdown[0].value  # the first paragraph under the title: the recording's headline
    latest = max(recorded, key=lambda pr: str(pr[1].meta.get("date")))[1]
    top = headline(latest.rows)
    assert first.startswith(f"At **{top['size']}**, the fused forward+backward takes **{top['median_ms']:.3g} ms**")
    assert f"**{top['speedup_vs_verl_eager']:.1f}×** faster" in first
    assert f"**{_percent(top['roofline_share'])} %** of the roofline" in first
    assert "the roofline is the time a kernel takes just to read the same inputs" in first
    assert [t.label for t in at.tabs][:4] == [
        "Time per call",
        "Bandwidth",
        "Table and CSV",
        "How it was measured (recorded, not live)",
    ]


def test_recordings_side_by_side_and_the_gpu_ones_explain_their_time():
    at = run()
    recorded = bench.load_recorded(ROOT / "docs" / "benchmarks")
    if not any(bench.is_gpu_recording(r) for _, r in recorded):
        pytest.skip("no GPU recording")
    table = at.dataframe[0].value  # the side-by-side table comes first under "Recorded results"
    assert list(table["file"]) == [path.name for path, _ in recorded]
    assert "NVIDIA H200" in set(table["device"]) and not any("No recorded GPU" in str(i.value) for i in at.info)
    latest = max(recorded, key=lambda pr: str(pr[1].meta.get("date")))[1]
    assert bench.is_gpu_recording(latest)  # shown by default: the newest recording
    note = fixed_cost_note(latest.ok_rows())
    assert note is not None and note in texts(at.caption)
    meta = latest.meta
    assert f"CUDA {meta['cuda_runtime']}, driver {meta['driver']}" in texts(at.markdown)
