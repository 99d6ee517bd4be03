"""The live one-token explorer's browser code: its float64 math (tokenmath.js), drawing and styles.

Only file contents live here (no Streamlit): pages/live_token.py registers them (the explorer and the live loss surfaces) as a Streamlit
custom component (v2, inline, no iframe), and the browser tests load ``MATH_JS`` on its own.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

MATH_JS = (HERE / "tokenmath.js").read_text(encoding="utf-8")
FRAMES_JS = (HERE / "frames.js").read_text(encoding="utf-8")
EXPLORER_JS = (HERE / "explorer.js").read_text(encoding="utf-8")
EXPLORER_CSS = (HERE / "explorer.css").read_text(encoding="utf-8")
SURFACES_JS = (HERE / "surfaces.js").read_text(encoding="utf-8")
SURFACES_CSS = (HERE / "surfaces.css").read_text(encoding="utf-8")


def component_js() -> str:
    """The component's ES module: the math, the frame scheduler, then the explorer (which exports the default
    function)."""
    return "\n".join((MATH_JS, FRAMES_JS, EXPLORER_JS))


def surfaces_component_js() -> str:
    """The live surfaces' ES module: the same math and frame scheduler, then the four panels."""
    return "\n".join((MATH_JS, FRAMES_JS, SURFACES_JS))
