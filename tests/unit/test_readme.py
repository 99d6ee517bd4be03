"""The README's API example runs as written (a user's first copy-paste must work)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README lost its API example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "verl" in out and "rllib" in out


def test_the_pages_table_lists_every_page_in_the_navigations_order():
    from pages.registry import PAGES

    rows = re.findall(r"^\| (Learn|Explore|Tools) \| ([^|]+?) \|", README.read_text(), flags=re.M)
    listed = [(p.section, p.title) for p in PAGES if not p.hidden]
    assert [(section, title.removesuffix(" (default)")) for section, title in rows] == listed
