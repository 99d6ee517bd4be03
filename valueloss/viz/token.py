"""The one-token view's axis range (Explore): the live explorer draws in the browser
(``viz/live/tokenmath.js``); these are the Python statements of its range rules, which the browser test
compares with the JavaScript."""

from __future__ import annotations

import numpy as np

__all__ = ["nice_ceil", "view_range"]


def nice_ceil(x: float) -> float:
    """The next number of the form 1, 2 or 5 times a power of ten: stable plot ranges, few cache keys."""
    if not np.isfinite(x) or x <= 0:
        return 1.0
    power = 10.0 ** np.floor(np.log10(x))
    for step in (1.0, 2.0, 5.0, 10.0):
        if x <= step * power * (1 + 1e-12):
            return float(step * power)
    return float(10 * power)


def view_range(v_old: float, R: float, eps: float, v: float) -> tuple[float, float]:
    """The v-axis range for a one-token plot: band, R and the overshoot point, stretched to show v.

    The overshoot point 2R − (v_old ± eps) is where the restoring region starts beyond R. The range
    depends on v only when v leaves it, so dragging v does not rescale the plot under the cursor.
    """
    marks = [v_old - eps, v_old + eps, R]
    if abs(R - v_old) > eps:
        marks.append(2 * R - (v_old + np.sign(R - v_old) * eps))
    lo, hi = min(marks), max(marks)
    span = max(hi - lo, 4 * eps, 1.0)
    lo, hi = lo - 0.2 * span, hi + 0.2 * span
    if v < lo:
        lo = v - 0.1 * span
    if v > hi:
        hi = v + 0.1 * span
    step = nice_ceil(span) / 10
    return float(np.floor(lo / step) * step), float(np.ceil(hi / step) * step)
