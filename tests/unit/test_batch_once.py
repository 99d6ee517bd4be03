"""A batch analysis validates at its boundary and computes the per-token anatomy once; every table derives
from that one result, bit for bit what the tables computed on their own."""

import math

import pandas as pd
import pytest
import torch

import valueloss._validate as check
import valueloss.tools.batch_anatomy as batch_anatomy_module
from valueloss.anatomy import value_loss_terms
from valueloss.dialects import DIALECTS
from valueloss.losses import compute_value_loss
from valueloss.tools.batch import synthetic_batch
from valueloss.tools.batch_reports import analyse_batch, batch_anatomy, dialects_of
from valueloss.tools.sanity import sanity_from_batch


class Counter:
    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, *args, **kwargs):
        self.calls.append(args)
        return self.fn(*args, **kwargs)


@pytest.fixture
def counted(monkeypatch):
    """Count the anatomy (where the boundary calls it) and every clip-range validation in the package."""
    terms = Counter(batch_anatomy_module.value_loss_terms_of_checked)
    monkeypatch.setattr(batch_anatomy_module, "value_loss_terms_of_checked", terms)
    clip = Counter(check.clip_range)
    monkeypatch.setattr(check, "clip_range", clip)
    return terms, clip


def _eps_checks(clip: Counter) -> list:
    return [args for args in clip.calls if args[0] == "eps"]


@pytest.mark.parametrize("padding", ["zeros", "nan"])
def test_one_report_computes_the_anatomy_once_and_validates_eps_once(counted, padding):
    terms, clip = counted
    batch = synthetic_batch(seed=3, batch_size=12, max_len=40, padding=padding)
    analyse_batch(batch, 0.2, "seq-mean-token-mean")
    assert len(terms.calls) == 1
    assert len(_eps_checks(clip)) == 1
    # Beyond that one check, only the libraries' own code validates (the dialect table runs each library's
    # computation, which checks its own parameter): the report adds nothing else.
    own = len(clip.calls)
    clip.calls.clear()
    dialects_of(batch_anatomy(batch, 0.2))
    assert own == 1 + (len(clip.calls) - 1)


@pytest.mark.parametrize("padding", ["zeros", "nan"])
def test_one_sanity_check_computes_the_anatomy_once_and_validates_eps_once(counted, padding):
    terms, clip = counted
    batch = synthetic_batch(seed=4, batch_size=10, max_len=30, padding=padding)
    sanity_from_batch(batch, 0.3, "verl", 0.1)
    assert len(terms.calls) == 1
    assert len(_eps_checks(clip)) == 1


def test_the_report_reads_its_numbers_off_the_anatomy_bit_for_bit():
    batch = synthetic_batch(seed=5, batch_size=9, max_len=33, padding="nan", dtype=torch.float64)
    eps = 0.25
    report = analyse_batch(batch, eps, "token-sum")
    loss, clipfrac = compute_value_loss(batch.vpreds, batch.returns, batch.values, batch.mask, eps, "token-sum")
    assert report.vf_loss == float(loss.item()) or (math.isnan(report.vf_loss) and torch.isnan(loss))
    assert report.vf_clipfrac == float(clipfrac.item())
    agg = report.aggregation.set_index("mode")
    for mode in agg.index:
        expected = float(compute_value_loss(batch.vpreds, batch.returns, batch.values, batch.mask, eps, mode)[0])
        got = float(agg.loc[mode, "vf_loss"])
        assert got == expected or (math.isnan(got) and math.isnan(expected))
    # The token table's terms are the anatomy's cells, as a fresh per-token call computes them.
    tok = report.tokens
    rows, ts = torch.tensor(tok["row"].to_numpy()), torch.tensor(tok["t"].to_numpy())
    fresh = value_loss_terms(batch.vpreds[rows, ts], batch.returns[rows, ts], batch.values[rows, ts], eps)
    pd.testing.assert_series_equal(tok["dmax/dv"], pd.Series(fresh.grad.double().numpy(), name="dmax/dv"))
    pd.testing.assert_series_equal(tok["max"], pd.Series(fresh.loss_max.double().numpy(), name="max"))
    assert set(report.dialects["dialect"]) == set(DIALECTS)


def test_the_boundary_names_the_bad_argument():
    batch = synthetic_batch(seed=0, batch_size=2, min_len=2, max_len=4)
    with pytest.raises(ValueError, match="eps"):
        analyse_batch(batch, -1.0)
    with pytest.raises(ValueError, match="convention"):
        batch_anatomy(batch, 0.2, "sideways")
