"""The formula's canonical copy is ``valueloss.library_code``: the drop-in APIs of ``valueloss.losses`` check their
arguments and call it, so their numbers are its numbers bit for bit; the table of mirrors names tests that exist.

The batches are the conformance tests' (``tests/batches.random_batch``): exact ties on the band edges and
between the two squared errors, fully masked rows, NaN in padding, bool / int / float masks, float32, bfloat16 and
float64.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import torch

import valueloss as vl
from tests.batches import DTYPES, MASK_KINDS, assert_bitwise, random_batch, seed_of
from valueloss import library_code as lc
from valueloss import losses
from valueloss.dialects import DIALECTS

ROOT = Path(__file__).resolve().parents[2]
BATCHES = 12  # per dtype, mask kind and mode


def _batches(*key):
    gen = torch.Generator().manual_seed(seed_of(*key))
    for i in range(BATCHES):
        yield random_batch(gen, key[0], MASK_KINDS[i % len(MASK_KINDS)], nan_padding=bool(i % 2))


def _global_counts(b, mode):
    """Counts a trainer with two ranks passes (the whole step's), as numbers and as float32 tensors."""
    tokens, rows = int(b.bool_mask.sum()) * 2 + 3, b.mask.shape[0] * 2 + 1
    kw = {"dp_size": 2, "batch_num_tokens": tokens, "global_batch_size": rows}
    if mode == "seq-mean-token-sum-norm":
        kw["loss_scale_factor"] = 4096
    return kw


def _loss_and_grad(b, fn, *args, **kw):
    """``(loss, clip fraction or None, d loss / d vpreds)`` of ``fn(vpreds, *args, **kw)`` on a fresh leaf."""
    leaf = b.leaf()
    out = fn(leaf, *args, **kw)
    loss, clipfrac = out if isinstance(out, tuple) else (out, None)
    grad = torch.autograd.grad(loss, leaf)[0] if loss.requires_grad else None
    return loss, clipfrac, grad


def _assert_same(ours, theirs, what):
    for name, x, y in zip(("loss", "clip fraction", "gradient"), ours, theirs, strict=True):
        if x is None or y is None:
            assert x is None and y is None, f"{what}: {name}"
        else:
            assert_bitwise(x, y, f"{what}: {name}")


@pytest.mark.parametrize("mode", vl.AGG_MODES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_drop_in_verl_api_is_library_code_bit_for_bit(dtype, mode):
    for b in _batches(dtype, mode, "verl"):
        args = (b.returns, b.values, b.mask, b.eps, mode)
        for kw in ({}, _global_counts(b, mode)):
            ours = _loss_and_grad(b, vl.compute_value_loss, *args, **kw)
            _assert_same(ours, _loss_and_grad(b, lc.value_loss, *args, **kw), f"{mode} {kw}")
            per_token = torch.max((b.vpreds - b.returns) ** 2, (b.values - b.returns) ** 2)
            agg = losses.agg_loss(per_token, b.mask, mode, **kw)
            assert_bitwise(agg, lc.agg_loss(per_token, b.mask, mode, **kw), f"agg_loss {mode} {kw}")
        # the registry's entry (one process) computes with the same function
        ours = _loss_and_grad(b, vl.compute_value_loss, *args)
        _assert_same(ours, _loss_and_grad(b, DIALECTS["verl"].compute, *args), f"registry {mode}")


def _openrlhf_canonical(v, old_values, returns, mask, eps, token_level, **counts):
    per_token = lc.openrlhf_token_loss(v, old_values, returns, eps)
    return 0.5 * lc.openrlhf_aggregate(per_token, mask, token_level, **counts)


@pytest.mark.parametrize(("token_level", "clip"), list(itertools.product((True, False), (True, False))))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_drop_in_openrlhf_module_is_library_code_bit_for_bit(dtype, token_level, clip):
    mode = "token-mean" if token_level else "seq-mean-token-mean"
    for b in _batches(dtype, token_level, clip, "openrlhf"):
        eps = b.eps if clip else None
        module = vl.ValueLoss(eps, token_level_loss=token_level)
        ours = _loss_and_grad(b, module, b.values, b.returns, b.mask)
        one = _loss_and_grad(b, lc.openrlhf_value_loss, b.returns, b.values, b.mask, eps, token_level)
        _assert_same(ours, (one[0], None, one[2]), "one process")
        counts = {k: v for k, v in _global_counts(b, mode).items() if k != "loss_scale_factor"}
        ours = _loss_and_grad(b, module, b.values, b.returns, b.mask, **counts)
        theirs = _loss_and_grad(b, _openrlhf_canonical, b.values, b.returns, b.mask, eps, token_level, **counts)
        _assert_same(ours, theirs, f"two ranks {counts}")


_NODE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def _named_tests(text: str) -> set[tuple[str, str]]:
    return set(_NODE.findall(text))


def test_the_canonical_copy_table_names_tests_that_exist():
    """The table in losses.py's docstring and its copy in the README name the same tests, and each exists."""
    in_module = _named_tests(losses.__doc__)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    in_readme = _named_tests(readme.split("**One canonical copy of the formula.**", 1)[1].split("\n\n", 2)[1])
    assert len(in_module) >= 10 and in_module == in_readme
    for path, name in sorted(in_module):
        source = ROOT / path
        assert source.is_file(), f"{path} (named in the canonical-copy table) does not exist"
        assert re.search(rf"^def {name}\(", source.read_text(encoding="utf-8"), re.M), f"{path} has no {name}"


def test_the_drop_in_apis_restate_no_formula():
    """What makes them drop-ins is their checks; the arithmetic is library_code's (no square, clip or sum here)."""
    import inspect

    for fn in (losses.compute_value_loss, losses.agg_loss, losses.ValueLoss.forward):
        body = inspect.getsource(fn).split('"""')[-1]
        assert not re.search(r"\*\* ?2|\.sum\(|torch\.(max|min|clamp)\(", body), fn.__qualname__
