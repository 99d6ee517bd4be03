"""Issue 11 in Chromium: the app works offline, user text in an error box stays text, a bad link heals.

Every request the browser makes is recorded: none may leave the app's own 127.0.0.1 server (the
favicon used to come from fonts.gstatic.com). Markdown in a file's column names must not become an
image the browser fetches or a live link.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from .helpers import TIMEOUT_MS, assert_no_exception, goto, wait_for_text, wait_ready

IMAGE = "![p](http://127.0.0.1:9/t.png)"
LINK = "[click](http://127.0.0.1:9/x)"


def record_requests(page) -> list[str]:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    return urls


def foreign(urls: list[str], app_url: str) -> list[str]:
    own = urlsplit(app_url).netloc
    return [u for u in urls if not u.startswith(("data:", "blob:")) and urlsplit(u).netloc != own]


@pytest.mark.e2e
def test_pages_fetch_nothing_from_another_host(page, app_url):
    urls = record_requests(page)
    for path in ("explore", "batch"):
        goto(page, app_url, path)
        assert_no_exception(page)
    page.wait_for_timeout(1500)  # the favicon and icon fonts load after the script
    icon = page.evaluate("() => [...document.querySelectorAll('link[rel~=icon]')].map(l => l.href)")
    assert icon and all("gstatic" not in href for href in icon), icon
    assert not foreign(urls, app_url), foreign(urls, app_url)
    # The navigation's Material icons are drawn from the font Streamlit ships, not a font host.
    assert any("MaterialSymbols" in u for u in urls) or page.locator("[data-testid=stIconMaterial]").count()


@pytest.mark.e2e
def test_markdown_in_an_upload_is_shown_as_text(page, app_url):
    urls = record_requests(page)
    goto(page, app_url, "batch", "b_source=upload")
    header = f"row,t,vpreds,returns,{LINK} {IMAGE}\n0,0,0,0,0\n"
    page.locator("[data-testid=stFileUploader] input[type=file]").first.set_input_files(
        files=[{"name": "[x](y) $a$.csv", "mimeType": "text/csv", "buffer": header.encode()}]
    )
    wait_for_text(page, "is missing column(s) values")
    box = page.locator("[data-testid=stAlertContentError]").first
    # What the reader sees is the text as written (the word joiners that break autolinks are invisible).
    shown = box.inner_text().replace("\u2060", "")
    assert IMAGE in shown and LINK in shown and "[x](y) $a$.csv" in shown, shown
    assert box.locator("img, a, .katex").count() == 0, box.inner_html()
    page.wait_for_timeout(500)
    assert not [u for u in urls if "127.0.0.1:9/" in u]
    assert_no_exception(page)


@pytest.mark.e2e
def test_an_infinite_url_value_is_dropped_and_the_address_heals(page, app_url):
    goto(page, app_url, "batch", "b_seed=inf&b_batch_size=8")
    assert_no_exception(page)
    wait_for_text(page, "an infinite number")
    expect(page).to_have_url(re.compile(r"^(?!.*b_seed).*b_batch_size=8"), timeout=TIMEOUT_MS)
    page.reload(wait_until="domcontentloaded")
    wait_ready(page)
    expect(page.get_by_text("sequences").first).to_be_visible(timeout=TIMEOUT_MS)
    assert_no_exception(page)
    assert page.get_by_text("an infinite number").count() == 0
