"""The app's page table: every page's file, title, icon, url path, section and URL keys, in one place.

app.py builds ``st.navigation`` from it and the tests import it (instead of parsing app.py). Each page
owns the query keys it binds to widgets: the keys that start with its ``url_prefix`` (or, for One token,
whose keys are the notation itself, exactly its ``url_keys``). No key belongs to two pages; the tests
check that against the widgets each page really binds.

Links stay stable: Loss surfaces moved from ``s_`` (which Sanity check also used) to ``sf_``, and a link
that still carries ``s_...`` on /surfaces is read as ``sf_...`` (``legacy_prefixes``). A page also answers at
its ``aliases`` (``/sanity``, ``/one-token``): hidden pages of the same script, since Streamlit's navigation
has no public hook for an unknown path (it shows "Page not found" and runs the default page, which then lists
the pages: ``pages.common.report_link_values``).

app.py runs every page through :func:`run_navigation`, which afterwards says which of the link's values the
page's controls could not take (``pages.common.report_link_values``): one notice, on every page.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

APP_FOLDER = Path(__file__).resolve().parents[1]
# Whether st.navigation has run in this server process (app.py, or a page handing a first visit over to
# it): from then on Streamlit ignores the pages/ folder in every session, as its documentation says.
navigation_ran = False


@dataclass(frozen=True)
class PageEntry:
    """One page as the navigation lists it and as its URL carries it."""

    section: str
    script: str  # relative to the app folder
    title: str
    icon: str
    url_path: str
    url_prefix: str = ""  # every query key the page binds starts with this
    url_keys: tuple[str, ...] = ()  # or is one of these (a page whose keys are its notation)
    legacy_prefixes: tuple[str, ...] = ()  # earlier prefixes, still read from old links
    default: bool = False  # served at "/" (its own url_path is reserved, not served)
    hidden: bool = False  # not listed in the navigation
    aliases: tuple[str, ...] = ()  # more url paths serving the same page (hidden): /sanity, /one-token

    def owns(self, key: str) -> bool:
        """Whether ``key`` is one of this page's URL keys."""
        return key in self.url_keys or bool(self.url_prefix) and key.startswith(self.url_prefix)


ONE_TOKEN_KEYS = ("v_old", "R", "eps", "v", "conv", "live")

PAGES: tuple[PageEntry, ...] = (
    PageEntry(
        "Learn", "pages/tour.py", "Guided tour", ":material/explore:", "tour", url_prefix="t_", aliases=("guided-tour",)
    ),
    PageEntry(
        "Learn",
        "pages/dynamics.py",
        "Critic dynamics",
        ":material/animation:",
        "dynamics",
        url_prefix="d_",
        aliases=("critic-dynamics",),
    ),
    PageEntry("Learn", "pages/clipping.py", "Does clipping help?", ":material/science:", "clipping", url_prefix="ab_"),
    PageEntry(
        "Explore",
        "pages/explore.py",
        "One token",
        ":material/my_location:",
        "explore",
        url_keys=ONE_TOKEN_KEYS,
        aliases=("one-token", "token"),
    ),
    # The default page is served at "/" only (its own url_path is reserved, not served), so One token is
    # listed once at /explore, where deep links like /explore?v=0.5 land, and served again, hidden, at "/".
    PageEntry(
        "Explore",
        "pages/explore.py",
        "One token",
        ":material/my_location:",
        "index",
        url_keys=ONE_TOKEN_KEYS,
        default=True,
        hidden=True,
    ),
    PageEntry(
        "Explore",
        "pages/surfaces.py",
        "Loss surfaces",
        ":material/map:",
        "surfaces",
        url_prefix="sf_",
        legacy_prefixes=("s_",),
        aliases=("loss-surfaces",),
    ),
    PageEntry("Explore", "pages/gradients.py", "Gradients", ":material/functions:", "gradients", url_prefix="g_"),
    PageEntry("Tools", "pages/batch.py", "Batch", ":material/inventory_2:", "batch", url_prefix="b_"),
    PageEntry(
        "Tools",
        "pages/sanity.py",
        "Sanity check",
        ":material/health_and_safety:",
        "sanity-check",
        url_prefix="s_",
        aliases=("sanity",),
    ),
    PageEntry("Tools", "pages/your_run.py", "Your run", ":material/monitoring:", "your-run", url_prefix="yr_"),
    PageEntry("Tools", "pages/timing.py", "Timing", ":material/timer:", "timing", url_prefix="tm_"),
    PageEntry("Tools", "pages/scale.py", "Scale", ":material/lan:", "scale", url_prefix="sc_"),
)


def page_for_title(title: str) -> PageEntry:
    """The (listed) entry of the page titled ``title``."""
    matches = [p for p in PAGES if p.title == title and not p.hidden]
    if len(matches) != 1:
        raise KeyError(f"no single page titled {title!r} in pages/registry.py")
    return matches[0]


def page_for_script(script: str) -> PageEntry:
    """The (listed) entry of ``pages/<name>.py``."""
    matches = [p for p in PAGES if p.script == script and not p.hidden]
    if len(matches) != 1:
        raise KeyError(f"no single page for {script!r} in pages/registry.py")
    return matches[0]


def page_for_path(url_path: str) -> PageEntry:
    """The entry serving ``url_path`` (an alias included; "" is the default page)."""
    for p in PAGES:
        if (p.default and url_path == "") or (not p.default and url_path in (p.url_path, *p.aliases)):
            return p
    raise KeyError(f"no page at /{url_path} in pages/registry.py")


def served_paths() -> list[str]:
    """Every url path the navigation serves, aliases included ("" is the root)."""
    return [path for p in PAGES for path in ([""] if p.default else [p.url_path, *p.aliases])]


def navigation_pages() -> dict[str, list]:
    """``st.navigation``'s argument: the sections in order, each with its ``st.Page`` objects (aliases hidden)."""
    import streamlit as st

    sections: dict[str, list] = {}
    for p in PAGES:
        for url_path, hidden in ((p.url_path, p.hidden), *((alias, True) for alias in p.aliases)):
            sections.setdefault(p.section, []).append(
                st.Page(
                    APP_FOLDER / p.script,
                    title=p.title,
                    icon=p.icon,
                    url_path=url_path,
                    default=p.default and url_path == p.url_path,
                    visibility="hidden" if hidden else "visible",
                )
            )
    return sections


def started_from_app_py() -> bool:
    """Whether this process is ``streamlit run app.py`` (Streamlit puts the script first in ``sys.argv``)."""
    return bool(sys.argv) and Path(sys.argv[0]).resolve() == APP_FOLDER / "app.py"


def run_navigation() -> None:
    """app.py's router: the navigation from the page table, then the chosen page, and above it what the page
    could not take from the link (``pages.common.run_and_report``)."""
    import streamlit as st

    from pages.common import run_and_report  # pages.common imports this module

    global navigation_ran
    navigation_ran = True
    page = st.navigation(navigation_pages())
    run_and_report(page_for_path(page.url_path), page.run)
