"""The Sanity-check page: summary statistics, a synthetic batch or an upload in; eps units, the eps for a
target clip fraction, the library card and findings (each with its issue link) out.

Uploads are driven by replacing ``st.file_uploader`` with a stub (AppTest cannot drive the real widget);
the page's own loading, caching and error handling run unchanged.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

import valueloss as vl
from tests.app.helpers import metric, run_page
from valueloss.tools.batch import synthetic_batch
from valueloss.tools.batch_files import batch_to_npz
from valueloss.tools.clipfrac import SummaryStats
from valueloss.tools.findings import ISSUES
from valueloss.tools.sanity import sanity_from_batch, sanity_from_summary


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
    assert any("within your 10% target" in text for text in b["ok"])
    assert "assumes one update moves the critic 0.15 of the way" in " ".join(m.value for m in at.markdown)
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
    assert hit and ISSUES["verl#498"] in hit[0] and "verl-project/verl#498" in hit[0]
    assert not at.success  # no all-clear next to a warning


def test_query_params_set_the_check():
    at = run({"s_lib": "slime", "s_eps": "0.05", "s_r_std": "3.0", "s_target": "0.2"})
    rep = sanity_from_summary(SummaryStats(0.5, 3.0, 0.0, 0.5), 0.05, "slime", 0.2)
    assert at.selectbox(key="s_lib").value == "slime"
    assert metric(at, "eps / std(R)") == f"{0.05 / 3.0:.3g} σ_R"
    assert metric(at, "clip fraction at eps") == f"{rep.at_eps['prediction']:.1%}"
    assert any("eps is small" in w for w in boxes(at)["warning"])


def test_synthetic_batch_is_exact_and_shows_the_first_minibatch_case():
    at = run({"s_source": "synthetic batch", "s_eps": "0.2"})
    rep = sanity_from_batch(synthetic_batch(), 0.2, "verl", 0.1)
    assert metric(at, "clip fraction at eps") == f"{rep.at_eps['loss']:.1%}"
    assert not any("Estimated" in i for i in boxes(at)["info"])
    at.slider(key="s_step").set_value(0.0).run()
    at.number_input(key="s_pred_noise").set_value(0.0).run()
    assert metric(at, "eps for ≤ 10% clipped") == "unreachable"
    first = [i for i in boxes(at)["info"] if "first mini-step" in i]
    assert first and ISSUES["verl#2642"] in first[0]


def test_rllib_reads_eps_in_loss_units():
    at = run({"s_lib": "rllib", "s_eps": "0.2"})
    assert metric(at, "eps / std(R)") == "n/a"
    hit = [w for w in boxes(at)["warning"] if "RLlib" in w]
    assert hit and ISSUES["ray#19291"] in hit[0]


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
    assert verdict.startswith(f"**{rep.at_eps['loss']:.1%} clipped, above your 10% target: the critic lags")
    assert "verl-project/verl#498" in verdict


def test_summary_statistics_clipping_84_percent_warn_and_show_the_step_range():
    q = {"s_r_mean": "5.0", "s_r_std": "3.0", "s_v_mean": "0.0", "s_v_std": "1.0", "s_eps": "0.3"}
    at = run(q)
    rep = sanity_from_summary(SummaryStats(5.0, 3.0, 0.0, 1.0), 0.3, "verl", 0.1)
    assert f"{rep.at_eps['loss']:.0%}" == "84%"
    assert not at.success
    assert boxes(at)["warning"][0].startswith(f"**{rep.at_eps['loss']:.1%} clipped, above your 10% target: eps is")
    text = " ".join(m.value for m in at.markdown)
    assert "assumes one update moves the critic 0.15 of the way to R" in text


def test_a_logged_clip_fraction_is_compared_and_weighed():
    at = run({"s_has_logged": "true", "s_logged": "0.2"})
    b = boxes(at)
    assert b["warning"][0].startswith("**20.0% clipped, above your 10% target")
    assert any("matches a step of 0.3 to 0.5" in text for text in b["info"])


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
