"""Helpers the page tests share."""

from __future__ import annotations

import re


def plain(markdown: str) -> str:
    """What the reader sees of ``pages.common.literal``'s output: escapes resolved, the invisible joiners dropped."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")
