"""pages/registry.py's table of URL keys: each page binds only its own keys, and no key has two pages.

The keys are collected from the widgets each page really binds to the URL (in each of its modes).
"""

from __future__ import annotations

from itertools import combinations

import pytest

from pages.registry import PAGES, page_for_script
from tests.app.helpers import bound_url_keys, run_page

LISTED = [p for p in PAGES if not p.hidden]
# Query values that switch a page into another mode with other widgets.
MODES = {
    "batch": [{}, {"b_source": "upload"}],
    "sanity": [{}, {"s_source": "synthetic batch"}, {"s_source": "upload"}],
    "surfaces": [{}, {"sf_view": "3-D surface"}],
}


@pytest.mark.parametrize("entry", LISTED, ids=lambda p: p.url_path)
def test_every_key_a_page_binds_is_its_own(entry):
    name = entry.script.removeprefix("pages/").removesuffix(".py")
    keys = set()
    for query in MODES.get(name, [{}]):
        keys |= bound_url_keys(run_page(name, query, timeout=120))
    foreign = sorted(k for k in keys if not entry.owns(k))
    assert not foreign, f"{entry.script} binds {foreign}, outside its keys in pages/registry.py"
    for other in LISTED:
        if other.script != entry.script:
            assert not [k for k in keys if other.owns(k)], f"{entry.script} binds a key of {other.script}"


@pytest.mark.parametrize(("a", "b"), list(combinations(LISTED, 2)), ids=lambda p: p.url_path)
def test_no_key_belongs_to_two_pages(a, b):
    if a.script == b.script:
        return
    for first, second in ((a, b), (b, a)):
        assert not (first.url_prefix and second.url_prefix.startswith(first.url_prefix)), (first.title, second.title)
        assert not [k for k in first.url_keys if second.owns(k)], (first.title, second.title)


def test_an_old_surfaces_link_still_sets_the_plane():
    """/surfaces?s_eps=0.7&s_n=50 (before the page's keys became sf_) opens the same plane."""
    assert "s_" in page_for_script("pages/surfaces.py").legacy_prefixes
    at = run_page("surfaces", {"s_eps": "0.7", "s_n": "50", "sf_fixed": "0.5"})
    assert at.slider(key="sf_eps").value == 0.7 and at.slider(key="sf_n").value == 50
    assert at.slider(key="sf_fixed").value == 0.5
    assert not [k for k in at.query_params if k.startswith("s_")]
    assert at.query_params["sf_eps"] == "0.7"


def test_a_link_with_both_names_keeps_the_current_one():
    at = run_page("surfaces", {"s_eps": "0.7", "sf_eps": "0.3"})
    assert at.slider(key="sf_eps").value == 0.3


def test_short_paths_open_their_pages():
    """/sanity and /one-token answered "Page not found": each is an alias of its page, served hidden."""
    from pages.registry import page_for_path, served_paths

    assert page_for_path("sanity").title == "Sanity check" and page_for_path("one-token").title == "One token"
    assert page_for_path("").title == "One token"  # the root
    paths = served_paths()
    assert len(paths) == len(set(paths)), "every served path is one page's"
    for entry in PAGES:
        for alias in entry.aliases:
            assert page_for_path(alias) is entry and not alias.startswith("/")


def test_the_navigation_lists_each_page_once_and_serves_its_aliases_hidden():
    from streamlit.testing.v1 import AppTest

    from pages.registry import served_paths

    at = AppTest.from_string(
        "import streamlit as st\n"
        "from pages.registry import navigation_pages\n"
        "st.session_state['pages'] = [(p.url_path, p.visibility) for ps in navigation_pages().values() for p in ps]\n"
    ).run()
    served = at.session_state["pages"]
    assert sorted(path for path, _ in served) == sorted(served_paths())  # the default page's path is ""
    visible = [path for path, visibility in served if visibility == "visible"]
    assert visible == [p.url_path for p in LISTED]


def test_a_path_no_page_serves_is_recognised():
    """Streamlit runs the default page for an unknown path; the page then lists the pages (once)."""
    from pages.common import unknown_path

    assert unknown_path("http://127.0.0.1:8501/xyz") == "xyz"
    assert unknown_path("http://127.0.0.1:8501/sanity") is None and unknown_path("http://127.0.0.1:8501") is None
    assert unknown_path("http://127.0.0.1:8501/tour/") is None
    assert (
        unknown_path("https://host/app/tour", base="/app") is None and unknown_path("https://host/app", "app") is None
    )
    assert unknown_path("https://host/app/nope", base="app") == "nope" and unknown_path(None) is None
