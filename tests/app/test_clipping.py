"""The "Does clipping help?" page as a user drives it: the recorded sweep at once with its computed verdict
and the published findings, an uploaded results file (or a refused one), and a small sweep run here,
bounded and one at a time across sessions."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.helpers import ROOT, page_test, plotly_specs
from valueloss.teach.ablation import PUBLISHED
from valueloss.tools import ablate
from valueloss.tools.ablate_stats import summarize

TINY = ablate.SweepSpec("CartPole-v1", eps=(None, 0.5), seeds=(1, 2), total_steps=1024)


@pytest.fixture(scope="module")
def tiny_sweeps(tmp_path_factory):
    """A folder of recorded sweeps holding one tiny sweep (the real ones are docs/sweeps/)."""
    folder = tmp_path_factory.mktemp("sweeps")
    ablate.run_sweep(TINY, folder / "CartPole-v1", workers=1, progress=False)
    return folder


def open_page(monkeypatch, folder) -> AppTest:
    monkeypatch.setenv("VALUELOSS_SWEEPS_DIR", str(folder))
    at = page_test("clipping", timeout=120)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_the_recorded_sweep_shows_at_once_with_its_verdict_and_the_papers(monkeypatch, tiny_sweeps):
    at = open_page(monkeypatch, tiny_sweeps)
    curves, _ = ablate.load_sweep(tiny_sweeps / "CartPole-v1")
    assert summarize(curves).sentence in texts(at.info)
    assert len(plotly_specs(at)) == 3  # learning curves, final/AUC, the critic
    table = at.dataframe[0].value
    assert list(table["eps"]) == ["off", "0.5"] and (table["seeds"] == 2).all()
    assert "Recorded with `python -m valueloss.tools.ablate`: CartPole-v1" in texts(at.caption)
    body = texts(at.markdown)
    for finding in PUBLISHED:
        assert finding.url in body and finding.quote[:40] in body


def test_the_committed_sweeps_load_and_agree_with_the_summary(monkeypatch):
    folder = ROOT / "docs" / "sweeps"
    sweeps = ablate.recorded_sweeps(folder)
    if not sweeps:
        pytest.skip("no recorded sweep committed yet")
    at = open_page(monkeypatch, folder)
    assert at.selectbox(key="ab_show").options == [p.name for p in sweeps]
    assert {"CartPole-v1", "Hopper-v5"} <= {p.name for p in sweeps}  # the recordings issue 25 asks for
    for path in sweeps:  # each as a reader picks it
        at.selectbox(key="ab_show").set_value(path.name).run()
        assert not at.exception
        curves, _ = ablate.load_sweep(path)
        assert summarize(curves).sentence in texts(at.info)


def test_without_recorded_sweeps_it_says_so(monkeypatch, tmp_path):
    at = open_page(monkeypatch, tmp_path)
    assert "No recorded sweep" in texts(at.warning)
    assert "No recorded trainer check yet" in texts(at.caption)


def test_a_small_sweep_runs_here_and_can_be_shown(monkeypatch, tiny_sweeps):
    at = open_page(monkeypatch, tiny_sweeps)
    at.text_input(key="ab_eps").set_value("off,0.5")
    at.number_input(key="ab_seeds").set_value(1)
    at.number_input(key="ab_steps").set_value(2048)
    at.button(key="ab_run").click()
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    result = at.session_state["ab_result"]
    assert sorted(result["eps_label"].unique()) == ["0.5", "off"] and result["global_step"].max() == 2048
    assert not ablate.SWEEP_LOCK.locked()
    assert at.selectbox(key="ab_show").value == "your sweep (this session)"  # shown at once
    assert summarize(result).sentence in texts(at.info)
    at.selectbox(key="ab_show").set_value("CartPole-v1")
    at.run()
    assert "Recorded with" in texts(at.caption)


def test_one_sweep_at_a_time_per_server(monkeypatch, tiny_sweeps):
    at = open_page(monkeypatch, tiny_sweeps)
    at.number_input(key="ab_steps").set_value(2048)
    assert ablate.SWEEP_LOCK.acquire(blocking=False)  # another session's sweep
    try:
        at.button(key="ab_run").click()
        at.run()
    finally:
        ablate.SWEEP_LOCK.release()
    assert "Another sweep is running on this server" in texts(at.warning)
    assert "ab_result" not in at.session_state


@pytest.mark.parametrize(
    ("eps", "words"),
    [("-1", "eps must be 'off' or a finite number"), ("off,1,2,3,4", "at most 4 eps values"), ("x", "neither")],
)
def test_bad_sweep_settings_are_an_error_not_a_run(monkeypatch, tiny_sweeps, eps, words):
    at = open_page(monkeypatch, tiny_sweeps)
    at.text_input(key="ab_eps").set_value(eps)
    at.button(key="ab_run").click()
    at.run()
    assert not at.exception
    assert words in texts(at.error)
    assert "ab_result" not in at.session_state


def test_an_uploaded_results_file_is_shown(monkeypatch, tiny_sweeps, upload):
    data = (tiny_sweeps / "CartPole-v1" / "curves.csv").read_bytes()
    upload("curves.csv", data)
    at = open_page(monkeypatch, tiny_sweeps)
    assert at.selectbox(key="ab_show").value == "the uploaded results file"
    curves = ablate.load_results(data, "curves.csv")
    assert summarize(curves).sentence in texts(at.info)


def test_a_results_file_from_elsewhere_is_refused(monkeypatch, tiny_sweeps, upload):
    upload("curves.csv", b"step,reward\n1,2\n")
    at = open_page(monkeypatch, tiny_sweeps)
    assert "is not a results file of python -m valueloss.tools.ablate" in texts(at.error)
    assert len(plotly_specs(at)) == 0


def test_the_committed_trainer_check_is_shown_against_cleanrls_numbers(monkeypatch):
    from valueloss.teach.ablation import trainer_check
    from valueloss.tools.ablate_stats import final_return

    folder = ROOT / "docs" / "sweeps"
    checks = ablate.recorded_sweeps(folder, checks=True)
    if not checks:
        pytest.skip("no trainer check committed yet")
    at = open_page(monkeypatch, folder)
    shown = texts(at.success) + texts(at.warning)
    for path in checks:
        curves, settings = ablate.load_sweep(path)
        for label, runs in curves.groupby("eps_label", sort=False):
            finals = [final_return(run) for _, run in runs.groupby("seed")]
            _, sentence = trainer_check(settings["sweep"]["env_id"], finals, settings["sweep"]["total_steps"], label)
            assert sentence in shown
