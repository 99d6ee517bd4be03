"""Every page of the running app loads in Chromium without an exception and offers its share link."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from pages.registry import PAGES
from valueloss.teach.tour import STEPS

from .helpers import assert_no_exception, goto, wait_ready

URL_PATHS = ["" if p.default else p.url_path for p in PAGES]


@pytest.mark.e2e
@pytest.mark.parametrize("url_path", URL_PATHS)
def test_page_loads_cleanly(page, app_url, url_path):
    goto(page, app_url, url_path)
    assert_no_exception(page)
    assert page.locator("h1").first.is_visible()
    # The shared legend is in every page's sidebar.
    assert page.get_by_text("Legend: notation and colours").first.is_visible()


@pytest.mark.e2e
def test_navigation_lists_the_three_sections(page, app_url):
    goto(page, app_url)
    nav = page.locator("[data-testid=stSidebarNav]")
    for section in ("Learn", "Explore", "Tools"):
        assert nav.get_by_text(section, exact=True).first.is_visible()
    nav.get_by_text("Loss surfaces").first.click()
    page.wait_for_url("**/surfaces")
    assert_no_exception(page)


@pytest.mark.e2e
def test_a_shared_deep_link_is_the_first_visit_of_a_fresh_server(page, fresh_app_url):
    """Streamlit runs a deep-linked page alone until app.py has run once; the page hands it back."""
    query = urlencode({"t_step": STEPS[1].tab})
    goto(page, fresh_app_url, "tour", query)
    nav = page.locator("[data-testid=stSidebarNav]")
    # The first run hands over to app.py with a rerun: wait for app.py's navigation to arrive.
    for section in ("Learn", "Explore", "Tools"):
        nav.get_by_text(section, exact=True).first.wait_for(state="visible", timeout=30_000)
    wait_ready(page)
    assert nav.get_by_text("common", exact=True).count() == 0
    assert query in page.url
    assert_no_exception(page)
