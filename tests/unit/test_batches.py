"""Synthetic batches, GAE, the upload loaders (every bad file refused with a message) and batch statistics."""

from __future__ import annotations

import io
import math
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import valueloss as vl
from valueloss.tools.batch import MAX_TOKENS, REQUIRED, SYNTHETIC_PARAMS, Batch, gae_advantages_returns, synthetic_batch
from valueloss.tools.batch_files import (
    MAX_UPLOAD_BYTES,
    batch_to_long_frame,
    batch_to_npz,
    example_file,
    load_batch_file,
)
from valueloss.tools.batch_reports import (
    aggregation_table,
    aggregation_weights,
    analyse_batch,
    batch_stats,
    dialect_table,
    histogram,
    token_table,
)

SMALL = dict(batch_size=6, min_len=2, max_len=9)


def reference_gae(rewards, values, lengths, gamma, lam):
    """Textbook GAE, one sequence and one token at a time: A_t = sum_l (gamma lam)^l delta_{t+l}, V = 0 past the end."""
    B, T = len(rewards), len(rewards[0])
    adv = [[0.0] * T for _ in range(B)]
    for i in range(B):
        n = lengths[i]
        for t in range(n):
            total = 0.0
            for k in range(t, n):
                next_v = values[i][k + 1] if k + 1 < n else 0.0
                delta = rewards[i][k] + gamma * next_v - values[i][k]
                total += (gamma * lam) ** (k - t) * delta
            adv[i][t] = total
    return adv


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def npz_bytes(compressed: bool = False, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def good_arrays(shape=(3, 4)):
    rng = np.random.default_rng(0)
    return {k: rng.normal(size=shape).astype(np.float32) for k in ("vpreds", "returns", "values")}


def long_frame():
    return batch_to_long_frame(synthetic_batch(seed=1, **SMALL))


# --------------------------------------------------------------------------------------------- synthetic


def test_default_batch_shape_padding_and_lengths():
    b = synthetic_batch()
    assert b.shape == (64, 256)
    for t in (b.vpreds, b.returns, b.values, b.mask, b.rewards, b.advantages):
        assert t.dtype == torch.float32 and t.shape == (64, 256)
    lengths = b.lengths
    assert int(lengths.min()) >= 16 and int(lengths.max()) <= 256
    positions = torch.arange(256)[None, :]
    assert torch.equal(b.mask, (positions < lengths[:, None]).float())  # padding only after the end
    pad = ~b.mask.bool()
    for t in (b.vpreds, b.returns, b.values, b.rewards, b.advantages):
        assert torch.all(t[pad] == 0)
    assert torch.isfinite(b.vpreds).all()


def test_same_seed_same_batch_other_seed_other_batch():
    a, b, c = synthetic_batch(seed=3, **SMALL), synthetic_batch(seed=3, **SMALL), synthetic_batch(seed=4, **SMALL)
    for name in ("vpreds", "returns", "values", "mask", "rewards"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.vpreds, c.vpreds)


def test_reward_at_last_token_plus_kl_penalty():
    b = synthetic_batch(seed=0, kl_coef=0.0, **SMALL)
    last = b.lengths - 1
    nonzero = b.rewards != 0
    assert int(nonzero.sum()) == b.shape[0]  # only the last real token has a reward without KL
    assert torch.all(nonzero[torch.arange(b.shape[0]), last])
    with_kl = synthetic_batch(seed=0, kl_coef=0.5, **SMALL)
    real = with_kl.mask.bool()
    assert torch.all(with_kl.rewards[real & ~nonzero] < 0)  # -beta * KL with KL >= 0


def test_returns_are_advantages_plus_values():
    b = synthetic_batch(seed=2, lam=0.9, gamma=0.97, **SMALL)
    assert torch.equal(b.returns, b.advantages + b.values)


def test_lambda_one_gives_monte_carlo_returns_independent_of_the_critic():
    a = synthetic_batch(seed=5, gamma=1.0, lam=1.0, value_noise=0.0, dtype=torch.float64, **SMALL)
    b = synthetic_batch(seed=5, gamma=1.0, lam=1.0, value_noise=3.0, value_bias=2.0, dtype=torch.float64, **SMALL)
    mc = torch.flip(torch.cumsum(torch.flip(a.rewards, [1]), 1), [1]) * a.mask
    torch.testing.assert_close(a.returns, mc, rtol=0, atol=1e-12)
    torch.testing.assert_close(b.returns, mc, rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    gamma=st.floats(0.0, 1.0),
    lam=st.floats(0.0, 1.0),
    rows=st.integers(1, 4),
    width=st.integers(1, 8),
)
def test_gae_equals_the_slow_reference_loop(seed, gamma, lam, rows, width):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, width + 1, (rows,), generator=g)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).double()
    rewards = torch.randn(rows, width, generator=g, dtype=torch.float64) * mask
    values = torch.randn(rows, width, generator=g, dtype=torch.float64) * mask
    adv, ret = gae_advantages_returns(rewards, values, mask, gamma, lam)
    expected = torch.tensor(
        reference_gae(rewards.tolist(), values.tolist(), lengths.tolist(), gamma, lam), dtype=torch.float64
    )
    torch.testing.assert_close(adv * mask, expected, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ret, adv + values, rtol=0, atol=0)


def test_step_zero_is_the_first_minibatch():
    b = synthetic_batch(step=0.0, pred_noise=0.0, **SMALL)
    assert torch.equal(b.vpreds, b.values)
    _, clipfrac = vl.compute_value_loss(b.vpreds, b.returns, b.values, b.mask, 0.0)
    assert float(clipfrac) == 0.0


def test_step_one_without_noise_lands_on_the_returns():
    b = synthetic_batch(step=1.0, pred_noise=0.0, dtype=torch.float64, **SMALL)
    torch.testing.assert_close(b.vpreds, b.returns, rtol=0, atol=1e-12)


def test_critic_scale_reproduces_a_verl_498_mismatch():
    b = synthetic_batch(value_scale=15.0, value_bias=-1.0, value_noise=4.0)
    s = batch_stats(b, 0.2)
    assert s.value_std > 3 * s.return_std


def test_nan_padding_only_in_vpreds_padding():
    b = synthetic_batch(padding="nan", **SMALL)
    pad = ~b.mask.bool()
    assert torch.isnan(b.vpreds[pad]).all() and torch.isfinite(b.vpreds[~pad]).all()
    assert torch.isfinite(b.returns).all() and torch.isfinite(b.values).all()


@pytest.mark.parametrize("param", SYNTHETIC_PARAMS, ids=lambda p: p.name)
def test_every_parameter_is_validated_by_name(param):
    with pytest.raises(ValueError, match=param.name):
        synthetic_batch(**{param.name: param.high + (1 if param.integer else 0.5)})
    with pytest.raises(ValueError, match=param.name):
        synthetic_batch(**{param.name: param.low - 1})
    with pytest.raises(TypeError, match=param.name):
        synthetic_batch(**{param.name: True})
    with pytest.raises((TypeError, ValueError), match=param.name):
        synthetic_batch(**{param.name: float("nan")})


def test_defaults_of_the_specs_are_the_function_defaults():
    import inspect

    sig = inspect.signature(synthetic_batch)
    for p in SYNTHETIC_PARAMS:
        assert sig.parameters[p.name].default == p.default, p.name
        assert p.low <= p.default <= p.high


def test_cross_parameter_checks():
    with pytest.raises(ValueError, match="min_len"):
        synthetic_batch(min_len=10, max_len=5)
    with pytest.raises(ValueError, match="cap"):
        synthetic_batch(batch_size=4096, max_len=8192)
    with pytest.raises(ValueError, match="padding"):
        synthetic_batch(padding="garbage")
    with pytest.raises(TypeError, match="dtype"):
        synthetic_batch(dtype=torch.int64)
    with pytest.raises(ValueError, match="whole number"):
        synthetic_batch(batch_size=2.5)


# --------------------------------------------------------------------------------------------- loaders


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["npz", "csv", "parquet"])
def test_loaders_round_trip_exactly(kind, dtype):
    b = synthetic_batch(seed=11, dtype=dtype, **SMALL)
    if kind == "npz":
        data = batch_to_npz(b)
    elif kind == "csv":
        data = batch_to_long_frame(b).to_csv(index=False).encode()
    else:
        data = parquet_bytes(batch_to_long_frame(b))
    back = load_batch_file(f"upload.{kind}", data)
    assert back.vpreds.dtype == dtype
    for name in ("vpreds", "returns", "values", "mask"):
        assert torch.equal(getattr(back, name), getattr(b, name)), name
    assert back.rewards is None
    assert torch.equal(back.advantages, torch.where(b.mask.bool(), b.returns - b.values, 0.0))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rows=st.integers(1, 5), lo=st.integers(1, 6), extra=st.integers(0, 6))
def test_npz_and_parquet_round_trip_any_synthetic_batch(seed, rows, lo, extra):
    b = synthetic_batch(seed=seed, batch_size=rows, min_len=lo, max_len=lo + extra)
    for name, data in (("b.npz", batch_to_npz(b)), ("b.parquet", parquet_bytes(batch_to_long_frame(b)))):
        back = load_batch_file(name, data)
        assert torch.equal(back.vpreds, b.vpreds) and torch.equal(back.mask, b.mask)


def test_loaders_compute_the_same_loss_as_the_original():
    b = synthetic_batch(seed=4)
    back = load_batch_file("b.csv", example_like(b))
    for mode in vl.AGG_MODES:
        assert torch.equal(
            vl.compute_value_loss(b.vpreds, b.returns, b.values, b.mask, 0.2, mode)[0],
            vl.compute_value_loss(back.vpreds, back.returns, back.values, back.mask, 0.2, mode)[0],
        )


def example_like(b: Batch) -> bytes:
    return batch_to_long_frame(b).to_csv(index=False).encode()


def test_npz_without_mask_means_all_tokens_real():
    back = load_batch_file("x.npz", npz_bytes(**good_arrays()))
    assert torch.equal(back.mask, torch.ones(3, 4))


def test_csv_cells_left_out_are_padding_and_rows_are_renumbered():
    frame = pd.DataFrame(
        {"row": [7, 7, 7, 42], "t": [0, 1, 2, 0], "vpreds": [1.0, 2, 3, 4], "returns": [0.5] * 4, "values": [0.0] * 4}
    )
    back = load_batch_file("x.csv", csv_bytes(frame))
    assert back.shape == (2, 3)
    assert torch.equal(back.mask, torch.tensor([[1.0, 1, 1], [1, 0, 0]]))
    assert torch.equal(back.vpreds[1], torch.tensor([4.0, 0, 0]))


def test_nan_in_padding_is_kept_and_allowed():
    arrays = good_arrays()
    mask = np.ones((3, 4), dtype=np.float32)
    mask[0, 3] = 0
    arrays["vpreds"][0, 3] = np.nan
    back = load_batch_file("x.npz", npz_bytes(mask=mask, **arrays))
    assert math.isnan(float(back.vpreds[0, 3]))
    frame = long_frame()
    frame.loc[frame["mask"] == 0, "vpreds"] = np.nan
    back = load_batch_file("x.csv", csv_bytes(frame))
    assert torch.isnan(back.vpreds[~back.mask.bool()]).all()


def test_example_files_load():
    for kind in ("npz", "csv", "parquet"):
        b = load_batch_file(f"example.{kind}", example_file(kind))
        assert b.shape == (4, 8) and b.n_tokens >= 12
    with pytest.raises(ValueError, match="kind"):
        example_file("xlsx")


def _object_npz() -> bytes:
    buf = io.BytesIO()
    arrays = good_arrays()
    arrays["vpreds"] = np.array([[{"evil": 1}, None]], dtype=object)
    np.savez(buf, **arrays)  # np.savez pickles object arrays; the loader must refuse them
    return buf.getvalue()


def _zip_bomb() -> bytes:
    arrays = {k: np.zeros((1, 3_000_000), dtype=np.float64) for k in ("vpreds", "returns", "values")}
    return npz_bytes(compressed=True, **arrays)


def _too_many_cells_npz() -> bytes:
    return npz_bytes(compressed=True, **{k: np.zeros((1, MAX_TOKENS + 1), np.float32) for k in REQUIRED})


def _with(frame: pd.DataFrame, **changes) -> pd.DataFrame:
    frame = frame.copy()
    for column, value in changes.items():
        if value is None:
            frame = frame.drop(columns=column)
        else:
            frame[column] = value
    return frame


def _frame_edit(fn):
    frame = long_frame()
    fn(frame)
    return frame


BAD_FILES = {
    "unsupported extension": ("batch.txt", lambda: b"abc", "unsupported file type"),
    "no extension": ("batch", lambda: b"abc", "unsupported file type"),
    "empty": ("batch.npz", lambda: b"", "empty"),
    "oversized": ("batch.csv", lambda: b"0" * (MAX_UPLOAD_BYTES + 1), "limit is 20 MB"),
    "npz not a zip": ("batch.npz", lambda: b"definitely not a zip", "not a valid .npz"),
    "pickle named npz": ("batch.npz", lambda: pickle.dumps({"vpreds": [1, 2]}), "not a valid .npz"),
    "npy named npz": ("batch.npz", lambda: _npy_bytes(), "not a valid .npz"),
    "object array": ("batch.npz", _object_npz, "Python objects"),
    "missing array": ("batch.npz", lambda: npz_bytes(vpreds=np.zeros((2, 2)), values=np.zeros((2, 2))), "returns"),
    "1-d array": ("batch.npz", lambda: npz_bytes(**{k: np.zeros(5) for k in REQUIRED}), "must be 2-D"),
    "mismatched shapes": (
        "batch.npz",
        lambda: npz_bytes(vpreds=np.zeros((2, 3)), returns=np.zeros((2, 3)), values=np.zeros((3, 2))),
        "has shape",
    ),
    "text array": (
        "batch.npz",
        lambda: npz_bytes(vpreds=np.array([["a", "b"]]), returns=np.zeros((1, 2)), values=np.zeros((1, 2))),
        "real numbers",
    ),
    "complex array": (
        "batch.npz",
        lambda: npz_bytes(vpreds=np.zeros((1, 2), complex), returns=np.zeros((1, 2)), values=np.zeros((1, 2))),
        "complex",
    ),
    "nan on a real token": (
        "batch.npz",
        lambda: npz_bytes(**{**good_arrays(), "returns": np.full((3, 4), np.nan, np.float32)}),
        "NaN/inf",
    ),
    "inf on a real token": (
        "batch.npz",
        lambda: npz_bytes(**{**good_arrays(), "values": np.full((3, 4), np.inf, np.float32)}),
        "NaN/inf",
    ),
    "mask not 0/1": ("batch.npz", lambda: npz_bytes(mask=np.full((3, 4), 2.0), **good_arrays()), "only 0 and 1"),
    "mask nan": ("batch.npz", lambda: npz_bytes(mask=np.full((3, 4), np.nan), **good_arrays()), "mask holds NaN"),
    "empty arrays": ("batch.npz", lambda: npz_bytes(**{k: np.zeros((0, 4)) for k in REQUIRED}), "empty"),
    "too many cells": ("batch.npz", _too_many_cells_npz, "the limit is 2,000,000"),
    "zip bomb": ("batch.npz", _zip_bomb, "decompresses"),
    "truncated npz": ("batch.npz", lambda: batch_to_npz(synthetic_batch(**SMALL))[:-40], "npz"),
    "csv garbage": ("batch.csv", lambda: b"hello world\nfoo", "missing column"),
    "csv header only": ("batch.csv", lambda: b"row,t,vpreds,returns,values\n", "no tokens"),
    "csv blank": ("batch.csv", lambda: b"\n\n", "no header"),
    "csv missing column": ("batch.csv", lambda: csv_bytes(_with(long_frame(), returns=None)), "returns"),
    "csv non-numeric": ("batch.csv", lambda: csv_bytes(_with(long_frame(), values="abc")), "not numeric"),
    "csv duplicate token": ("batch.csv", lambda: csv_bytes(pd.concat([long_frame()] * 2)), "more than once"),
    "csv negative t": ("batch.csv", lambda: csv_bytes(_with(long_frame(), t=-1)), ">= 0"),
    "csv fractional t": ("batch.csv", lambda: csv_bytes(_with(long_frame(), t=0.5)), "whole numbers"),
    "csv missing t": (
        "batch.csv",
        lambda: csv_bytes(_frame_edit(lambda f: f.__setitem__("t", f["t"].astype(float).where(f.index > 0)))),
        "missing or non-finite",
    ),
    "csv nan on real token": (
        "batch.csv",
        lambda: csv_bytes(_frame_edit(lambda f: f.loc.__setitem__((0, "vpreds"), np.nan))),
        "NaN/inf",
    ),
    "csv mask 3": ("batch.csv", lambda: csv_bytes(_with(long_frame(), mask=3)), "only 0 and 1"),
    "csv too many cells": (
        "batch.csv",
        lambda: csv_bytes(
            pd.DataFrame({"row": [0, 1], "t": [0, MAX_TOKENS], "vpreds": 0.0, "returns": 0.0, "values": 0.0})
        ),
        "the limit is 2,000,000",
    ),
    "csv binary": ("batch.csv", lambda: bytes(range(256)) * 4, "CSV"),
    "parquet garbage": ("batch.parquet", lambda: b"PAR1 not really", "not a valid Parquet"),
    "parquet missing column": ("batch.parquet", lambda: parquet_bytes(_with(long_frame(), vpreds=None)), "vpreds"),
    "parquet text column": ("batch.parquet", lambda: parquet_bytes(_with(long_frame(), returns="x")), "numeric"),
    "parquet null on a real token": (
        "batch.parquet",
        lambda: parquet_bytes(_frame_edit(lambda f: f.loc.__setitem__((0, "values"), None))),
        "NaN/inf",
    ),
    "parquet duplicate": ("batch.parquet", lambda: parquet_bytes(pd.concat([long_frame()] * 2)), "more than once"),
}


def _npy_bytes() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 2)))
    return buf.getvalue()


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_every_bad_file_is_refused_with_a_message(case):
    name, make, fragment = BAD_FILES[case]
    with pytest.raises(ValueError, match=fragment) as err:
        load_batch_file(name, make())
    assert len(str(err.value)) > 15  # a sentence, not a bare token


def test_loader_never_unpickles(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("pickle.loads was called")

    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    with pytest.raises(ValueError, match="Python objects"):
        load_batch_file("x.npz", _object_npz())


def test_loader_argument_types():
    with pytest.raises(TypeError, match="data"):
        load_batch_file("x.npz", "not bytes")
    with pytest.raises(TypeError, match="name"):
        load_batch_file(None, b"abc")


def test_zip_member_sizes_are_checked_before_reading(monkeypatch):
    calls = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: calls.append(1) or real_load(*a, **k))
    with pytest.raises(ValueError, match="decompresses"):
        load_batch_file("x.npz", _zip_bomb())
    assert not calls
    assert zipfile.is_zipfile(io.BytesIO(_zip_bomb()))


# --------------------------------------------------------------------------------------------- statistics


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


def torch_gae_loop(rewards, values, mask, gamma, lam):
    """verl's loop written with torch ops (the form of compute_gae_advantage_return), for a bit-level comparison."""
    nextvalues = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    lastgaelam = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    out = []
    for t in reversed(range(rewards.shape[-1])):
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam_ = delta + gamma * lam * lastgaelam
        nextvalues = values[:, t] * mask[:, t] + (1 - mask[:, t]) * nextvalues
        lastgaelam = lastgaelam_ * mask[:, t] + (1 - mask[:, t]) * lastgaelam
        out.append(lastgaelam)
    advantages = torch.stack(out[::-1], dim=1)
    return advantages, advantages + values


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gae_is_bit_identical_to_the_torch_loop(dtype):
    b = synthetic_batch(seed=12, gamma=0.99, lam=0.95, dtype=dtype)
    adv, ret = gae_advantages_returns(b.rewards, b.values, b.mask, 0.99, 0.95)
    ref_adv, ref_ret = torch_gae_loop(b.rewards, b.values, b.mask, 0.99, 0.95)
    assert torch.equal(adv, ref_adv) and torch.equal(ret, ref_ret)
    with pytest.raises(TypeError, match="rewards"):
        gae_advantages_returns(b.rewards.half(), b.values, b.mask, 0.99, 0.95)


def test_the_token_tables_number_columns_are_named_not_counted():
    """The page formats TOKEN_NUMBER_COLUMNS as numbers: exactly the table's real-valued columns."""
    from valueloss.tools.batch_reports import TOKEN_NUMBER_COLUMNS

    table = token_table(synthetic_batch(**SMALL), 0.2)
    assert set(TOKEN_NUMBER_COLUMNS) == {c for c in table.columns if table[c].dtype.kind == "f"}
