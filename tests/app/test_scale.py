"""The Scale page as a user drives it: numbers equal the core's, URLs set the split, bad input shows st.error."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.helpers import plain, run_page
from tests.unit.test_distributed import descendants, processes
from valueloss import scale
from valueloss.teach import scale_text
from valueloss.tools.exclusive import REAL_RUNS


def run(query: dict | None = None):
    return run_page("scale", query, timeout=120)


def label(key: str) -> str:
    """Streamlit binds a selectbox with format_func to the URL by its shown label."""
    return scale.SCHEMES[key].label


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def core(
    n=16,
    mean=12,
    spread=0.8,
    seed=0,
    dp=2,
    k=4,
    budget=None,
    mode="token-mean",
    eps=0.2,
    scheme="verl-engine-local",
    empty=0,
):
    lengths = scale.mask_tail(scale.spread_lengths(n, mean, spread, seed), empty)
    split = scale.split_batch(lengths, dp, micro_batches=k, max_token_len=budget)
    rep = scale.analyse(scale.make_problem(lengths, eps=eps, seed=seed), split, scheme, mode)
    return split, rep


def findings_rendered(at: AppTest) -> bool:
    return any("verl-project/verl/pull/6957" in m.value for m in at.markdown)


def test_default_page_shows_the_cores_numbers():
    at = run()
    split, rep = core()
    assert metric(at, "learning-rate multiplier") == f"{rep.weights.multiplier:.4g}×"
    assert metric(at, "gradient along the reference, per token") == f"{rep.grad_ratio:.4g}×"
    assert at.info[0].value == scale_text.multiplier_sentence(rep, split)
    logged = at.dataframe[0].value
    assert list(logged["scheme"]) == [s.label for s in scale.SCHEMES.values()]
    assert logged["rank 1"].iloc[0] == pytest.approx(rep.logged[1])
    assert findings_rendered(at)
    assert at.button(key="sc_run").disabled is False


def test_url_sets_split_scheme_and_mode():
    q = dict(sc_dp=1, sc_by="token budget", sc_budget=60, sc_scheme=label("verl-global"), sc_agg="seq-mean-token-mean")
    at = run(q)
    split, rep = core(dp=1, k=None, budget=60, scheme="verl-global", mode="seq-mean-token-mean")
    assert metric(at, "learning-rate multiplier") == "1×"
    assert "every token weighs exactly 1×" in at.info[0].value
    assert f"× {split.micro_per_rank} micro-batch" in at.info[0].value
    assert "Real runs use 2 to 4 ranks" in at.warning[0].value
    assert at.button(key="sc_run").disabled is True
    # changing a widget changes the numbers
    at.selectbox(key="sc_scheme").set_value(label("verl-engine-local")).run()
    _, before = core(dp=1, k=None, budget=60, mode="seq-mean-token-mean")
    assert metric(at, "learning-rate multiplier") == f"{before.weights.multiplier:.4g}×"
    assert at.selectbox(key="sc_scheme").value == label(
        "verl-engine-local"
    )  # the picker lists the labels (the link carries them)


@pytest.mark.parametrize(
    "query, message",
    [
        (dict(sc_dp=8, sc_n=4), "dp_size (8) is larger than the number of sequences (4)"),
        (dict(sc_by="token budget", sc_budget=3), "is smaller than the longest sequence"),
        (dict(sc_agg="token-sum", sc_scheme=label("openrlhf-global")), "is not offered by OpenRLHF >= 0.11"),
        (dict(sc_n=3, sc_empty=3, sc_k=1, sc_scheme=label("verl-global")), "every sequence is fully masked"),
    ],
)
def test_bad_input_shows_what_to_fix_and_the_page_lives(query, message):
    at = run(query)
    assert any(message in plain(e.value) for e in at.error), [e.value for e in at.error]
    assert findings_rendered(at)


def test_a_shard_without_tokens_says_what_the_library_does():
    at = run(dict(sc_n=4, sc_empty=2, sc_k=1))
    warnings = [w.value for w in at.warning]
    assert any("rank 1's shard has no real tokens" in w for w in warnings)
    assert any("0/0 = NaN" in w and "gradient is 0, not NaN" in w for w in warnings)
    _, rep = core(n=4, empty=2, k=1)
    assert metric(at, "learning-rate multiplier") == f"{rep.weights.multiplier:.4g}×"  # 0.5: DDP averages a zero


def click_run(at: AppTest) -> AppTest:
    """Click "Run on real processes" even where the page has disabled it: a click that raced the rerun
    which disables it, or a message forged by a websocket client. The page must refuse a second run itself."""
    button = at.button(key="sc_run")
    button.proto.disabled = False
    return button.click().run()


def finished(at: AppTest, timeout: float = 240) -> AppTest:
    """Rerun the page (as its polling fragment would) until the run has ended."""
    end = time.monotonic() + timeout
    while REAL_RUNS.active() is not None and time.monotonic() < end:
        time.sleep(0.3)
        at.run()
    at.run()  # the run that collects the result
    assert REAL_RUNS.active() is None
    return at


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_run_on_real_processes_shows_measured_next_to_predicted():
    at = run(dict(sc_n=4, sc_k=2, sc_dp=2))
    at.button(key="sc_run").click().run()
    assert at.button(key="sc_run").disabled, "the button is disabled while the run is under way"
    bars = [b.proto.text for b in at.get("progress")]
    assert len(bars) == 2 and all(t.startswith(("rank 0", "rank 1")) for t in bars), bars
    finished(at)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.button(key="sc_run").disabled is False
    table = at.dataframe[1].value
    assert list(table.columns) == ["parameter", "measured (DDP)", "predicted (core)", "single process"]
    assert table["measured (DDP)"].to_numpy() == pytest.approx(
        table["predicted (core)"].to_numpy(), rel=1e-12, abs=1e-14
    )
    assert any("Measured vs predicted" in m.value and "the whole run took" in m.value for m in at.markdown)
    # a rerun with the same settings keeps the result; other settings say it is stale
    at.slider(key="sc_eps").set_value(0.3).run()
    assert any("other settings" in c.value for c in at.caption)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ten_quick_clicks_start_one_run_and_leave_no_process():
    """Issue 21.1: the issue's URL clicked ten times used to leave 42 Python processes (ranks orphaned)."""
    at = run(dict(sc_dp=4, sc_n=16, sc_len=6, sc_k=2))
    before = descendants(os.getpid())
    peak: set[int] = set()
    for _ in range(10):
        click_run(at)
        peak |= descendants(os.getpid()) - before
    groups = {os.getpgid(p) for p in peak if p in processes()}
    assert len(groups) <= 1, f"more than one run started: groups {groups}"
    active = REAL_RUNS.active()
    assert active is not None
    while not active.done:
        peak |= descendants(os.getpid()) - before
        at.run()
        time.sleep(0.2)
    finished(at)
    print(f"processes at the peak of ten quick clicks: {len(peak)}; after: {len(descendants(os.getpid()) - before)}")
    assert len(peak) <= 4 + 3, peak  # 4 ranks, the CLI, its forkserver (and its resource tracker)
    assert any("Measured vs predicted" in m.value for m in at.markdown)
    assert descendants(os.getpid()) - before == set()


@pytest.mark.timeout(300)
def test_a_second_visitor_waits_and_a_settings_change_stops_the_run():
    owner = run(dict(sc_n=4, sc_k=2, sc_dp=2))
    owner.button(key="sc_run").click().run()
    other = run(dict(sc_n=4, sc_k=2, sc_dp=2))
    assert other.button(key="sc_run").disabled
    assert any("Another visitor's run on real processes is under way" in i.value for i in other.info)
    active = REAL_RUNS.active()
    click_run(other)
    assert REAL_RUNS.active() is active, "a second run started"
    owner.slider(key="sc_eps").set_value(0.35).run()  # the question changed: the old run is stopped
    assert active.done and active.error == "stopped: the settings changed while it ran"
    assert any("The run was stopped: the settings changed while it ran." in plain(w.value) for w in owner.warning)
    assert not owner.button(key="sc_run").disabled
    other.run()
    assert not other.button(key="sc_run").disabled
    assert not any("Another visitor" in i.value for i in other.info)


@pytest.mark.timeout(120)
def test_stop_ends_the_run_and_says_so():
    before = descendants(os.getpid())  # e.g. the forkserver of an earlier in-process run() (not the page's)
    at = run(dict(sc_n=4, sc_k=2, sc_dp=2))
    at.button(key="sc_run").click().run()
    active = REAL_RUNS.active()
    at.button(key="sc_stop").click().run()
    assert active.done and active.error == "stopped: you stopped it"
    at.run()
    assert any("The run was stopped: you stopped it." in plain(w.value) for w in at.warning)
    assert not at.button(key="sc_run").disabled and REAL_RUNS.active() is None
    left = descendants(os.getpid()) - before
    assert not left, [Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in left if Path(f"/proc/{p}").exists()]
