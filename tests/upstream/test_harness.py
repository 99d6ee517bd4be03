"""The installer's contract: a failed install skips outside CI, fails inside CI, and leaves no half folder."""

from __future__ import annotations

import subprocess

import pytest

from . import _harness


@pytest.fixture
def failing_pip(monkeypatch, tmp_path):
    monkeypatch.setattr(_harness, "UPSTREAM", tmp_path / ".upstream")
    monkeypatch.setattr(_harness, "site_dir", lambda: tmp_path / ".upstream" / "key")
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies verl==0.9.1\n")

    monkeypatch.setattr(_harness.subprocess, "run", run)
    return tmp_path, calls


def test_network_failure_skips_outside_ci(failing_pip, monkeypatch):
    tmp_path, calls = failing_pip
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Could not find a version"):
        _harness.ensure_installed()
    assert "--no-deps" in calls[0] and "verl==0.9.1" in calls[0]
    assert list((tmp_path / ".upstream").iterdir()) == []  # the staging folder is gone


def test_network_failure_fails_in_ci(failing_pip, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run in CI"):
        _harness.ensure_installed()


def test_installed_folder_is_reused(upstream_site, monkeypatch):
    """With the marker in place nothing is installed again."""
    monkeypatch.setattr(_harness.subprocess, "run", lambda *a, **k: pytest.fail("pip ran again"))
    assert _harness.ensure_installed() == upstream_site
    assert (upstream_site / ".pins").read_text() == _harness.marker_text()
