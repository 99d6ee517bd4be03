"""One copy of every formula: each dialect computes with a function of ``valueloss.library_code``, and the
exported file holds that very function's source (``inspect.getsource``), its helpers' and its settings."""

from __future__ import annotations

import inspect
import runpy

import pytest
import torch

from valueloss import DIALECTS, dialect_loss
from valueloss import library_code as lc
from valueloss.tools.export import EXPORT_DIALECTS, dialect_modes, export_batch_code

CASES = [(name, mode) for name in EXPORT_DIALECTS for mode in dialect_modes(name)]


def batch():
    g = torch.Generator().manual_seed(3)
    values = torch.randn(3, 4, generator=g, dtype=torch.float64)
    returns = values + torch.randn(3, 4, generator=g, dtype=torch.float64)
    vpreds = values + 0.5 * torch.randn(3, 4, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.float32)
    return vpreds, returns, values, mask


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
