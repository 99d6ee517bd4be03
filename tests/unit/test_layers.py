"""The package's layers, as folders: the exact core (``valueloss/*.py``) imports no app library and no
upper layer (``teach``, ``viz``, ``tools``); nothing under ``valueloss/`` imports Streamlit."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "valueloss"
UPPER_LAYERS = ("teach", "viz", "tools")
APP_LIBRARIES = ("streamlit", "plotly", "pandas")
CORE_PACKAGES = ("fused",)  # core subpackages: the same rules as the top-level modules
CORE_MODULES = sorted(PACKAGE.glob("*.py")) + sorted(p for sub in CORE_PACKAGES for p in (PACKAGE / sub).glob("*.py"))


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).parts[:-1])


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


def test_the_core_is_the_top_level_modules():
    names = {p.stem for p in PACKAGE.glob("*.py")} | set(CORE_PACKAGES)
    assert {"losses", "dialects", "anatomy", "grids", "fused", "scale"} <= names
    assert not names & set(UPPER_LAYERS)
    assert all((PACKAGE / layer / "__init__.py").is_file() for layer in UPPER_LAYERS)


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_imports_no_app_library_and_no_upper_layer(path):
    bad = sorted(
        m
        for m in imported_modules(path.read_text(encoding="utf-8"), package_of(path))
        if m.split(".")[0] in APP_LIBRARIES or any(m.startswith(f"valueloss.{layer}") for layer in UPPER_LAYERS)
    )
    assert not bad, f"{path.name} imports {bad}: the core stays below teach/viz/tools and free of the app's libraries"


def test_the_checker_sees_relative_and_nested_imports():
    """The rule above can fail: a core file importing upward (relative, inside a function) is caught."""
    source = "def f():\n    from .viz import theme\n    import pandas as pd\n    from . import tools\n    from ..anatomy import x\n"
    assert {"valueloss.viz", "pandas", "valueloss.tools"} <= imported_modules(source, "valueloss")
    assert "valueloss.anatomy" in imported_modules(source, "valueloss.teach")


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_of_the_package_imports_streamlit(path):
    assert not any(
        m.split(".")[0] == "streamlit" for m in imported_modules(path.read_text(encoding="utf-8"), package_of(path))
    )


def test_importing_the_library_loads_no_app_library():
    code = f"import sys, valueloss; print(sorted(m for m in {APP_LIBRARIES!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (PACKAGE / "viz").glob("*.py") if p.stem not in ("base", "theme", "__init__")),
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
