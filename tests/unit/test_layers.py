"""The layers, every one of them: each module imports only the layers below its own, and only the app
libraries its layer may use.

    core  valueloss/*.py          torch + numpy: losses, dialects, notation, threads, ...
    teach valueloss/teach/        words and decisions (the advice table)          imports core
    viz   valueloss/viz/          plotly figures                                   imports teach, core
    tools valueloss/tools/        batch files, reports, findings' evidence, bench  imports teach, core
    pages pages/*.py              Streamlit                                        imports all of the above
    app   app.py                  st.navigation                                    imports pages

viz and tools sit side by side: neither imports the other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "valueloss"
APP_LIBRARIES = ("streamlit", "plotly", "pandas")


# layer -> (the layers it may import, the app libraries it may import)
LAYERS = {
    "core": ((), ()),
    "teach": (("core",), ()),
    "viz": (("core", "teach"), ("plotly",)),
    "tools": (("core", "teach"), ("pandas",)),
    "pages": (("core", "teach", "viz", "tools", "pages"), APP_LIBRARIES),
    "app": (("core", "teach", "viz", "tools", "pages"), APP_LIBRARIES),
}
UPPER = ("teach", "viz", "tools")


def layer_of_module(name: str) -> str | None:
    """The layer an absolute module name belongs to (None: outside the project, e.g. torch)."""
    parts = name.split(".")
    if parts[0] == "pages":
        return "pages"
    if parts[0] == "app":
        return "app"
    if parts[0] != "valueloss":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in UPPER else "core"


def layer_of_file(path: Path) -> str:
    rel = path.resolve().relative_to(ROOT)
    if rel.parts[0] == "valueloss":
        return rel.parts[1] if len(rel.parts) > 2 and rel.parts[1] in UPPER else "core"
    return "pages" if rel.parts[0] == "pages" else "app"


def package_of(path: Path) -> str:
    return ".".join(path.resolve().relative_to(ROOT).parts[:-1])


def imported_modules(source: str, package: str) -> set[str]:
    """Every module ``source`` (a file of ``package``) imports, function bodies too, as an absolute name."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def violations(source: str, package: str, layer: str) -> list[str]:
    """The imports of ``source`` that its ``layer`` may not make: an upper or sideways layer, or an app library."""
    layers, libraries = LAYERS[layer]
    bad = []
    for module in sorted(imported_modules(source, package)):
        top = module.split(".")[0]
        if top in APP_LIBRARIES and top not in libraries:
            bad.append(module)
            continue
        target = layer_of_module(module)
        # A name imported from a package (``from . import tools``) counts as that layer; a module's own layer is fine
        if target is not None and target != layer and target not in layers:
            bad.append(module)
    return bad


SOURCES = sorted([*PACKAGE.rglob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "app.py"])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_imports_only_the_layers_below_it(path):
    layer = layer_of_file(path)
    bad = violations(path.read_text(encoding="utf-8"), package_of(path), layer)
    allowed = ", ".join(LAYERS[layer][0]) or "nothing of the project"
    assert not bad, f"{path.relative_to(ROOT)} ({layer}) imports {bad}; it may import {allowed}"


def test_every_layer_has_modules():
    seen = {layer_of_file(p) for p in SOURCES}
    assert seen == set(LAYERS)
    names = (
        {p.stem for p in PACKAGE.glob("*.py")} | {"fused"} if (PACKAGE / "fused" / "__init__.py").is_file() else set()
    )
    assert layer_of_file(PACKAGE / "fused" / "kernel.py") == "core", "the fused/ package is part of the core"
    assert {"losses", "dialects", "anatomy", "grids", "fused", "scale", "notation", "threads"} <= names
    assert all((PACKAGE / layer / "__init__.py").is_file() for layer in UPPER)


@pytest.mark.parametrize(
    ("layer", "package", "source", "caught"),
    [
        ("core", "valueloss", "def f():\n    from .viz import theme\n", "valueloss.viz"),
        ("core", "valueloss", "from . import tools\n", "valueloss.tools"),
        ("core", "valueloss", "import pandas as pd\n", "pandas"),
        ("teach", "valueloss.teach", "from ..viz.base import FONT\n", "valueloss.viz.base"),
        ("teach", "valueloss.teach", "from ..tools.batch import Batch\n", "valueloss.tools.batch"),
        ("teach", "valueloss.teach", "import plotly.graph_objects as go\n", "plotly.graph_objects"),
        ("viz", "valueloss.viz", "from ..tools.sanity import SanityReport\n", "valueloss.tools.sanity"),
        ("viz", "valueloss.viz", "import streamlit as st\n", "streamlit"),
        ("tools", "valueloss.tools", "from ..viz.batch import clipfrac_curve\n", "valueloss.viz.batch"),
        ("tools", "valueloss.tools", "from pages.common import literal\n", "pages.common"),
        ("pages", "pages", "import app\n", "app"),
    ],
)
def test_the_checker_fails_on_an_upward_or_sideways_import(layer, package, source, caught):
    """The rule above can fail: each layer importing upward or sideways (relative, nested, absolute) is caught."""
    assert caught in violations(source, package, layer)


def test_the_checker_allows_the_layers_below():
    assert not violations("from ..anatomy import x\nimport torch\n", "valueloss.teach", "teach")
    assert not violations("from ..teach.advice import advise\nimport pandas\n", "valueloss.tools", "tools")
    assert not violations("from valueloss.tools.sanity import x\nimport streamlit\n", "pages", "pages")


@pytest.mark.slow
def test_importing_the_library_loads_no_app_library():
    code = f"import sys, valueloss; print(sorted(m for m in {APP_LIBRARIES!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (PACKAGE / "viz").glob("*.py") if p.stem not in ("base", "__init__")),
    ids=lambda p: p.name,
)
def test_figures_take_fonts_axes_and_margins_from_the_one_base(path):
    """A figure module defines no font, axis or margin style of its own: viz/base.py holds them."""
    own = [
        target.id
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and any(w in target.id for w in ("FONT", "AXIS", "MARGIN"))
    ]
    assert not own, f"{path.name} defines {own}; use valueloss/viz/base.py"
