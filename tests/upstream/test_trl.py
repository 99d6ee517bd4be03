"""TRL 1.12.0 (PyPI): the value-loss lines of ``PPOTrainer.train`` against the ``trl`` dialect, bit for bit.

Why not one real update: TRL's PPO trainer (``trl/experimental/ppo/ppo_trainer.py``; 1.12.0 is the last
release that ships it, 1.13 removed it) computes the value loss inside ``train()``, after generating
responses with a causal language model, scoring them with a reward model and a reference policy, all
through ``transformers``, ``accelerate`` and ``datasets``. Those (with tokenizers, safetensors,
huggingface_hub, ...) are not installed here, and a real step would also need a model and tokenizer
from the Hub, which this project's machines cannot reach. That is not feasible, so instead:

How the library is loaded: **its own statements, from the installed file** -- ``masked_mean`` (top
level) and the contiguous block of ``PPOTrainer.train`` from ``vpred = torch.masked_fill(...)`` to
``vf_clipfrac = masked_mean(...)``, found by their assignment targets with ``ast`` and run verbatim on our
batches (``padding_mask_p1`` is TRL's padding mask, True on padding). So the arithmetic checked is TRL's
text, not a restatement; what feeds it (``vpred`` from the model, ``mb_values``/``mb_return`` from the
rollout) is the batch. Checked: ``vf_loss``, ``vf_clipfrac`` and the gradient into the predictions.
"""

from __future__ import annotations

import ast
import itertools
from types import SimpleNamespace

import pytest
import torch

import valueloss as vl
from tests.batches import DTYPES, assert_bitwise, random_batch

from ._harness import load_functions, version_of

FIRST, LAST = "vpred", "vf_clipfrac"


def _value_loss_block(path):
    """The statements of ``PPOTrainer.train`` from the masking of ``vpred`` to ``vf_clipfrac``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    (train,) = [
        node
        for cls in tree.body
        if isinstance(cls, ast.ClassDef) and cls.name == "PPOTrainer"
        for node in cls.body
        if isinstance(node, ast.FunctionDef) and node.name == "train"
    ]

    def target(stmt):
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            return stmt.targets[0].id
        return None

    for node in ast.walk(train):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        names = [target(s) for s in body]
        if "vpredclipped" in names and LAST in names:
            end = names.index(LAST)
            start = max(i for i in range(end) if names[i] == FIRST)
            stmts = body[start : end + 1]
            assert "masked_fill" in ast.unparse(stmts[0]), ast.unparse(stmts[0])
            return compile(ast.Module(body=stmts, type_ignores=[]), str(path), "exec")
    raise LookupError(f"{path}: the value-loss block of PPOTrainer.train was not found (the release changed)")


@pytest.fixture(scope="module")
def trl(upstream_site):
    assert (upstream_site / f"trl-{version_of('trl')}.dist-info").is_dir()
    path = upstream_site / "trl" / "experimental" / "ppo" / "ppo_trainer.py"
    namespace = load_functions(path, ["masked_mean"], {"torch": torch})
    return SimpleNamespace(block=_value_loss_block(path), masked_mean=namespace["masked_mean"])


def run_trl(trl, vpred, returns, values, padding, eps):
    """Execute TRL's own lines; returns its ``vf_loss``, ``vf_clipfrac`` and the gradient on ``vpred``."""
    leaf = vpred.detach().clone().requires_grad_(True)
    scope = {
        "torch": torch,
        "masked_mean": trl.masked_mean,
        "args": SimpleNamespace(cliprange_value=eps),
        "vpred": leaf,
        "mb_values": values,
        "mb_return": returns,
        "padding_mask_p1": padding,
        "micro_batch_inds": slice(None),
    }
    exec(trl.block, scope)  # noqa: S102 - TRL's own statements
    scope["vf_loss"].backward()
    return scope["vf_loss"], scope["vf_clipfrac"], leaf.grad


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_value_loss_lines_bit_for_bit(trl, dtype):
    gen = torch.Generator().manual_seed(17)
    for _ in range(60):
        b = random_batch(gen, dtype, "bool", edge_rows=False)
        if not b.bool_mask.any():
            continue  # TRL divides by the token count: 0/0
        # TRL zeroes the old values in padding at rollout (torch.masked_fill(values, padding_mask_p1, 0))
        values = torch.masked_fill(b.values, ~b.bool_mask, 0)
        loss, clipfrac, grad = run_trl(trl, b.vpreds, b.returns, values, ~b.bool_mask, b.eps)
        leaf = b.leaf()
        ours = vl.dialect_loss("trl", leaf, b.returns, values, b.bool_mask, b.eps)
        ours.loss.backward()
        assert_bitwise(ours.loss, loss, "vf_loss")
        assert_bitwise(ours.clipfrac, clipfrac, "vf_clipfrac")
        real = b.bool_mask  # padding: TRL's masked_fill gives +0.0, our product by the mask may give -0.0
        assert_bitwise(leaf.grad[real], grad[real], "d vf_loss / d vpred on real tokens")
        assert (leaf.grad[~real] == 0).all() and (grad[~real] == 0).all()


def test_nan_in_padded_predictions(trl):
    gen = torch.Generator().manual_seed(19)
    for dtype, _ in itertools.product(DTYPES, range(10)):
        b = random_batch(gen, dtype, "bool", nan_padding=True, edge_rows=False)
        if not b.bool_mask.any() or b.bool_mask.all():
            continue
        values = torch.masked_fill(b.values, ~b.bool_mask, 0)
        loss, clipfrac, _ = run_trl(trl, b.vpreds, b.returns, values, ~b.bool_mask, b.eps)
        assert torch.isfinite(loss)
        ours = vl.dialect_loss("trl", b.vpreds, b.returns, values, b.bool_mask, b.eps)
        assert_bitwise(ours.loss, loss, "vf_loss with NaN in padding")
