"""Issues 11 and 21 in Chromium: the app works offline, user text in an error box stays text, a bad link
heals, and what any websocket client may send cannot defeat a lock or lose another visitor's upload.

Every request the browser makes is recorded: none may leave the app's own 127.0.0.1 server (the
favicon used to come from fonts.gstatic.com). Markdown in a file's column names must not become an
image the browser fetches or a live link. The load script's websocket client (tests/load.py) is
checked here against the messages Chromium itself sends.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect
from streamlit.proto.BackMsg_pb2 import BackMsg

from tests.load import Session
from valueloss.viz.live import EXPLORER_JS, FRAMES_JS, LOGS_JS, SURFACES_JS, WALL_JS

from .helpers import TIMEOUT_MS, assert_no_exception, goto, run_client, set_input, wait_for_text, wait_ready

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


# ------------------------------------------------------------------ issue 21.3: a client's clear_cache


def send_clear_cache(app_url: str, page: str = "timing") -> None:
    """A websocket client with no token, no cookie and no browser: opens a page, sends BackMsg(clear_cache)."""

    async def attack() -> None:
        client = Session(app_url, page)
        await client.open()
        await client.clear_cache()
        await client.rerun()  # the message is handled before this rerun's script runs
        await client.close()

    run_client(attack())


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_clear_cache_from_any_client_cannot_start_a_second_benchmark(browser, app_url):
    """The lock used to live in st.cache_resource: a clear_cache recreated it and a second run started."""
    first = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    goto(
        first,
        app_url,
        "timing",
        "tm_impls=verl-eager&tm_impls=openrlhf-eager&tm_repeats=20&tm_sizes=512x4096,1024x4096",
    )
    first.get_by_role("button", name="Run benchmark").click()
    wait_for_text(first, "512x4096: warm-up", timeout=TIMEOUT_MS)  # the first benchmark is timing
    send_clear_cache(app_url)
    second = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    goto(second, app_url, "timing", "tm_impls=verl-eager&tm_repeats=3&tm_sizes=4x16")
    second.get_by_role("button", name="Run benchmark").click()
    wait_for_text(second, "Another session is running a benchmark right now", timeout=TIMEOUT_MS)
    assert second.get_by_text("Live run on this server").count() == 0
    first.get_by_role("button", name="Cancel run").click()
    wait_for_text(first, "cancelled before it finished", timeout=TIMEOUT_MS)
    first.context.close()
    second.context.close()


@pytest.mark.e2e
def test_clear_cache_from_another_client_costs_an_upload_only_recomputation(page, app_url):
    """Another visitor's clear_cache empties every st.cache_data: the uploaded batch is parsed again."""
    goto(page, app_url, "batch", "b_source=upload")
    rows = "".join(f"{r},{t},{0.1 * t},{1.0},{0.2 * r}\n" for r in range(3) for t in range(4))
    page.locator("[data-testid=stFileUploader] input[type=file]").first.set_input_files(
        files=[
            {"name": "mine.csv", "mimeType": "text/csv", "buffer": ("row,t,vpreds,returns,values\n" + rows).encode()}
        ]
    )
    wait_for_text(page, "12 real tokens in 3 sequences")
    send_clear_cache(app_url, "batch")
    set_input(page, "eps (cliprange_value, return units)", 0.3)
    wait_for_text(page, "12 real tokens in 3 sequences")
    expect(page.get_by_text("Upload a file to analyse it").first).to_have_count(0)
    expect(page.locator("[data-testid=stAlertContentError]")).to_have_count(0)
    assert "b_eps=0.3" in page.url
    assert_no_exception(page)


# ------------------------------------------------------ the load script speaks the browser's protocol


@pytest.mark.e2e
def test_the_load_clients_rerun_is_what_chromium_sends(page, app_url):
    """tests/load.py must load the server as a browser does: the same widget values, query string, page."""
    sent: list[bytes] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    goto(page, app_url, "batch")
    before = len(sent)
    set_input(page, "eps (cliprange_value, return units)", 0.25)
    reruns = [m.rerun_script for m in map(_back_msg, sent[before:]) if m.WhichOneof("type") == "rerun_script"]
    browser_state = reruns[-1]

    async def client_rerun() -> BackMsg:
        client = Session(app_url, "batch")
        await client.open()
        client.widgets[client.keys["b_eps"]].double_value = 0.25
        client.query["b_eps"] = "0.25"
        msg = client.back_msg(first=False)
        await client.close()
        return msg

    ours = run_client(client_rerun()).rerun_script
    assert _values(ours) == _values(browser_state)
    assert ours.query_string == browser_state.query_string == "b_eps=0.25"
    assert ours.page_script_hash == browser_state.page_script_hash
    assert ours.context_info == browser_state.context_info  # the address the tab opened at, the locale...
    assert browser_state.cached_message_hashes and ours.cached_message_hashes  # both use the message cache


def _back_msg(payload) -> BackMsg:
    msg = BackMsg()
    msg.ParseFromString(payload if isinstance(payload, bytes) else payload.encode("latin-1"))
    return msg


def _values(state) -> dict[str, str]:
    """Each widget's id and its value (as protobuf text, whatever its type)."""
    return {w.id: str(w).split("\n", 1)[1].strip() for w in state.widget_states.widgets}


# --------------------------------------------------- issue 21.9: what the live components send back


@pytest.mark.e2e
def test_the_live_components_send_only_flat_finite_numbers(browser):
    """Streamlit parses a component's JSON before the app sees it (a 100,000-deep array raised RecursionError
    there): both components build what they send with releasePayload, which passes only the known keys as
    finite numbers and refuses anything else."""
    context = browser.new_context()
    page = context.new_page()
    page.set_content("<html><body></body></html>")
    page.add_script_tag(content=FRAMES_JS + "\nwindow.releasePayload = releasePayload;")
    keys = ["v", "v_old", "R", "eps"]
    ok = {"v": 0.5, "v_old": 0.0, "R": 1.0, "eps": 0.2}
    send = "([state, keys]) => JSON.stringify(window.releasePayload(state, keys))"
    assert page.evaluate(send, [ok | {"extra": [[[1]]]}, keys]) == '{"v":0.5,"v_old":0,"R":1,"eps":0.2}'
    nested = "() => { let a = []; for (let i = 0; i < 100000; i++) a = [a]; return window.releasePayload({v: a, v_old: 0, R: 1, eps: 0.2}, ['v', 'v_old', 'R', 'eps']); }"
    assert page.evaluate(nested) is None
    for bad in ("NaN", "Infinity", "'0.5'", "null", "{x: 1}", "true"):
        state = f"{{v: {bad}, v_old: 0, R: 1, eps: 0.2}}"
        assert page.evaluate(f"() => window.releasePayload({state}, {keys!r})") is None, bad
    assert page.evaluate(f"() => window.releasePayload({{v: 1, R: 1, eps: 0.2}}, {keys!r})") is None  # v_old missing
    context.close()
    # and it is what the components send: every setTriggerValue passes a payload built by it
    for source in (EXPLORER_JS, SURFACES_JS):
        calls = re.findall(r"setTriggerValue\(([^)]*)\)", source)
        assert calls and all(c.strip() == '"release", payload' for c in calls), calls
        assert "const payload = releasePayload(" in source
    # and the Critic dynamics components only draw: they send nothing back at all
    for source in (WALL_JS, LOGS_JS):
        assert "setTriggerValue" not in source and "setStateValue" not in source
