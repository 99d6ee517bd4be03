"""The pinned upstream releases, installed once per checkout (see ``_harness.py``)."""

from __future__ import annotations

import pytest

from . import _harness


@pytest.fixture(scope="session")
def upstream_site():
    site = _harness.ensure_installed()
    _harness.activate(site)
    return site
