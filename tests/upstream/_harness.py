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
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
LAYOUT = "pruned-2"  # bump when the folder's layout changes, so old folders are rebuilt


@dataclass(frozen=True)
class Release:
    """An older release whose loss code the tests read: a few files of its PyPI wheel, kept in their own folder
    (two versions of one package cannot share a site folder). ``python`` names the CPython whose wheel to take
    where the release ships none for this one (ray 1.x: cp36-cp39); the files are source, read, never imported."""

    package: str
    version: str
    files: tuple[str, ...]
    python: str | None = None

    @property
    def pin(self) -> str:
        return f"{self.package}=={self.version}"


_VERL = ("verl/trainer/ppo/core_algos.py", "verl/utils/torch_functional.py")
_OPENRLHF = ("openrlhf/models/loss.py", "openrlhf/models/utils.py")
_RAY_POLICY = ("ray/rllib/agents/ppo/ppo_torch_policy.py", "ray/rllib/utils/torch_utils.py")
_RAY_LEARNER = (
    "ray/rllib/algorithms/ppo/torch/ppo_torch_learner.py",
    "ray/rllib/algorithms/ppo/ppo.py",
    "ray/rllib/core/columns.py",
    "ray/rllib/core/learner/learner.py",
    "ray/rllib/evaluation/postprocessing.py",
)
# Every PyPI release of verl with a value loss (0.9.1 is in PINS), the OpenRLHF wheels at the ends of each range
# the registry names (PyPI starts at 0.3.6.post1), RLlib on both sides of its change and today, NeMo-Aligner.
RELEASES = (
    *(Release("verl", v, _VERL) for v in ("0.3.0.post0", "0.3.0.post1", "0.4.0", "0.4.1", "0.5.0", "0.6.0", "0.6.1")),
    Release("verl", "0.7.0", _VERL),
    *(Release("verl", v, _VERL) for v in ("0.7.1", "0.8.0", "0.9.0")),
    *(Release("openrlhf", v, _OPENRLHF) for v in ("0.3.6.post1", "0.6.4", "0.7.0", "0.10.2", "0.10.3")),
    Release("ray", "1.11.0", _RAY_POLICY, python="3.9"),
    Release("ray", "1.12.0", _RAY_POLICY, python="3.9"),
    Release("ray", "2.60.0", _RAY_LEARNER),
    Release(
        "nemo-aligner", "0.7.0", ("nemo_aligner/models/nlp/gpt/megatron_gpt_critic.py", "nemo_aligner/utils/utils.py")
    ),
)


def version_of(name: str) -> str:
    return next(p.split("==")[1] for p in PINS if p.split("==")[0] == name)


def _key() -> str:
    text = (
        "\n".join(PINS + tuple(f"{r.pin} {r.python} {r.files}" for r in RELEASES))
        + f"\n{LAYOUT}\n{sys.version_info.major}.{sys.version_info.minor}\n{sys.platform}"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def site_dir() -> Path:
    return UPSTREAM / _key()


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"upstream conformance tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"upstream packages not installed ({reason}); run with network access to PyPI to check them")


def marker_text() -> str:
    """What the marker file of a complete folder holds: the pins and the releases."""
    return "\n".join(PINS + tuple(f"{r.pin} python={r.python}" for r in RELEASES))


def _pip(cmd: list[str], what: str) -> str | None:
    """Run pip; None when it worked, else why it did not (its last lines)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"pip did not finish: {exc}"
    if proc.returncode != 0:
        tail = " | ".join(line for line in proc.stderr.strip().splitlines()[-3:] if line.strip())
        return f"`{what}` failed: {tail}"
    return None


def release_dir(site: Path, package: str, version: str) -> Path:
    """Where an older release's files are kept (``RELEASES``)."""
    return site / "releases" / f"{package}-{version}"


def _fetch_release(release: Release, site: Path) -> str | None:
    """Download the release's wheel (``pip download --no-deps``), keep its ``files``, drop the wheel."""
    with tempfile.TemporaryDirectory(dir=site) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
        cmd += ["--only-binary=:all:", "-d", tmp]
        if release.python:
            cmd += ["--python-version", release.python, "--implementation", "cp", "--platform", "manylinux2014_x86_64"]
        error = _pip([*cmd, release.pin], f"pip download --no-deps {release.pin}")
        if error:
            return error
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            return f"pip download {release.pin} gave {len(wheels)} wheels"
        dest = release_dir(site, release.package, release.version)
        with zipfile.ZipFile(wheels[0]) as wheel:
            names = wheel.namelist()
            meta = next(n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))  # the wheel's own
            version = next(x for x in wheel.read(meta).decode().splitlines() if x.startswith("Version:"))
            if version.split(":", 1)[1].strip() != release.version:
                return f"{wheels[0].name} is {version}, not {release.version}"
            for path in release.files:  # ray 1.x keeps its files under ray-<version>.data/purelib/
                member = next((n for n in names if n == path or n.endswith("/purelib/" + path)), None)
                if member is None:
                    return f"{wheels[0].name} has no {path}"
                out = dest / path
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(wheel.read(member))
    return None


def ensure_installed() -> Path:
    """The folder with the pinned packages and the older releases' files, installing them first if needed
    (skip outside CI, fail inside it, when that is not possible)."""
    target = site_dir()
    marker = target / ".pins"
    if marker.is_file() and marker.read_text() == marker_text():
        return target
    UPSTREAM.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="install-", dir=UPSTREAM))
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q"]
    cmd += ["--no-compile", "--target", str(staging), *PINS]
    errors = [_pip(cmd, f"pip install --no-deps {' '.join(LIBRARIES)}")]
    if errors[0] is None:
        with ThreadPoolExecutor(max_workers=4) as pool:  # downloads: the network, not the CPU, is the limit
            errors += pool.map(lambda release: _fetch_release(release, staging), RELEASES)
    problems = [e for e in errors if e]
    if problems:
        shutil.rmtree(staging, ignore_errors=True)
        _unavailable("; ".join(problems))
    _prune(staging)
    marker_file = staging / ".pins"
    marker_file.write_text(marker_text())
    if target.exists():  # an incomplete earlier attempt
        shutil.rmtree(target)
    staging.rename(target)
    for old in UPSTREAM.iterdir():  # folders of earlier pins
        if old != target and not old.name.startswith("install-"):
            shutil.rmtree(old, ignore_errors=True)
    return target


def _prune(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.name.endswith(".dist-info") or entry.name in IMPORTABLE or entry.name == "releases":
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


def load_method(path: Path, class_name: str, method: str, namespace: dict):
    """One method of a class in an installed file, as a plain function whose first argument is ``self``.

    The body runs verbatim; its decorators (``@override`` markers) and annotations (type hints naming classes
    the test never builds) are dropped, so the heavy base classes need not be importable.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    found = [
        node
        for cls in tree.body
        if isinstance(cls, ast.ClassDef) and cls.name == class_name
        for node in cls.body
        if isinstance(node, ast.FunctionDef) and node.name == method
    ]
    if len(found) != 1:
        raise LookupError(f"{path} no longer defines {class_name}.{method}: the pinned release changed")
    (func,) = found
    func.decorator_list, func.returns = [], None
    for arg in (*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs):
        arg.annotation = None
    exec(compile(ast.Module(body=[func], type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102
    return namespace[method]


def load_constants(path: Path, names: list[str]) -> dict:
    """Top-level ``NAME = "literal"`` assignments of an installed file (metric keys, column names)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in names
    }
    missing = sorted(set(names) - set(found))
    if missing:
        raise LookupError(f"{path} no longer defines {missing}: the pinned release changed")
    return found


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


def load_nested(path: Path, outer: list[str], name: str, namespace: dict):
    """A function defined inside other functions (``outer``: the enclosing names, outermost first), compiled
    on its own: the variables it closed over are read from ``namespace`` instead. Its body runs verbatim."""
    tree = ast.parse(path.read_text(), filename=str(path))
    scope = tree.body
    for enclosing in [*outer, name]:
        found = [n for n in ast.walk(ast.Module(body=scope, type_ignores=[])) if isinstance(n, ast.FunctionDef)]
        found = [n for n in found if n.name == enclosing]
        if not found:
            raise LookupError(f"{path} no longer defines {'.'.join([*outer, name])}: the release changed")
        node = found[0]
        scope = node.body
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102
    return namespace[name]
