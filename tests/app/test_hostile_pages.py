"""The Batch and Sanity pages as a careless or hostile user meets them (issues 11 and 10.8).

A file's name, column names and cells reach the error box as literal text; an upload's padded width
can be given and the page says which width it uses; hostile files end in a message, the page alive;
users see no traceback (``client.showErrorDetails``). AppTest cannot drive ``st.file_uploader``, so it
is replaced by a stub that returns the file; everything after it is the pages' own code.
"""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

import valueloss as vl
from pages.common import literal
from tests.app.helpers import ROOT, plain, run_page
from tests.unit.test_hostile_inputs import HOSTILE
from valueloss.tools.batch import synthetic_batch
from valueloss.tools.batch_files import batch_to_long_frame, batch_to_npz

PAGES = {"batch": ("b_", "Batch"), "sanity": ("s_", "Sanity check")}


def run(page: str, query: dict[str, str]) -> AppTest:
    at = run_page(page, query, timeout=120)
    assert at.title[0].value == PAGES[page][1]
    return at


def upload_query(page: str, **extra) -> dict[str, str]:
    prefix = PAGES[page][0]
    source = {"batch": "upload", "sanity": "upload"}[page]
    return {prefix + "source": source} | {prefix + k: str(v) for k, v in extra.items()}


# ------------------------------------------------------------------------------------- literal text


MARKDOWN = [
    "![p](http://127.0.0.1:9/t.png)",
    "[click](http://127.0.0.1:9/x)",
    "<img src=http://127.0.0.1:9/t.png>",
    "http://127.0.0.1:9/bare and www.example.org and a@b.org",
    ":red[alarm] :material/warning: $x^2$ **bold** `code` | a | b |",
    "\\![p](x) \\\\[y](z)",
    "# heading\n- item\n\n> quote",
]


@pytest.mark.parametrize("text", MARKDOWN)
def test_literal_leaves_no_markdown_construct(text):
    """No unescaped link/image/code/math/HTML syntax survives, nor a bare URL, e-mail or :directive:."""
    out = literal(text)
    assert "\n" not in out
    unescaped = re.compile(r"(?<!\\)(?:\\\\)*[\[\]()<>!`*$|~&#]")  # a special character with no backslash
    assert not unescaped.search(out), out
    assert not re.search(r"https?:|www\.|\w@\w|(?<![\u2060]):\w", out), out
    # Reading it back (dropping escapes and joiners) gives the text as written, line breaks aside.
    assert plain(out) == re.sub(r"\s*\n\s*", " ", text)


@pytest.mark.parametrize("page", list(PAGES))
def test_an_upload_name_and_column_names_are_shown_literally(upload, page):
    name = "[x](http:y) $a$.csv"
    upload(name, b"row,t,vpreds,returns,![p](http://127.0.0.1:9/t.png)\n0,0,0,0,0\n")
    at = run(page, upload_query(page))
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    assert "](" not in errors[0] and "![" not in errors[0] and "http:" not in errors[0], errors[0]
    shown = plain(errors[0])
    assert "![p](http://127.0.0.1:9/t.png)" in shown, shown
    if page == "batch":
        assert shown.startswith(f"Could not use {name}: "), shown
    assert "missing column(s) values" in shown


@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize(
    "case",
    [
        "npz header declares 74.5 GiB",
        "npz members without .npy, not arrays",
        "wide csv",
        "npz of 2,000,000 one-token rows (12 MB)",
        "csv quoted field of 200,000 characters",
        "csv names vpreds twice",
    ],
)
def test_a_hostile_upload_ends_in_a_message_and_the_page_stays(upload, page, case):
    name, make, fragment = HOSTILE[case]
    upload(name, make())
    at = run(page, upload_query(page))
    errors = [plain(e.value) for e in at.error]
    assert any(re.search(fragment, e) for e in errors), errors
    assert not at.exception


# -------------------------------------------------------------------------------- the padded width


def _real_tokens_csv(batch) -> bytes:
    frame = batch_to_long_frame(batch)
    return frame[frame["mask"] == 1].to_csv(index=False).encode()


def test_batch_page_uses_the_given_width_and_says_so(upload):
    """issue 10.8: the CSV of real tokens and the NPZ give the same seq-mean-token-sum-norm once T is given."""
    b = synthetic_batch(seed=5, batch_size=4, min_len=3, max_len=12)
    want = vl.compute_value_loss(b.vpreds, b.returns, b.values, b.mask, 0.2, "seq-mean-token-sum-norm")[0].item()
    mode = "seq-mean-token-sum-norm"

    upload("b.csv", _real_tokens_csv(b))
    inferred = run("batch", upload_query("batch", mode=mode))
    assert any("from the longest row" in c.value for c in inferred.caption)
    loss = next(m.value for m in inferred.metric if m.label.startswith("vf_loss"))
    assert loss != f"{want:.4g}"

    given = run("batch", upload_query("batch", mode=mode, width=12))
    assert any("Padded width T = 12" in c.value and "as given" in c.value for c in given.caption)
    assert next(m.value for m in given.metric if m.label.startswith("vf_loss")) == f"{want:.4g}"
    assert given.number_input(key="b_width").value == 12

    upload("b.npz", batch_to_npz(b))
    npz = run("batch", upload_query("batch", mode=mode))
    assert any("the arrays' width" in c.value for c in npz.caption)
    assert next(m.value for m in npz.metric if m.label.startswith("vf_loss")) == f"{want:.4g}"


def test_sanity_page_takes_the_width_too(upload):
    b = synthetic_batch(seed=5, batch_size=4, min_len=3, max_len=12)
    upload("b.csv", _real_tokens_csv(b))
    at = run("sanity", upload_query("sanity", width=12))
    assert any("Padded width T = 12" in c.value for c in at.caption)
    narrow = run("sanity", upload_query("sanity", width=3))
    assert any("padded width given is 3" in e.value for e in narrow.error)


# ------------------------------------------------------------------------------------ error details


def _fail_with_a_secret():
    raise RuntimeError("secret-token at /srv/valueloss/private.py")


def test_users_see_no_error_details(monkeypatch):
    """Under the project's .streamlit/config.toml an unexpected exception shows no message, type or traceback."""
    from streamlit import config

    monkeypatch.chdir(ROOT)
    config.get_config_options(force_reparse=True)
    try:
        at = AppTest.from_function(_fail_with_a_secret).run()
    finally:
        monkeypatch.undo()
        config.get_config_options(force_reparse=True)
    (error,) = at.exception
    assert "secret" not in error.message and "RuntimeError" not in error.message
    assert not error.stack_trace


# ------------------------------------------------------------------- issue 21.3: clearing the caches


def test_clearing_every_cache_leaves_the_benchmark_lock_held():
    """What BackMsg(clear_cache) does server-side (st.cache_data and st.cache_resource cleared): the lock used
    to be a cached resource, so the clear made a new, free one. (tests/e2e/test_hostile_browser.py sends the
    real message from a websocket client.)"""
    import streamlit as st

    from tests.app.test_timing import press_run, texts
    from tests.app.test_timing import run as open_timing
    from valueloss.tools.exclusive import BENCHMARK_LOCK

    assert BENCHMARK_LOCK.acquire(blocking=False)  # another session's benchmark is running
    try:
        st.cache_data.clear()
        st.cache_resource.clear()
        second = press_run(open_timing(), impls=("verl-eager",))
        assert "Another session is running a benchmark" in texts(second.warning)
        assert "tm_result" not in second.session_state
    finally:
        BENCHMARK_LOCK.release()
