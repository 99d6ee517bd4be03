"""The upload loaders (valueloss.tools.batch_files): npz, CSV and Parquet round trips, example files, and every
bad file refused with a message (never unpickled, zip members sized before reading). Hostile uploads: test_hostile_inputs.py."""

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
from valueloss.tools.batch import MAX_TOKENS, REQUIRED, Batch, synthetic_batch
from valueloss.tools.batch_files import (
    MAX_UPLOAD_BYTES,
    batch_to_long_frame,
    batch_to_npz,
    example_file,
    load_batch_file,
)

SMALL = dict(batch_size=6, min_len=2, max_len=9)


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
