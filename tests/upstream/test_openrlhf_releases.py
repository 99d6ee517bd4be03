"""Older OpenRLHF releases on PyPI against the registry entries that name them, bit for bit.

How the library is loaded: each release's wheel (``_harness.RELEASES``: pip download, no dependencies, only
``models/loss.py`` and ``models/utils.py`` kept), and from those files ``ValueLoss`` (with ``aggregate_loss``
where it exists) and ``masked_mean`` run verbatim, as ``test_openrlhf.py`` does for the pinned 0.11.2. The
releases are the ends of each range the registry names; PyPI starts at 0.3.6.post1, so v0.0.1 - v0.1.3 are
restated (README, How exact, says which tags were compared). Checked: the loss and its gradient, both
aggregations where the release has them, clip_eps=None, float32, bfloat16, float64, fully masked rows and NaN
in padding.
"""

from __future__ import annotations

import ast
import inspect
from typing import Optional

import pytest
import torch
import torch.nn as nn

import valueloss as vl
from tests.batches import DTYPES, MASK_KINDS, assert_bitwise, random_batch, seed_of

from ._harness import RELEASES, load_functions, release_dir

ENTRY = {
    "0.3.6.post1": "openrlhf-2025-04",
    "0.6.4": "openrlhf-2025-04",
    "0.7.0": "openrlhf-v0.7",
    "0.10.2": "openrlhf-v0.7",
    "0.10.3": "openrlhf",
}
VERSIONS = [r.version for r in RELEASES if r.package == "openrlhf"]


def load_release(site, version):
    root = release_dir(site, "openrlhf", version) / "openrlhf" / "models"
    namespace = {"torch": torch, "nn": nn, "Optional": Optional}
    load_functions(root / "utils.py", ["masked_mean"], namespace)
    loss_file = root / "loss.py"
    top = {n.name for n in ast.parse(loss_file.read_text()).body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    return load_functions(loss_file, sorted({"aggregate_loss", "ValueLoss"} & top), namespace)["ValueLoss"]


def test_the_releases_are_the_ones_the_registry_names(upstream_site):
    assert set(VERSIONS) == set(ENTRY)
    for version, name in ENTRY.items():
        assert vl.DIALECTS[name].verification == "real package", name
        assert version in vl.DIALECTS[name].verified, (name, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_release_matches_its_entry_bit_for_bit(upstream_site, version):
    value_loss = load_release(upstream_site, version)
    entry = vl.DIALECTS[ENTRY[version]]
    has_token_level = "token_level_loss" in inspect.signature(value_loss.__init__).parameters
    gen = torch.Generator().manual_seed(seed_of("openrlhf", version))
    for dtype in DTYPES:
        for mask_kind in MASK_KINDS:
            for mode in entry.modes:
                for clip in (True, False):
                    for i in range(4):
                        b = random_batch(gen, dtype, mask_kind, nan_padding=i % 2 == 1, edge_rows=False)
                        eps = b.eps if clip else None
                        theirs_leaf, ours_leaf = b.leaf(), b.leaf()
                        module = (
                            value_loss(eps, token_level_loss=mode == "token-mean")
                            if has_token_level
                            else value_loss(eps)
                        )
                        theirs = module(theirs_leaf, b.values, b.returns, b.mask)
                        ours = vl.dialect_loss(
                            entry.name, ours_leaf, b.returns, b.values, b.mask, eps, loss_agg_mode=mode
                        )
                        what = f"openrlhf {version} vs {entry.name} {mode} clip={eps} {dtype} {mask_kind} batch {i}"
                        assert_bitwise(ours.loss, theirs, what)
                        theirs.backward()
                        ours.loss.backward()
                        assert_bitwise(ours_leaf.grad, theirs_leaf.grad, what + " gradient")
