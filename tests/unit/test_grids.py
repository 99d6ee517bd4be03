"""Grids evaluate the same anatomy as single tokens, just vectorised."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import valueloss as vl


def test_grid_matches_pointwise_evaluation():
    x = np.linspace(-1, 2, 7)
    y = np.linspace(-2, 3, 5)
    grid = vl.evaluate_grid("v", x, "R", y, v_old=0.4, eps=0.3)
    assert grid.terms.loss_max.shape == (5, 7)
    for i, r in enumerate(y):
        for j, v in enumerate(x):
            t = vl.value_loss_terms(torch.tensor(v, dtype=torch.float64), r, 0.4, 0.3)
            assert grid.terms.loss_max[i, j].item() == t.loss_max.item()
            assert grid.terms.grad[i, j].item() == t.grad.item()
            assert grid.terms.region[i, j].item() == t.region.item()


def test_delta_gap_map_is_shift_invariant():
    d = np.linspace(-1, 1, 41)
    g = np.linspace(-1, 1, 41)
    a = vl.evaluate_grid("delta", d, "gap", g, v_old=0.0, eps=0.25)
    b = vl.evaluate_grid("delta", d, "gap", g, v_old=3.0, eps=0.25)
    # Regions depend only on (delta, gap); they agree except where rounding moves a point onto an edge.
    agree = (a.terms.region == b.terms.region).double().mean().item()
    assert agree > 0.98
    assert set(torch.unique(a.terms.region).tolist()) >= {
        vl.REGION_INSIDE,
        vl.REGION_ZERO_GRAD,
        vl.REGION_AWAY,
        vl.REGION_OVERSHOT,
    }


def test_other_axis_pairs():
    grid = vl.evaluate_grid("v", vl.axis_values(-1, 1, 11), "v_old", vl.axis_values(-1, 1, 9), R=0.5, eps=0.2)
    assert grid.terms.grad.shape == (9, 11)
    with pytest.raises(ValueError):
        vl.evaluate_grid("v", [], "R", [1.0])
