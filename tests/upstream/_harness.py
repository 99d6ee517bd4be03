"""Install the pinned upstream releases and load their loss code for the conformance tests.

The packages come from PyPI through pip, pinned, **without dependencies**, into a git-ignored folder of
the repository (``.upstream/<key>/``, ``key`` = a hash of the pins and this Python), once: a marker file
holding the pins says the folder is complete, so later runs reuse it. Their heavy dependencies (ray,
transformers, deepspeed, flash-attn, omegaconf, ...) are not installed: the tests either load just the
loss functions from the installed files (:func:`load_functions`) or stand in empty modules for imports
the loss code never touches (:func:`stand_in`). Each test file says which.

A failed install (no network) skips the conformance tests with the reason outside CI and fails them
inside CI (the ``CI`` environment variable set), so CI never goes green without them.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ROOT / ".upstream"

# The releases CI checks against. trl 1.12.0 is the last release that ships PPOTrainer (removed in 1.13).
LIBRARIES = (
    "verl==0.9.1",
    "openrlhf==0.11.2",
    "torchrl==0.14.1",
    "tensordict==0.14.3",
    "stable-baselines3==2.9.2",
    "rsl-rl-lib==5.5.1",
    "trl==1.12.0",
)
# Small pure dependencies that tensordict/torchrl, SB3 and rsl_rl import at module level and this
# project's environment does not have (torch and numpy come from the project's own environment).
SUPPORT = (
    "pyvers==0.2.3",
    "hoptorch==0.1.4",
    "cloudpickle==3.1.3",
    "orjson==3.13.0",
    "importlib_metadata==10.2.0",
    "zipp==4.1.2",
    "gymnasium==1.4.0",
    "farama-notifications==0.0.6",
)
PINS = LIBRARIES + SUPPORT
# What the pins may put on sys.path. Everything else in the wheels' top level goes (verl ships a top-level
# ``tests`` package and torchrl ``benchmarks``/``sota-*``/``scripts``; a ``tests`` there would shadow ours).
IMPORTABLE = frozenset(
    [
        "verl",
        "openrlhf",
        "torchrl",
        "tensordict",
        "stable_baselines3",
        "rsl_rl",
        "trl",
        "pyvers",
        "hoptorch",
        "cloudpickle",
        "orjson",
        "importlib_metadata",
        "zipp",
        "gymnasium",
        "farama_notifications",
    ]
)
LAYOUT = "pruned-1"  # bump when the folder's layout changes, so old folders are rebuilt


def version_of(name: str) -> str:
    return next(p.split("==")[1] for p in PINS if p.split("==")[0] == name)


def _key() -> str:
    text = "\n".join(PINS) + f"\n{LAYOUT}\n{sys.version_info.major}.{sys.version_info.minor}\n{sys.platform}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def site_dir() -> Path:
    return UPSTREAM / _key()


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"upstream conformance tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"upstream packages not installed ({reason}); run with network access to PyPI to check them")


def ensure_installed() -> Path:
    """The folder with the pinned packages, installing them first if needed (skip/fail on failure)."""
    target = site_dir()
    marker = target / ".pins"
    if marker.is_file() and marker.read_text() == "\n".join(PINS):
        return target
    UPSTREAM.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="install-", dir=UPSTREAM))
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q"]
    cmd += ["--no-compile", "--target", str(staging), *PINS]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        _unavailable(f"pip did not finish: {exc}")
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = " | ".join(line for line in proc.stderr.strip().splitlines()[-3:] if line.strip())
        _unavailable(f"`pip install --no-deps {' '.join(LIBRARIES)}` failed: {tail}")
    _prune(staging)
    (staging / ".pins").write_text("\n".join(PINS))
    if target.exists():  # an incomplete earlier attempt
        shutil.rmtree(target)
    staging.rename(target)
    for old in UPSTREAM.iterdir():  # folders of earlier pins
        if old != target and not old.name.startswith("install-"):
            shutil.rmtree(old, ignore_errors=True)
    return target


def _prune(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.name.endswith(".dist-info") or entry.name in IMPORTABLE:
            continue
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def activate(site: Path) -> None:
    """Put the pinned packages first on ``sys.path`` (they are the versions under test)."""
    if str(site) not in sys.path:
        sys.path.insert(0, str(site))


def load_functions(path: Path, names: list[str], namespace: dict) -> dict:
    """Run the named top-level ``def``/``class`` statements of an installed file, verbatim, in ``namespace``.

    The code object keeps the installed file's name and line numbers, so tracebacks point into it.
    Decorators are kept; module-level imports are not run (``namespace`` supplies what they bind).
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    found = {
        node.name: node for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in names
    }
    missing = sorted(set(names) - set(found))
    if missing:
        raise LookupError(f"{path} no longer defines {missing}: the pinned release changed")
    module = ast.Module(body=[found[n] for n in names], type_ignores=[])
    exec(compile(module, str(path), "exec"), namespace)  # noqa: S102 - the installed library's own code
    return namespace


def as_module(name: str, namespace: dict) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update({k: v for k, v in namespace.items() if not k.startswith("__")})
    return module


def stand_in(name: str, **attributes) -> types.ModuleType:
    """An empty module in ``sys.modules`` for an import the loss code never touches.

    Only where the real module cannot be imported: an installed one is always preferred.
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        module.__stand_in__ = True
        sys.modules[name] = module
        return module
