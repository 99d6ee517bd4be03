"""Fixtures the page tests share (their helper functions are in ``helpers.py``)."""

from __future__ import annotations

import pytest
import streamlit

from tests.app.helpers import FakeUpload


@pytest.fixture
def upload(monkeypatch):
    """Make st.file_uploader return the given file: ``upload(name, data, file_id)``; a name of None: nothing yet."""
    box = {"file": None}
    monkeypatch.setattr(streamlit, "file_uploader", lambda *a, **k: box["file"])

    def set_file(name, data=b"", file_id="fake-1"):
        box["file"] = None if name is None else FakeUpload(name, data, file_id)

    return set_file
