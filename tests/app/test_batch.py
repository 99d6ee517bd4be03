"""The Batch page as a user drives it: numbers equal the core's, widgets and URLs change them, bad files show st.error.

AppTest cannot drive ``st.file_uploader``, so the upload tests replace ``st.file_uploader`` with a stub
that returns an uploaded-file-like object; everything after it (the page's loader call, caching, error
box, metrics) is the page's own code. The loader itself is tested file by file in tests/unit/test_batch_files.py.
"""

from __future__ import annotations

import pytest

import valueloss as vl
from tests.app.helpers import metric, run_page
from valueloss.tools.batch import synthetic_batch
from valueloss.tools.batch_files import batch_to_npz, example_file
from valueloss.tools.batch_reports import analyse_batch


def run(query: dict | None = None):
    return run_page("batch", query)


def expected(eps=0.2, mode="token-mean", **params):
    return analyse_batch(synthetic_batch(**params), eps, mode)


def test_default_view_shows_the_cores_numbers():
    at = run()
    rep = expected()
    assert at.title[0].value == "Batch"
    assert metric(at, "loss clip fraction") == f"{rep.stats.loss_clipfrac:.1%}"
    assert metric(at, "prediction clip fraction") == f"{rep.stats.pred_clipfrac:.1%}"
    assert metric(at, "zero-gradient share") == f"{rep.stats.zero_grad_share:.1%}"
    assert metric(at, "vf_loss") == f"{rep.vf_loss:.4g}"
    assert len(at.get("plotly_chart")) == 4
    tables = at.dataframe
    assert len(tables) == 3  # aggregation modes, libraries, tokens (what your dashboard shows: drawn once opened)
    assert len(tables[1].value) == sum(d.current for d in vl.DIALECTS.values())  # one row per library
    assert len(tables[2].value) == 200  # first 200 real tokens


def test_moving_eps_changes_the_clip_fractions():
    at = run()
    before = metric(at, "loss clip fraction")
    at.number_input(key="b_eps").set_value(0.5).run()
    assert not at.exception
    after = metric(at, "loss clip fraction")
    assert after != before and after == f"{expected(eps=0.5).stats.loss_clipfrac:.1%}"


def test_changing_the_mode_and_the_seed():
    at = run()
    at.selectbox(key="b_mode").set_value("seq-mean-token-mean").run()
    assert metric(at, "vf_loss (seq-mean-token-mean)") == f"{expected(mode='seq-mean-token-mean').vf_loss:.4g}"
    at.number_input(key="b_seed").set_value(5).run()
    assert metric(at, "vf_loss") == f"{expected(mode='seq-mean-token-mean', seed=5).vf_loss:.4g}"


def test_query_params_set_the_scenario():
    at = run({"b_eps": "0.35", "b_seed": "3", "b_step": "0.5", "b_mode": "token-sum"})
    assert at.number_input(key="b_eps").value == 0.35
    assert at.number_input(key="b_seed").value == 3
    rep = expected(eps=0.35, mode="token-sum", seed=3, step=0.5)
    assert metric(at, "loss clip fraction") == f"{rep.stats.loss_clipfrac:.1%}"
    assert metric(at, "vf_loss (token-sum)") == f"{rep.vf_loss:.4g}"


def test_bad_synthetic_settings_show_an_error_and_keep_the_page():
    at = run()
    at.number_input(key="b_min_len").set_value(300).run()
    assert not at.exception
    assert any("min_len" in e.value for e in at.error)
    assert at.title[0].value == "Batch" and not at.metric


def test_nan_padding_is_reported():
    at = run({"b_padding": "nan"})
    assert any("Non-finite" in w.value for w in at.warning)


def test_upload_without_a_file_asks_for_one(upload):
    at = run({"b_source": "upload"})
    assert any("Upload a file" in i.value for i in at.info)
    assert not at.metric


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("evil.npz", b"not a zip at all", "not a valid .npz"),
        ("batch.csv", b"row,t,vpreds\n0,0,1\n", "missing column"),
        ("batch.txt", b"hello", "unsupported file type"),
    ],
)
def test_a_bad_upload_shows_st_error_and_the_page_stays_alive(upload, name, data, message):
    upload(name, data, file_id=name)
    at = run({"b_source": "upload"})
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any(message in e and name in e for e in errors), errors
    assert at.title[0].value == "Batch"
    assert at.number_input(key="b_eps").value == 0.2  # the sidebar still works


def test_a_good_upload_is_analysed(upload):
    b = synthetic_batch(seed=2, batch_size=8, min_len=3, max_len=20)
    upload("mine.npz", batch_to_npz(b), file_id="good")
    at = run({"b_source": "upload", "b_eps": "0.1"})
    assert not at.error
    assert metric(at, "loss clip fraction") == f"{analyse_batch(b, 0.1).stats.loss_clipfrac:.1%}"


def test_example_files_are_offered():
    at = run({"b_source": "upload"})
    buttons = at.get("download_button")
    assert len(buttons) == 3
    for kind in ("npz", "csv", "parquet"):
        assert example_file(kind)  # what the buttons serve


def test_rllib_gets_its_own_loss_bound():
    at = run({"b_rllib": "1.5"})
    table = at.dataframe[1].value.set_index("library")
    b = synthetic_batch()
    expected_loss = vl.dialect_loss("rllib", b.vpreds, b.returns, b.values, b.mask, 1.5).loss
    row = table.loc[vl.DIALECTS["rllib"].library]
    assert row["value"] == 1.5 and row["loss"] == pytest.approx(float(expected_loss), rel=1e-12)
    assert table.loc[vl.DIALECTS["verl"].library, "value"] == 0.2


def test_older_releases_are_offered_and_name_their_version():
    at = run()
    at.multiselect(key="b_versions").set_value(["verl-v0.4.0", "rllib-legacy"]).run()
    assert not at.exception
    table = at.dataframe[1].value.set_index("library")
    b = synthetic_batch()
    old = vl.dialect_loss("verl-v0.4.0", b.vpreds, b.returns, b.values, b.mask, 0.2).loss
    assert table.loc["verl v0.4.0", "loss"] == pytest.approx(float(old), rel=1e-12)
    assert table.loc["verl v0.4.0", "loss"] == pytest.approx(
        2 * table.loc[vl.DIALECTS["verl"].library, "loss"], rel=1e-6
    )
    assert vl.DIALECTS["rllib-legacy"].library in table.index
    assert len(table) == sum(d.current for d in vl.DIALECTS.values()) + 2


def test_each_number_says_what_the_library_logs():
    at = run()
    table = at.dataframe[1].value.set_index("library")
    torchrl = table.loc[vl.DIALECTS["torchrl"].library]
    assert "critic_coeff" in torchrl["what the logged number is"] and "padding" in torchrl["clip fraction logged"]
    assert "LAST minibatch" in table.loc[vl.DIALECTS["cleanrl"].library, "what the logged number is"]
    assert table.loc[vl.DIALECTS["cleanrl"].library, "logged as"] == "losses/value_loss"


def test_the_page_says_whether_the_clip_fraction_is_typical_or_alarming():
    from valueloss.tools.findings import batch_verdict

    at = run()  # the default synthetic batch at eps 0.2
    page = batch_verdict(synthetic_batch(), 0.2)
    rep = expected()
    assert page.verdict.title.startswith(f"Alarming: {rep.stats.loss_clipfrac:.1%} clipped, above the 10% yardstick")
    assert any(w.value.startswith(f"**{page.verdict.title}**") for w in at.warning)
    assert any(page.reading.explanation in m.value for m in at.markdown)  # the histograms' reading, same evidence
    at.number_input(key="b_eps").set_value(0.5).run()
    ok = batch_verdict(synthetic_batch(), 0.5).verdict
    assert ok.severity == "ok" and ok.title.startswith("Typical:")
    assert any(s.value.startswith(f"**{ok.title}**") for s in at.success)


@pytest.mark.parametrize("eps", ["5", "0"])
def test_an_inactive_clip_and_eps_zero_agree_with_the_reading(eps):
    """Issue 20 items 2 and 3: /batch?b_eps=5 clips nothing; at eps = 0 the critic learns a step per rollout."""
    from valueloss.tools.findings import batch_verdict

    at = run({"b_eps": eps})
    page = batch_verdict(synthetic_batch(), float(eps))
    notice = " ".join(m.value for m in at.markdown if m.value.startswith("**What to notice:**"))
    assert page.reading.explanation in notice
    if eps == "5":
        assert any(i.value.startswith("**Inactive: 0.0% clipped: clipping never acts at eps = 5**") for i in at.info)
        assert "never acts" in notice and "rollouts" not in notice and "brake" not in notice
    else:
        assert "one optimizer step per rollout" in notice and "inf" not in notice
        assert any("one optimizer step per rollout" in w.value for w in at.warning)


def test_the_mode_name_is_explained_in_plain_words():
    at = run()
    assert any("token-mean**: average over every real token" in c.value for c in at.caption)
    at.selectbox(key="b_mode").set_value("seq-mean-token-mean").run()
    assert any("a short answer's tokens weigh more" in c.value for c in at.caption)
