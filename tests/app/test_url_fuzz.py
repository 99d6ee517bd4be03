"""Every URL-bound widget of every page survives any string in its query parameter (issue 11.3).

A link is user input: ``/batch?b_seed=inf`` used to crash the page with OverflowError (Streamlit's
integer number_input calls ``int(float(value))`` before its range check), and every reload of that
link crashed again. ``pages.common.guard_query_params`` now drops such values before any widget is
built; text every widget maps to its default itself. Either way the page says so: one notice above it
(``pages.common.report_link_values``) names the key, the value given and the value used. The pages run as
app.py runs them (``helpers.run_link``). The keys fuzzed here are collected from the pages as they render
(in each of their modes), so a new widget is fuzzed without a table.
"""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from pages.registry import PAGES
from tests.app.helpers import HARNESS_PAGE, ROOT, bound_url_keys, link_notice, plain

# Each page, and the query values that switch it into another mode with other widgets.
MODES = {
    "batch": [{}, {"b_source": "upload"}],
    "sanity": [{}, {"s_source": "synthetic batch"}, {"s_source": "upload"}],
    "explore": [{}],
    "tour": [{}],
    "dynamics": [{}],
    "surfaces": [{}],
    "gradients": [{}],
    "timing": [{}],
}
TITLES = {
    "batch": "Batch",
    "sanity": "Sanity check",
}


URL_PATHS = {p.script.removeprefix("pages/").removesuffix(".py"): p.url_path for p in PAGES if not p.hidden}


def run(page: str, query: dict[str, str]) -> AppTest:
    """``pages/<page>.py`` opened from a link carrying ``query``, as app.py runs it."""
    at = AppTest.from_file(str(ROOT / "tests" / "app" / "link_harness.py"), default_timeout=120)
    at.session_state[HARNESS_PAGE] = URL_PATHS[page]
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    return at


def _keys(node, out: set[str]) -> set[str]:
    key = getattr(node, "key", None)
    if isinstance(key, str) and key:
        out.add(key)
    children = getattr(node, "children", None)
    for child in children.values() if isinstance(children, dict) else children or []:
        _keys(child, out)
    return out


@cache
def widget_keys(page: str) -> tuple[str, ...]:
    """The keys of every widget the page draws in any of its modes (the URL-bound ones among them)."""
    keys: set[str] = set()
    for mode in MODES[page]:
        at = run(page, mode)
        assert not at.exception, at.exception
        _keys(at._tree, keys)
    return tuple(sorted(keys))


def assert_alive(at: AppTest, page: str) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert at.title and at.title[0].value == TITLES.get(page, at.title[0].value)


@pytest.mark.parametrize(
    ("page", "key", "value"),
    [
        ("batch", "b_seed", "inf"),
        ("timing", "tm_repeats", "inf"),
        ("sanity", "s_mseed", "1e309"),
        ("dynamics", "d_seed", "-inf"),
        ("gradients", "g_n", "+Infinity"),
    ],
)
def test_the_reported_links_show_a_message_and_a_working_page(page, key, value):
    at = run(page, {key: value})
    assert_alive(at, page)
    assert f"{key} = {value}: an infinite number, which no control takes; using " in plain(link_notice(at) or "")
    assert key not in at.query_params  # the address bar no longer carries it: a reload is clean
    again = run(page, dict(at.query_params))
    assert_alive(again, page)
    assert link_notice(again) is None


def test_nan_is_an_option_name_not_a_bad_number():
    """The padding selectbox offers "nan": the guard leaves it, the integer widgets default on it."""
    at = run("batch", {"b_padding": "nan", "b_seed": "nan"})
    assert_alive(at, "batch")
    assert at.selectbox(key="b_padding").value == "nan" and at.number_input(key="b_seed").value == 0
    assert not at.warning or all("infinite" not in w.value for w in at.warning)


def test_a_good_value_next_to_a_bad_one_is_kept():
    at = run("batch", {"b_seed": "inf", "b_batch_size": "8"})
    assert_alive(at, "batch")
    assert at.number_input(key="b_batch_size").value == 8
    assert at.query_params["b_batch_size"] == "8"


NASTY = [
    "inf",
    "-inf",
    "+Infinity",
    "nan",
    "-NaN",
    "1e309",
    "-1e309",
    "1e308",
    "9" * 400,
    "-0",
    "1e-400",
    "0x10",
    "1_000",
    "１２",
    "",
    " ",
    "True",
    "[1, 2]",
    "%00",
    "\x00",
    "![p](http://127.0.0.1:9/t.png)",
    "<script>alert(1)</script>",
    "0.1.2",
]
values = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=16),
    st.from_regex(r"-?[0-9]{0,400}(\.[0-9]*)?(e-?[0-9]{1,4})?", fullmatch=True),
)


@pytest.mark.parametrize("page", list(MODES))
def test_random_strings_in_every_url_key_never_break_a_page(page):
    keys = widget_keys(page)

    @settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(mode=st.sampled_from(MODES[page]), chosen=st.dictionaries(st.sampled_from(keys), values, min_size=1))
    def check(mode, chosen):
        at = run(page, {**mode, **chosen})
        assert_alive(at, page)

    check()


NOT_A_VALUE = "no-such-value"


@pytest.mark.parametrize("page", list(MODES))
def test_every_value_a_page_cannot_use_is_named_in_one_notice(page):
    """/?eps=5 fell back to the default without a word: every bound control of every page (in each mode) gets a
    value it cannot take, and the one notice names each key, the value given and the value used."""
    for mode in MODES[page]:
        first = run(page, mode)
        text = {t.key for t in first.text_input}  # a text box takes any text (the page checks it and says so)
        keys = sorted(bound_url_keys(first) - set(mode) - text)
        at = run(page, {**mode, **{key: NOT_A_VALUE for key in keys}})
        assert_alive(at, page)
        notice = plain(link_notice(at) or "")
        for key in keys:
            assert f"- {key} = {NOT_A_VALUE}: " in notice and "; using " in notice, (page, mode, key, notice)


@pytest.mark.parametrize(
    ("page", "query", "said"),
    [
        ("explore", {"eps": "-1"}, "eps = -1: outside the range its control allows; using 0.2."),
        ("explore", {"v": "abc"}, "v = abc: not a number; using 0.1."),
        ("batch", {"b_eps": "-1"}, "b_eps = -1: outside the range its control allows; using 0.2."),
        ("batch", {"b_batch_size": "2.5"}, "b_batch_size = 2.5: not a whole number; using "),
        ("dynamics", {"d_loss": "huber"}, "d_loss = huber: not one of its choices; using verl."),
        ("explore", {"b_eps": "0.3"}, "b_eps = 0.3: a setting of Batch, not of One token; ignored."),
        ("explore", {"zz": "1"}, "zz = 1: not a setting of any page; ignored."),
    ],
)
def test_the_notice_says_what_was_given_what_is_used_and_why(page, query, said):
    at = run(page, query)
    assert_alive(at, page)
    assert said in plain(link_notice(at) or "")


def test_good_values_raise_no_notice_and_a_note_stays_until_the_control_changes():
    at = run("batch", {"b_eps": "0.35", "b_batch_size": "8", "b_mode": "token-sum"})
    assert link_notice(at) is None
    at = run("batch", {"b_eps": "-1", "b_batch_size": "8"})
    assert "b_eps = -1" in plain(link_notice(at) or "")
    at.run()  # a rerun (any other control) keeps the note: the control still holds the value used
    assert "b_eps = -1" in plain(link_notice(at) or "")
    at.number_input(key="b_eps").set_value(0.3).run()  # the visitor sets it: the note has done its job
    assert link_notice(at) is None
