"""Every older verl release on PyPI against the registry entry that names it, bit for bit.

How the library is loaded: the wheel of each release (``_harness.RELEASES``: pip download, no dependencies,
only ``core_algos.py`` and ``torch_functional.py`` kept) and, from those files, ``compute_value_loss`` and
``agg_loss`` with ``clip_by_value``, ``masked_sum``, ``masked_mean`` run verbatim (``_harness.load_functions``),
as ``test_verl.py`` does for the pinned 0.9.1. Each release is checked against the entry whose ``versions``
name it, in every aggregation mode the entry offers: loss, clip fraction and gradient, in float32, bfloat16 and
float64, with bool/int/float masks, fully masked rows, NaN in padding and exact ties.
"""

from __future__ import annotations

import ast
import inspect
from typing import Any, Optional

import numpy as np
import pytest
import torch

import valueloss as vl
from tests.batches import DTYPES, MASK_KINDS, assert_bitwise, random_batch, seed_of

from ._harness import RELEASES, as_module, load_functions, release_dir

# release -> the registry entry that describes it (the 0.9.1 pin is test_verl.py's)
ENTRY = {
    "0.3.0.post0": "verl-v0.4.1",
    "0.3.0.post1": "verl-v0.4.1",
    "0.4.0": "verl-v0.4.0",
    "0.4.1": "verl-v0.4.1",
    "0.5.0": "verl-v0.5",
    "0.6.0": "verl-v0.5",
    "0.6.1": "verl-v0.6.1",
    "0.7.0": "verl-v0.7.0",
    "0.7.1": "verl",
    "0.8.0": "verl",
    "0.9.0": "verl",
}
VERSIONS = [r.version for r in RELEASES if r.package == "verl"]


def _defined(path, wanted):
    tree = ast.parse(path.read_text())
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted]


def load_release(site, version):
    root = release_dir(site, "verl", version) / "verl"
    functional_file = root / "utils" / "torch_functional.py"
    names = _defined(functional_file, {"clip_by_value", "masked_sum", "masked_mean"})
    functional = load_functions(functional_file, names, {"torch": torch})
    namespace = {"torch": torch, "np": np, "Optional": Optional, "Any": Any, "verl_F": as_module("verl_F", functional)}
    core = root / "trainer" / "ppo" / "core_algos.py"
    return as_module("core_algos", load_functions(core, _defined(core, {"agg_loss", "compute_value_loss"}), namespace))


def test_the_releases_are_the_ones_the_registry_names(upstream_site):
    assert set(VERSIONS) == set(ENTRY)
    for version, name in ENTRY.items():
        assert (release_dir(upstream_site, "verl", version) / "verl/trainer/ppo/core_algos.py").is_file()
        assert vl.DIALECTS[name].verification == "real package", name
        assert f"{version}" in vl.DIALECTS[name].verified, (name, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_release_matches_its_entry_bit_for_bit(upstream_site, version):
    verl = load_release(upstream_site, version)
    entry = vl.DIALECTS[ENTRY[version]]
    takes_mode = "loss_agg_mode" in inspect.signature(verl.compute_value_loss).parameters
    source = (release_dir(upstream_site, "verl", version) / "verl/trainer/ppo/core_algos.py").read_text()
    modes = [m for m in entry.modes if f'"{m}"' in source] if takes_mode else ["token-mean"]  # 0.3.x: token-mean
    assert set(entry.modes) - set(modes) <= ({"token-sum"} if takes_mode else set(entry.modes))  # since v0.9.0
    gen = torch.Generator().manual_seed(seed_of("verl", version))
    for dtype in DTYPES:
        for mask_kind in MASK_KINDS:
            for mode in modes:
                for i in range(6):
                    b = random_batch(gen, dtype, mask_kind, nan_padding=i % 3 == 2, edge_rows=False)
                    theirs_leaf, ours_leaf = b.leaf(), b.leaf()
                    args = (theirs_leaf, b.returns, b.values, b.mask, b.eps) + ((mode,) if takes_mode else ())
                    loss, clipfrac = verl.compute_value_loss(*args)
                    ours = vl.dialect_loss(
                        entry.name, ours_leaf, b.returns, b.values, b.mask, b.eps, loss_agg_mode=mode
                    )
                    what = f"verl {version} vs {entry.name} {mode} {dtype} {mask_kind} batch {i}"
                    assert_bitwise(ours.loss, loss, what)
                    assert_bitwise(ours.clipfrac, clipfrac, what + " clipfrac")
                    loss.backward()
                    ours.loss.backward()
                    assert_bitwise(ours_leaf.grad, theirs_leaf.grad, what + " gradient")
