"""Loss, gradient and region over 1-D and 2-D grids, in one vectorised call.

Axes are named in the app's notation: ``v``, ``v_old``, ``R``, and the two shift-invariant
coordinates ``delta = v - v_old`` and ``gap = R - v_old`` used by the region map.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import torch

from . import _validate as check
from .anatomy import ValueLossTerms, value_loss_terms

__all__ = ["AXES", "Grid", "evaluate_grid", "axis_values"]

AXES = ("v", "v_old", "R", "delta", "gap")
MAX_GRID_POINTS = 1000


@dataclass(frozen=True)
class Grid:
    """A 2-D evaluation: ``terms`` tensors have shape ``(len(y), len(x))`` (rows follow y)."""

    x_axis: str
    y_axis: str
    x: np.ndarray
    y: np.ndarray
    terms: ValueLossTerms


def axis_values(low: float, high: float, n: int) -> np.ndarray:
    """Evenly spaced grid values with a cap, so an app slider cannot ask for a billion points."""
    if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
        raise ValueError(f"grid range must be finite with low < high, got [{low}, {high}]")
    if isinstance(n, bool) or not isinstance(n, numbers.Real):
        raise TypeError(f"n (grid resolution) must be a whole number, got {type(n).__name__}")
    if not np.isfinite(n) or n != int(n):
        raise ValueError(f"n (grid resolution) must be a whole number of points, got {n}")
    if not 2 <= int(n) <= MAX_GRID_POINTS:
        raise ValueError(f"grid resolution must be between 2 and {MAX_GRID_POINTS} points, got {n}")
    return np.linspace(low, high, int(n))


def evaluate_grid(
    x_axis: str,
    x,
    y_axis: str,
    y,
    *,
    v: float = 0.0,
    v_old: float = 0.0,
    R: float = 0.0,
    eps: float = 0.2,
    convention: str = "bounds",
    dtype: torch.dtype = torch.float64,
) -> Grid:
    """Evaluate the loss anatomy over ``x`` (columns) and ``y`` (rows); other coordinates stay fixed.

    ``delta`` and ``gap`` are measured from ``v_old``: on a (delta, gap) map v_old is the fixed value.
    """
    for name in (x_axis, y_axis):
        if name not in AXES:
            raise ValueError(f"unknown grid axis {name!r}; valid axes are: {', '.join(AXES)}")
    if x_axis == y_axis:
        raise ValueError(f"the two grid axes must differ, got {x_axis!r} twice")
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    if xs.size == 0 or ys.size == 0:
        raise ValueError("grid axes must hold at least one value")
    if max(xs.size, ys.size) > MAX_GRID_POINTS:
        raise ValueError(
            f"grid axes hold {xs.size:,} x {ys.size:,} values; at most {MAX_GRID_POINTS:,} per axis "
            f"(a {MAX_GRID_POINTS} x {MAX_GRID_POINTS} grid already resolves every region boundary)"
        )
    eps = check.clip_range("eps", eps)

    coords = {
        "v": torch.tensor(float(v), dtype=dtype),
        "v_old": torch.tensor(float(v_old), dtype=dtype),
        "R": torch.tensor(float(R), dtype=dtype),
    }
    given = {
        x_axis: torch.as_tensor(xs, dtype=dtype).reshape(1, -1),
        y_axis: torch.as_tensor(ys, dtype=dtype).reshape(-1, 1),
    }
    for name in ("v_old", "v", "R"):
        if name in given:
            coords[name] = given[name]
    if "delta" in given:
        coords["v"] = coords["v_old"] + given["delta"]
    if "gap" in given:
        coords["R"] = coords["v_old"] + given["gap"]
    terms = value_loss_terms(coords["v"], coords["R"], coords["v_old"], eps, convention)
    shape = (ys.size, xs.size)
    terms = ValueLossTerms(**{k: getattr(terms, k).expand(shape) for k in terms.__dataclass_fields__})
    return Grid(x_axis=x_axis, y_axis=y_axis, x=xs, y=ys, terms=terms)
