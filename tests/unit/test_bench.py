"""The timing harness: size parsing, a tiny run end to end (CLI included) and well-formed CSV / JSON."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import valueloss as vl
from valueloss.tools import bench
from valueloss.viz.timing import bandwidth_figure, failures, headline, table_records, time_figure

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


def test_parse_sizes_accepts_lists_and_refuses_bad_text():
    assert bench.parse_sizes("8x128, 512X4096;2×3") == ((8, 128), (512, 4096), (2, 3))
    assert bench.parse_sizes("8x128,8x128") == ((8, 128),)
    for bad, message in [
        ("", "comma-separated"),
        ("8x", "not BxT"),
        ("abc", "not BxT"),
        ("0x128", "at least 1"),
        ("8x-1", "not BxT"),
        (f"{bench.MAX_SIDE + 1}x2", "at most"),
        (" , ", "at least one"),
    ]:
        with pytest.raises(ValueError, match=message):
            bench.parse_sizes(bad)


def test_many_sizes_are_refused_at_once_and_repeats_cost_no_quadratic_check():
    # issue 11.7: 10,000 sizes were accepted (an O(n^2) duplicate check, then hours of timing)
    many = ",".join(f"{i}x1" for i in range(1, 10_001))
    with pytest.raises(ValueError, match="10,000 sizes given; at most 32"):
        bench.parse_sizes(many)
    with pytest.raises(ValueError, match="at most 6 per run"):
        bench.parse_sizes(",".join(["8x128"] * 7), max_sizes=6)
    assert bench.parse_sizes(",".join(["8x128", "4x4"] * 16)) == ((8, 128), (4, 4))
    with pytest.raises(ValueError, match="too long"):
        bench.parse_sizes("8x128" + " " * 5000)
    with pytest.raises(ValueError, match=r"not BxT") as err:
        bench.parse_sizes("9" * 1000 + "x1")
    assert len(str(err.value)) < 200


def test_check_budget_caps_each_size_and_the_total():
    bench.check_budget(((8, 128), (512, 4096)), 4_000_000, 5_000_000)
    with pytest.raises(ValueError, match=r"1024x8192 is more than this page runs \(4,000,000 tokens at most"):
        bench.check_budget(((8, 128), (1024, 8192)), 4_000_000, 50_000_000)
    with pytest.raises(ValueError, match="add up to 6,291,456 tokens; this page runs at most 5,000,000"):
        bench.check_budget(((1024, 2048), (1024, 2048), (1024, 2048)), 4_000_000, 5_000_000)


def test_validate_config_names_the_field():
    good = bench.BenchConfig(sizes=((2, 4),))
    assert bench.validate_config(good) is good
    for change, message in [
        ({"dtype": "float8"}, "dtype"),
        ({"device": "tpu"}, "device"),
        ({"impls": ("verl-eager", "jax")}, "impls"),
        ({"passes": ("sideways",)}, "passes"),
        ({"repeats": 0}, "repeats"),
        ({"threads": 0}, "threads"),
        ({"eps": -1.0}, "eps"),
        ({"sizes": ()}, "sizes"),
    ]:
        with pytest.raises(ValueError, match=message):
            bench.validate_config(bench.BenchConfig(**{"sizes": ((2, 4),), **change}))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            bench.validate_config(bench.BenchConfig(sizes=((2, 4),), device="cuda"))


def test_memory_cap_and_devices():
    assert bench.available_devices()[0] == "cpu"
    assert bench.free_memory_bytes("cpu") > 0
    assert bench.max_tokens("cpu", "float64") < bench.max_tokens("cpu", "float32")


@pytest.fixture(scope="module")
def tiny_result():
    """Every implementation and both passes at two tiny sizes (compiles once for the module)."""
    seen = []
    config = bench.BenchConfig(sizes=((2, 16), (4, 33)), repeats=3, min_sample_s=1e-4)
    result = bench.run_benchmark(config, progress=lambda done, total, label: seen.append((done, total, label)))
    return result, seen


@pytest.mark.slow
def test_run_covers_every_case_and_reports_progress(tiny_result):
    result, seen = tiny_result
    impls = (*bench.DEFAULT_IMPLS, "roofline", *bench.FLOORS)
    assert len(result.rows) == 2 * len(bench.PASSES) * len(impls)
    assert {(r["impl"], r["pass"]) for r in result.rows} == {(i, p) for i in impls for p in bench.PASSES}
    assert all(r["status"] == "ok" for r in result.rows), bench.failures(result.rows)
    assert seen[-1][0] == seen[-1][1] and seen[-1][2] == "done"
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    for r in result.rows:
        assert r["p25_ms"] <= r["median_ms"] <= r["p75_ms"] and r["min_ms"] <= r["median_ms"]
        if r["impl"] in bench.FLOORS:  # the floors move no loss bytes: no bandwidth, no ratios
            assert r["bytes"] == 0 and r["gbps"] is None and r["roofline_share"] is None
            assert r["speedup_vs_verl_eager"] is None
            continue
        per_token = 20 if r["pass"] == "forward+backward" else 16
        assert r["bytes"] == r["tokens"] * per_token
        assert r["gbps"] == pytest.approx(r["bytes"] / r["median_ms"] / 1e6)
        assert r["roofline_share"] == pytest.approx(r["roofline_ms"] / r["median_ms"])
        eager = next(
            e
            for e in result.rows
            if e["impl"] == "verl-eager" and e["pass"] == r["pass"] and e["tokens"] == r["tokens"]
        )
        assert r["speedup_vs_verl_eager"] == pytest.approx(eager["median_ms"] / r["median_ms"])
        assert r["page_faults_per_call"] is not None and r["page_faults_per_call"] >= 0
    meta = result.meta
    for key in ("device_name", "date", "torch", "threads", "allocator", "roofline_method", "bytes_per_token"):
        assert meta[key], key
    assert "outputs" in meta["allocator"] and meta["threads"] == torch.get_num_threads()
    assert meta["compile_mode"] == bench.compile_mode(bench.BenchConfig(sizes=((2, 16),)))
    assert "once with dynamic shapes" in meta["compile_mode"]  # on CPU
    assert "autograd.Function doing nothing" in meta["floor_method"]
    assert {path["backend"] for path in meta["fused_paths"]} >= {"c-loop"}  # what fused ran as, recorded


@pytest.mark.slow
def test_table_csv_json_and_figures(tiny_result, tmp_path):
    result, _ = tiny_result
    text = bench.format_table(result)
    assert "fused" in text and "roofline" in text and "x verl eager" in text
    rows = list(csv.DictReader(io.StringIO(bench.to_csv(result))))
    assert len(rows) == len(result.rows) and set(bench.CSV_FIELDS) <= set(rows[0])
    csv_path, json_path = bench.write_results(result, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["meta"]["dtype"] == "float32" and len(data["rows"]) == len(result.rows)
    (path, loaded) = bench.load_recorded(tmp_path)[0]
    assert path == json_path and loaded.rows == json.loads(json.dumps(result.rows, default=str))
    assert not bench.is_gpu_recording(loaded)
    records = table_records(result.rows)
    assert records[0]["size"] == "2x16" and "% of roofline" in records[0]
    top = headline(result.rows)
    assert top["size"] == "4x33" and top["speedup_vs_verl_eager"] > 0
    assert top["fastest_impl"] in bench.DEFAULT_IMPLS  # the roofline and the floors are bounds, not rivals
    fig = time_figure(result.ok_rows())
    assert len(fig.data) == len(bench.PASSES) * (len(bench.DEFAULT_IMPLS) + 1) + len(bench.FLOORS)  # floors: fwd+bwd
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    bw = bandwidth_figure(result.ok_rows())
    names = {trace.name.split(",")[0] for trace in bw.data}
    assert names >= {"fused", "roofline (stream the bytes once)"} and not any("floor" in n for n in names)


def test_out_of_memory_at_one_size_is_reported_and_the_run_goes_on(monkeypatch):
    original = bench._cases_for_size

    def maybe_oom(config, batch, length, *rest):
        if batch == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        return original(config, batch, length, *rest)

    monkeypatch.setattr(bench, "_cases_for_size", maybe_oom)
    config = bench.BenchConfig(sizes=((3, 8), (2, 8)), impls=("verl-eager",), repeats=2, min_sample_s=1e-4)
    result = bench.run_benchmark(config)
    statuses = {(r["batch"], r["status"]) for r in result.rows}
    assert statuses == {(3, "out of memory"), (2, "ok")}
    assert any("3x8" in line and "out of memory" in line for line in failures(result.rows))


def test_one_failing_implementation_does_not_end_the_run(monkeypatch):
    def broken(name, eps, per_shape):
        if name == "compiled":
            return lambda *args: (_ for _ in ()).throw(RuntimeError("no compiler"))
        return original(name, eps, per_shape)

    original = bench._make_impl
    monkeypatch.setattr(bench, "_make_impl", broken)
    config = bench.BenchConfig(sizes=((2, 8),), impls=("verl-eager", "compiled"), repeats=2, min_sample_s=1e-4)
    result = bench.run_benchmark(config)
    by_impl = {(r["impl"], r["pass"]): r["status"] for r in result.rows}
    assert by_impl[("verl-eager", "forward")] == "ok"
    assert by_impl[("compiled", "forward")].startswith("error: RuntimeError")


@pytest.mark.slow
def test_cli_on_tiny_sizes_writes_a_well_formed_csv(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "valueloss.tools.bench",
            "--sizes",
            "2x8,3x16",
            "--impl",
            "verl-eager,fused",
            "--impl",
            "openrlhf-eager",
            "--repeats",
            "2",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "verl-eager" in proc.stdout and "wrote" in proc.stdout and "done" in proc.stderr
    (csv_file,) = tmp_path.glob("bench-cpu-1t-float32-*.csv")
    rows = list(csv.DictReader(csv_file.open()))
    assert len(rows) == 2 * 2 * 6  # sizes x passes x (3 implementations + roofline + 2 floors)
    for row in rows:
        assert row["status"] == "ok" and row["threads"] == "1" and row["device"] == "cpu"
        assert float(row["median_ms"]) > 0
        assert row["gbps"] == "" if row["impl"].startswith("floor") else math.isfinite(float(row["gbps"]))
    (json_file,) = tmp_path.glob("bench-cpu-1t-float32-*.json")
    assert json.loads(json_file.read_text())["meta"]["threads"] == 1


@pytest.mark.slow
def test_cli_refuses_bad_sizes_with_a_message():
    proc = subprocess.run(
        [sys.executable, "-m", "valueloss.tools.bench", "--sizes", "8by128"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2 and "not BxT" in proc.stderr


def test_recorded_results_in_docs_are_well_formed():
    recorded = bench.load_recorded(ROOT / "docs" / "benchmarks")
    assert recorded, "docs/benchmarks/ should hold at least one recorded run"
    for path, result in recorded:
        assert path.with_suffix(".csv").exists()
        for key in ("device", "device_name", "date", "torch", "threads", "dtype"):
            assert result.meta.get(key) not in (None, ""), f"{path.name}: {key}"
        assert result.rows and {r["impl"] for r in result.rows} >= {"verl-eager", "fused", "roofline"}
        if bench.is_gpu_recording(result):  # what a GPU figure is compared by
            for key in ("cuda_runtime", "driver", "multiprocessors"):
                assert result.meta.get(key), f"{path.name}: {key}"


def test_torch_compile_times_the_canonical_function_per_size_on_gpus(monkeypatch):
    seen = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: seen.append((fn, kw)) or fn)
    bench._make_impl("compiled", 0.2, per_shape=True)
    bench._make_impl("compiled", 0.2, per_shape=False)
    assert seen == [(vl.compute_value_loss, {"dynamic": False}), (vl.compute_value_loss, {"dynamic": True})]
    cpu, gpu = bench.BenchConfig(sizes=((2, 4),)), bench.BenchConfig(sizes=((2, 4),), device="cuda")
    assert not bench.compiles_per_shape(cpu) and bench.compiles_per_shape(gpu)
    assert "for each size (static shapes)" in bench.compile_mode(gpu)
    assert bench.compiles_per_shape(bench.BenchConfig(sizes=((2, 4),), compile_per_shape=True))


def test_the_bare_kernel_is_timed_only_where_triton_runs(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert "fused-kernel" not in bench.default_impls("cpu")
    with pytest.raises(ValueError, match="fused-kernel times the Triton kernel"):
        bench.validate_config(bench.BenchConfig(sizes=((2, 4),), impls=("fused-kernel",)))
