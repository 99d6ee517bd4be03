"""The Sanity-check page: summary statistics, a synthetic batch or an upload in; eps units, the eps for a
target clip fraction, the library card and findings (each with its issue link) out.

Uploads are driven by replacing ``st.file_uploader`` with a stub (AppTest cannot drive the real widget);
the page's own loading, caching and error handling run unchanged.
"""

from __future__ import annotations

import inspect

from streamlit.testing.v1 import AppTest

import valueloss as vl
from tests.app.helpers import metric, run_page
from tests.words import numbers_in
from valueloss.teach.advice import shown
from valueloss.threads import thread
from valueloss.tools.batch import synthetic_batch
from valueloss.tools.batch_files import batch_to_npz
from valueloss.tools.clipfrac import SummaryStats
from valueloss.tools.sanity import sanity_from_batch, sanity_from_summary

ASSUMED_STEP = inspect.signature(sanity_from_summary).parameters["step"].default


def run(query: dict | None = None):
    return run_page("sanity", query)


def boxes(at: AppTest) -> dict[str, list[str]]:
    return {
        "warning": [w.value for w in at.warning],
        "info": [i.value for i in at.info],
        "ok": [s.value for s in at.success],
    }


def test_default_is_summary_statistics_with_an_estimate():
    at = run()
    rep = sanity_from_summary(SummaryStats(0.5, 1.0, 0.0, 0.5), 0.5, "verl", 0.1)
    assert at.title[0].value == "Sanity check"
    assert metric(at, "eps / std(R)") == "0.5 σ_R"
    assert metric(at, "clip fraction at eps (est.)") == f"{rep.at_eps['loss']:.1%}"
    assert metric(at, "eps for ≤ 10% clipped") == f"{rep.target.eps:.4g}"
    b = boxes(at)
    assert any("Estimated" in text for text in b["info"])
    (ok,) = b["ok"]
    assert numbers_in(ok)[:2] == [round(rep.at_eps["loss"], 3), 0.1]  # the title: clipped, within the target
    step_note = next(m.value for m in at.markdown if "assumes" in m.value)
    assert numbers_in(step_note)[0] == ASSUMED_STEP  # the step the estimate assumes
    assert len(at.get("plotly_chart")) == 1


def test_changing_the_library_loads_its_default_and_card():
    at = run()
    at.selectbox(key="s_lib").set_value("trl").run()
    assert not at.exception
    assert at.number_input(key="s_eps").value == 0.2
    assert any(f"{vl.DIALECTS['trl'].library}: cliprange_value" in h.value for h in at.subheader)
    at.selectbox(key="s_lib").set_value("sb3").run()  # off by default: eps stays
    assert at.number_input(key="s_eps").value == 0.2
    assert any("off by default" in text for text in boxes(at)["info"])


def test_a_mismatched_value_scale_raises_the_verl_498_warning_with_its_link():
    at = run()
    assert not at.warning
    at.number_input(key="s_v_mean").set_value(12.0).run()
    at.number_input(key="s_v_std").set_value(8.0).run()
    warnings = boxes(at)["warning"]
    hit = [w for w in warnings if "different scales" in w]
    assert hit and thread("verl-project/verl#498").url in hit[0] and "verl-project/verl#498" in hit[0]
    assert not at.success  # no all-clear next to a warning


def test_query_params_set_the_check():
    at = run({"s_lib": "slime", "s_eps": "0.05", "s_r_std": "3.0", "s_target": "0.2"})
    rep = sanity_from_summary(SummaryStats(0.5, 3.0, 0.0, 0.5), 0.05, "slime", 0.2)
    assert at.selectbox(key="s_lib").value == "slime"
    assert metric(at, "eps / std(R)") == f"{0.05 / 3.0:.3g} σ_R"
    assert metric(at, "clip fraction at eps") == f"{rep.at_eps['prediction']:.1%}"
    assert boxes(at)["warning"][0].startswith(f"**{rep.verdict.title}**") and rep.verdict.code == "eps-too-small"


def test_synthetic_batch_is_exact_and_shows_the_first_minibatch_case():
    at = run({"s_source": "synthetic batch", "s_eps": "0.2"})
    rep = sanity_from_batch(synthetic_batch(), 0.2, "verl", 0.1)
    assert metric(at, "clip fraction at eps") == f"{rep.at_eps['loss']:.1%}"
    assert not any("Estimated" in i for i in boxes(at)["info"])
    at.slider(key="s_step").set_value(0.0).run()
    at.number_input(key="s_pred_noise").set_value(0.0).run()
    assert metric(at, "eps for ≤ 10% clipped") == "unreachable"
    first = [i for i in boxes(at)["info"] if "first mini-step" in i]
    assert first and thread("verl-project/verl#2642").url in first[0]


def test_rllib_reads_eps_in_loss_units():
    at = run({"s_lib": "rllib", "s_eps": "0.2"})
    assert metric(at, "eps / std(R)") == "n/a"
    hit = [w for w in boxes(at)["warning"] if "RLlib" in w]
    assert hit and thread("ray-project/ray#19291").url in hit[0]


def test_a_bad_upload_shows_st_error(upload):
    upload("bad.parquet", b"PAR1 garbage")
    at = run({"s_source": "upload"})
    assert not at.exception
    assert any("not a valid Parquet" in e.value for e in at.error)
    assert at.title[0].value == "Sanity check"


def test_an_all_masked_upload_explains_itself(upload):
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, vpreds=np.zeros((2, 3)), returns=np.zeros((2, 3)), values=np.zeros((2, 3)), mask=np.zeros((2, 3)))
    upload("empty.npz", buf.getvalue(), file_id="empty")
    at = run({"s_source": "upload"})
    assert any("masked out" in e.value and "NaN" in e.value for e in at.error)


def test_a_good_upload_gives_exact_numbers(upload):
    b = synthetic_batch(seed=4, batch_size=10, min_len=5, max_len=30)
    upload("mine.npz", batch_to_npz(b), file_id="good")
    at = run({"s_source": "upload", "s_eps": "0.1"})
    rep = sanity_from_batch(b, 0.1, "verl", 0.1)
    assert metric(at, "clip fraction at eps") == f"{rep.at_eps['loss']:.1%}"


def test_every_release_is_offered_and_the_card_names_it():
    at = run({"s_lib": "verl-v0.4.0", "s_eps": "0.3"})
    assert not at.exception
    assert at.selectbox(key="s_lib").value == "verl-v0.4.0"
    assert set(at.selectbox(key="s_lib").options) == set(vl.DIALECTS)  # names in the URL, the card names the release
    assert any("verl v0.4.0" in s.value for s in at.subheader)
    at.selectbox(key="s_lib").set_value("rllib-legacy").run()  # legacy RLlib: vf_clip_param in return units
    assert not at.exception and at.session_state["s_eps"] == 0.3  # typed in the link: kept
    assert any("default is 10" in c.value for c in at.caption)
    assert any("up to ray 1.11" in s.value for s in at.subheader)
    assert not [w for w in boxes(at)["warning"] if "clips the loss, not the value" in w]


def test_an_upload_clipping_44_percent_is_a_warning_with_its_cause(upload):
    """The issue's case: an uploaded batch, verl, eps 0.2, 44 % clipped got a green 'No warnings'."""
    b = synthetic_batch(value_noise=1.25)
    rep = sanity_from_batch(b, 0.2, "verl", 0.1)
    assert 0.42 < rep.at_eps["loss"] < 0.46
    upload("run.npz", batch_to_npz(b), file_id="44")
    at = run({"s_source": "upload", "s_eps": "0.2", "s_lib": "verl"})
    assert metric(at, "clip fraction at eps") == f"{rep.at_eps['loss']:.1%}"
    assert not at.success
    verdict = boxes(at)["warning"][0]
    assert verdict.startswith(f"**{rep.at_eps['loss']:.1%} clipped, above your 10% target: the targets are far")
    assert "upper bound" in verdict and "vwxyzjn/cleanrl#208" in verdict  # the gap's noise, not all lag


def test_summary_statistics_clipping_84_percent_warn_and_show_the_step_range():
    q = {"s_r_mean": "5.0", "s_r_std": "3.0", "s_v_mean": "0.0", "s_v_std": "1.0", "s_eps": "0.3"}
    at = run(q)
    rep = sanity_from_summary(SummaryStats(5.0, 3.0, 0.0, 1.0), 0.3, "verl", 0.1)
    assert f"{rep.at_eps['loss']:.0%}" == "84%"
    assert not at.success
    assert boxes(at)["warning"][0].startswith(f"**{rep.at_eps['loss']:.1%} clipped, above your 10% target: eps is")
    step_note = next(m.value for m in at.markdown if "assumes" in m.value)
    assert numbers_in(step_note)[0] == ASSUMED_STEP


def test_a_logged_clip_fraction_is_compared_and_weighed():
    at = run({"s_has_logged": "true", "s_logged": "0.2"})
    b = boxes(at)
    assert b["warning"][0].startswith("**20.0% clipped, above your 10% target")
    step = sanity_from_summary(SummaryStats(0.5, 1.0, 0.0, 0.5), 0.5, "verl", 0.1, logged=0.2).evidence.reading.step
    assert 0.3 < step < 0.5 and any(f"matches a step of {step:.3g}" in text for text in b["info"])


def test_changing_the_library_keeps_an_eps_the_user_typed():
    at = run()
    at.number_input(key="s_eps").set_value(0.3).run()
    at.selectbox(key="s_lib").set_value("trl").run()
    assert at.number_input(key="s_eps").value == 0.3  # typed: kept
    assert any(f"{vl.DIALECTS['trl'].library}'s default is 0.2" in c.value for c in at.caption)
    at.button(key="s_use_default").click().run()
    assert at.number_input(key="s_eps").value == 0.2
    at.selectbox(key="s_lib").set_value("verl").run()  # eps was the previous default: load verl's
    assert at.number_input(key="s_eps").value == 0.5


# ------------------------------------------------------------------------------------------------
# Issue 20: the verdict and its advice for the cases that went wrong, as the page shows them


def page_statements(at: AppTest) -> list[str]:
    """Every box on the page."""
    return [text for kind in ("warning", "info", "ok") for text in boxes(at)[kind]]


def shows_every_finding(at: AppTest, rep) -> None:
    """The page renders the report's findings word for word (whose claims tests/unit/test_advice.py checks)."""
    shown_text = " ".join(page_statements(at))
    for f in rep.findings:
        assert f.title in shown_text and f.explanation in shown_text, f.title


def test_a_logged_clip_fraction_suggests_the_eps_of_the_step_that_reproduces_it():
    """Item 1 (summary statistics, eps 0.3, logged 0.6): 10 % needs an eps of about 0.6 to 1.0, not 0.302."""
    at = run({"s_eps": "0.3", "s_has_logged": "true", "s_logged": "0.6"})
    rep = sanity_from_summary(SummaryStats(0.5, 1.0, 0.0, 0.5), 0.3, "verl", 0.1, logged=0.6)
    v = rep.verdict
    assert 0.6 < v.suggested_eps < 1.0 and v.suggested_eps == rep.target.eps
    assert metric(at, "eps for ≤ 10% clipped") == shown("eps_for_target", v.suggested_eps)
    assert metric(at, "your logged clip fraction") == "60.0%"
    assert f"An eps of about {shown('eps_for_target', v.suggested_eps)} reaches your 10% target" in v.explanation
    assert "the step that reproduces your log" in v.explanation
    assert any(c.value == rep.curve_caption for c in at.caption)
    shows_every_finding(at, rep)


def test_an_upload_with_a_higher_log_suggests_a_larger_eps(upload):
    """Item 1 (uploaded batch at 2.8 % clipped, eps 0.2, logged 0.6): it said 'about 0.153', a smaller eps."""
    b = synthetic_batch(step=0.02)
    upload("run.npz", batch_to_npz(b), file_id="slow")
    at = run({"s_source": "upload", "s_eps": "0.2", "s_has_logged": "true", "s_logged": "0.6"})
    rep = sanity_from_batch(b, 0.2, "verl", 0.1, logged=0.6)
    assert f"{rep.at_eps['loss']:.1%}" == "2.8%" and metric(at, "clip fraction at eps") == "2.8%"
    assert rep.verdict.suggested_eps > 0.2
    assert metric(at, "eps for ≤ 10% clipped") == shown("eps_for_target", rep.verdict.suggested_eps)
    assert boxes(at)["warning"][0].startswith(f"**{rep.verdict.title}**")
    assert any("is above this batch" in i for i in boxes(at)["info"])
    shows_every_finding(at, rep)


def test_zero_percent_clipped_says_clipping_never_acts():
    """Item 2: returns and values of std 0.05 at eps 10 (200 sigma_R) were 'a brake on the few that moved'."""
    q = {"s_r_std": "0.05", "s_v_std": "0.05", "s_eps": "10.0"}
    at = run(q)
    rep = sanity_from_summary(SummaryStats(0.5, 0.05, 0.0, 0.05), 10.0, "verl", 0.1)
    v = rep.verdict
    assert v.code == "never-acts" and v.title == "0.0% clipped: clipping never acts at eps = 10"
    assert metric(at, "eps / std(R)") == "200 σ_R"
    below = dict(v.numbers)["acts_below"]
    assert f"It would start acting below eps = {below}" in v.explanation and float(below) < 10
    text = " ".join(page_statements(at))
    assert "brake" not in text and "rollouts" not in text
    shows_every_finding(at, rep)


def test_an_offset_leads_and_no_statement_calls_eps_both_sensible_and_small():
    """Item 4: returns mean 100 sd 1, values mean 0 sd 1, eps 0.5."""
    at = run({"s_r_mean": "100.0", "s_r_std": "1.0", "s_v_mean": "0.0", "s_v_std": "1.0", "s_eps": "0.5"})
    rep = sanity_from_summary(SummaryStats(100.0, 1.0, 0.0, 1.0), 0.5, "verl", 0.1)
    v = rep.verdict
    assert v.code == "offset" and v.suggested_eps is None
    assert "values and returns live on different scales" in v.title and "before tuning eps" in v.explanation
    text = " ".join(page_statements(at))
    assert "sensible" not in text and "eps is small" not in text and "eps is too small" not in text
    assert text.count("Values and returns live on different scales") == 0  # said once, in the verdict
    shows_every_finding(at, rep)
