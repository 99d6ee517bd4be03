"""The whole app: navigation, the default page, and every page reachable without an exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pages.registry import PAGES

ROOT = Path(__file__).resolve().parents[2]


def registered_pages():
    """(file, url path) of every page app.py's navigation serves; the default page lives at ""."""
    return [(p.script, "" if p.default else p.url_path) for p in PAGES]


def test_every_page_file_exists_and_url_paths_are_unique():
    pages = registered_pages()
    assert len({url for _, url in pages}) == len(pages)
    assert [url for _, url in pages].count("") == 1, "exactly one default page, served at /"
    # One token is served twice: listed at /explore (where deep links like /explore?v=0.5 land) and, hidden, at /
    assert ("pages/explore.py", "explore") in pages and ("pages/explore.py", "") in pages
    for path, _ in pages:
        assert (ROOT / path).is_file(), path
    listed = {p.script for p in PAGES}
    scripts = {f"pages/{f.name}" for f in (ROOT / "pages").glob("*.py")}
    helpers = {
        "pages/common.py",
        "pages/dashboard.py",
        "pages/export_panel.py",
        "pages/live_token.py",
        "pages/registry.py",
    }
    assert listed == scripts - helpers, "a page script is missing from pages/registry.py (or a helper is listed)"


def test_default_page_is_one_token_explorer():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "One token"


@pytest.mark.parametrize(("path", "url_path"), registered_pages())
def test_each_page_renders_through_the_navigation(path, url_path):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page(path).run()
    assert not at.exception, f"{path}: {at.exception}"
    assert at.title, f"{path} has no title"


@pytest.mark.parametrize("path", ["pages/explore.py", "pages/batch.py"])
def test_scenario_pages_offer_the_export_as_code(path):
    at = AppTest.from_file(str(ROOT / path), default_timeout=120).run()
    assert not at.exception
    assert any("Export as code" in e.label for e in at.expander)
    assert not at.code  # built only when asked: the expander is lazy
    at.session_state["export_token_open" if "explore" in path else "export_batch_open"] = True
    code = at.run().code[0].value
    imports = [line.strip() for line in code.splitlines() if line.lstrip().startswith(("import ", "from "))]
    assert "import torch" in imports
    assert not any("valueloss" in line for line in imports), imports
    assert "def test_" in code


def test_terms_are_explained_where_a_page_first_uses_them():
    """gas, DDP and #6957 appeared on Scale without a word about them (issue 20.10): each is explained once,
    under the text that first uses it, and every page's legend lists the glossary."""
    from tests.app.helpers import run_page
    from valueloss.teach.glossary import GLOSSARY

    at = run_page("scale", timeout=120)
    captions = [c.value for c in at.caption]
    for term in ("#6957", "gas", "DDP"):
        explained = [c for c in captions if f"**{term}** (" in c]
        assert len(explained) == 1, (term, explained)
    legend = next(e for e in at.expander if e.label.startswith("Legend"))
    assert all(t.sentence in legend.markdown[0].value for t in GLOSSARY)


def test_the_tour_explains_6957_in_its_step():
    from tests.app.helpers import page_test
    from valueloss.teach.tour import STEPS, get_step

    at = page_test("tour")
    at.session_state["t_seed"] = 0
    at.query_params["t_step"] = get_step("micro-batches").tab
    at.run()
    assert any("**#6957** (verl pull request 6957" in c.value for c in at.caption)
    assert STEPS[-1].key == "micro-batches"
    # checking the answer reruns the tour's fragment, which explains its terms afresh
    at.radio(key=f"t_a{len(STEPS)}").set_value("A")
    at.button(key=f"t_check{len(STEPS)}").click().run()
    assert at.get("plotly_chart") and any("**#6957** (verl pull request 6957" in c.value for c in at.caption)
