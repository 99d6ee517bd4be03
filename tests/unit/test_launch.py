"""``valueloss-app`` (pyproject's console command) starts ``streamlit run app.py`` from the app's folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

from valueloss.tools import launch

ROOT = Path(__file__).resolve().parents[2]


def test_in_a_checkout_the_app_folder_is_the_repository():
    assert launch.app_folder() == ROOT


def test_the_command_runs_streamlit_on_app_py_from_the_app_folder(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, cwd: calls.append((cmd, cwd)) or 0)
    assert launch.main(["--server.port", "8600"]) == 0
    ((cmd, cwd),) = calls
    assert cmd == [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", "8600"]
    assert cwd == ROOT  # Streamlit reads .streamlit/config.toml from the working directory


def test_without_the_app_extra_it_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setattr(launch.importlib.util, "find_spec", lambda name: None)
    assert launch.main([]) == 2
    assert 'pip install "valueloss[app]"' in capsys.readouterr().err


def test_the_wheel_ships_what_the_command_needs():
    """pyproject maps the app (app.py, pages/, its config) into the wheel beside the library."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entry = config["project"]["scripts"]["valueloss-app"]
    module, function = entry.split(":")
    assert getattr(__import__(module, fromlist=[function]), function) is launch.main
    tool = config["tool"]["setuptools"]
    assert {"valueloss_app", "valueloss_app.pages"} <= set(tool["packages"])
    folders = tool["package-dir"]
    assert (ROOT / folders["valueloss_app"] / "app.py").is_file()
    assert (ROOT / folders["valueloss_app.pages"] / "common.py").is_file()
    for pattern in tool["package-data"]["valueloss_app"]:
        assert list(ROOT.glob(pattern)), pattern
    packages_on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "valueloss").rglob("__init__.py")}
    assert packages_on_disk <= set(tool["packages"]), "a sub-package of valueloss is missing from the wheel"


def test_the_declared_dependencies_are_requirements_txt_split_at_the_core():
    """`pip install .` brings what the core imports, the app extra the rest of requirements.txt."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    required = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    core, app = set(config["dependencies"]), set(config["optional-dependencies"]["app"])
    assert core | app == required and not core & app
    assert {spec.split(">=")[0] for spec in core} == {"torch", "numpy"}  # the layer test keeps the core to these
