"""Helpers the page tests share: open or run a page under AppTest, read what it shows.

The ``upload`` fixture that stands in for ``st.file_uploader`` lives in ``conftest.py`` beside this file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def page_file(page: str) -> str:
    """The script of ``pages/<page>.py``."""
    return str(ROOT / "pages" / f"{page}.py")


def page_test(page: str, *, timeout: float = 60) -> AppTest:
    """A fresh, not yet run, AppTest of one page."""
    return AppTest.from_file(page_file(page), default_timeout=timeout)


def run_page(page: str, query: dict | None = None, *, timeout: float = 60) -> AppTest:
    """Open one page with a query string and check it ran without an exception.

    Values go in as the URL carries them: text, or a list of texts for a key repeated in the URL.
    """
    at = page_test(page, timeout=timeout)
    for key, value in (query or {}).items():
        at.query_params[key] = [str(v) for v in value] if isinstance(value, list | tuple) else str(value)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def metric(at: AppTest, label_start: str) -> str:
    """The value of the first metric whose label starts with ``label_start``."""
    return next(m.value for m in at.metric if m.label.startswith(label_start))


def plotly_specs(at: AppTest) -> list[dict]:
    """Every Plotly figure on the page, as the JSON the browser receives."""
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def live_component(at: AppTest) -> dict:
    """The data the page hands its one live (custom) component."""
    components = at.get("bidi_component")
    assert len(components) == 1
    return json.loads(components[0].proto.json)


@dataclass
class FakeUpload:
    """What st.file_uploader returns: a name, an id and the bytes."""

    name: str
    data: bytes
    file_id: str = "fake-1"

    def getvalue(self) -> bytes:
        return self.data


def plain(markdown: str) -> str:
    """What the reader sees of ``pages.common.literal``'s output: escapes resolved, the invisible joiners dropped."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def bound_url_keys(at: AppTest) -> set[str]:
    """The query keys of every widget on the page bound to the URL (``bind="query-params"``)."""
    found: set[str] = set()

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        key = getattr(proto, "query_param_key", "") if proto is not None else ""
        if key:
            found.add(key)
        children = getattr(node, "children", None)
        for child in children.values() if isinstance(children, dict) else children or []:
            walk(child)

    walk(at._tree)
    return found


HARNESS_PAGE = "_harness_page"  # session state: the url path tests/app/link_harness.py runs


def run_link(url_path: str, query: dict | None = None, *, timeout: float = 120) -> AppTest:
    """Open ``/<url_path>?<query>`` as a browser does, the page run as app.py runs it (``pages.common.run_and_report``:
    it also says what the link asked for and the page could not use), and check it ran without an exception."""
    at = AppTest.from_file(str(ROOT / "tests" / "app" / "link_harness.py"), default_timeout=timeout)
    at.session_state[HARNESS_PAGE] = url_path
    for key, value in (query or {}).items():
        at.query_params[key] = [str(v) for v in value] if isinstance(value, list | tuple) else str(value)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def link_notice(at: AppTest) -> str | None:
    """The notice listing the link's values the page could not use, or None."""
    return next((w.value for w in at.warning if "This link asked for values" in w.value), None)
