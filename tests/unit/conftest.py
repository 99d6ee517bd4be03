"""Shared fixtures and helpers for the core tests: the golden vectors, the device parameter, and two helpers of the
clip-fraction, findings and Sanity tests (random padded batches: tests/batches.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from valueloss.threads import thread
from valueloss.tools.batch import Batch

GOLDEN = json.loads((Path(__file__).with_name("golden.json")).read_text())
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def golden_tensor(rows, dtype=torch.float64, device="cpu"):
    return torch.tensor([[float("nan") if x is None else x for x in row] for row in rows], dtype=dtype, device=device)


def golden_cases():
    """(case name, eps string, inputs dict, expected results) for every golden entry."""
    for name, case in GOLDEN["cases"].items():
        for eps, results in case["results"].items():
            yield name, eps, case, results


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


def cites(finding, label: str) -> bool:
    return thread(label) in finding.links


def as_batch(v, r, o, m) -> Batch:
    return Batch(vpreds=v, returns=r, values=o, mask=m, rewards=None, advantages=None)
