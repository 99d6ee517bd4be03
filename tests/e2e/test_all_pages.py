"""Every page of the running app loads in Chromium without an exception and offers its share link."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from pages.registry import PAGES
from valueloss.teach.tour import STEPS

from .helpers import assert_no_exception, goto, wait_for_text, wait_ready

URL_PATHS = ["" if p.default else p.url_path for p in PAGES]


@pytest.mark.e2e
@pytest.mark.parametrize("url_path", URL_PATHS)
def test_page_loads_cleanly(page, app_url, url_path):
    goto(page, app_url, url_path)
    assert_no_exception(page)
    assert page.locator("h1").first.is_visible()
    # The shared legend is in every page's sidebar.
    assert page.get_by_text("Legend: notation, colours and terms").first.is_visible()


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


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("path", "title"), [("sanity", "Sanity check"), ("one-token", "One token"), ("token", "One token")]
)
def test_short_paths_open_their_page(page, app_url, path, title):
    """/sanity and /one-token said "Page not found": they are aliases of their pages now."""
    goto(page, app_url, path)
    assert_no_exception(page)
    expect(page.locator("h1").first).to_have_text(title)
    assert page.get_by_text("Page not found").count() == 0


@pytest.mark.e2e
def test_a_path_no_page_serves_lists_the_pages(page, app_url):
    goto(page, app_url, "no-such-page")
    assert_no_exception(page)
    wait_for_text(page, "There is no page at /no-such-page")
    for p in PAGES:
        if not p.hidden:
            assert page.get_by_role("link", name=p.title, exact=True).count() >= 1


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("path", "query", "said"),
    [
        (
            "",
            "eps=5000&v=abc",
            ["eps = 5000: outside the range its control allows; using 0.2.", "v = abc: not a number"],
        ),
        ("batch", "b_eps=-1&b_batch_size=8", ["b_eps = -1: outside the range its control allows; using 0.2."]),
        ("scale", "sc_dp=50", ["sc_dp = 50: outside the range its control allows; using 2."]),
    ],
)
def test_a_link_value_a_page_cannot_use_is_named(page, app_url, path, query, said):
    """/?eps=5 and /batch?b_eps=-1 silently became the defaults: the page says which key, what was given and used."""
    goto(page, app_url, path, query)
    assert_no_exception(page)
    for words in said:
        wait_for_text(page, words)
    if "b_batch_size=8" in query:  # a good value beside a bad one is kept
        assert "b_batch_size=8" in page.url


# ------------------------------------------------------------------------------------------------
# Layout: nothing cut or covered at a desktop, a half-screen and a phone width

WIDTHS = (1400, 820, 390)
LAYOUT_SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "layout"

# What is cut or covered on screen, as a list of findings (empty: the page is clean):
# - text cut by an ellipsis (a metric label, a widget label, a table header): its full width is wider than its box;
# - text of a Plotly figure (title, subplot title, legend entry, axis title) that runs past the figure's edge (or
#   the element that holds it), a title or axis title over another, or a legend entry over one;
# - Plotly's toolbar (the modebar, shown here as on hover) over a title, a subplot title or the legend;
# - text of the app's own SVG drawings (the live explorer, the moving wall) that runs past its drawing's edge.
LAYOUT_JS = r"""
() => {
  const out = [];
  const box = (e) => e.getBoundingClientRect();
  const visible = (e) => { const b = box(e); return b.width > 0 && b.height > 0 && e.offsetParent !== null; };
  const overlap = (a, b) => !(a.right <= b.left + 1 || b.right <= a.left + 1 || a.bottom <= b.top + 1 || b.bottom <= a.top + 1);
  for (const e of document.querySelectorAll("[data-testid=stApp] *")) {
    if (!visible(e) || e.closest(".js-plotly-plot, [data-testid=stDataFrame]")) continue;
    const cs = getComputedStyle(e);
    if (cs.textOverflow === "ellipsis" && e.scrollWidth > e.clientWidth + 1 && e.textContent.trim())
      out.push("cut: " + e.textContent.trim().slice(0, 80));
  }
  document.querySelectorAll(".js-plotly-plot").forEach((plot) => {
    if (!visible(plot)) return;
    // what is seen of the figure: its own box, inside the element that holds it (which clips what overflows)
    const own = box(plot), holder = box(plot.closest("[data-testid=stElementContainer]") || plot);
    const frame = {
      left: Math.max(own.left, holder.left), right: Math.min(own.right, holder.right),
      top: Math.max(own.top, holder.top), bottom: Math.min(own.bottom, holder.bottom),
    };
    const texts = [...plot.querySelectorAll(".gtitle, .annotation-text-g text, .legendtext, .g-xtitle text, .g-ytitle text")]
      .filter((t) => box(t).width > 0 && t.textContent.trim());
    for (const t of texts) {
      const b = box(t);
      if (b.left < frame.left - 1 || b.right > frame.right + 1 || b.top < frame.top - 1 || b.bottom > frame.bottom + 1)
        out.push("past the figure's edge: " + t.textContent.slice(0, 80));
    }
    const labels = texts.filter((t) => !t.classList.contains("legendtext"));
    const entries = texts.filter((t) => t.classList.contains("legendtext"));
    for (let i = 0; i < labels.length; i++) {
      for (let j = i + 1; j < labels.length; j++)
        if (overlap(box(labels[i]), box(labels[j])))
          out.push("text over text: " + labels[i].textContent.slice(0, 40) + " / " + labels[j].textContent.slice(0, 40));
      for (const e of entries)
        if (overlap(box(labels[i]), box(e)))
          out.push("legend over: " + labels[i].textContent.slice(0, 40) + " / " + e.textContent.slice(0, 40));
    }
    const bar = plot.querySelector(".modebar");
    if (!bar || !visible(bar)) return;
    for (const t of plot.querySelectorAll(".gtitle, .annotation-text-g, .legend .bg, .legend .scrollbox")) {
      if (box(t).width > 0 && overlap(box(bar), box(t)))
        out.push("toolbar over: " + (t.closest(".legend") ? "the legend" : t.textContent.slice(0, 80)));
    }
  });
  document.querySelectorAll(".vl-svg").forEach((svg) => {
    if (!visible(svg)) return;
    const f = box(svg);
    for (const t of svg.querySelectorAll("text")) {
      const b = box(t);
      if (b.width > 0 && (b.left < f.left - 1 || b.right > f.right + 1 || b.top < f.top - 1 || b.bottom > f.bottom + 1))
        out.push("past its drawing's edge: " + t.textContent.slice(0, 80));
    }
  });
  return [...new Set(out)];
}
"""


@pytest.mark.e2e
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("url_path", [p.url_path for p in PAGES if not p.hidden])
def test_nothing_is_cut_or_covered(browser, app_url, url_path, width):
    """Every page at 1400, 820 and 390 px: labels whole, figure text inside its figure, the toolbar over nothing.

    The screenshots land in artifacts/layout/ (not committed) to be looked at.
    """
    context = browser.new_context(viewport={"width": width, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        goto(page, app_url, url_path)
        assert_no_exception(page)
        page.wait_for_timeout(1000)  # plotly lays out after the script has finished
        page.add_style_tag(content=".modebar { opacity: 1 !important; }")  # as on hover, for every figure at once
        height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
        page.set_viewport_size({"width": width, "height": int(min(max(height, 1000), 6000))})
        page.wait_for_timeout(800)
        LAYOUT_SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(LAYOUT_SHOTS / f"{url_path}-{width}.png"), full_page=True)
        found = page.evaluate(LAYOUT_JS)
        assert not found, f"{url_path} at {width} px: " + "; ".join(found)
    finally:
        context.close()
