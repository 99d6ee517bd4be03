"""tests/README.md places every module: each module under valueloss/ has a row, and every row names test files
that exist (so a newcomer who changes a module finds its tests, and a renamed test file updates the table)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `([^`]+\.py)` \| (.+) \|$")


def table() -> dict[str, str]:
    rows = [ROW.match(line) for line in (ROOT / "tests" / "README.md").read_text(encoding="utf-8").splitlines()]
    return {m.group(1): m.group(2) for m in rows if m}


def test_every_module_has_a_row_and_every_row_a_module():
    modules = {p.relative_to(ROOT / "valueloss").as_posix() for p in (ROOT / "valueloss").rglob("*.py")}
    rows = table()
    assert sorted(modules - set(rows)) == [], "modules without a row in tests/README.md"
    assert sorted(set(rows) - modules) == [], "rows of tests/README.md naming a module that is gone"


def test_every_named_test_file_exists():
    for module, cell in table().items():
        if cell.startswith("none: "):  # a module without tests says why
            assert len(cell) > 30, module
            continue
        named = re.findall(r"`([^`]+)`", cell)
        assert named, module
        for name in named:
            path = ROOT / "tests" / name
            assert path.is_dir() if name.endswith("/") else path.is_file(), f"{module}: tests/{name} does not exist"
