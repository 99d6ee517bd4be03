"""NeMo-Aligner 0.7.0 (PyPI): the critic's ``loss_func`` against the ``nemo-aligner`` dialect, bit for bit.

How the library is loaded: the wheel without dependencies (``_harness.RELEASES``; NeMo, Megatron and Apex are
not installed) and, from ``models/nlp/gpt/megatron_gpt_critic.py``, the loss function itself: it is defined
inside ``fwd_output_and_loss_func`` inside ``get_forward_output_and_loss_func``, closing over the batch's
``prev_values``, ``returns`` and ``mask`` and the critic's ``self``; ``_harness.load_nested`` compiles it on
its own with those names given, and ``masked_mean`` comes from the wheel's ``utils/utils.py``. The model's
output carries one more position than the loss reads (``curr_values[:, :-1]``), as in NeMo-Aligner.
Clipping off (``loss_clip_val <= 0``) builds a CUDA scalar there, so that branch is restated only.
"""

from __future__ import annotations

import functools
import warnings
from types import SimpleNamespace

import torch

import valueloss as vl
from tests.batches import DTYPES, MASK_KINDS, assert_bitwise, random_batch, seed_of

from ._harness import load_functions, load_nested, release_dir


def test_critic_loss_matches_bit_for_bit(upstream_site):
    root = release_dir(upstream_site, "nemo-aligner", "0.7.0") / "nemo_aligner"
    utils = {"torch": torch, "wraps": functools.wraps, "warnings": warnings}
    masked_mean = load_functions(root / "utils" / "utils.py", ["surpress_user_warnings", "masked_mean"], utils)[
        "masked_mean"
    ]
    entry = vl.DIALECTS["nemo-aligner"]
    assert entry.verification == "real package" and "0.7.0" in entry.verified
    gen = torch.Generator().manual_seed(seed_of("nemo-aligner"))
    checked = 0
    for dtype in DTYPES:
        for mask_kind in MASK_KINDS:
            for i in range(15):
                b = random_batch(gen, dtype, mask_kind, nan_padding=i % 3 == 2, edge_rows=False)
                eps = b.eps or 0.2  # > 0: the clipped branch
                if not b.mask.bool().any():
                    continue  # masked_mean of no tokens: both give NaN, and the gradient is not compared
                critic = SimpleNamespace(enable_standardization=False, clip_val=eps)
                namespace = {
                    "torch": torch,
                    "masked_mean": masked_mean,
                    "average_losses_across_data_parallel_group": lambda losses: torch.stack(losses),  # one rank
                    "self": critic,
                    "prev_values": b.values,
                    "returns": b.returns,
                    "mask": b.mask,
                }
                path = root / "models" / "nlp" / "gpt" / "megatron_gpt_critic.py"
                enclosing = ["get_forward_output_and_loss_func", "fwd_output_and_loss_func"]
                loss_func = load_nested(path, enclosing, "loss_func", namespace)
                theirs_leaf, ours_leaf = b.leaf(), b.leaf()
                extra = torch.zeros(b.vpreds.shape[0], 1, dtype=dtype)  # the position the loss drops
                theirs, _ = loss_func(torch.cat([theirs_leaf, extra], dim=1))
                ours = vl.dialect_loss("nemo-aligner", ours_leaf, b.returns, b.values, b.mask, eps)
                what = f"nemo-aligner 0.7.0 {dtype} {mask_kind} batch {i}"
                assert_bitwise(ours.loss, theirs, what)
                theirs.backward()
                ours.loss.backward()
                assert_bitwise(ours_leaf.grad, theirs_leaf.grad, what + " gradient")
                checked += 1
    assert checked > 100
