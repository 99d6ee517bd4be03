"""Fixtures the page tests share (their helper functions are in ``helpers.py``)."""

from __future__ import annotations

import hashlib

import pytest
import streamlit

from tests.app.helpers import FakeUpload


@pytest.fixture
def upload(monkeypatch):
    """Make st.file_uploader return the given file: ``upload(name, data, file_id)``; a name of None: nothing yet."""
    box = {"file": None}
    monkeypatch.setattr(streamlit, "file_uploader", lambda *a, **k: box["file"])

    def set_file(name, data=b"", file_id="fake-1"):
        # Streamlit gives every upload its own id, and the pages cache uploads by id: other bytes, another id.
        unique = f"{file_id}-{hashlib.sha256(data).hexdigest()[:16]}"
        box["file"] = None if name is None else FakeUpload(name, data, unique)

    return set_file
