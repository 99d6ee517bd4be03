"""The "what your dashboard shows" panel the Batch and Sanity pages embed: the numbers are the core's."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import valueloss as vl
from tests.app.helpers import run_page
from valueloss.tools.batch import synthetic_batch
from valueloss.tools.batch_reports import analyse_batch


def panel_script():
    import pandas as pd

    from pages.dashboard import render_dashboard

    table = pd.DataFrame(
        {"dialect": ["verl", "sb3"], "loss": [0.25, 0.5], "clip fraction": [0.1, float("nan")]}
        | {"logs clip fraction": [True, False]}
    )
    render_dashboard(None, table, prefix="x_")


def factors_script():
    from pages.dashboard import render_dashboard

    render_dashboard("cleanrl", prefix="y_")


def _rows(at, metric, table=0):
    """Rows of the panel's first table (the loss and clip fraction) or second (everything else it logs)."""
    shown = at.dataframe[table].value
    return shown[shown["metric"] == metric]


def opened(script) -> AppTest:
    """The panel as a link that carries one of its keys opens it (closed, it draws nothing: see the last test)."""
    at = AppTest.from_function(script)
    at.query_params["x_dash_epochs" if script is panel_script else "y_dash_epochs"] = "1"
    return at.run()


def test_the_panel_shows_the_cores_numbers_and_follows_the_update_shape():
    at = opened(panel_script)
    assert not at.exception
    loss = _rows(at, "critic/vf_loss")
    assert list(loss["this batch"]) == [0.25, 0.25, 0.25] and list(loss["your dashboard shows"]) == [0.25] * 3
    for key, value in (("x_dash_micro_batches", 4), ("x_dash_mini_batches", 3), ("x_dash_epochs", 2)):
        at.number_input(key=key).set_value(value).run()
    loss = _rows(at, "critic/vf_loss").set_index("releases")
    want = vl.dashboard_value("verl", 0.25, release="v0.7.1", micro_batches=4, mini_batches=3, epochs=2)
    assert want == 0.25 * 6 and loss.at["v0.7.1", "your dashboard shows"] == pytest.approx(want)
    assert loss.at["v0.9.0 – v0.9.1", "your dashboard shows"] == pytest.approx(0.25)
    assert _rows(at, "critic/vf_clipfrac")["your dashboard shows"].iloc[0] == pytest.approx(0.1)
    assert _rows(at, "critic/returns/mean").empty  # a rollout statistic: no factor, so in the second table
    assert _rows(at, "critic/returns/mean", table=1)["quantity"].iloc[0] == "returns_mean"
    at.selectbox(key="x_dash_lib").set_value("sb3").run()
    assert _rows(at, "train/value_loss")["your dashboard shows"].iloc[0] == pytest.approx(0.5)
    assert _rows(at, "train/clip_fraction", table=1)["quantity"].iloc[0] == "policy_clipfrac"


def test_without_a_batch_the_panel_shows_the_factors():
    at = opened(factors_script)
    assert not at.exception
    loss = _rows(at, "losses/value_loss")
    assert "this batch" not in loss.columns and "your dashboard shows" not in loss.columns  # no numbers to show
    assert loss["× this batch"].iloc[0] == 1.0


def test_the_batch_and_sanity_pages_embed_it():
    at = run_page("batch", {"b_dash_lib": "verl", "b_dash_epochs": "2", "b_dash_mini_batches": "2"})
    assert run_page("batch", {"b_dash_lib": "cleanrl"}).selectbox(key="b_dash_lib").value == "cleanrl"  # URL keeps it
    rep = analyse_batch(synthetic_batch(), 0.2, "token-mean")
    want = rep.dialects.set_index("dialect").at["verl", "loss"]
    shown = [t.value for t in at.dataframe if "your dashboard shows" in t.value.columns][0].set_index("releases")
    assert shown.at["v0.7.1", "your dashboard shows"] == pytest.approx(4 * want)
    at = run_page("sanity", {"s_lib": "trlx", "s_dash_epochs": "1"})
    assert any("metric" in t.value.columns and "losses/value_loss" in set(t.value["metric"]) for t in at.dataframe)
    assert any("metric" in t.value.columns and "values/mean" in set(t.value["metric"]) for t in at.dataframe)


def test_closed_it_draws_nothing_so_a_rerun_does_not_pay_for_it():
    """Unopened (no key of its own in the URL) the panel runs none of its widgets or tables."""
    at = AppTest.from_function(panel_script).run()
    assert not at.exception
    assert not at.dataframe and not at.number_input and not at.selectbox
    at = run_page("batch")
    assert not [t for t in at.dataframe if "your dashboard shows" in t.value.columns]
