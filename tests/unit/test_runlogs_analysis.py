"""Recognition by the registry's LoggedMetric fields, the phases of a run, each phase's evidence (recomputed by
hand), the detectors (when each pattern started, the numbers in their words), the links' queries, and the
timeline figure."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

from tests.words import numbers_in
from valueloss.dialects import DIALECTS
from valueloss.tools.runlogs import read_log
from valueloss.tools.runlogs.analysis import (
    DRIFT_SCALES,
    EV_NEAR_ZERO,
    EXPLODING,
    LOSS_GROWTH,
    analyse_run,
    detect,
    quantities_of,
    return_scale,
)
from valueloss.tools.runlogs.example import example_run_jsonl
from valueloss.tools.runlogs.links import batch_query, phase_rows, sanity_query
from valueloss.tools.runlogs.model import RunBuilder
from valueloss.tools.runlogs.recognise import is_registry_metric, mapping_for, matches, recognise
from valueloss.viz.run import PANELS, decimate, timeline_figure

VERL = {
    "clipfrac": "critic/vf_clipfrac",
    "value_loss": "critic/vf_loss",
    "explained_variance": "critic/vf_explained_var",
    "returns_mean": "critic/returns/mean",
    "returns_min": "critic/returns/min",
    "returns_max": "critic/returns/max",
    "values_mean": "critic/values/mean",
    "values_min": "critic/values/min",
    "values_max": "critic/values/max",
}


def make_run(n: int = 400, **columns):
    """A run with each named quantity (verl's names) given as a function of the step."""
    builder = RunBuilder()
    for q, f in columns.items():
        for s in range(n):
            builder.add(VERL[q], s, f(s))
    return builder.build("run", "test")


def healthy(**override):
    base = dict(
        clipfrac=lambda s: 0.05,
        value_loss=lambda s: 0.5,
        explained_variance=lambda s: 0.6,
        returns_mean=lambda s: 0.5,
        returns_min=lambda s: -0.5,
        returns_max=lambda s: 1.5,
        values_mean=lambda s: 0.45,
        values_min=lambda s: -0.4,
        values_max=lambda s: 1.4,
    )
    return make_run(**(base | override))


# ---------------------------------------------------------------------------------------------- recognition


@pytest.mark.parametrize("name", list(DIALECTS))
def test_every_registry_entry_is_recognised_from_its_own_metric_names(name):
    entry = DIALECTS[name]
    rec = recognise([m.key for m in entry.metrics])
    assert rec.dialect is not None
    assert entry.family in {DIALECTS[c].family for c in rec.candidates} or name in rec.candidates
    assert "policy_clipfrac" not in rec.mapping


def test_recognition_reads_tracker_prefixes_and_never_takes_the_policy_clip_fraction():
    sb3 = recognise(["train/value_loss", "train/explained_variance", "train/clip_fraction", "rollout/ep_rew_mean"])
    assert sb3.dialect == "sb3"
    assert sb3.mapping == {"value_loss": "train/value_loss", "explained_variance": "train/explained_variance"}
    assert sb3.policy_only == ("train/clip_fraction",)
    trl = recognise(["train/loss/value_avg", "train/val/clipfrac_avg"])  # HF Trainer puts train/ in front
    assert trl.dialect == "trl" and trl.mapping["clipfrac"] == "train/val/clipfrac_avg"
    old_rsl = recognise(["Loss/value_function", "Loss/surrogate"])
    assert old_rsl.dialect == "rsl_rl"
    (record,) = old_rsl.matched["value_loss"]
    assert record.releases.startswith("before")
    assert recognise(["loss", "accuracy"]).dialect is None


def test_a_verl_run_is_recognised_with_every_release_as_a_candidate():
    (run,) = read_log("x.jsonl", example_run_jsonl())
    rec = recognise(run.metrics)
    assert rec.dialect == "verl" and DIALECTS[rec.dialect].current
    assert {DIALECTS[c].family for c in rec.candidates} == {"verl"} and len(rec.candidates) > 1
    assert rec.mapping == {q: k for q, k in VERL.items()} | {
        "vpred_mean": "critic/vpred_mean",
        "grad_norm": "critic/grad_norm",
    }
    # the loss records of every release of this entry, each with its own reduction
    assert len(rec.matched["value_loss"]) == len(DIALECTS["verl"].metrics_for("value_loss"))


def test_matching_rules():
    assert matches("train/critic_loss", "critic_loss") and matches("critic_loss", "critic_loss")
    assert not matches("my_critic_loss", "critic_loss")
    assert matches("critic/score_at_k", "critic/score@k")  # verl's MLflow adapter rewrites @
    assert is_registry_metric("critic/vf_loss") and is_registry_metric("train/critic/vf_loss")
    assert not is_registry_metric("timing_s/gen")


def test_mapping_for_another_release_uses_that_entry_only():
    mapping, matched, policy = mapping_for("cleanrl", ["losses/value_loss", "losses/clipfrac", "critic/vf_loss"])
    assert mapping == {"value_loss": "losses/value_loss"} and policy == ["losses/clipfrac"]


# ---------------------------------------------------------------------------------------------- phases and evidence


def test_phases_cut_where_the_clip_fraction_leaves_the_band():
    run = healthy(clipfrac=lambda s: 0.05 if s < 240 else 0.45)
    analysis = analyse_run(run, VERL, 0.5, (0.01, 0.10))
    assert [(p.start, p.end, p.band) for p in analysis.phases] == [(0, 239, "in"), (240, 399, "above")]
    first, second = analysis.phases
    assert second.clipfrac == 0.45 and first.clipfrac == 0.05
    assert first.return_scale == 1.0 and first.eps_over_scale == 0.5  # (1.5 - -0.5) / 2
    assert second.n_steps == 160


def test_evidence_is_the_medians_recomputed_by_hand():
    rng = np.random.default_rng(3)
    noise = rng.normal(size=400)
    run = healthy(values_mean=lambda s: 0.4 + 0.1 * noise[s], value_loss=lambda s: 1.0 + s / 100)
    (phase,) = analyse_run(run, VERL, 0.3, (0.01, 0.10)).phases
    assert phase.value_mean == pytest.approx(float(np.median(0.4 + 0.1 * noise)), abs=0)
    losses = 1.0 + np.arange(400) / 100
    assert phase.loss_first == float(np.median(losses[:100])) and phase.loss_last == float(np.median(losses[-100:]))
    assert phase.loss_trend == phase.loss_last / phase.loss_first


def test_a_run_without_a_clip_fraction_is_cut_in_thirds():
    run = healthy()
    mapping = {q: k for q, k in VERL.items() if q != "clipfrac"}
    phases = analyse_run(run, mapping, None, (0.01, 0.1)).phases
    assert [p.band for p in phases] == ["all"] * 3 and phases[0].start == 0 and phases[-1].end == 399
    assert all(p.eps_over_scale is None for p in phases)


def test_scale_is_half_the_range_and_a_bound_on_the_std():
    rng = np.random.default_rng(0)
    batches = [rng.normal(0.3, 0.8, size=500) for _ in range(20)]
    builder = RunBuilder()
    for s, b in enumerate(batches):
        builder.add("critic/returns/min", s, float(b.min()))
        builder.add("critic/returns/max", s, float(b.max()))
    scale = return_scale(quantities_of(builder.build("r", "t"), VERL))
    assert scale.values.tolist() == [(b.max() - b.min()) / 2 for b in batches]
    assert all(sc >= b.std() for sc, b in zip(scale.values, batches, strict=True))


# ---------------------------------------------------------------------------------------------- detectors


def test_a_healthy_run_has_no_finding():
    assert detect(quantities_of(healthy(), VERL)) == []


def test_a_nan_loss_is_dated_and_links_the_threads():
    run = healthy(value_loss=lambda s: 0.5 if s < 300 else (math.inf if s == 300 else math.nan))
    (f,) = detect(quantities_of(run, VERL))
    assert f.kind == "non_finite" and f.start == 300
    assert "+inf / NaN" in f.title or "NaN / +inf" in f.title
    # not finite at 100 of 400 steps, first at step 300, last finite value 0.5
    assert numbers_in(f.explanation)[:4] == [100, 400, 300, 0.5]
    assert tuple(link.label for link in f.links) == EXPLODING
    assert all(link.title for link in f.links)  # each thread's title is in the registry


def test_a_loss_growing_by_orders_of_magnitude():
    run = healthy(value_loss=lambda s: 0.5 * 10 ** max(0, (s - 200) / 50))
    (f,) = detect(quantities_of(run, VERL))
    first = next(s for s in range(400) if 0.5 * 10 ** max(0, (s - 200) / 50) > LOSS_GROWTH * 0.5)
    assert f.kind == "loss_growth" and f.start == first
    peak = 0.5 * 10 ** (199 / 50)
    assert f"{math.log10(peak / 0.5):.1f} orders of magnitude" in f.title
    assert f"{peak:.4g}" in f.explanation


def test_explained_variance_negative_from_a_step():
    run = healthy(explained_variance=lambda s: 0.6 if s < 250 else -0.4)
    (f,) = detect(quantities_of(run, VERL))
    assert f.kind == "explained_variance" and f.start == 250 and "negative" in f.title
    # below the threshold from step 250 to the end: the median over those 400 - 250 steps
    assert numbers_in(f.explanation)[:4] == [EV_NEAR_ZERO, 250, -0.4, 400 - 250]


def test_values_drifting_from_returns():
    run = healthy(values_mean=lambda s: 0.45 if s < 300 else 0.5 + 1.2)  # 1.2 return scales above
    (f,) = detect(quantities_of(run, VERL))
    assert f.kind == "values_drift" and f.start == 300
    # from step 300, above the threshold; at step 300 and at the last step: values mean, returns mean (, scale)
    assert numbers_in(f.explanation) == [300, DRIFT_SCALES, 300, 1.7, 0.5, 1.0, 1.7, 0.5]


# ---------------------------------------------------------------------------------------------- links and table


def test_the_links_carry_the_phase_numbers_inside_each_widget_range():
    run = healthy(clipfrac=lambda s: 0.352, returns_mean=lambda s: 5e6)
    (p,) = analyse_run(run, VERL, 0.2, (0.02, 0.15)).phases
    q = sanity_query(p, "verl", (0.02, 0.15))
    assert q["s_lib"] == "verl" and q["s_logged"] == "0.352" and q["s_has_logged"] == "true"
    assert q["s_target"] == "0.15" and q["s_eps"] == "0.2" and q["s_r_mean"] == "1e+06"  # clamped to the input's range
    assert q["s_r_std"] == "1" and q["s_v_std"] == "0.9"
    b = batch_query(p)
    assert b["b_reward_mean"] == "1000" and b["b_value_bias"] == "-1000" and b["b_eps"] == "0.2"
    (row,) = phase_rows([p])
    assert row["clip fraction"] == 0.352 and row["eps / return scale"] == 0.2


# ---------------------------------------------------------------------------------------------- the figure


def test_decimation_keeps_every_bucket_extreme():
    steps = np.arange(100_000)
    values = np.sin(steps / 1000.0)
    values[54_321] = 50.0
    values[7] = np.nan
    x, y = decimate(steps, values, 500)
    assert len(x) <= 1000 and 50.0 in y and 54_321 in x and not np.isnan(y).any()
    assert np.all(np.diff(x) > 0)


def test_the_timeline_overlays_runs_and_marks_phases():
    a = analyse_run(healthy(clipfrac=lambda s: 0.05 if s < 200 else 0.3), VERL, 0.5, (0.01, 0.1))
    b = analyse_run(healthy(value_loss=lambda s: math.nan if s > 390 else 0.4), VERL, 0.2, (0.01, 0.1))
    fig = timeline_figure(
        {"eps 0.5": a, "eps 0.2": b}, {"eps 0.5": 0.5, "eps 0.2": 0.2}, (0.01, 0.1), phase_of="eps 0.5"
    )
    names = {t.name for t in fig.data}
    assert names == {"eps 0.5", "eps 0.2"} and fig.layout.showlegend
    eps_panel = [t for t in fig.data if t.hovertemplate.startswith("eps / scale")]
    assert [t.y[0] for t in eps_panel] == [0.5, 0.2]  # eps / ((1.5 - -0.5) / 2)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert any(s.y0 == 0.01 and s.y1 == 0.1 for s in rects)  # the band
    assert any(s.x0 == 390.5 for s in rects)  # run b's NaN stretch, steps 391-399
    assert any(s.type == "line" and s.x0 == 200 for s in fig.layout.shapes)  # run a's second phase


def test_phases_are_cut_again_where_a_finding_starts():
    run = healthy(clipfrac=lambda s: 0.05 if s < 100 else 0.3, explained_variance=lambda s: 0.6 if s < 250 else -0.4)
    analysis = analyse_run(run, VERL, 0.5, (0.01, 0.1))
    assert [(p.start, p.end) for p in analysis.phases] == [(0, 99), (100, 249), (250, 399)]
    assert [p.findings for p in analysis.phases] == [(), (), ("explained_variance",)]
    assert phase_rows(analysis.phases)[2]["findings that hold"] == "explained var. near 0 or below"


def test_the_rolling_median_is_numpys_nanmedian_of_each_centred_window():
    from valueloss.tools.runlogs.analysis import _rolling_median

    rng = np.random.default_rng(1)
    values = rng.normal(size=300)
    values[rng.integers(0, 300, 60)] = np.nan
    values[5:20] = np.nan  # a window with no finite value
    values[100] = np.inf
    for window in (1, 5, 9):
        half = window // 2
        clean = np.where(np.isfinite(values), values, np.nan)
        padded = np.concatenate([np.full(half, np.nan), clean, np.full(half, np.nan)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nanmedian of an all-NaN window: NaN, with a warning
            expected = np.array([np.nanmedian(padded[i : i + window]) for i in range(300)])
        np.testing.assert_array_equal(_rolling_median(values, window), expected if window > 1 else values)


# ---------------------------------------------------------------------------------------------- advice per phase


def test_a_phase_becomes_the_decision_tables_evidence():
    from valueloss.tools.runlogs.evidence import phase_advice, phase_evidence_for_advice

    run = healthy(clipfrac=lambda s: 0.05 if s < 200 else 0.4, value_loss=lambda s: math.nan if s > 390 else 0.5)
    first, second, *rest = analyse_run(run, VERL, 0.5, (0.01, 0.1)).phases
    ev = phase_evidence_for_advice(second, "verl", 0.1, logs_clipfrac=True)
    assert (ev.library, ev.eps, ev.target, ev.logged) == ("verl", 0.5, 0.1, 0.4)
    assert (ev.returns.mean, ev.returns.min, ev.returns.max) == (0.5, -0.5, 1.5)
    assert (ev.values.mean, ev.values.min, ev.values.max) == (0.45, -0.4, 1.4)
    assert ev.explained_variance == 0.6 and ev.value_loss == 0.5
    assert phase_advice(first, "verl", 0.1, logs_clipfrac=True).severity == "ok"  # 5 % within the 10 % target
    over = phase_advice(second, "verl", 0.1, logs_clipfrac=True)
    assert over.severity == "warning" and "40.0%" in over.title
    assert phase_evidence_for_advice(second, "sb3", 0.1, logs_clipfrac=False).logged is None
    last = rest[-1] if rest else second
    assert math.isnan(phase_evidence_for_advice(last, "verl", 0.1, logs_clipfrac=True).value_loss)
    assert phase_advice(last, "verl", 0.1, logs_clipfrac=True).code == "not-finite"
    with pytest.raises(ValueError, match="eps is needed"):
        phase_evidence_for_advice(dataclasses.replace(second, eps=None), "verl", 0.1, logs_clipfrac=True)


@pytest.mark.parametrize(
    ("other_steps", "expected"), [([1, 2, 3], 3), ([2, 4], 4), ([], 3), ([0, 1, 2, 3, 9], 5)], ids=str
)
def test_a_runs_step_count_is_the_union_of_its_metrics_steps(other_steps, expected):
    from valueloss.tools.runlogs.model import RunLog, Series

    def series(steps):
        return Series(np.array(steps, dtype=np.int64), np.ones(len(steps)))

    run = RunLog("r", "test", {"a": series([1, 2, 3]), "b": series(other_steps)}, {"a": 3, "b": len(other_steps)})
    assert run.n_steps == expected == len(set([1, 2, 3]) | set(other_steps))


def test_each_finding_is_marked_on_its_own_panel_and_only_there():
    """The example run's findings (values drifting, explained variance negative, a NaN value loss) each get a ▼ on
    their own panel; a figure without that panel (the empty page's two-panel preview) leaves the marker out
    rather than stacking it on another panel's (two ▼ four steps apart overlapped at 390 px)."""
    (run,) = read_log("x.jsonl", example_run_jsonl())
    analysis = analyse_run(run, recognise(run.metrics).mapping, 0.5, (0.01, 0.1))
    kinds = {f.kind for f in analysis.findings}
    assert {"values_drift", "explained_variance"} <= kinds

    def markers(panels):
        fig = timeline_figure({"r": analysis}, {"r": 0.5}, (0.01, 0.1), phase_of="r", panels=panels)
        titles = {a.yref.split()[0]: a.text for a in fig.layout.annotations if a.text.startswith("<b>")}
        return sorted((titles[a.yref.split()[0]], a.x) for a in fig.layout.annotations if a.text == "▼")

    whole = markers(tuple(PANELS))
    assert len(whole) == len(analysis.findings)
    assert (
        "<b>Explained variance</b>",
        next(f.start for f in analysis.findings if f.kind == "explained_variance"),
    ) in whole
    preview = markers(("clipfrac", "value_loss"))
    assert preview == [
        m for m in whole if m[0] in ("<b>Value clip fraction and your band</b>", "<b>Value loss (log)</b>")
    ]
