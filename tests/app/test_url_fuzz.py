"""Every URL-bound widget of every page survives any string in its query parameter (issue 11.3).

A link is user input: ``/batch?b_seed=inf`` used to crash the page with OverflowError (Streamlit's
integer number_input calls ``int(float(value))`` before its range check), and every reload of that
link crashed again. ``pages.common.guard_query_params`` now drops such values before any widget is
built and says so; text every widget maps to its default itself. The keys fuzzed here are collected
from the pages as they render (in each of their modes), so a new widget is fuzzed without a table.
"""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from tests.app.helpers import page_test

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


def run(page: str, query: dict[str, str]) -> AppTest:
    at = page_test(page, timeout=120)
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
    assert any(key in w.value and "an infinite number" in w.value for w in at.warning)
    assert key not in at.query_params  # the address bar no longer carries it: a reload is clean
    again = run(page, dict(at.query_params))
    assert_alive(again, page)
    assert not any("an infinite number" in w.value for w in again.warning)


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
