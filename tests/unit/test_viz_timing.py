"""The Timing page's words, tables and headline (valueloss.viz.timing): every sentence holds for the
numbers it states, over a grid of cases as well as for the recorded runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from valueloss.tools import bench
from valueloss.viz.timing import (
    IMPL_LABELS,
    ROOFLINE_PLAIN,
    fixed_cost_note,
    floor_note,
    headline,
    headline_sentence,
    summary_records,
)

ROOT = Path(__file__).resolve().parents[2]


def test_headline_sentence_states_the_numbers_it_is_given():
    rows = [
        {"status": "ok", "impl": "fused", "pass": "forward+backward", "batch": b, "length": t, "tokens": b * t,
         "median_ms": ms, "speedup_vs_verl_eager": x, "roofline_share": share, "gbps": 14.2, "roofline_gbps": 20.0}
        for b, t, ms, x, share in [(8, 128, 0.1, 3.5, 1.3), (512, 4096, 2.96, 22.84, 0.7095)]
    ]  # fmt: skip
    sentence = headline_sentence(headline(rows))
    assert sentence == (
        "At **512x4096**, the fused forward+backward takes **2.96 ms**: **22.8×** faster than verl's eager "
        f"formula and at **71 %** of the roofline speed (14.2 of 20 GB/s; {ROOFLINE_PLAIN})."
    )
    rows[1]["speedup_vs_verl_eager"] = 0.5
    assert "**2.0×** slower than verl's eager formula" in headline_sentence(headline(rows))
    rows[1]["speedup_vs_verl_eager"] = rows[1]["roofline_share"] = None  # verl eager not run, no roofline
    assert headline_sentence(headline(rows)) == "At **512x4096**, the fused forward+backward takes **2.96 ms**."
    assert headline_sentence(None) is None


def _rows(cases):
    """Benchmark rows: (impl, batch, length, median ms, roofline share) for forward+backward."""
    return [
        {"status": "ok", "impl": impl, "pass": "forward+backward", "batch": b, "length": t, "tokens": b * t,
         "median_ms": ms, "speedup_vs_verl_eager": 1.5, "roofline_share": share,
         "roofline_ms": None if share is None else ms * share,
         "gbps": 247.3, "roofline_gbps": 3177.3}
        for impl, b, t, ms, share in cases
    ]  # fmt: skip


def test_headline_names_a_faster_implementation_and_writes_large_bandwidths_plainly():
    rows = _rows([("fused", 4096, 8192, 2.47, 0.044), ("openrlhf-eager", 4096, 8192, 1.73, 0.063),
                  ("openrlhf-eager", 8, 128, 0.01, 1.0), ("roofline", 4096, 8192, 0.109, 1.0)])  # fmt: skip
    top = headline(rows)
    assert (top["fastest_impl"], top["fastest_ms"]) == ("openrlhf-eager", 1.73)  # the roofline is no rival
    sentence = headline_sentence(top)
    assert "(247 of 3,177 GB/s;" in sentence
    assert sentence.endswith("The fastest implementation at that size is **OpenRLHF eager**, at **1.73 ms**.")
    assert "fastest" not in headline_sentence(headline(rows[:1]))  # fused is the fastest: nothing added


def test_fixed_cost_note_splits_the_time_into_what_every_call_pays_and_what_grows():
    rows = _rows([("fused", 8, 128, 1.39, 0.01), ("fused", 4096, 8192, 2.71, 0.0778)])  # the H200 recording
    assert fixed_cost_note(rows) == (
        "Here the fused forward+backward reaches only 7.8 % of the roofline at 4096x8192 (2.71 ms against 0.211 ms). "
        "1.39 ms of that is already spent at 8x128: a cost paid on every call, whatever the batch. The remaining "
        "1.32 ms, the part that grows with the tokens, is 6.3× the roofline's time."
    )
    assert fixed_cost_note(_rows([("fused", 8, 128, 0.1, 1.0), ("fused", 4096, 8192, 2.0, 0.7)])) is None
    assert fixed_cost_note(rows[1:]) is None  # one size tells nothing about growth


def test_fixed_cost_note_never_says_more_than_the_whole_or_below_the_roofline():
    """issue 20.7: the live note said "34 % of the roofline at 32x128 (0.0576 ms ...). 0.0923 ms of that is
    already spent at 8x128" (more than the whole) and "still 0.24x the roofline" (below the limit)."""
    live = _rows([("fused", 8, 128, 0.0923, 0.3), ("fused", 32, 128, 0.0576, 0.34)])
    assert fixed_cost_note(live) == (
        "Here the fused forward+backward reaches only 34 % of the roofline at 32x128 (0.0576 ms against 0.0196 ms). "
        "At 8x128 it takes 0.0923 ms, no less than at 32x128: between these sizes its time does not grow with "
        "the batch, so it is a cost paid per call, not the bytes moved."
    )
    within = _rows([("fused", 8, 128, 0.05, 0.3), ("fused", 512, 128, 0.06, 0.34)])  # grows by less than the roofline
    assert fixed_cost_note(within).endswith(
        "The remaining 0.01 ms, the part that grows with the tokens, is within the roofline's 0.0204 ms: what keeps "
        "the call from the roofline is the per-call cost."
    )


@pytest.mark.parametrize("t_small", [0.01, 0.05, 0.0923, 0.2, 1.39])
@pytest.mark.parametrize("t_large", [0.0576, 0.1, 0.5, 2.71])
@pytest.mark.parametrize("share", [0.0048, 0.05, 0.24, 0.34, 0.49])
def test_every_sentence_of_the_fixed_cost_note_holds_for_its_numbers(t_small, t_large, share):
    rows = _rows([("fused", 8, 128, t_small, 0.5), ("fused", 4096, 8192, t_large, share)])
    note = fixed_cost_note(rows)
    roofline = t_large * share
    growth = t_large - t_small
    assert (
        f"reaches only {100 * share:.2g} % of the roofline" in note if share < 0.095 else f"{100 * share:.0f} %" in note
    )
    assert f"({t_large:.3g} ms against {roofline:.3g} ms)" in note
    assert ("of that is already spent" in note) == (t_small < t_large)
    assert ("no less than at" in note) == (t_small >= t_large)
    said = re.search(r"is ([0-9.,]+)× the roofline's time", note)
    if said:
        assert growth > roofline and float(said.group(1).replace(",", "")) >= 1
        assert "e+" not in said.group(1)
    assert ("within the roofline's" in note) == (0 < growth <= roofline)


def test_floor_note_says_how_much_of_a_small_call_is_the_floor():
    rows = _rows([("fused", 8, 128, 0.182, 0.5), ("fused", 512, 4096, 2.64, 0.69)])
    rows += _rows([("floor-autograd", 8, 128, 0.065, None), ("floor-kernel", 8, 128, 0.004, None)])
    assert floor_note(rows) == (
        "The per-call floor here: a custom autograd Function that does nothing costs 0.065 ms per forward+backward, "
        "one tiny kernel 0.004 ms. Of the fused call's 0.182 ms at 8x128, 0.065 ms (36 %) is that floor: no "
        "implementation behind autograd can remove it."
    )
    slower_floor = _rows([("fused", 8, 128, 0.06, 0.5), ("floor-autograd", 8, 128, 0.065, None)])
    assert floor_note(slower_floor) == (
        "The per-call floor here: a custom autograd Function that does nothing costs 0.065 ms per forward+backward. "
        "That is no less than the whole fused call at 8x128 (0.06 ms): at that size the fused call costs no more "
        "than the floor."
    )
    assert floor_note(rows[:2]) is None  # no floor measured (older recordings)


def test_summary_records_one_row_per_recording_from_its_headline():
    recordings = [(path.name, result) for path, result in bench.load_recorded(ROOT / "docs" / "benchmarks")]
    records = summary_records(recordings)
    assert [r["file"] for r in records] == [name for name, _ in recordings]
    for record, (_, result) in zip(records, recordings, strict=True):
        top = headline(result.rows)
        assert record["device"] == result.meta["device_name"] and record["size"] == top["size"]
        assert record["fused fwd+bwd ms"] == top["median_ms"]
        assert record["% of roofline"] == pytest.approx(100 * top["roofline_share"])
        assert record["fastest there"].startswith(IMPL_LABELS[top["fastest_impl"]])
    gpu = [r for r, (_, res) in zip(records, recordings, strict=True) if bench.is_gpu_recording(res)]
    assert {r["dtype"] for r in gpu} >= {"float32", "bfloat16"}, "the H200 recordings are committed"


def test_small_shares_and_large_ratios_are_written_as_people_read_them():
    """What a loaded machine showed live: "0 %" of the roofline and "2.1e+02×" the roofline's time."""
    rows = _rows([("fused", 8, 128, 0.134, 0.5), ("fused", 64, 512, 17.5, 0.0048)])
    note = fixed_cost_note(rows)
    assert "reaches only 0.48 % of the roofline" in note and "is 207× the roofline's time" in note
    top = {**headline(rows), "roofline_gbps": 7.82, "gbps": 0.0374}
    assert "at **0.48 %** of the roofline speed" in headline_sentence(top)
