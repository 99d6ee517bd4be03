"""Streamlit helpers every page uses: the shared legend, error boundaries and the share link.

Pages import this module; it holds no arithmetic (that lives in ``valueloss``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
import streamlit as st
from PIL import Image
from streamlit.errors import StreamlitAPIException
from streamlit.logger import get_logger

from pages import registry
from valueloss import CONVENTIONS
from valueloss.notation import COLORS, legend_html
from valueloss.teach.explain import CONVENTION_LABELS
from valueloss.teach.glossary import GLOSSARY, mentioned
from valueloss.tools import idle
from valueloss.tools.batch import MAX_TOKENS, PADDING_CHOICES, SYNTHETIC_PARAMS, Batch, synthetic_batch
from valueloss.tools.batch_files import load_batch_file

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
    """Hand a deep-linked first visit on a fresh server over to app.py, with public calls only.

    Until some session has called ``st.navigation``, Streamlit treats ``pages/`` beside app.py as a
    legacy pages folder: a link such as ``/tour`` runs that page alone, with a sidebar listing every
    file in ``pages/`` and without app.py's navigation and settings (reproduced in
    tests/app/test_streamlit_as_documented.py, which fails once an upgrade fixes it). The documented
    switch is ``st.navigation`` itself ("as soon as any session executes st.navigation, your app will
    ignore the pages/ directory"): the page calls it with the app's own page table, so this very link
    resolves to itself, then reruns, and the rerun goes through app.py as every later visit does.
    """
    if registry.navigation_ran or not registry.started_from_app_py():
        return
    registry.navigation_ran = True
    set_app_page_config()  # before the navigation: else the browser takes a page's Material icon as favicon
    st.navigation(registry.navigation_pages(), position="hidden")
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
_DROPPED_NOTE = "_dropped_link_values"  # session_state: what the guard dropped, for the rerun to say


def number_table(data, formats: dict[str, str], order: list[str] | None = None) -> None:
    """``data`` as a dataframe without its index, each column named in ``formats`` shown with that printf format,
    in the column ``order`` given (default: the data's)."""
    st.dataframe(
        data,
        hide_index=True,
        column_order=order,
        column_config={column: st.column_config.NumberColumn(format=f) for column, f in formats.items()},
    )


def metric_row(metrics: Sequence[tuple[str, float | int | str | None, str | None]]) -> None:
    """(label, value, help) metrics side by side, each as wide as its label and value: they wrap onto the next
    line on a narrow window instead of cutting their labels off (a fixed width cut the longer ones)."""
    row = st.container(horizontal=True, gap="medium")
    for label, value, help_text in metrics:
        row.metric(label, value, help=help_text, width="content")


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


def _rewrite_query_then_rerun(drop: list[str], rename: dict[str, str]) -> bool:
    """Drop and rename query keys before any widget is built, then rerun so the widgets read the new URL.

    Bound widgets seed themselves from the query string their run started with, so a changed value
    reaches them on the next run: ``st.rerun`` starts it from the address as just rewritten. A key
    that a widget of this session already binds cannot be rewritten by the page (Streamlit forbids
    it); it is left alone. Returns whether a rerun was needed (it does not return then).
    """
    changed = False
    for key in [*drop, *rename]:
        values = st.query_params.get_all(key)
        try:
            del st.query_params[key]
        except StreamlitAPIException:
            continue
        if key in rename:
            st.query_params[rename[key]] = values if len(values) > 1 else values[0]
        changed = True
    if changed:
        st.rerun()
    return changed


def read_old_link_keys(entry: registry.PageEntry) -> None:
    """An old link's keys (``legacy_prefixes``) read as the page's current ones (e.g. ``s_eps`` -> ``sf_eps``)."""
    rename = {}
    for key in list(st.query_params):
        for old in entry.legacy_prefixes:
            new = entry.url_prefix + key.removeprefix(old)
            if key.startswith(old) and not entry.owns(key) and new not in st.query_params:
                rename[key] = new
    if rename:
        _rewrite_query_then_rerun([], rename)


def guard_query_params() -> list[str]:
    """Drop every infinite query value before any widget reads it (the rerun's notice says which, and why).

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
        st.session_state[_DROPPED_NOTE] = dropped  # said by the rerun's notice, whose widgets no longer see them
        _rewrite_query_then_rerun(list(dropped), {})
    return list(dropped)


# ------------------------------------------------------------------------------------------------
# What a link asked for and could not get: one notice, on every page


@dataclass(frozen=True)
class LinkValue:
    """A value of the link that the page did not use as given: the key, what the link said, what is used, why."""

    key: str
    given: str
    used: str | None  # None: nothing on this page reads the key
    why: str


_LINK_NOTES = "_link_notes"  # session_state: page url path -> the LinkValues still shown
_STREAMLIT_KEYS = ("embed", "embed_options")  # Streamlit's own query keys


def link_values() -> dict[str, list[str]]:
    """The query string as this run starts: every key with all its values (``report_link_values`` compares)."""
    return {key: st.query_params.get_all(key) for key in st.query_params}


def _shown(value) -> str:
    """A control's value as the link would carry it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_shown(v) for v in value) or "none"
    return "empty" if value is None else str(value)


def _as_number(text: str) -> float | None:
    try:
        x = float(text)
    except (ValueError, OverflowError):
        return None
    return x if math.isfinite(x) else None


def _taken(given: list[str], used) -> bool:
    """Whether a control now holding ``used`` took the link's ``given`` values (as Streamlit parses them)."""
    last = given[-1] if given else ""
    if isinstance(used, bool):
        return last.lower() == str(used).lower()
    if isinstance(used, (int, float)):
        return _as_number(last) == used
    if isinstance(used, (list, tuple)):
        return len(given) == len(used) and all(_taken([g], u) for g, u in zip(given, used, strict=True))
    if used is None:
        return last == ""
    return last == str(used)


def _why(given: list[str], used) -> str:
    """In a few words, why a control could not take ``given`` (what kind of value it holds tells which)."""
    number = _as_number(given[-1]) if given else None
    if isinstance(used, bool):
        return "not true or false"
    if isinstance(used, (int, float)) or used is None:
        if number is None:
            return "not a number"
        if isinstance(used, int) and number != int(number):
            return "not a whole number"
        return "outside the range its control allows"
    if isinstance(used, (list, tuple)):
        return "not among its choices, or more of them than it takes"
    return "not one of its choices"


def unused_link_values(
    entry: registry.PageEntry, given: dict[str, list[str]], after: dict[str, list[str]], state
) -> list[LinkValue]:
    """The link's values this page did not use as given, from the query string the run started with (``given``),
    the one it ended with (``after``) and the controls' values (``state``: session state).

    A control bound to the URL holds its key in session state; a value it could not take (out of range, not a
    number, not an option) left it at its default, and Streamlit took it out of the address. A value is taken
    when the control holds it, or when the address still carries it (a picker with labels stores the label
    there and the option in its state). A key no control of this page reads is reported only when it is
    another page's key, or no page's.
    """
    out = []
    for key, values in given.items():
        if key in _STREAMLIT_KEYS:
            continue
        if key in state:
            used = state[key]
            simple = isinstance(used, (bool, int, float, str, list, tuple)) or used is None  # not a component's
            if simple and not _taken(values, used) and after.get(key) != values:
                out.append(LinkValue(key, ", ".join(values), _shown(used), _why(values, used)))
            continue
        if entry.owns(key) or any(key.startswith(old) for old in entry.legacy_prefixes):
            continue  # the page's own key, read in another of its modes (or not by a control, like t_progress)
        owners = [p.title for p in registry.PAGES if not p.hidden and p.owns(key)]
        why = f"a setting of {owners[0]}, not of {entry.title}" if owners else "not a setting of any page"
        out.append(LinkValue(key, ", ".join(values), None, why))
    return out


def run_and_report(entry: registry.PageEntry, run) -> None:
    """Run a page (``run()``), then say above it what of the link it could not use (:func:`report_link_values`)
    and, on the default page, whether the link named no page at all (:func:`report_unknown_path`). The query
    string is read before the page's widgets take it and correct it."""
    notices = st.container()
    given = link_values()
    run()
    if entry.default:
        report_unknown_path(notices)
    report_link_values(notices, entry, given)


_UNKNOWN_PATH_SAID = "_unknown_path_said"  # session_state: the page list is offered once per visit


def unknown_path(url: str | None, base: str = "") -> str | None:
    """The path of ``url`` when no page of the app serves it (Streamlit then says "Page not found" and runs
    the default page), else None. ``base``: the server's baseUrlPath, which is not part of a page's path."""
    if not url:
        return None
    path = urlsplit(url).path.strip("/")
    base = base.strip("/")
    if base and (path == base or path.startswith(base + "/")):
        path = path[len(base) :].strip("/")
    return None if path in registry.served_paths() else path


def report_unknown_path(container) -> None:
    """A link to a path no page serves lands on the default page: say so once, and list the pages to go to."""
    if st.session_state.get(_UNKNOWN_PATH_SAID):
        return
    path = unknown_path(st.context.url, st.get_option("server.baseUrlPath") or "")
    if path is None:
        return
    st.session_state[_UNKNOWN_PATH_SAID] = True
    pages = " · ".join(f"[{p.title}](./{p.url_path})" for p in registry.PAGES if not p.hidden)
    container.info(f"There is no page at /{literal(path[:80])}, so this is the first page. The pages: {pages}.")


def report_link_values(container, entry: registry.PageEntry, given: dict[str, list[str]]) -> None:
    """Say, in ``container`` (above the page), which of the link's values the page could not use: the key, the
    value given, the value used and why. A note stays while its control still holds the value used (a rerun
    does not hide it) and goes once the visitor changes it."""
    notes = dict(st.session_state.get(_LINK_NOTES, {}))
    kept = [
        n
        for n in notes.get(entry.url_path, [])
        if (_shown(st.session_state.get(n.key)) == n.used if n.used is not None else n.key in st.query_params)
    ]
    dropped = st.session_state.pop(_DROPPED_NOTE, {})
    fresh = [
        LinkValue(key, value, _shown(st.session_state.get(key)), "an infinite number, which no control takes")
        for key, value in dropped.items()
    ] + unused_link_values(entry, given, link_values(), st.session_state)
    shown = list({n.key: n for n in kept + fresh}.values())
    notes[entry.url_path] = shown
    st.session_state[_LINK_NOTES] = notes
    if not shown:
        return
    lines = [
        f"- {literal(n.key[:40])} = {literal(n.given[:40])}: {n.why}; "
        + ("ignored." if n.used is None else f"using {literal(n.used[:40])}.")
        for n in shown
    ]
    container.warning(
        "**This link asked for values the page cannot use:**\n" + "\n".join(lines), icon=":material/link_off:"
    )


def set_app_page_config() -> None:
    """The app's title, favicon and layout, sent before any navigation: a navigation message that arrives
    first makes the browser set the current page's ``:material/...:`` icon as favicon, fetched from
    fonts.gstatic.com."""
    st.set_page_config(page_title="valueloss: the clipped value loss, explained", page_icon=app_icon(), layout="wide")


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


# The Batch and Sanity check pages share these caches: the same synthetic batch or upload is built once.
# cache_resource: a hit hands back the Batch itself (cache_data unpickled its tensors on every rerun, a sixth
# of a Batch rerun); nothing downstream writes into a Batch's tensors.
@st.cache_resource(max_entries=16, show_spinner=False)
def cached_synthetic(params: tuple) -> Batch:
    return synthetic_batch(**dict(params))


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_upload(name: str, file_id: str, width: int | None, _data: bytes) -> Batch:
    """Keyed by the upload's id (hashing 20 MB on every rerun would cost more than the page)."""
    return load_batch_file(name, _data, width=width)


def release_memory_when_idle() -> None:
    """Count this run as a visit to the server's idle watcher (started by the first run): once no tab has
    been connected for a while, every cache is emptied and the free heap handed back
    (:mod:`valueloss.tools.idle`): what a class's visitors cached is freed once they have gone."""
    runtime = st.runtime.get_instance() if st.runtime.exists() else None
    if type(runtime) is not st.runtime.Runtime:  # AppTest stands a mock in for the server: nothing to watch
        return

    def connected() -> bool:
        return runtime.state == st.runtime.RuntimeState.ONE_OR_MORE_SESSIONS_CONNECTED

    def empty_caches() -> None:
        st.cache_data.clear()
        st.cache_resource.clear()

    get_logger(idle.__name__)  # its release lines go to the server's log, in Streamlit's format and level
    idle.watch("app", connected, empty_caches).visited()


# Plotly's toolbar appears on hover in a figure's top-right corner, where on a narrow window it covered the
# figure's title or legend: every page gives it a band of its own above each figure. The band is a margin of
# the element that holds the figure (that element is exactly the figure's height and clips what overflows it,
# so space made inside it would cut the figure's bottom off), and the toolbar moves up into it.
_TOOLBAR_BAND = 28  # px, the toolbar's height and a little air
PAGE_CSS = f"""<style>
[data-testid="stElementContainer"]:has([data-testid="stPlotlyChart"]) {{
  margin-top: {_TOOLBAR_BAND}px; overflow: visible;
}}
[data-testid="stPlotlyChart"] .js-plotly-plot {{ overflow: visible !important; }}
[data-testid="stPlotlyChart"] .modebar-container {{ top: -{_TOOLBAR_BAND}px !important; }}
</style>"""


def page_setup(title: str, question: str) -> None:
    """Title, the one question this page answers, and the shared legend in the sidebar.

    Runs before any widget: unusable URL values are dropped first (:func:`guard_query_params`).
    """
    _run_through_app()
    guard_query_params()
    read_old_link_keys(registry.page_for_title(title))
    st.html(PAGE_CSS)  # style only: Streamlit applies it without taking room on the page
    explain_terms_afresh()
    st.title(title)
    st.caption(question)
    legend()


_TERMS_SAID = "_terms_said"  # session_state: the glossary terms this run of the page has explained


def legend() -> None:
    """The shared legend in the sidebar: the notation and its colours, then the terms of art."""
    with st.sidebar, st.expander("Legend: notation, colours and terms", expanded=False):
        st.html(legend_html())
        st.markdown("\n".join(f"- {t.sentence}" for t in GLOSSARY))


def explain_terms_afresh() -> None:
    """From here on, explain every term again: at the start of a page's run, or of a fragment's rerun (whose
    earlier captions are redrawn with it)."""
    st.session_state[_TERMS_SAID] = set()


def explain_terms(*texts: str) -> None:
    """Under text that uses terms of art (σ_R, gas, DDP, #6957...), one caption that explains those the page has
    not explained yet in this run: each term is explained where it is first used."""
    said = st.session_state.setdefault(_TERMS_SAID, set())
    new = [t for t in mentioned(*texts) if t.term not in said]
    if new:
        said.update(t.term for t in new)
        st.caption(" ".join(t.sentence for t in new))


def share_link() -> None:
    """A visible button that copies the URL reproducing what is on screen."""
    st.iframe(_SHARE_HTML, height=40)


_BOX = {"warning": st.warning, "info": st.info, "ok": st.success}
_ICON = {"warning": ":material/warning:", "info": ":material/info:", "ok": ":material/check_circle:"}


def links_markdown(links, sep: str = " · ") -> str:
    """Links (threads, sources) as markdown, each named by its label (``owner/repo#n``)."""
    return sep.join(f"[{link.label}]({link.url})" for link in links)


def show_finding(finding) -> None:
    """One finding (or verdict) in the box of its severity: the title, the words, the threads it cites, and
    for advice from partial evidence, what it could not check."""
    text = f"**{finding.title}**\n\n{finding.explanation}"
    if finding.links:
        text += f"\n\n{links_markdown(finding.links)}"
    unchecked = getattr(finding, "unchecked", ())
    if unchecked:
        text += "\n\n*Not checked:* " + "; ".join(unchecked) + "."
    _BOX[finding.severity](text, icon=_ICON[finding.severity])


def drawn_when_open(label: str, key: str, icon: str):
    """An expander whose content is drawn only while it is open (``None`` when closed): a closed expander would
    still run its widgets, tables and figures on every rerun of the page, and the browser would redraw them."""
    box = st.expander(label, icon=icon, key=key, on_change="rerun")
    return box if box.open else None


@contextmanager
def shows_errors(what: str):
    """Turn a bad-input error from the core into ``st.error`` and keep the rest of the page alive."""
    try:
        yield
    except (ValueError, TypeError) as err:
        # Messages quote the user's file name, column names and cells: shown literally, never as markdown.
        st.error(literal(f"{what}: {err}"))


EPS_MAX = 1000.0  # the largest clip parameter a page takes: eps in the units of unnormalised RLHF returns


def eps_input(label: str, key: str, value: float, help: str) -> float:
    """The clip parameter as One token, Batch and Sanity check take it: typed, 0 to ``EPS_MAX`` in steps of
    0.01, three decimals, bound to the URL."""
    return st.number_input(label, 0.0, EPS_MAX, value, 0.01, format="%.3f", key=key, bind="query-params", help=help)


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


def synthetic_controls(prefix: str) -> dict[str, float | str]:
    """One widget per synthetic-batch parameter, bound to the URL as ``<prefix><name>``.

    The Batch and Sanity-check pages share it, so both build the same batch from the same link.
    """
    params: dict[str, float | str] = {}
    for p in SYNTHETIC_PARAMS:
        key = prefix + p.name
        if p.slider:
            params[p.name] = st.slider(
                p.label, p.low, p.high, p.default, p.step, key=key, bind="query-params", help=p.help
            )
        else:
            params[p.name] = st.number_input(
                p.label, p.low, p.high, p.default, p.step, key=key, bind="query-params", help=p.help
            )
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
    """A plane as the sidebar reads it; its fields are ``live_surfaces``' arguments, so Surfaces passes it whole."""

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
