"""Shared fixtures for the core tests: golden vectors and random padded batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

GOLDEN = json.loads((Path(__file__).with_name("golden.json")).read_text())
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def golden_tensor(rows, dtype=torch.float64, device="cpu"):
    return torch.tensor([[float("nan") if x is None else x for x in row] for row in rows], dtype=dtype, device=device)


def golden_cases():
    """(case name, eps string, inputs dict, expected results) for every golden entry."""
    for name, case in GOLDEN["cases"].items():
        for eps, results in case["results"].items():
            yield name, eps, case, results


def random_batch(seed: int, rows: int = 6, width: int = 17, dtype=torch.float64, device="cpu", ties: bool = True):
    """A padded batch with an empty row, varied scales and (optionally) exact ties on the band edges."""
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(rows, width, generator=g) * 2
    returns = values + torch.randn(rows, width, generator=g) * 1.5
    vpreds = values + torch.randn(rows, width, generator=g) * 0.6
    lengths = torch.randint(0, width + 1, (rows,), generator=g)
    lengths[0] = 0  # one fully masked row
    lengths[-1] = width
    mask = (torch.arange(width)[None, :] < lengths[:, None]).to(torch.float32)
    eps = float(torch.tensor([0.0, 0.1, 0.2, 0.5, 1.0])[seed % 5])
    vpreds, returns, values = (t.to(dtype) for t in (vpreds, returns, values))
    if ties:
        pick = torch.rand(rows, width, generator=g)
        vpreds = torch.where(pick < 0.1, values + eps, vpreds)
        vpreds = torch.where((pick >= 0.1) & (pick < 0.2), values - eps, vpreds)
        vpreds = torch.where((pick >= 0.2) & (pick < 0.25), values, vpreds)
        returns = torch.where((pick >= 0.25) & (pick < 0.3), vpreds, returns)
    to = dict(device=device)
    return vpreds.to(**to), returns.to(**to), values.to(**to), mask.to(**to), eps


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param
