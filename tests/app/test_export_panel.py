"""The "export as code" panel the Explore and Batch pages embed: code shown, downloadable, errors explained."""

from __future__ import annotations

import runpy

from streamlit.testing.v1 import AppTest

from tests.words import numbers_in
from valueloss.tools.export import MAX_EXPORT_ELEMENTS


def token_script():
    from pages.export_panel import render_export_token

    render_export_token(0.0, 1.0, 0.2, 0.5, "verl")


def bounds_script():
    from pages.export_panel import render_export_token

    render_export_token(2.0, 8.0, 0.5, 3.0, "bounds", key="explore_export")


def batch_script():
    from pages.export_panel import render_export_batch
    from tests.batches import random_batch

    v, r, o, mask, _ = random_batch(0, rows=3, width=4, eps=0.2)  # ties on the band edges, an empty row
    render_export_batch(v, r, o, mask, 0.2, "seq-mean-token-mean", "verl")


def mode_fallback_script():
    import torch

    from pages.export_panel import render_export_batch

    v = torch.zeros(2, 3, dtype=torch.float64)
    render_export_batch(v, v + 1, v, torch.ones(2, 3), 0.2, "seq-mean-token-sum", "trl")


def big_batch_script():
    import streamlit as st
    import torch

    from pages.export_panel import render_export_batch

    v = torch.linspace(-1, 1, 100 * 100, dtype=torch.float64).reshape(100, 100)
    render_export_batch(v, torch.zeros_like(v), 0.5 * v, torch.ones(100, 100), 0.2, "token-mean", "verl")
    st.write("page still alive")


def too_long_sequence_script():
    import streamlit as st
    import torch

    from pages.export_panel import render_export_batch

    v = torch.zeros(2, 5000, dtype=torch.float64)
    render_export_batch(v, v, v, torch.ones(2, 5000), 0.2, "token-mean", "verl")
    st.write("page still alive")


EXPANDER_KEYS = {token_script: "export_token", bounds_script: "explore_export"}  # the others: "export_batch"


def run(script) -> AppTest:
    """Run the script with its export expander opened, as a click on it does (the file is built only then)."""
    at = AppTest.from_function(script, default_timeout=60).run()
    assert not at.exception
    assert not at.code and not at.get("download_button"), "nothing is built before the expander is opened"
    at.session_state[f"{EXPANDER_KEYS.get(script, 'export_batch')}_open"] = True
    at.run()
    assert not at.exception
    return at


def test_token_export_shows_runnable_code_and_a_download(tmp_path):
    at = run(token_script)
    code = at.code[0].value
    assert at.code[0].language == "python"
    assert "def value_loss(" in code and "EXPECTED_LOSS" in code and "import valueloss" not in code
    assert at.get("download_button"), "the file can be downloaded"
    path = tmp_path / "token.py"
    path.write_text(code)
    ns = runpy.run_path(str(path))
    ns["test_loss"]()
    ns["test_gradient"]()


def test_choosing_another_library_changes_the_file():
    at = run(token_script)
    at.selectbox(key="export_token_target").set_value("sb3").run()
    assert not at.exception
    code = at.code[0].value
    assert "Stable-Baselines3" in code and "F.mse_loss" in code


def test_convention_export_has_the_per_token_anatomy():
    at = run(bounds_script)
    code = at.code[0].value
    assert "EXPECTED_LOSS_MAX" in code and "torch.max(torch.min(v, values + eps), values - eps)" in code
    assert at.selectbox(key="explore_export_target").value == "bounds"


def test_batch_export_embeds_the_batch(tmp_path):
    at = run(batch_script)
    code = at.code[0].value
    assert "VPREDS = [" in code and 'loss_agg_mode="seq-mean-token-mean"' in code
    path = tmp_path / "batch.py"
    path.write_text(code)
    ns = runpy.run_path(str(path))
    for name in ("test_loss", "test_clipfrac", "test_gradient"):
        ns[name]()


def test_batch_export_falls_back_to_the_libraries_own_aggregation():
    at = run(mode_fallback_script)
    assert any("has no seq-mean-token-sum aggregation: exporting its token-mean" in c.value for c in at.caption)
    assert "TRL PPOTrainer" in at.code[0].value


def test_a_large_batch_exports_its_leading_rows_and_says_so():
    at = run(big_batch_script)
    assert not at.error
    note = at.info[0].value
    keep = MAX_EXPORT_ELEMENTS // 100  # whole rows of the 100 x 100 batch that fit the export's cap
    assert numbers_in(note)[:4] == [keep, 100, keep * 100, 100 * 100]  # rows kept of all, slots kept of all
    assert numbers_in(at.code[0].value.split("Scenario: a batch of ")[1])[:2] == [keep, 100]  # the file's rows x T
    assert any("page still alive" in m.value for m in at.markdown)


def test_a_sequence_longer_than_the_cap_is_an_error_not_a_crash():
    at = run(too_long_sequence_script)
    assert at.error and numbers_in(at.error[0].value) == [5000, MAX_EXPORT_ELEMENTS]  # the length and the cap
    assert not at.code
    assert any("page still alive" in m.value for m in at.markdown)


def test_every_library_and_release_is_offered_and_the_file_names_its_version(tmp_path):
    import valueloss as vl
    from pages.export_panel import target_label

    at = run(batch_script)
    assert {target_label(n) for n in vl.DIALECTS} <= set(at.selectbox(key="export_batch_target").options)
    at.selectbox(key="export_batch_target").set_value("verl-v0.4.0").run()
    assert not at.exception
    code = at.code[0].value
    assert "Library: verl v0.4.0" in code and "def agg_loss" in code and "0.5 *" not in code.split("def value_loss")[1]
    path = tmp_path / "old_verl.py"
    path.write_text(code)
    ns = runpy.run_path(str(path))
    for name in ("test_loss", "test_clipfrac", "test_gradient"):
        ns[name]()
    assert "v0.4.0" in target_label("verl-v0.4.0") and "rsl_rl" in target_label("rsl_rl")


def test_a_loss_units_library_exports_at_its_own_bound():
    at = run(token_script)
    at.selectbox(key="export_token_target").set_value("rllib").run()
    assert not at.exception
    assert any("bounds the squared error" in c.value for c in at.caption)
    assert "EPS = 10.0" in at.code[0].value


def test_the_file_is_built_only_when_the_expander_is_opened(monkeypatch):
    """Issue 21.10: every Batch rerun used to build and send the batch's file (272 KiB) in a closed expander."""
    import pages.export_panel as panel

    built = []
    file = panel.BatchExport(code="# the file", filename="f.py", numbers=None)
    monkeypatch.setattr(panel, "batch_export", lambda *a: built.append(a) or file)
    panel._batch_export.clear()
    at = AppTest.from_function(batch_script, default_timeout=60).run()
    assert not built and not at.code
    (expander,) = at.expander
    assert expander.label.startswith("Export as code") and not expander.proto.expanded
    at.session_state["export_batch_open"] = True
    at.run()
    assert len(built) == 1 and at.code[0].value == "# the file"
    at.session_state["export_batch_open"] = False  # closed again: the next rerun sends nothing
    at.run()
    assert not at.code and len(built) == 1
