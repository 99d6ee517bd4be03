"""One copy of every formula: each dialect computes with a function of ``valueloss.library_code``, and the
exported file holds that very function's source (``inspect.getsource``), its helpers' and its settings."""

from __future__ import annotations

import inspect
import runpy

import pytest
import torch

from tests.batches import random_batch
from valueloss import DIALECTS, dialect_loss
from valueloss import library_code as lc
from valueloss.tools.export import EXPORT_DIALECTS, dialect_modes, export_batch_code

CASES = [(name, mode) for name in EXPORT_DIALECTS for mode in dialect_modes(name)]


def batch():
    return random_batch(3, rows=3, width=4)[:4]


def test_every_dialect_computes_with_library_code_and_is_exported():
    assert set(EXPORT_DIALECTS) == set(DIALECTS)
    for name, d in DIALECTS.items():
        assert isinstance(d.compute, lc.LibraryCode), name
        assert d.compute.fn.__module__ == lc.__name__, name


@pytest.mark.parametrize("name, mode", CASES)
def test_exported_code_is_the_source_of_the_function_that_computes(name, mode, tmp_path):
    code = DIALECTS[name].compute
    eps = 1.0 if DIALECTS[name].eps_units == "loss" else 0.2
    text = export_batch_code(*batch(), eps, mode, name)
    assert inspect.getsource(code.fn) in text
    assert code.source() in text
    path = tmp_path / "exported.py"
    path.write_text(text)
    ns = runpy.run_path(str(path))
    exported = ns[code.fn.__name__]
    assert inspect.getsource(exported) == inspect.getsource(code.fn)
    assert ns["SETTINGS"] == code.settings(mode)
    # the exported function with the exported settings gives what the registry gives, bit for bit
    got_loss, got_clipfrac = exported(*batch(), eps, **ns["SETTINGS"])
    want = dialect_loss(name, *batch(), eps, loss_agg_mode=mode)
    torch.testing.assert_close(got_loss, want.loss, rtol=0, atol=0, equal_nan=True)
    assert (got_clipfrac is None) == (want.clipfrac is None)
    if want.clipfrac is not None:
        torch.testing.assert_close(got_clipfrac, want.clipfrac, rtol=0, atol=0, equal_nan=True)


def test_helpers_are_collected_by_walking_the_names():
    source = lc.library_source(lc.value_loss)
    for helper in (lc.masked_sum, lc.masked_mean, lc.agg_loss, lc.value_loss):
        assert inspect.getsource(helper).strip("\n") in source
    assert source.index("def masked_sum") < source.index("def agg_loss") < source.index("def value_loss")
    slime = lc.library_source(lc.slime_value_loss)
    assert "def slime_token_sum" in slime and "def slime_sample_mean" in slime and "def sequential_sum" in slime
    assert "def tf_maximum" in lc.library_source(lc.baselines_value_loss)
    assert "def masked_sum" not in lc.library_source(lc.sb3_value_loss)


def test_a_function_that_needs_more_than_torch_is_refused():
    namespace = {"torch": torch, "inspect": inspect, "__name__": lc.__name__}
    exec("def uses_inspect(x):\n    return inspect.isfunction(x)\n", namespace)
    with pytest.raises(ValueError, match="uses the global 'inspect'"):
        lc.library_source(namespace["uses_inspect"])


# ------------------------------------------------------------------------------------------- slime, vectorised


def slime_as_written(vpreds, returns, values, mask, value_clip, per_token):
    """slime 624b824a's value_loss_function, reducers and logging, restated in its own order: the batch as one
    flat tensor split per sample, int32 loss masks, float32 per-sample denominators, Python's sum(), the logged
    tensor ``torch.tensor([count, loss, clipfrac])`` summed, ``.tolist()`` and divided in Python."""
    rows, width = vpreds.shape
    lengths = [width] * rows
    loss_masks = [mask[i].to(torch.int32) for i in range(rows)]
    denoms = torch.tensor([int(m.sum()) for m in loss_masks]).to(torch.float32)

    def sum_of_sample_mean(x):
        parts = zip(x.split(lengths), loss_masks, denoms, strict=True)
        return sum([(x_i * m_i).sum() / torch.clamp_min(d, 1) for x_i, m_i, d in parts])

    def sum_of_token(x):
        return sum([(x_i * m_i).sum() for x_i, m_i in zip(x.split(lengths), loss_masks, strict=True)])

    reduce = sum_of_token if per_token else sum_of_sample_mean
    flat = [t.reshape(-1) for t in (vpreds, returns, values)]
    v, r, o = flat
    clipfrac = torch.abs(v - o) > value_clip
    clipped = o + (v - o).clamp(-value_clip, value_clip)
    loss = reduce(torch.max((clipped - r) ** 2, (v - r) ** 2))
    clipfrac = reduce(clipfrac.float())
    num_tokens = sum([torch.clamp_min(m.sum(), 1) for m in loss_masks])
    logged = torch.tensor([num_tokens if per_token else 0, loss.detach(), clipfrac]).tolist()
    divisor = logged[0] if per_token else rows
    return loss, logged[1] / divisor, logged[2] / divisor


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("per_token", [False, True], ids=["sample-mean", "per-token"])
def test_slime_vectorised_is_slime_bit_for_bit(dtype, per_token):
    """The vectorised reducers give slime's logged numbers to the bit, and the loop-free sum keeps the gradient."""
    gen = torch.Generator().manual_seed(19)
    shapes = [(1, 1), (3, 5), (9, 17), (40, 33), (3, 32769)]  # the last row is summed one by one
    for i in range(30):
        rows, width = shapes[i % len(shapes)]
        v, r, o = (torch.randn(rows, width, generator=gen, dtype=torch.float64).to(dtype) for _ in range(3))
        mask = torch.rand(rows, width, generator=gen) < 0.7
        mask[0] = False if i % 3 == 0 else mask[0]  # an empty sample
        if i % 4 == 1:
            v = torch.where(mask, v, torch.full_like(v, float("nan")))  # NaN in padding reaches slime's sums
        kind = (torch.bool, torch.float32, torch.int64, dtype)[i % 4]
        eps = (0.2, 0.0, 1.0)[i % 3]
        leaf = v.clone().requires_grad_(True)
        trained, loss, clipfrac = slime_as_written(leaf, r, o, mask.to(kind), eps, per_token)
        mine = leaf.detach().clone().requires_grad_(True)
        got_loss, got_clipfrac = lc.slime_value_loss(mine, r, o, mask.to(kind), eps, calculate_per_token_loss=per_token)
        assert got_loss.dtype == got_clipfrac.dtype == torch.float64
        torch.testing.assert_close(got_loss, torch.tensor(loss, dtype=torch.float64), rtol=0, atol=0, equal_nan=True)
        assert float(got_clipfrac) == clipfrac
        got_loss.backward()
        # slime trains on loss * num_microbatches / step_global_batch_size * dp_size (sample mean), or on the token
        # sum with Megatron dividing the gradient by num_tokens (per-token): the same gradient up to rounding
        if per_token:
            trained.backward()
            want = leaf.grad / float(mask.sum(dim=-1).clamp_min(1).sum())
        else:
            (trained * 1 / rows * 1).backward()
            want = leaf.grad
        torch.testing.assert_close(mine.grad, want, equal_nan=True)


def test_sequential_sum_is_pythons_sum():
    gen = torch.Generator().manual_seed(2)
    for dtype in (torch.float32, torch.bfloat16, torch.float64, torch.float16):
        scale = 10.0 ** torch.randint(-3, 4, (500,), generator=gen)
        parts = (torch.rand(500, generator=gen, dtype=torch.float64) * scale).to(dtype)
        assert torch.equal(lc.sequential_sum(parts), sum(list(parts))), dtype
    assert torch.equal(lc.sequential_sum(torch.tensor([1e8, 1.0, -1e8])), torch.tensor(0.0))  # not 1.0: in order
