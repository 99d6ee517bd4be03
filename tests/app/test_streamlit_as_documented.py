"""Minimal reproductions of the Streamlit behaviours the app works around: two in pages/common.py (with
public calls), one in the live components' JavaScript (the app cannot guard it from Python).

Each test asserts Streamlit's behaviour today. When one fails after a Streamlit upgrade, Streamlit fixed
it: delete the workaround its message names (and the test).
"""

from __future__ import annotations

import textwrap

from streamlit.testing.v1 import AppTest


def test_a_deep_link_into_a_pages_folder_skips_the_entrypoint(tmp_path):
    """Until some session has called st.navigation, a link to /deep runs pages/deep.py alone."""
    (tmp_path / "pages").mkdir()
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            import streamlit as st
            st.write("entrypoint ran")
            pages = [st.Page("pages/home.py", default=True), st.Page("pages/deep.py", url_path="deep")]
            st.navigation(pages).run()
            """
        )
    )
    (tmp_path / "pages" / "home.py").write_text("import streamlit as st\nst.write('home')\n")
    (tmp_path / "pages" / "deep.py").write_text("import streamlit as st\nst.write('deep')\n")
    at = AppTest.from_file(str(tmp_path / "app.py"))
    at.switch_page("pages/deep.py")  # a fresh server's first request: the deep link
    at.run()
    shown = [m.value for m in at.markdown]
    assert "deep" in shown
    assert "entrypoint ran" not in shown, (
        "Streamlit now runs the entrypoint first on a deep link into pages/: "
        "remove _run_through_app from pages/common.py (and this test)"
    )


def test_a_deleted_query_value_still_seeds_its_widget_in_the_same_run():
    """``del st.query_params[k]`` before the widget exists does not stop it reading k: hence the rerun."""

    def script():
        import streamlit as st

        if "n" in st.query_params:
            del st.query_params["n"]
        st.number_input("n", value=1, key="n", bind="query-params")

    at = AppTest.from_function(script)
    at.query_params["n"] = "5"
    at.run()
    assert not at.exception
    assert "n" not in at.query_params
    assert at.number_input(key="n").value == 5, (
        "Streamlit now seeds a widget from the query string as edited in the same run: "
        "_rewrite_query_then_rerun in pages/common.py no longer needs its st.rerun"
    )


def test_a_deeply_nested_component_message_raises_in_streamlits_deserializer():
    """A custom component's trigger value is JSON that Streamlit parses while the page mounts the component,
    before the page can look at it; a 100,000-deep array is a RecursionError there (it catches only
    JSONDecodeError), which ends that session's script run. Any client can send one (setTriggerValue from
    the browser console, or a forged websocket message), so the app's own components send only flat finite
    numbers (releasePayload in valueloss/viz/live/frames.js) and the pages validate what arrives."""
    import pytest
    from streamlit.components.v2.bidi_component.serialization import deserialize_trigger_list

    depth = 100_000
    message = '[{"event": "release", "value": ' + "[" * depth + "]" * depth + "}]"
    assert deserialize_trigger_list('[{"event": "release", "value": {"v": 0.5}}]') == [
        {"event": "release", "value": {"v": 0.5}}
    ]
    with pytest.raises(RecursionError):
        deserialize_trigger_list(message)
    # (if this fails, Streamlit now refuses or survives such a message: releasePayload stays as the
    # component's own contract, but this test and the note in frames.js can go)
