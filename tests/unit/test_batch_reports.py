"""Batch statistics and tables (valueloss.tools.batch_reports): statistics, histogram, token, aggregation and
dialect tables against the core functions; and a batch analysis validates at its boundary and computes the per-token
anatomy once, every table deriving from that one result, bit for bit what the tables computed on their own."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import valueloss as vl
import valueloss._validate as check
import valueloss.tools.batch_anatomy as batch_anatomy_module
from valueloss.anatomy import value_loss_terms
from valueloss.dialects import DIALECTS
from valueloss.losses import compute_value_loss
from valueloss.tools.batch import Batch, synthetic_batch
from valueloss.tools.batch_reports import (
    aggregation_table,
    aggregation_weights,
    analyse_batch,
    batch_anatomy,
    batch_stats,
    dialect_table,
    dialects_of,
    histogram,
    token_table,
)
from valueloss.tools.sanity import sanity_from_batch

SMALL = dict(batch_size=6, min_len=2, max_len=9)


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


def test_batch_stats_match_the_core_functions():
    b = synthetic_batch(seed=9)
    eps = 0.2
    s = batch_stats(b, eps)
    _, clipfrac = vl.compute_value_loss(b.vpreds, b.returns, b.values, b.mask, eps)
    assert s.loss_clipfrac == float(clipfrac)
    real = b.mask.bool()
    delta = (b.vpreds - b.values)[real]
    assert s.pred_clipfrac == pytest.approx(float((delta.abs() > eps).double().mean()), abs=0)
    assert s.n_tokens == int(real.sum()) and len(s.delta) == s.n_tokens
    # Zero-gradient share from autograd of verl's loss.
    v = b.vpreds.clone().requires_grad_(True)
    vl.compute_value_loss(v, b.returns, b.values, b.mask, eps)[0].backward()
    assert s.zero_grad_share == pytest.approx(float((v.grad[real] == 0).double().mean()), abs=1e-12)
    assert s.zero_grad_share >= s.loss_clipfrac - 1e-6
    assert s.pred_clipfrac >= s.loss_clipfrac


def test_batch_stats_count_nan():
    b = synthetic_batch(padding="nan", **SMALL)
    s = batch_stats(b, 0.2)
    assert s.nan_real == 0 and s.nan_padding == int((b.mask == 0).sum())


def test_histogram_keeps_eps_in_range_and_counts_every_finite_value():
    h = histogram(np.array([0.01, 0.02, np.nan, 0.03]), eps=0.5, bins=10)
    assert h.counts.sum() == 3
    assert h.edges[0] <= -0.5 and h.edges[-1] >= 0.5
    empty = histogram(np.array([]), eps=0.0)
    assert empty.counts.sum() == 0 and empty.edges[0] < empty.edges[-1]


def test_token_table_matches_the_batch():
    b = synthetic_batch(seed=1, **SMALL)
    table = token_table(b, 0.2, max_rows=None)
    assert len(table) == b.n_tokens
    r, t = int(table["row"].iloc[5]), int(table["t"].iloc[5])
    assert table["v"].iloc[5] == float(b.vpreds[r, t]) and table["R"].iloc[5] == float(b.returns[r, t])
    assert table["loss clipped"].sum() == round(batch_stats(b, 0.2).loss_clipfrac * b.n_tokens)
    assert len(token_table(b, 0.2, max_rows=3)) == 3
    with pytest.raises(ValueError, match="max_rows"):
        token_table(b, 0.2, max_rows=0)


def test_aggregation_weights_have_the_closed_forms():
    b = synthetic_batch(seed=2, batch_size=5, min_len=1, max_len=7)
    mask = b.mask.clone()
    mask[2] = 0  # an empty row is excluded from B'
    n_i = mask.sum(-1).double()
    N, B_, T = float(n_i.sum()), int((n_i > 0).sum()), mask.shape[1]
    m = mask.double()
    expected = {
        "token-mean": m / N,
        "token-sum": m,
        "seq-mean-token-sum": m / B_,
        "seq-mean-token-mean": m / (B_ * (n_i[:, None] + 1e-8)),
        "seq-mean-token-sum-norm": m / (B_ * T),
    }
    L = torch.rand(mask.shape, dtype=torch.float64)
    for mode, w in expected.items():
        got = aggregation_weights(mask, mode)
        torch.testing.assert_close(got, w, rtol=1e-12, atol=0)
        torch.testing.assert_close((got * L).sum(), vl.agg_loss(L, m, mode), rtol=1e-12, atol=1e-15)


def test_aggregation_table_losses_and_short_long_ratio():
    b = synthetic_batch(seed=3)
    table = aggregation_table(b, 0.2).set_index("mode")
    for mode in vl.AGG_MODES:
        loss, _ = vl.compute_value_loss(b.vpreds, b.returns, b.values, b.mask, 0.2, mode)
        assert table.loc[mode, "vf_loss"] == float(loss)
    short, long = int(b.lengths.min()), int(b.lengths.max())
    assert table.loc["seq-mean-token-mean", "short / long per token"] == pytest.approx(long / short, rel=1e-6)
    for mode in ("token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-sum-norm"):
        assert table.loc[mode, "short / long per token"] == pytest.approx(1.0)


def test_dialect_table_is_every_library_on_the_same_batch():
    b = synthetic_batch(seed=4)
    table = dialect_table(b, 0.3)
    assert list(table["dialect"]) == list(vl.DIALECTS)
    for _, row in table.iterrows():
        param = 10.0 if row["dialect"] == "rllib" else 0.3
        res = vl.dialect_loss(row["dialect"], b.vpreds, b.returns, b.values, b.mask, param)
        assert row["value"] == param and row["loss"] == float(res.loss)
        assert row["logs clip fraction"] == (res.clipfrac is not None)
        if res.clipfrac is None:
            assert math.isnan(row["clip fraction"])
        else:
            assert row["clip fraction"] == float(res.clipfrac)
    assert table.set_index("dialect").loc["verl", "clip fraction"] == batch_stats(b, 0.3).loss_clipfrac
    assert dialect_table(b, 0.3, rllib_clip=1.0).set_index("dialect").loc["rllib", "value"] == 1.0


def test_nan_padding_poisons_exactly_the_multiplying_modes():
    b = synthetic_batch(padding="nan", **SMALL)
    table = aggregation_table(b, 0.2).set_index("mode")["vf_loss"]
    assert math.isfinite(table["token-mean"]) and math.isfinite(table["token-sum"])
    assert all(math.isnan(table[m]) for m in ("seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"))


def test_analyse_batch_bundles_everything():
    b = synthetic_batch(seed=6)
    report = analyse_batch(b, 0.25, "seq-mean-token-mean", table_rows=10)
    loss, clipfrac = vl.compute_value_loss(b.vpreds, b.returns, b.values, b.mask, 0.25, "seq-mean-token-mean")
    assert report.vf_loss == float(loss) and report.vf_clipfrac == float(clipfrac)
    assert len(report.tokens) == 10 and len(report.aggregation) == 5 and len(report.dialects) == len(vl.DIALECTS)
    assert report.delta_hist.counts.sum() == b.n_tokens
    with pytest.raises(ValueError, match="loss_agg_mode"):
        analyse_batch(b, 0.25, "mean")
    with pytest.raises(ValueError, match="eps"):
        analyse_batch(b, -1.0)


def test_all_masked_batch_statistics_do_not_crash():
    b = synthetic_batch(**SMALL)
    empty = Batch(b.vpreds, b.returns, b.values, torch.zeros_like(b.mask), None, None)
    report = analyse_batch(empty, 0.2)
    assert report.stats.n_tokens == 0 and math.isnan(report.vf_loss)
    assert report.stats.loss_clipfrac == 0.0


def test_median_gap_is_over_real_tokens():
    b = synthetic_batch(seed=5, **SMALL)
    real = b.mask.bool()
    assert batch_stats(b, 0.2).median_abs_gap == pytest.approx(
        float(np.median((b.returns[real] - b.values[real]).abs().double().numpy()))
    )


def test_the_token_tables_number_columns_are_named_not_counted():
    """The page formats TOKEN_NUMBER_COLUMNS as numbers: exactly the table's real-valued columns."""
    from valueloss.tools.batch_reports import TOKEN_NUMBER_COLUMNS

    table = token_table(synthetic_batch(**SMALL), 0.2)
    assert set(TOKEN_NUMBER_COLUMNS) == {c for c in table.columns if table[c].dtype.kind == "f"}
