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
