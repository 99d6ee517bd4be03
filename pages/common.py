"""Streamlit helpers every page uses: the shared legend, error boundaries and the share link.

Pages import this module; it holds no arithmetic (that lives in ``valueloss``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import streamlit as st

from valueloss import CONVENTIONS
from valueloss.batches import PADDING_CHOICES, SYNTHETIC_PARAMS
from valueloss.explain import CONVENTION_LABELS
from valueloss.theme import legend_html

# Copies the browser's current address (which already carries every bound widget's value).
_SHARE_HTML = """
<div style="font-family:sans-serif;font-size:13px;display:flex;gap:8px;align-items:center">
  <button id="copy" style="padding:4px 10px;border:1px solid #999;border-radius:6px;background:#fff;cursor:pointer">
    Copy link to this view</button>
  <span id="status" style="color:#555"></span>
</div>
<script>
const btn = document.getElementById("copy");
const status = document.getElementById("status");
btn.onclick = async () => {
  const href = window.parent.location.href;
  try { await navigator.clipboard.writeText(href); status.textContent = "copied: " + href; }
  catch (e) { status.textContent = href; }
};
</script>
"""


def _run_through_app() -> None:
    """Hand a deep-linked first visit back to app.py.

    Until app.py has run once on a fresh server, Streamlit treats ``pages/`` as an old-style pages
    folder: a link such as ``/tour`` runs that page alone, with a sidebar listing every file in
    ``pages/`` and without app.py's navigation and settings. Clearing that flag and rerunning makes
    this very run go through app.py, as every later visit does.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def page_setup(title: str, question: str) -> None:
    """Title, the one question this page answers, and the shared legend in the sidebar."""
    _run_through_app()
    st.title(title)
    st.caption(question)
    with st.sidebar, st.expander("Legend: notation and colours", expanded=False):
        st.html(legend_html())


def share_link() -> None:
    """A visible button that copies the URL reproducing what is on screen."""
    st.iframe(_SHARE_HTML, height=40)


@contextmanager
def shows_errors(what: str):
    """Turn a bad-input error from the core into ``st.error`` and keep the rest of the page alive."""
    try:
        yield
    except (ValueError, TypeError) as err:
        st.error(f"{what}: {err}")


def synthetic_controls(prefix: str) -> dict:
    """One widget per synthetic-batch parameter, bound to the URL as ``<prefix><name>``.

    The Batch and Sanity-check pages share it, so both build the same batch from the same link.
    """
    params = {}
    for p in SYNTHETIC_PARAMS:
        kwargs = dict(key=prefix + p.name, bind="query-params", help=p.help)
        if p.slider:
            params[p.name] = st.slider(p.label, p.low, p.high, p.default, p.step, **kwargs)
        else:
            params[p.name] = st.number_input(p.label, p.low, p.high, p.default, p.step, **kwargs)
    params["padding"] = st.selectbox(
        "padding",
        PADDING_CHOICES,
        key=prefix + "padding",
        bind="query-params",
        help="'nan' puts NaN in the padded slots of vpreds (an unmasked critic output): see which modes it poisons.",
    )
    return params


# The second axis of a plane (the first is always v) -> (x axis, y axis, the coordinate held fixed).
AXIS_PAIRS = {"R": ("v", "R", "v_old"), "v_old": ("v", "v_old", "R")}
MIN_POINTS, MAX_POINTS, DEFAULT_POINTS = 20, 400, 200


@dataclass(frozen=True)
class Plane:
    pair: str
    x_axis: str
    y_axis: str
    fixed_axis: str
    fixed: float
    eps: float
    half_width: float
    n: int
    convention: str


def plane_controls(prefix: str, convention_label: str = "Clip convention", convention_help: str | None = None) -> Plane:
    """The sidebar controls of a (v, R) or (v, v_old) plane, bound to the URL as ``<prefix><name>``.

    Shared by the Surfaces and Gradients pages so both read a plane the same way.
    """
    st.subheader("Plane")
    pair = st.radio(
        "Second axis (the first is v)",
        list(AXIS_PAIRS),
        captions=["v_old held fixed", "R held fixed"],
        key=prefix + "axes",
        bind="query-params",
        horizontal=True,
    )
    x_axis, y_axis, fixed_axis = AXIS_PAIRS[pair]
    fixed = st.slider(
        f"{fixed_axis}, held fixed",
        -10.0,
        10.0,
        0.0,
        0.05,
        key=prefix + "fixed",
        bind="query-params",
        help="The third coordinate; both axes are centred on it.",
    )
    eps = st.slider("ε: clip range", 0.0, 2.0, 0.2, 0.01, key=prefix + "eps", bind="query-params")
    half_width = st.slider(
        "Half-width of each axis",
        0.5,
        10.0,
        1.5,
        0.5,
        key=prefix + "span",
        bind="query-params",
        help="Each axis runs from the fixed value minus this to the fixed value plus this.",
    )
    n = st.slider(
        "Resolution (points per axis)",
        MIN_POINTS,
        MAX_POINTS,
        DEFAULT_POINTS,
        10,
        key=prefix + "n",
        bind="query-params",
        help=f"At most {MAX_POINTS}: a finer grid only costs time, the regions are bounded by straight lines.",
    )
    convention = st.radio(
        convention_label,
        CONVENTIONS,
        captions=[CONVENTION_LABELS[c] for c in CONVENTIONS],
        key=prefix + "conv",
        bind="query-params",
        help=convention_help,
    )
    return Plane(pair, x_axis, y_axis, fixed_axis, fixed, eps, half_width, n, convention)
