"""The eps x seed sweep: the CLI writes what it says, resumes, is deterministic through the process pool and
through Ray, reads back only its own files, refuses bad input, and its statistics and verdict are right."""

from __future__ import annotations

import io
import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest

from tests.words import numbers_in
from valueloss.teach.ablation import CLEANRL_PPO, SPREAD, Comparison, Interval, trainer_check, verdict
from valueloss.tools import ablate
from valueloss.tools.ablate_stats import difference, final_return, interval, smoothed_curve, summarize
from valueloss.tools.ppo import PPOConfig, train

TINY = ["--env", "CartPole-v1", "--eps", "off,0.5", "--seeds", "2", "--steps", "1024", "--no-progress"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The tiny sweep through the CLI, with two worker processes (2 eps x 2 seeds x 1,024 steps)."""
    out = tmp_path_factory.mktemp("sweep")
    assert ablate.main([*TINY, "--workers", "2", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_the_cli_writes_curves_runs_and_settings(swept, capsys):
    names = sorted(p.name for p in swept.iterdir())
    assert names == ["curves.csv", "curves.parquet", "runs", "runs.csv", "settings.json"]
    curves = pd.read_parquet(swept / "curves.parquet")
    assert list(curves.columns) == list(ablate.CURVE_COLUMNS)
    assert len(curves) == 2 * 2 * 2  # eps x seeds x updates
    assert sorted(curves["eps_label"].unique()) == ["0.5", "off"]
    assert curves.equals(ablate.load_results((swept / "curves.csv").read_bytes(), "curves.csv"))
    settings = json.loads((swept / "settings.json").read_text())
    assert settings["format"] == ablate.FORMAT
    assert settings["sweep"] == {
        "env_id": "CartPole-v1",
        "dialect": "verl",
        "eps": ["off", "0.5"],
        "seeds": [1, 2],
        "total_steps": 1024,
        "value_norm": [False],
    }
    assert settings["trainer"]["learning_rate"] == 2.5e-4 and settings["trainer"]["num_envs"] == 4
    assert {"torch", "gymnasium", "numpy", "python", "code_sha256"} <= set(settings["versions"])
    assert settings["wall_s"] > 0 and settings["sessions"][0]["executor"] == "process pool"
    runs = pd.read_csv(swept / "runs.csv")
    assert len(runs) == 4 and (runs["wall_s"] > 0).all() and (runs["steps"] == 1024).all()


@pytest.mark.slow
def test_a_run_in_the_pool_is_the_same_run_in_this_process_bit_for_bit(swept):
    curves = pd.read_parquet(swept / "curves.parquet")
    config = PPOConfig.for_env("CartPole-v1", seed=2, total_steps=1024, eps=0.5)
    here = ablate.run_frame(config, train(config).rows)
    there = curves[(curves["eps_label"] == "0.5") & (curves["seed"] == 2)].reset_index(drop=True)
    pd.testing.assert_frame_equal(here, there, check_exact=True, check_dtype=False)


@pytest.mark.slow
def test_rerunning_resumes_and_a_different_sweep_in_the_same_folder_is_refused(swept, capsys):
    before = (swept / "curves.parquet").read_bytes()
    assert ablate.main([*TINY, "--workers", "1", "--out", str(swept)]) == 0
    settings = json.loads((swept / "settings.json").read_text())
    assert settings["sessions"][-1]["runs"] == 0  # nothing left to run
    assert (swept / "curves.parquet").read_bytes() == before
    assert ablate.main([*TINY[:-2], "2048", "--no-progress", "--out", str(swept)]) == 2
    assert "holds a different sweep" in capsys.readouterr().err


@pytest.mark.slow
def test_a_partly_done_sweep_runs_only_what_is_missing(swept, tmp_path):
    out = tmp_path / "partial"
    out.mkdir()
    (out / "runs").mkdir()
    for f in (swept / "runs").glob("vn-0__eps-off__*"):
        (out / "runs" / f.name).write_bytes(f.read_bytes())
    settings = json.loads((swept / "settings.json").read_text())
    (out / "settings.json").write_text(json.dumps({**settings, "sessions": []}))
    curves = ablate.run_sweep(ablate.spec_from_args(ablate._parser().parse_args(TINY)), out, workers=1, progress=False)
    assert json.loads((out / "settings.json").read_text())["sessions"][0]["runs"] == 2
    pd.testing.assert_frame_equal(curves, pd.read_parquet(swept / "curves.parquet"), check_exact=True)


@pytest.mark.slow
def test_a_sweep_stopped_part_way_keeps_the_time_its_finished_runs_took(monkeypatch, tmp_path):
    """Each session is in settings.json from its start and its wall time kept after every run, so the wall time
    of a sweep recorded over several sittings (Ctrl-C, a killed job, then the same command) adds up."""
    save = ablate._save_run
    calls = []

    def save_then_stop(out, config, result):  # Ctrl-C as the third run comes back: two runs are kept
        calls.append(config)
        if len(calls) == 3:
            raise KeyboardInterrupt
        save(out, config, result)

    monkeypatch.setattr(ablate, "_save_run", save_then_stop)
    spec = ablate.spec_from_args(ablate._parser().parse_args(TINY))
    with pytest.raises(KeyboardInterrupt):
        ablate.run_sweep(spec, tmp_path, workers=1, progress=False)
    first = json.loads((tmp_path / "settings.json").read_text())
    (session,) = first["sessions"]
    assert session["runs"] == 4 and session["runs_done"] == 2 and "finished" not in session
    assert session["wall_s"] > 0 and first["wall_s"] == session["wall_s"]
    monkeypatch.setattr(ablate, "_save_run", save)
    ablate.run_sweep(spec, tmp_path, workers=1, progress=False)  # the same command resumes
    done = json.loads((tmp_path / "settings.json").read_text())
    assert [s["runs_done"] for s in done["sessions"]] == [2, 2] and "finished" in done["sessions"][1]
    assert done["wall_s"] == pytest.approx(sum(s["wall_s"] for s in done["sessions"]), abs=0.11)


@pytest.mark.slow
def test_the_ray_path_gives_the_same_curves(swept, tmp_path):
    ray = pytest.importorskip("ray")
    out = tmp_path / "ray"
    spec = ablate.spec_from_args(ablate._parser().parse_args(TINY))
    curves = ablate.run_sweep(spec, out, ray_address="local", progress=False)
    assert not ray.is_initialized()  # started here, shut down here
    assert json.loads((out / "settings.json").read_text())["sessions"][0]["executor"] == "ray"
    pd.testing.assert_frame_equal(curves, pd.read_parquet(swept / "curves.parquet"), check_exact=True)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--env", "Pong-v5"], "unknown environment 'Pong-v5'"),
        (["--eps", "-0.2"], "eps must be 'off' or a finite number >= 0"),
        (["--eps", "off,abc"], "'abc' is neither 'off' nor a number"),
        (["--eps", "0.2,0.2"], "listed twice"),
        (["--eps", "inf"], "finite number"),
        (["--steps", "1000000000"], "total_steps must be between 512 and 10,000,000, got 1,000,000,000"),
        (["--seeds", "0"], "--seeds must be 1 to 200"),
        (["--seeds", "1,x"], "--seeds must be a count or a comma-separated list"),
        (["--seeds", "1,1"], "distinct seeds"),
        (["--dialect", "nope"], "unknown dialect 'nope'"),
        (["--workers", "0"], "--workers must be 1 to 256"),
        (["--seeds", "200", "--eps", "off,0,1,2,3,4", "--steps", "10000000"], "at most 1000 runs"),
        (["--seeds", "200", "--eps", "off,1,2,3", "--steps", "10000000"], "environment steps in all"),
    ],
)
def test_bad_input_gets_a_clear_message_and_runs_nothing(args, words, tmp_path, capsys):
    base = {"--env": "CartPole-v1", "--eps": "off", "--seeds": "1", "--steps": "512"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = [x for kv in base.items() for x in kv] + ["--no-progress", "--out", str(tmp_path / "o")]
    assert ablate.main(argv) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "o" / "runs").exists() or not any((tmp_path / "o" / "runs").iterdir())


def test_a_mujoco_env_without_mujoco_says_which_extra(monkeypatch):
    import gymnasium

    def missing(*a, **k):
        raise gymnasium.error.DependencyNotInstalled("No module named 'mujoco'")

    monkeypatch.setattr(gymnasium, "make", missing)
    with pytest.raises(ValueError, match=r"Hopper-v5 needs the 'mujoco' extra: pip install 'valueloss\[mujoco\]'"):
        train(PPOConfig.for_env("Hopper-v5", total_steps=2048))


# ---------------------------------------------------------------------------------------------------------
# Reading results back: only this tool's files, bounded, never unpickled


@pytest.mark.slow
def test_a_results_file_from_elsewhere_is_refused(swept):
    foreign = b"step,reward\n1,2\n"
    with pytest.raises(
        ValueError, match="not a results file of python -m valueloss.tools.ablate: it lacks the columns env_id"
    ):
        ablate.load_results(foreign, "train_log.csv")
    with pytest.raises(ValueError, match="a results file is curves.csv or curves.parquet"):
        ablate.load_results(b"\x80\x04K\x01.", "results.pkl")
    with pytest.raises(ValueError, match="could not be read"):
        ablate.load_results(b"PAR1garbage", "curves.parquet")
    buf = io.BytesIO()
    pd.DataFrame({"a": [1]}).to_parquet(buf)
    with pytest.raises(ValueError, match="lacks the columns"):
        ablate.load_results(buf.getvalue(), "other.parquet")
    with pytest.raises(ValueError, match="MiB is more than"):
        ablate.load_results(b"x" * (ablate.MAX_RESULTS_BYTES + 1), "big.csv")
    with pytest.raises(TypeError, match="must be bytes"):
        ablate.load_results("text", "curves.csv")


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [
        ("env_id", "Pong-v5", "unknown environment"),
        ("vf_clipfrac", 1.5, "vf_clipfrac must lie in"),
        ("value_loss", math.inf, "infinite numbers"),
        ("value_loss", math.nan, "missing numbers"),
        ("global_step", 10**12, "global_step must be between"),
        ("eps", 3.0, "does not match the label"),
        ("value_norm", "maybe", "wrong kind"),
        ("seed", "x", "wrong kind"),
    ],
)
@pytest.mark.slow
def test_a_damaged_results_file_is_refused(swept, column, value, words):
    curves = pd.read_csv(swept / "curves.csv")
    rows = {"eps": curves["eps_label"] == "0.5", "env_id": curves.index >= 0}.get(column, curves.index == 0)
    curves[column] = curves[column].astype(object)
    curves.loc[rows, column] = value
    with pytest.raises(ValueError, match=words):
        ablate.load_results(curves.to_csv(index=False).encode(), "curves.csv")


@pytest.mark.slow
def test_a_parquet_file_is_bounded_before_it_is_read(swept, monkeypatch):
    data = (swept / "curves.parquet").read_bytes()
    assert len(ablate.load_results(data, "curves.parquet")) == 8
    monkeypatch.setattr(ablate, "MAX_RESULTS_ROWS", 7)
    with pytest.raises(ValueError, match="8 rows, at most 7"):
        ablate.load_results(data, "curves.parquet")
    monkeypatch.undo()
    monkeypatch.setattr(ablate, "MAX_RESULTS_UNPACKED", 100)
    with pytest.raises(ValueError, match="unpacks to"):
        ablate.load_results(data, "curves.parquet")


@pytest.mark.slow
def test_steps_must_increase_within_a_run(swept):
    curves = pd.read_csv(swept / "curves.csv")
    curves.loc[1, "global_step"] = 1
    with pytest.raises(ValueError, match="global_step must increase within each run"):
        ablate.load_results(curves.to_csv(index=False).encode(), "curves.csv")


# ---------------------------------------------------------------------------------------------------------
# The app's in-process sweep and its bounds


@pytest.mark.slow
def test_the_app_sweep_runs_here_reports_progress_and_cancels():
    spec = ablate.check_app_bounds(ablate.SweepSpec("CartPole-v1", eps=(None, 0.5), seeds=(1,), total_steps=1024))
    seen = []
    curves = ablate.run_here(spec, on_progress=lambda i, done, total: seen.append((i, done, total)))
    assert seen == [(0, 512, 1024), (0, 1024, 1024), (1, 512, 1024), (1, 1024, 1024)]
    assert len(curves) == 4
    asked = []
    assert ablate.run_here(spec, should_stop=lambda: asked.append(1) or len(asked) > 1) is None


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (dict(env_id="Hopper-v5", total_steps=4096), "the app runs CartPole-v1, Acrobot-v1"),
        (dict(total_steps=ablate.APP_MAX_STEPS + 512), "at most 50,000 steps per run"),
        (dict(seeds=(1, 2, 3, 4)), "at most 4 eps values x 3 seeds"),
        (dict(eps=(None, 0.1, 0.2, 0.3, 0.4)), "at most 4 eps values"),
        (dict(value_norm=(False, True)), "one value normalisation"),
    ],
)
def test_the_app_bounds(spec, words):
    with pytest.raises(ValueError, match=words):
        ablate.check_app_bounds(ablate.SweepSpec(**{"env_id": "CartPole-v1", "total_steps": 1024, **spec}))


@pytest.mark.slow
def test_recorded_sweeps_are_the_finished_folders(swept, tmp_path):
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "settings.json").write_text("{}")
    assert ablate.recorded_sweeps(tmp_path) == []
    assert swept in ablate.recorded_sweeps(swept.parent)
    check = tmp_path / "check-CartPole-v1"
    check.mkdir()
    for name in ("settings.json", "curves.parquet"):
        (check / name).write_bytes((swept / name).read_bytes())
    assert ablate.recorded_sweeps(tmp_path, checks=True) == [check] and ablate.recorded_sweeps(tmp_path) == []
    with pytest.raises(ValueError, match="not written by python -m valueloss.tools.ablate"):
        ablate.load_sweep(tmp_path / "unfinished")


# ---------------------------------------------------------------------------------------------------------
# Statistics and words


def test_bootstrap_intervals():
    iv = interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert iv.mean == 3.0 and iv.low < 3.0 < iv.high and iv.n == 5
    assert iv.low >= 1.0 and iv.high <= 5.0  # a bootstrap mean never leaves the data's range
    assert interval([1.0, 2.0, 3.0]) == interval([1.0, 2.0, 3.0])  # fixed generator: reproducible
    assert interval([7.0]).n == 1 and math.isnan(interval([7.0]).low)
    same = interval([2.0, 2.0, 2.0])
    assert (same.low, same.high) == (2.0, 2.0)
    d = difference([10.0, 11.0, 12.0, 13.0], [0.0, 1.0, 2.0, 3.0])
    assert d.mean == 10.0 and d.excludes_zero and d.low > 0
    overlap = difference([0.0, 5.0, 10.0], [1.0, 6.0, 9.0])
    assert not overlap.excludes_zero


def test_curve_final_return_and_auc_from_episodes():
    run = pd.DataFrame(
        {
            "global_step": [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000],
            "episodes": [1, 0, 2, 1, 1, 1, 1, 1, 1, 2],
            "episodic_return": [10.0, np.nan, 20.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 60.0],
        }
    )
    curve = smoothed_curve(run)  # trailing window: max(5 % of 1000, 100) = 100 steps: this update alone
    assert np.isnan(curve[1]) and curve[0] == 10.0 and curve[-1] == 60.0
    assert final_return(run) == 60.0  # last 10 % of the steps: the last update, two episodes of 60
    before = run.copy()
    before.loc[9, "global_step"] = 10_000  # now the window is 500 steps; the last 10 % is only that update
    assert final_return(before) == 60.0


def test_verdict_says_no_detectable_difference_when_that_is_the_truth():
    same = Comparison("0.2", Interval(-3.0, -10.0, 4.0, 5), 0.05)
    worse = Comparison("10", Interval(-50.0, -80.0, -20.0, 5), 2.0)
    text = verdict("CartPole-v1", 100_000, 5, [same, worse])
    assert text.startswith("On CartPole-v1 after 100,000 steps per run (5 seeds)")
    # the steps and seeds, then each comparison's eps (and eps / sigma_R), difference and 95 % interval
    w, s = worse.difference, same.difference
    assert numbers_in(text) == [100_000, 5, 10, 2.0, w.mean, 0.95, w.low, w.high, s.n, 0.2, s.mean, 0.95, s.low, s.high]
    assert text.index("ends lower than off") < text.index("no detectable difference")  # the CI excludes 0, then not
    assert "higher" not in text


@pytest.mark.slow
def test_the_summary_of_a_sweep(swept):
    curves = ablate.load_sweep(swept)[0]
    summary = summarize(curves)
    assert [e.label for e in summary.per_eps] == ["off", "0.5"]
    off, clipped = summary.per_eps
    assert off.final_vs_off is None and clipped.final_vs_off is not None
    assert clipped.final_vs_off.mean == pytest.approx(clipped.final.mean - off.final.mean)
    assert math.isnan(off.eps_over_sigma) and clipped.eps_over_sigma > 0
    assert math.isnan(off.mean_gap_over_eps) and clipped.mean_gap_over_eps == pytest.approx(
        curves.loc[curves["eps_label"] == "0.5", "gap_over_eps"].mean()
    )
    assert summary.sentence.startswith("On CartPole-v1 after 1,024 steps per run (2 seeds)")
    assert len(off.returns.steps) == 2 and off.returns.steps[-1] == 1024


def test_trainer_check_sentence():
    ok, text = trainer_check("CartPole-v1", [495.0, 500.0, 490.0], 500_000)
    ref, finals = CLEANRL_PPO["CartPole-v1"], [495.0, 500.0, 490.0]
    mean, std = statistics.mean(finals), statistics.stdev(finals)
    inside = sum(abs(f - ref.mean) <= SPREAD * ref.std for f in finals)
    # seeds x steps, our mean +- std, CleanRL's mean +- std over its seeds at its eps, the spread, seeds inside
    want = [3, 500_000, mean, std, ref.mean, ref.std, 3, 0.2, SPREAD, inside, len(finals)]
    assert ok and numbers_in(text) == pytest.approx(want) and "no value clipping" in text
    bad, text = trainer_check("Acrobot-v1", [-200.0, -210.0], 500_000, "0.2")
    assert (
        not bad
        and "outside its spread" in text
        and "0 of 2 seeds" in text
        and "value clipping at eps 0.2, 2 seeds" in text
    )


@pytest.mark.slow
def test_the_figures_draw_every_eps_with_its_band_and_off_in_black(swept):
    from valueloss.notation import COLORS
    from valueloss.viz.ablate import critic_curves, eps_style, final_and_auc, learning_curves

    summary = summarize(ablate.load_sweep(swept)[0])
    styles = eps_style(summary)
    assert styles["off"] == (COLORS["max"], "solid") and styles["eps 0.5"][1] != "solid"
    curves = learning_curves(summary)
    lines = [t for t in curves.data if t.mode == "lines"]
    assert [t.name for t in lines] == ["off", "eps 0.5"]
    assert list(lines[0].y) == list(summary.per_eps[0].returns.mean)
    assert sum(t.fill == "toself" for t in curves.data) == 2  # a 95 % band per eps
    final = final_and_auc(summary)
    assert [t.y[0] for t in final.data] == [e.final.mean for e in summary.per_eps] + [
        e.auc.mean for e in summary.per_eps
    ]
    critic = critic_curves(summary)
    clip_lines = [t for t in critic.data if t.mode == "lines" and t.xaxis == "x"]
    assert [t.name for t in clip_lines] == ["eps 0.5"]  # off has no clip fraction to draw
