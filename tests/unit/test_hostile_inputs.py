"""Hostile and careless uploads (issue 11): every file is built here, none is committed as a blob.

Each one must end in a ``ValueError`` that says what to fix (never a MemoryError, AttributeError or an
allocation of gigabytes), and random bytes or random small archives never get anything else out of
the loader. The memory test runs the worst files in a fresh interpreter and bounds its peak RSS.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from valueloss.tools.batch import MAX_ROWS, MAX_TOKENS, synthetic_batch
from valueloss.tools.batch_files import MAX_CSV_COLUMNS, batch_to_long_frame, batch_to_npz, load_batch_file

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------ builders


def npy_header(shape, descr="<f8") -> bytes:
    """A version 1.0 ``.npy`` header declaring ``shape`` and ``descr`` (no data follows unless added)."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()


def zip_of(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def small_arrays(shape=(2, 3), dtype=np.float32) -> dict[str, np.ndarray]:
    return {k: np.full(shape, i, dtype=dtype) for i, k in enumerate(("vpreds", "returns", "values"))}


def parquet_of(table: pa.Table, **kwargs) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", **kwargs)
    return buf.getvalue()


def long_columns(n: int) -> dict[str, pa.Array]:
    return {
        "row": pa.array(np.zeros(n, np.int64)),
        "t": pa.array(np.arange(n)),
        "returns": pa.array(np.zeros(n)),
        "values": pa.array(np.zeros(n)),
    }


def parquet_list_bomb(rows: int = 2000, per_row: int = 5000) -> bytes:
    """vpreds as a list of ``per_row`` doubles per line: a few KB that decode to rows x per_row x 8 bytes."""
    offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * per_row)
    vpreds = pa.ListArray.from_arrays(offsets, pa.array(np.zeros(rows * per_row)))
    return parquet_of(pa.table({**long_columns(rows), "vpreds": vpreds}))


def parquet_string_bomb(rows: int = 2000, length: int = 100_000) -> bytes:
    """A dictionary-encoded text column (one 100 KB string, repeated): decodes to rows x 100 KB."""
    text = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int32)), pa.array(["x" * length]))
    return parquet_of(pa.table({**long_columns(rows), "vpreds": text}), store_schema=False)


def parquet_junk_column(rows: int = 2000, length: int = 100_000) -> bytes:
    """A valid batch plus an unused text column that would decode to rows x 100 KB."""
    text = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int32)), pa.array(["x" * length]))
    cols = long_columns(rows) | {"vpreds": pa.array(np.zeros(rows)), "junk": text}
    return parquet_of(pa.table(cols), store_schema=False)


def wide_csv(n_columns: int = 1_000_000) -> bytes:
    """The six needed columns and ``n_columns`` more: about 9 bytes a column, two lines."""
    names = ",".join(f"c{i}" for i in range(n_columns))
    return f"row,t,vpreds,returns,values,{names}\n0,0,0,0,0,{',' * (n_columns - 1)}\n".encode()


def npz_bare_members() -> bytes:
    """Members without the ``.npy`` suffix that are not arrays: np.load hands them back as raw bytes."""
    return zip_of({k: b"not an array" for k in ("vpreds", "returns", "values")})


def npz_huge_header() -> bytes:
    """A few hundred bytes whose headers declare (100000, 100000) float64 arrays (74.5 GiB each)."""
    return zip_of({f"{k}.npy": npy_header((100_000, 100_000)) for k in ("vpreds", "returns", "values")})


def npz_of(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npz_two_million_rows() -> bytes:
    """Issue 21.2's valid 12 MB file: three zeros((2_000_000, 1), float16). It used to take the Batch page
    about 4 minutes and 1.8 GB (2,000,000 one-token sequences, looped over per row)."""
    return npz_of({k: np.zeros((2_000_000, 1), np.float16) for k in ("vpreds", "returns", "values")})


def csv_long_field(length: int = 200_000) -> bytes:
    """A quoted field longer than the csv module's field limit (131,072): it raised _csv.Error."""
    return b'row,t,vpreds,returns,values\n0,0,1,1,"' + b"1" * length + b'"\n'


def npz_longdouble_beyond_float64() -> bytes:
    big = np.zeros((1, 2), np.longdouble)
    big[0, 0] = np.longdouble("1e400")  # finite in x87 long double, inf in float64
    return npz_of(
        {"vpreds": big, "returns": np.zeros((1, 2), np.longdouble), "values": np.zeros((1, 2), np.longdouble)}
    )


HOSTILE = {
    "npz of 2,000,000 one-token rows (12 MB)": ("b.npz", npz_two_million_rows, f"the limit is {MAX_ROWS:,}"),
    "csv with one more row than the limit": (
        "b.csv",
        lambda: ("row,t,vpreds,returns,values\n" + "".join(f"{i},0,0,0,0\n" for i in range(MAX_ROWS + 1))).encode(),
        f"{MAX_ROWS + 1:,} sequences \\(rows\\); the limit is {MAX_ROWS:,}",
    ),
    "csv quoted field of 200,000 characters": ("b.csv", csv_long_field, "more than 131,072 characters"),
    "csv header quoted field of 200,000 characters": (
        "b.csv",
        lambda: b'"' + b"x" * 200_000 + b'",row,t,vpreds,returns,values\n1,0,0,0,0,0\n',
        "more than 131,072 characters",
    ),
    "csv names vpreds twice": (
        "b.csv",
        lambda: b"row,t,vpreds,returns,values,vpreds\n0,0,1,1,1,5\n",
        "names column 'vpreds' 2 times; keep one",
    ),
    "csv names values twice, once padded": (
        "b.csv",
        lambda: b"row,t,values,vpreds,returns, values \n0,0,1,1,1,5\n",
        "names column 'values' 2 times",
    ),
    "parquet list bomb": ("b.parquet", parquet_list_bomb, "numeric"),
    "parquet dictionary string bomb": ("b.parquet", parquet_string_bomb, "numeric"),
    "wide csv": ("b.csv", wide_csv, f"at most {MAX_CSV_COLUMNS}"),
    "npz members without .npy, not arrays": ("b.npz", npz_bare_members, "corrupt .npy header"),
    "npz same array twice": (
        "b.npz",
        lambda: zip_of({"vpreds": npy(np.zeros((1, 1))), "vpreds.npy": npy(np.ones((1, 1)))}),
        "two arrays named 'vpreds'",
    ),
    "npz header declares 74.5 GiB": ("b.npz", npz_huge_header, r"100,000 sequences \(rows\); the limit is"),
    "npz truncated data": (
        "b.npz",
        lambda: zip_of({f"{k}.npy": npy_header((1000, 1000)) + b"\0" * 64 for k in ("vpreds", "returns", "values")}),
        "truncated",
    ),
    "npz structured dtype": (
        "b.npz",
        lambda: zip_of({f"{k}.npy": npy(np.zeros((2, 2), dtype="i4,f8")) for k in ("vpreds", "returns", "values")}),
        "real numbers",
    ),
    "npz object dtype header": (
        "b.npz",
        lambda: zip_of({f"{k}.npy": npy_header((2, 2), "|O") for k in ("vpreds", "returns", "values")}),
        "Python objects",
    ),
    "npz corrupt header": (
        "b.npz",
        lambda: zip_of({f"{k}.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': __import" for k in ("vpreds",)}),
        "corrupt|missing",
    ),
    "npz header is a syntax error": (
        "b.npz",
        lambda: zip_of(
            {f"{k}.npy": b"\x93NUMPY\x01\x00\x0f\x00{{{{{{{{{{{{{{\n" for k in ("vpreds", "returns", "values")}
        ),
        "corrupt",
    ),
    "npz with 10,000 members": (
        "b.npz",
        lambda: zip_of({f"m{i}.npy": b"" for i in range(10_000)}, zipfile.ZIP_STORED),
        "members",
    ),
    "csv t = 1e300": (
        "b.csv",
        lambda: b"row,t,vpreds,returns,values\n0,0,0,0,0\n0,1e300,0,0,0\n",
        r"holds 1e\+300",
    ),
    "csv t = 2**63 (wraps to a negative int64)": (
        "b.csv",
        lambda: b"row,t,vpreds,returns,values\n0,0,0,0,0\n0,9223372036854775808,0,0,0\n",
        "the limit is",
    ),
    "csv integer beyond 2**53": (
        "b.csv",
        lambda: b"row,t,vpreds,returns,values\n0,0,9007199254740993,0,0\n",
        "beyond 2\\*\\*53",
    ),
    "csv data line wider than its header": (
        "b.csv",
        lambda: b"row,t,vpreds,returns,values\n0,0,0,0,0" + b",1" * 100_000 + b"\n",
        "100,005 fields but the header names 5",
    ),
}


if np.finfo(np.longdouble).max > np.finfo(np.float64).max:  # x86: 80-bit; elsewhere longdouble may be float64
    HOSTILE["npz longdouble 1e400 (beyond float64)"] = (
        "b.npz",
        npz_longdouble_beyond_float64,
        r"'vpreds' holds 1e\+400 at row 0, t 0: beyond the range of float64",
    )


@pytest.mark.parametrize("order", ["<f8", ">f8"])
def test_float64_stays_float64_in_either_byte_order(order):
    """Big-endian float64 used to be computed in float32: 1e39 became inf, 0.1 became 0.10000000149."""
    arrays = {
        "vpreds": np.array([[1e39, 0.5]], dtype=order),
        "returns": np.array([[0.1, 0.5]], dtype=order),
        "values": np.array([[1e39, 0.1]], dtype=order),
    }
    batch = load_batch_file("b.npz", npz_of(arrays))
    assert batch.vpreds.dtype == torch.float64
    assert batch.vpreds.tolist() == [[1e39, 0.5]] and batch.returns.tolist() == [[0.1, 0.5]]
    native = load_batch_file("b.npz", npz_of({k: a.astype("<f8") for k, a in arrays.items()}))
    assert all(torch.equal(getattr(batch, k), getattr(native, k)) for k in ("vpreds", "returns", "values", "mask"))


def test_longdouble_is_read_as_float64():
    arrays = {k: np.array([[0.1, 2.5]], dtype=np.longdouble) for k in ("vpreds", "returns", "values")}
    batch = load_batch_file("b.npz", npz_of(arrays))
    assert batch.vpreds.dtype == torch.float64
    assert batch.vpreds.tolist() == [[float(np.float64(np.longdouble(0.1))), 2.5]]


def test_non_finite_is_checked_after_the_cast_and_says_which():
    """inf given on a real token is still named as such (not as out of range)."""
    arrays = {k: np.array([[np.inf, 2.5]], dtype=">f8") for k in ("vpreds", "returns", "values")}
    with pytest.raises(ValueError, match="'vpreds' has 1 NaN/inf value"):
        load_batch_file("b.npz", npz_of(arrays))


@pytest.mark.parametrize("rows", [MAX_ROWS])
def test_the_row_limit_itself_is_accepted(rows):
    batch = load_batch_file(
        "b.npz", npz_of({k: np.zeros((rows, 1), np.float32) for k in ("vpreds", "returns", "values")})
    )
    assert batch.shape == (rows, 1)


@pytest.mark.parametrize(
    "data",
    [
        b"row,t,vpreds,returns,values\n0,0,0,0,0,7\n",  # pandas: the first two fields become an index
        b"row,t,vpreds,returns,values\n0,0,0,0,0\n0,1,1,1,1,7\n",  # with usecols: 7 silently dropped
        b'"row",t,vpreds,returns,values\n0,0,0,0,0\n0,1,"1",1,1,7\n',  # quoted: the csv-module path
    ],
)
def test_a_line_wider_than_the_header_is_refused_not_shifted(data):
    with pytest.raises(ValueError, match="6 fields but the header names 5"):
        load_batch_file("b.csv", data)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_file_is_refused_with_a_message(case):
    name, make, fragment = HOSTILE[case]
    with pytest.raises(ValueError, match=fragment) as err:
        load_batch_file(name, make())
    message = str(err.value)
    assert "Traceback" not in message and "/site-packages/" not in message
    assert len(message) < 600  # a user's 10**6 column names are not echoed back


def test_npz_members_without_the_npy_suffix_are_read_as_arrays_like_np_load():
    batch = load_batch_file("b.npz", zip_of({k: npy(a) for k, a in small_arrays().items()}))
    assert batch.shape == (2, 3) and float(batch.values[0, 0]) == 2.0


def test_t_beyond_int64_is_never_reported_as_a_wrapped_negative():
    with pytest.raises(ValueError) as err:
        load_batch_file("b.csv", HOSTILE["csv t = 1e300"][1]())
    assert "-9223372036854775808" not in str(err.value)


def test_unused_hostile_parquet_column_is_never_decoded():
    batch = load_batch_file("b.parquet", parquet_junk_column())
    assert batch.shape == (1, 2000)


def test_wide_csv_reads_only_the_needed_columns():
    """Extra columns (up to the cap) are allowed and never parsed: text in them is no error."""
    frame = batch_to_long_frame(synthetic_batch(seed=3, batch_size=3, min_len=2, max_len=5))
    for i in range(MAX_CSV_COLUMNS - frame.shape[1]):
        frame[f"extra{i}"] = "not a number ![x](http://127.0.0.1:9/x.png)"
    batch = load_batch_file("b.csv", frame.to_csv(index=False).encode())
    assert batch.shape == (3, 5)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint64])
def test_integers_above_2_to_24_are_kept_exact(dtype):
    """float32 rounds 2**24 + 1 to 2**24: such a column is computed in float64 instead."""
    big = 2**24 + 1
    arrays = {k: np.full((1, 2), big + i, dtype=dtype) for i, k in enumerate(("vpreds", "returns", "values"))}
    npz = io.BytesIO()
    np.savez(npz, **arrays)
    batch = load_batch_file("b.npz", npz.getvalue())
    assert batch.vpreds.dtype == torch.float64
    assert int(batch.vpreds[0, 0].item()) == big and int(batch.values[0, 0].item()) == big + 2
    csv = b"row,t,vpreds,returns,values\n0,0,16777217,1,16777219\n"
    batch = load_batch_file("b.csv", csv)
    assert batch.vpreds.dtype == torch.float64
    assert int(batch.vpreds[0, 0].item()) == big and int(batch.values[0, 0].item()) == big + 2


def test_small_integers_still_compute_in_float32():
    arrays = {k: np.full((1, 2), 2**24, dtype=np.int64) for k in ("vpreds", "returns", "values")}
    npz = io.BytesIO()
    np.savez(npz, **arrays)
    assert load_batch_file("b.npz", npz.getvalue()).vpreds.dtype == torch.float32


# --------------------------------------------------------------------------------- the padded width


def test_csv_and_npz_of_one_batch_agree_once_the_width_is_given():
    """issue 10.8: the long file's last rows stop before the padded width; with width the loss matches."""
    import valueloss as vl

    b = synthetic_batch(seed=5, batch_size=4, min_len=3, max_len=12)
    frame = batch_to_long_frame(b)
    frame = frame[frame["mask"] == 1]  # a trainer's dump lists real tokens only
    csv = frame.to_csv(index=False).encode()
    npz = load_batch_file("b.npz", batch_to_npz(b))
    inferred = load_batch_file("b.csv", csv)
    given_width = load_batch_file("b.csv", csv, width=12)
    assert inferred.shape[1] == int(b.lengths.max()) and inferred.shape[1] < 12
    assert given_width.shape == npz.shape == (4, 12)

    def norm(x):
        return vl.compute_value_loss(x.vpreds, x.returns, x.values, x.mask, 0.2, "seq-mean-token-sum-norm")[0].item()

    assert norm(given_width) == norm(npz)
    assert norm(inferred) != norm(npz)


def test_width_pads_an_npz_and_refuses_a_narrower_one():
    b = synthetic_batch(seed=5, batch_size=2, min_len=3, max_len=6)
    from valueloss.tools.batch_files import batch_to_npz

    wide = load_batch_file("b.npz", batch_to_npz(b), width=10)
    assert wide.shape == (2, 10) and wide.mask[:, 6:].sum() == 0 and torch.equal(wide.vpreds[:, :6], b.vpreds)
    with pytest.raises(ValueError, match="6 tokens wide but the padded width given is 5"):
        load_batch_file("b.npz", batch_to_npz(b), width=5)
    with pytest.raises(ValueError, match="t reaches 5 but the padded width given is 4"):
        load_batch_file("b.csv", batch_to_long_frame(b).to_csv(index=False).encode(), width=4)


@pytest.mark.parametrize("width", [0, -1, MAX_TOKENS + 1, 2.5, True, "12"])
def test_bad_width_is_refused(width):
    with pytest.raises((ValueError, TypeError), match="width"):
        load_batch_file("b.npz", b"x", width=width)


# ------------------------------------------------------------------------------------------ fuzzing


def _valid_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **small_arrays())
    return buf.getvalue()


def _outcome(name: str, data: bytes) -> None:
    """The loader's only outcomes: a batch or a ValueError with a sentence."""
    try:
        load_batch_file(name, data)
    except ValueError as err:
        assert len(str(err)) > 10


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2048), suffix=st.sampled_from(["npz", "csv", "parquet", "pq"]))
def test_random_bytes_give_a_batch_or_a_message(data, suffix):
    _outcome(f"f.{suffix}", data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
    truncate=st.integers(0, 10**6),
    kind=st.sampled_from(["npz", "csv", "parquet"]),
)
def test_mutated_valid_files_give_a_batch_or_a_message(flips, truncate, kind):
    """A valid example with bytes flipped and its tail cut: corrupt zip directories, .npy headers, footers."""
    from valueloss.tools.batch_files import example_file

    data = bytearray(example_file(kind))
    for pos, value in flips:
        data[pos % len(data)] = value
    _outcome(f"f.{kind}", bytes(data[: max(1, truncate % (len(data) + 1))]))


_member_names = st.sampled_from(["vpreds", "returns", "values", "mask", "x"]).flatmap(
    lambda n: st.sampled_from([n, n + ".npy", n + ".NPY", "d/" + n + ".npy"])
)
_npy_members = st.one_of(
    st.builds(
        lambda shape, descr: npy_header(shape, descr),
        st.lists(st.integers(0, 10**9), max_size=3).map(tuple),
        st.sampled_from(["<f8", "<f4", ">f8", "|b1", "<i8", "<c16", "|O", "<U3", "|V8", "<f2"]),
    ),
    st.builds(lambda shape: npy(np.zeros(shape)), st.tuples(st.integers(0, 3), st.integers(0, 3))),
    st.binary(max_size=64),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members=st.dictionaries(_member_names, _npy_members, max_size=5))
def test_random_small_npz_archives_give_a_batch_or_a_message(members):
    _outcome("f.npz", zip_of(members))


_scalar_types = st.sampled_from(
    [pa.float64(), pa.float32(), pa.int64(), pa.uint64(), pa.bool_(), pa.string(), pa.list_(pa.float64())]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    types=st.fixed_dictionaries({c: _scalar_types for c in ("row", "t", "vpreds", "returns", "values")}),
    n=st.integers(0, 5),
    seed=st.integers(0, 2**16),
)
def test_random_small_parquet_files_give_a_batch_or_a_message(types, n, seed):
    rng = np.random.default_rng(seed)

    def column(kind):
        if pa.types.is_list(kind):
            return pa.array([list(rng.normal(size=2)) for _ in range(n)], type=kind)
        if pa.types.is_string(kind):
            return pa.array([str(x) for x in rng.integers(0, 3, size=n)], type=kind)
        values = rng.integers(0, 3, size=n) if not pa.types.is_floating(kind) else rng.normal(size=n)
        return pa.array(values).cast(kind) if not pa.types.is_boolean(kind) else pa.array(values > 0)

    _outcome("f.parquet", parquet_of(pa.table({c: column(k) for c, k in types.items()})))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cells=st.lists(
        st.lists(st.one_of(st.integers(-3, 3), st.floats(allow_nan=True), st.text(max_size=4)), min_size=5, max_size=5),
        max_size=6,
    )
)
def test_random_small_csv_files_give_a_batch_or_a_message(cells):
    frame = pd.DataFrame(cells, columns=["row", "t", "vpreds", "returns", "values"]) if cells else pd.DataFrame()
    _outcome("f.csv", frame.to_csv(index=False).encode())


# -------------------------------------------------------------------------------------------- memory

_MEASURE = """
import json, re, sys
from pathlib import Path
from valueloss.tools.batch_files import load_batch_file

def kb(field):
    return int(re.search(field + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))

out = {}
for path in map(Path, sys.argv[1:]):
    data = path.read_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    before = kb("VmRSS")
    try:
        load_batch_file(path.name, data)
    except ValueError:
        pass
    out[path.name] = (kb("VmHWM") - before) / 1024
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc to reset the peak RSS")
def test_hostile_files_keep_memory_bounded(tmp_path):
    """Loading any hostile file raises the peak RSS of a fresh interpreter by less than 48 MB.

    The files are built here and only read there (building the list bomb takes 80 MB itself); the
    peak is reset before each file (Linux ``clear_refs``), so a file cannot hide under the import
    peak. Before the header and schema checks the two Parquet bombs here took 270 and 410 MB (the
    issue's larger ones 2.5 and 4.35 GB), and the 74.5 GiB .npz raised MemoryError.
    """
    paths = []
    for i, (name, make, _) in enumerate(HOSTILE.values()):
        path = tmp_path / f"{i:02d}_{name}"
        path.write_bytes(make())
        paths.append(str(path))
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *paths], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    growth = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(growth) == len(HOSTILE)
    worst = max(growth, key=growth.get)
    assert growth[worst] < 48, growth
