"""tests/words.py reads the numbers a sentence carries as the pages write them, and only those."""

from __future__ import annotations

import pytest

from tests.words import numbers_in


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("26.0% clipped: within your 30% target", [0.26, 0.3]),
        ("claims 1,073,741,824 bytes; 10,000 sizes given, at most 6", [2**30, 10_000, 6]),
        ("median −0.4 over those 150 steps; -3 (95 % CI -10 to 4)", [-0.4, 150, -3, 0.95, -10, 4]),
        ("**2.0×** faster, lr 1e-4", [2.0, 1e-4]),
        ("verl v0.4.0, CartPole-v1, verl#498, a 3x8 batch, 1/2 + 1/8", []),  # names and fractions are not read
    ],
)
def test_numbers_in_reads_the_quantities_in_order(text, numbers):
    assert numbers_in(text) == pytest.approx(numbers, rel=1e-15)
