"""The app's own browser components: the live one-token explorer, the live loss surfaces, the moving wall and
the training logs.

Only file contents live here (no Streamlit): pages/live_token.py registers each as a Streamlit custom component
(v2, inline, no iframe); the browser tests load ``MATH_JS`` on its own. Shared pieces: the float64 math and number
format (tokenmath.js), the frame scheduler (frames.js) and the SVG helpers and styles (svg.js, svg.css).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

MATH_JS = (HERE / "tokenmath.js").read_text(encoding="utf-8")
FRAMES_JS = (HERE / "frames.js").read_text(encoding="utf-8")
SVG_JS = (HERE / "svg.js").read_text(encoding="utf-8")
SVG_CSS = (HERE / "svg.css").read_text(encoding="utf-8")
EXPLORER_JS = (HERE / "explorer.js").read_text(encoding="utf-8")
EXPLORER_CSS = SVG_CSS + (HERE / "explorer.css").read_text(encoding="utf-8")
SURFACES_JS = (HERE / "surfaces.js").read_text(encoding="utf-8")
SURFACES_CSS = (HERE / "surfaces.css").read_text(encoding="utf-8")
WALL_JS = (HERE / "wall.js").read_text(encoding="utf-8")
LOGS_JS = (HERE / "logs.js").read_text(encoding="utf-8")
DYNAMICS_CSS = SVG_CSS + (HERE / "dynamics.css").read_text(encoding="utf-8")  # the moving wall's and the logs' styles


def component_js() -> str:
    """The component's ES module: the math, the SVG helpers, the frame scheduler, then the explorer (which exports
    the default function)."""
    return "\n".join((MATH_JS, SVG_JS, FRAMES_JS, EXPLORER_JS))


def surfaces_component_js() -> str:
    """The live surfaces' ES module: the same math and frame scheduler, then the four panels."""
    return "\n".join((MATH_JS, FRAMES_JS, SURFACES_JS))


def wall_component_js() -> str:
    """The moving wall's ES module: the number format, the SVG helpers, the frame scheduler, then the wall."""
    return "\n".join((MATH_JS, SVG_JS, FRAMES_JS, WALL_JS))


def logs_component_js() -> str:
    """The training logs' ES module: the number format, the SVG helpers, the frame scheduler, then the logs."""
    return "\n".join((MATH_JS, SVG_JS, FRAMES_JS, LOGS_JS))
