"""The Scale page as a user drives it: numbers equal the core's, URLs set the split, bad input shows st.error."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.helpers import plain, run_page
from valueloss import scale


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
    assert at.info[0].value == scale.multiplier_sentence(rep, split)
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
    assert at.selectbox(key="sc_scheme").value == label("verl-engine-local")  # the picker lists the labels (the link carries them)


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


@pytest.mark.timeout(300)
def test_run_on_real_processes_shows_measured_next_to_predicted():
    at = run(dict(sc_n=4, sc_k=2, sc_dp=2))
    at.button(key="sc_run").click().run(timeout=240)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[1].value
    assert list(table.columns) == ["parameter", "measured (DDP)", "predicted (core)", "single process"]
    assert table["measured (DDP)"].to_numpy() == pytest.approx(
        table["predicted (core)"].to_numpy(), rel=1e-12, abs=1e-14
    )
    assert any("Measured vs predicted" in m.value for m in at.markdown)
    # a rerun with the same settings keeps the result; other settings say it is stale
    at.slider(key="sc_eps").set_value(0.3).run()
    assert any("other settings" in c.value for c in at.caption)
