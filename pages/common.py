"""Streamlit helpers every page uses: the shared legend, error boundaries and the share link.

Pages import this module; it holds no arithmetic (that lives in ``valueloss``).
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image

from valueloss import CONVENTIONS
from valueloss.teach.explain import CONVENTION_LABELS
from valueloss.tools.batch import MAX_TOKENS, PADDING_CHOICES, SYNTHETIC_PARAMS
from valueloss.viz.theme import COLORS, legend_html

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


# Markdown that could make a message fetch, link or render: links and images ([]()!<>), code, emphasis,
# tables, strikethrough, LaTeX ($), HTML entities (&) and the escape character itself. The rest of the
# text stays readable (and searchable in tests).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\](){}<>!|~$&#])")
# GFM turns bare URLs (http://, www.) and e-mail addresses into live links after parsing, whatever the
# escapes, and Streamlit reads :name: and :red[...] as icons and colours. An invisible WORD JOINER
# (U+2060, not whitespace, so no autolink may start after it) before ':' and '@' and inside 'www.'
# breaks each of those patterns without changing what the reader sees.
_JOINER = "\u2060"
_LONGEST_SHOWN = 2000


def literal(text: object) -> str:
    """``text`` escaped so that ``st.error`` / ``st.warning`` show it as written, never as markdown.

    Markdown-significant characters get a backslash (CommonMark renders an escaped ASCII
    punctuation character as itself), autolinks and Streamlit's :directives: are broken with an
    invisible joiner, line breaks become spaces, and very long text is cut.
    """
    text = str(text)
    if len(text) > _LONGEST_SHOWN:
        text = text[:_LONGEST_SHOWN] + " …"
    text = re.sub(r"\s*[\r\n]+\s*", " ", text)
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    text = re.sub(r"(?i)(www)\.", "\\1" + _JOINER + ".", text)
    return re.sub(r"([:@])", _JOINER + r"\1", text)


def _unusable_query_value(value: str) -> bool:
    """A URL value that crashes Streamlit's integer widgets: an infinite number (``inf``, ``-1e309``).

    An integer number_input turns the value into ``int(float(value))`` before its range check, and
    ``int(inf)`` raises OverflowError (Streamlit catches the ValueError of ``int(nan)``, not this), so
    the page would crash on every reload of that link. Only infinities are dropped: ``nan`` and text
    can be an option's name (the padding selectbox offers "nan"), and every widget maps a value it
    cannot take to its default itself; tests/app/test_url_fuzz.py holds every page to that.
    """
    try:
        return math.isinf(float(value))
    except (ValueError, OverflowError):
        return False


def _forget_query_params(keys: list[str]) -> None:
    """Remove ``keys`` from the address bar and from the snapshot widgets are seeded from.

    ``del st.query_params[key]`` alone is not enough: a bound widget seeds itself from the query
    string as the session first saw it, so the value must leave that snapshot too. Streamlit has no
    public call for it; ``QueryParams.remove_param`` and ``set_initial_query_params_from_current``
    are what Streamlit itself uses to drop an invalid URL value and to re-snapshot after a page
    change. tests/app/test_url_fuzz.py fails if a Streamlit upgrade moves them.
    """
    from streamlit.runtime.state.session_state_proxy import get_session_state

    with get_session_state().query_params() as qp:
        for key in keys:
            qp.remove_param(key)
        qp.set_initial_query_params_from_current()


def guard_query_params() -> list[str]:
    """Drop every infinite query value before any widget reads it; say which, and why.

    One rule for every page and every bound widget (a number, a slider, a selectbox alike), so a new
    widget needs no entry in a table. Dropping the value also removes it from the browser's address,
    so a reload shows the working page. Returns the dropped keys.
    """
    dropped = {}
    for key in list(st.query_params.keys()):
        values = st.query_params.get_all(key)
        if any(_unusable_query_value(v) for v in values):
            dropped[key] = values[0]
    if dropped:
        _forget_query_params(list(dropped))
        shown = ", ".join(f"{key[:40]}={value[:40]}" for key, value in dropped.items())
        st.warning(
            literal(
                f"Ignored the link's {shown}: an infinite number, which no control takes. "
                "The default is used instead; change it with the control."
            ),
            icon=":material/link_off:",
        )
    return list(dropped)


def app_icon(size: int = 32) -> Image.Image:
    """The app's icon: a falling curve (the loss) in the theme's blue, on white.

    Drawn here and served by Streamlit itself: a ``:material/...:`` page icon makes the browser fetch
    the favicon from fonts.gstatic.com, and the app must work offline.
    """
    rgb = np.full((size, size, 3), 255, dtype=np.uint8)
    blue = np.array([int(COLORS["unclipped"][i : i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)
    x = np.linspace(0.0, 1.0, 4 * size)
    y = 0.15 + 0.7 * (1.0 - x) ** 2  # a parabola's right half: the loss falling toward its minimum
    cols = np.clip((0.1 + 0.8 * x) * (size - 1), 0, size - 1).round().astype(int)
    rows = np.clip((1.0 - y) * (size - 1), 0, size - 1).round().astype(int)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            rgb[np.clip(rows + dr, 0, size - 1), np.clip(cols + dc, 0, size - 1)] = blue
    return Image.fromarray(rgb)  # st.set_page_config takes an image, not an array (it compares with ==)


def page_setup(title: str, question: str) -> None:
    """Title, the one question this page answers, and the shared legend in the sidebar.

    Runs before any widget: unusable URL values are dropped first (:func:`guard_query_params`).
    """
    _run_through_app()
    guard_query_params()
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
        # Messages quote the user's file name, column names and cells: shown literally, never as markdown.
        st.error(literal(f"{what}: {err}"))


def upload_width_input(prefix: str) -> int | None:
    """The padded width T of an uploaded batch (verl's response_length); empty: taken from the file."""
    return st.number_input(
        "padded width T (response_length)",
        min_value=1,
        max_value=MAX_TOKENS,
        value=None,
        step=1,
        key=prefix + "width",
        bind="query-params",
        placeholder="from the file",
        help="The width the trainer padded the responses to. seq-mean-token-sum-norm divides by it. Empty: the "
        ".npz arrays' width, or for .csv / .parquet the longest row (largest t + 1), which is narrower than "
        "the trainer's width when no row reaches it.",
    )


def width_caption(file_name: str, width: int | None, used: int) -> str:
    """Which padded width the analysis uses, and where it comes from."""
    if width is not None:
        source = "as given"
    elif file_name.lower().endswith(".npz"):
        source = "the arrays' width"
    else:
        source = "from the longest row (largest t + 1); set the padded width if the trainer padded wider"
    return literal(f"Padded width T = {used:,}: {source}.")


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
