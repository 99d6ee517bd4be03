"""Small verbs for driving the running app in Chromium, in the words a user would use."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TIMEOUT_MS = 120_000  # generous: a 2-core CI box runs the server, the browser and pytest at once


def wait_ready(page, timeout: int = TIMEOUT_MS) -> None:
    """Connected, script finished, and no skeleton placeholders left."""
    page.wait_for_selector("[data-testid=stApp][data-test-connection-state=CONNECTED]", timeout=timeout)
    page.wait_for_selector("[data-test-script-state=notRunning]", timeout=timeout)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=stSkeleton]').length === 0", timeout=timeout)


def goto(page, app_url: str, path: str = "", query: str = "") -> None:
    """Open a page of the app by its url_path (and optional query string) and wait until it is ready."""
    url = f"{app_url}/{path}" + (f"?{query}" if query else "")
    page.goto(url, wait_until="domcontentloaded")
    wait_ready(page)
    # A page's first run on a fresh server hands over to app.py with a rerun (pages/common.py):
    # the page is ready once app.py's navigation is there and that rerun has finished.
    page.locator("[data-testid=stSidebarNav]").get_by_text("Learn", exact=True).first.wait_for(timeout=TIMEOUT_MS)
    wait_ready(page)


def assert_no_exception(page) -> None:
    errors = page.locator("[data-testid=stException]")
    assert errors.count() == 0, f"the page shows an exception: {errors.first.inner_text()[:2000]}"


def wait_for_text(page, text: str, timeout: int = TIMEOUT_MS) -> None:
    """Wait until ``text`` (a string or regex pattern) is visible somewhere in the app."""
    pattern = text if isinstance(text, re.Pattern) else re.compile(re.escape(text))
    page.get_by_text(pattern).first.wait_for(state="visible", timeout=timeout)


def nudge_slider(page, label: str, steps: int) -> None:
    """Move the slider whose label contains ``label`` by exactly ``steps`` keyboard steps (negative: left).

    Each key press is confirmed on the slider itself before the next, so the final value does not
    depend on how fast the browser and the server answer.
    """
    slider = page.locator("[data-testid=stSlider]").filter(has_text=label).first.locator("input[type=range]").first
    slider.focus()
    key = "ArrowRight" if steps > 0 else "ArrowLeft"
    for _ in range(abs(steps)):
        before = slider.input_value()
        page.keyboard.press(key)
        page.wait_for_function("([el, v]) => el.value !== v", arg=[slider.element_handle(), before], timeout=TIMEOUT_MS)
    # Blur commits the keyboard moves; then wait for the rerun they triggered.
    page.keyboard.press("Tab")
    wait_ready(page)


def set_input(page, label: str, value) -> None:
    """Type a value into the number or text input with this aria-label and commit it with Enter."""
    box = page.get_by_label(label, exact=True).first
    box.fill(str(value))
    box.press("Enter")
    wait_ready(page)


def shot(page, name: str, max_height: int = 5000, folder: Path = SCREENSHOTS) -> Path:
    """Save a screenshot of the whole page under docs/screenshots/ (the README shows them), or ``folder``.

    Streamlit scrolls inside its main container, not the document, so the viewport is stretched to
    the content's height for the picture and restored afterwards.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    size = page.viewport_size
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stSidebarContent]')]"
        ".map(e => e.scrollHeight), document.body.scrollHeight)"
    )
    page.set_viewport_size({"width": size["width"], "height": min(max(height, size["height"]), max_height)})
    page.wait_for_timeout(400)  # let plotly resize to the new viewport
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path


def run_client(coroutine):
    """Run a websocket client's coroutine beside Playwright (whose sync API owns this thread's event loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
