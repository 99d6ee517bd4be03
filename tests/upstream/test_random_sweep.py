"""Independent check: thousands of random batches, ours against the installed verl and OpenRLHF.

Each batch draws its own shape, padding (fully masked rows included), exact ties, dtype (float32,
bfloat16, float64), mask kind (bool, int, float), clip range (0 included), aggregation mode and the
data-parallel arguments (``dp_size`` 1-8 with the global token and sequence counts as ints or float32
tensors), then compares loss, clip fraction and gradient bit for bit with the library's own functions
(loaded as in ``test_verl.py`` and ``test_openrlhf.py``). Seeded, so a failure names its batch; the
counts keep it to a few seconds on one core.
"""

from __future__ import annotations

import torch

from tests.batches import DTYPES, MASK_KINDS, random_batch

from .test_openrlhf import _dp_args, check_openrlhf
from .test_openrlhf import openrlhf as openrlhf  # noqa: F401 - the fixture
from .test_verl import MODES, _global_args, check_verl
from .test_verl import verl as verl  # noqa: F401 - the fixture

BATCHES = 2000


def _pick(gen, options):
    return options[int(torch.randint(0, len(options), (1,), generator=gen))]


def test_verl_on_thousands_of_batches(verl):  # noqa: F811
    gen = torch.Generator().manual_seed(20261127)
    for i in range(BATCHES):
        dtype, mask_kind, mode = _pick(gen, DTYPES), _pick(gen, MASK_KINDS), _pick(gen, MODES)
        batch = random_batch(gen, dtype, mask_kind, nan_padding=i % 7 == 0, max_rows=8, max_len=16, edge_rows=False)
        kwargs = _global_args(gen, batch, mode, dp_size=_pick(gen, (1, 1, 2, 3, 8)))
        try:
            check_verl(verl, batch, mode, kwargs)
        except AssertionError as exc:
            raise AssertionError(f"batch {i} ({dtype}, {mask_kind} mask, {mode}, {kwargs}): {exc}") from None


def test_openrlhf_on_thousands_of_batches(openrlhf):  # noqa: F811
    gen = torch.Generator().manual_seed(20261128)
    for i in range(BATCHES):
        dtype, mask_kind = _pick(gen, DTYPES), _pick(gen, MASK_KINDS)
        batch = random_batch(gen, dtype, mask_kind, nan_padding=i % 7 == 0, max_rows=8, max_len=16, edge_rows=False)
        token_level, clip = _pick(gen, (True, False)), _pick(gen, (True, True, False))
        kwargs = _dp_args(gen, batch, dp_size=_pick(gen, (1, 1, 2, 3, 8)))
        try:
            check_openrlhf(openrlhf, batch, batch.eps if clip else None, token_level, kwargs)
        except AssertionError as exc:
            raise AssertionError(f"batch {i} ({dtype}, {mask_kind} mask, {token_level=}, {kwargs}): {exc}") from None
