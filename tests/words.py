"""The numbers a sentence carries, read back, so a test asserts the facts and not the wording around them.

``numbers_in("26.0% clipped: within your 30% target")`` is ``[0.26, 0.3]``: a test compares that list with the
values the code computed, and a rewording that keeps the facts keeps the test green.
"""

from __future__ import annotations

import re

# A number as the pages write it: an optional minus (ASCII or U+2212), thousands separators, a decimal part,
# an optional exponent and percent sign. Digits glued to a word or a dot (v0.4.0, CartPole-v1, verl#498,
# x8 in 3x8) are names, not quantities.
_NUMBER = re.compile(r"(?<![\w.#/^-])([-\u2212]?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(e[-+]?\d+)?(\s?%)?(?![\w/])")


def numbers_in(text: str) -> list[float]:
    """Every number in ``text`` in order, as a float; a percentage as a fraction (``"10.5%"`` -> 0.105)."""
    out = []
    for sign, whole, frac, exp, pct in _NUMBER.findall(text):
        value = float(whole.replace(",", "") + frac + exp)
        value = -value if sign else value
        out.append(value / 100 if pct else value)
    return out
