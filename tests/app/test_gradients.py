"""Gradients: the max-form map, the libraries side by side, and the tie inspector's autograd table."""

from __future__ import annotations

import pytest

import valueloss as vl
from tests.app.helpers import page_test, plotly_specs, run_page


@pytest.fixture
def at():
    return run_page("gradients")


def panel_title(text: str) -> str:
    """A panel's title as read: its lines joined, the bold tags off."""
    return text.removeprefix("<b>").removesuffix("</b>").replace("<br>", " ")


def tie_rows(at) -> dict[str, dict]:
    df = at.dataframe[-1].value
    return {row["convention"]: row for row in df.to_dict("records")}


def test_renders_the_map_the_libraries_and_the_tie_table(at):
    assert at.title[0].value == "Gradients"
    main, side = plotly_specs(at)
    assert any(t.get("name") == "zero gradient" for t in main["data"])
    titles = [a["text"] for a in side["layout"]["annotations"]]
    titles = [panel_title(t) for t in titles]
    assert len(titles) == 4 and "Stable-Baselines3" in titles[1] and "RLlib since ray 1.12" in titles[3]
    shares = at.dataframe[0].value.set_index("library")["share of this plane with zero gradient"]
    assert shares[vl.DIALECTS["sb3"].library] > shares[vl.DIALECTS["verl"].library] > 0  # clip-only freezes more


def test_tie_table_shows_three_quarters_for_bounds_on_the_edge(at):
    rows = tie_rows(at)
    assert rows["bounds"]["share of 2(v − R)"] == 0.75
    assert rows["clamp"]["share of 2(v − R)"] == 1.0
    assert rows["delta"]["share of 2(v − R)"] == 1.0
    assert all(r["bit-identical"] for r in rows.values())


def test_eps_zero_tie_and_float32(at):
    at.selectbox(key="g_tie").set_value("eps-zero").run()
    assert tie_rows(at)["bounds"]["share of 2(v − R)"] == 0.625
    at.selectbox(key="g_dtype").set_value("float32").run()
    assert not at.exception
    assert tie_rows(at)["bounds"]["share of 2(v − R)"] == 0.625


def test_impossible_tie_is_a_clear_error_and_the_page_stays_alive(at):
    at.selectbox(key="g_tie").set_value("symmetric-overshoot").run()
    assert tie_rows(at)["delta"]["share of 2(v − R)"] == 0.5
    at.number_input(key="g_tR").set_value(0.25).run()  # R inside the band: no symmetric overshoot exists
    assert not at.exception
    assert "R outside the band" in at.error[0].value
    assert len(plotly_specs(at)) == 2  # the rest of the page still renders


def test_non_dyadic_numbers_warn_that_a_row_is_not_a_tie(at):
    at.number_input(key="g_tvold").set_value(0.1).run()
    at.number_input(key="g_teps").set_value(0.2).run()
    assert not at.exception
    # v = 0.1 + 0.2: still a tie for every convention in value, but delta sees v - v_old > eps
    assert tie_rows(at)["delta"]["share of 2(v − R)"] == 0.5


def test_eps_moves_the_frozen_share(at):
    before = [m.value for m in at.markdown if "exactly 0" in m.value][0]
    at.slider(key="g_eps").set_value(1.0).run()
    after = [m.value for m in at.markdown if "exactly 0" in m.value][0]
    assert before != after


def test_choosing_libraries_and_none(at):
    at.multiselect(key="g_dialects").set_value(["trl", "slime"]).run()
    assert not at.exception
    side = plotly_specs(at)[1]
    # each panel is titled with its library (in lines a phone's half width holds); the table gives its formula
    assert [panel_title(a["text"]) for a in side["layout"]["annotations"]] == [
        vl.DIALECTS["trl"].library,
        vl.DIALECTS["slime"].library,
    ]
    table = at.dataframe[0].value
    assert list(table.columns)[:2] == ["library", "share of this plane with zero gradient"]  # key columns first
    assert list(table["loss for one token"]) == [vl.DIALECTS[n].formula_text for n in ("trl", "slime")]
    at.multiselect(key="g_dialects").set_value([]).run()
    assert not at.exception
    assert "Pick at least one library" in at.info[0].value
    assert len(plotly_specs(at)) == 1


def test_axes_from_the_url():
    at = page_test("gradients")
    at.query_params.update({"g_axes": "v_old", "g_fixed": "1", "g_n": "60"})
    at.run()
    assert not at.exception
    main = plotly_specs(at)[0]
    assert main["layout"]["yaxis"]["title"]["text"] == "v_old (old value)"


def test_every_release_can_be_picked_and_its_panel_names_the_version(at):
    at.multiselect(key="g_dialects").set_value(["verl-v0.4.0", "baselines-ppo2", "rllib-legacy"]).run()
    assert not at.exception
    titles = [panel_title(a["text"]) for a in plotly_specs(at)[1]["layout"]["annotations"]]
    formulas = list(at.dataframe[0].value["loss for one token"])
    assert "v0.4.0" in titles[0] and "½" not in formulas[0]  # v0.4.0 had no 0.5
    assert "TensorFlow tie rule" in formulas[1] and "up to ray 1.11" in titles[2]
    assert set(at.multiselect(key="g_dialects").options) == set(vl.DIALECTS)


def test_tie_captions_explain_the_share_the_table_shows(at):
    caption = next(c.value for c in at.caption if "of 2(v − R), because" in c.value)
    assert "1/2 + 1/4 = 3/4" in caption and "5/8" not in caption
    at.selectbox(key="g_tie").set_value("eps-zero").run()
    assert not at.exception
    caption = next(c.value for c in at.caption if "of 2(v − R), because" in c.value)
    assert tie_rows(at)["bounds"]["share of 2(v − R)"] == 0.625
    assert "1/2 + 1/8 = 5/8" in caption and "3/4" not in caption
    # The eps box shows the 0 this case uses, not the 0.25 typed for the other cases.
    shown = at.number_input(key="g_teps_zero")
    assert shown.value == 0.0 and shown.disabled
    at.selectbox(key="g_tie").set_value("upper-edge").run()
    assert at.number_input(key="g_teps").value == 0.25  # the typed eps comes back for the other cases


def test_the_map_caption_states_the_overshoot_rule_not_always_pulled_back(at):
    text = next(m.value for m in at.markdown if "exactly 0" in m.value)
    assert "overshoots of R included" in text and "always pulled back" not in text
    assert "orange: > 0" in text


@pytest.mark.parametrize("query", [{}, {"g_n": "200", "g_eps": "0.35", "g_fixed": "0.5"}, {"g_axes": "v_old"}])
def test_the_caption_and_the_table_count_the_same_grid(query):
    """One plane, one share: the caption's % and verl's row in the table come from the same n x n points (they
    once read 32 % and 33.14 % for one plane, from grids of 200 and 100 points)."""
    import re

    at = run_page("gradients", query)
    shares = at.dataframe[0].value.set_index("library")["share of this plane with zero gradient"]
    shown = next(m.value for m in at.markdown if "exactly 0" in m.value and "%" in m.value)
    caption_pct = float(re.search(r"\*\*(\d+(?:\.\d+)?)%\*\*", shown).group(1))
    convention = at.radio(key="g_conv").value
    assert convention == "bounds"  # verl's convention: its row and the max-form map are the same loss
    assert round(100 * shares[vl.DIALECTS["verl"].library]) == caption_pct
    n = at.slider(key="g_n").value
    assert any(f"{n} × {n} points of the map above" in c.value for c in at.caption)


def test_the_rllib_bound_starts_at_rllibs_default_and_says_so(at):
    box = at.number_input(key="g_rllib")
    default = vl.DIALECTS["rllib"].default_eps
    assert box.value == default and f"its default is {default:g}" in box.label
