"""Batch files: safe loaders for uploaded ``.npz``, CSV and Parquet files, and the writers back.

Uploaded files are never unpickled and are capped in bytes, columns and tokens; every problem is a
``ValueError`` that says what to fix.
"""

from __future__ import annotations

import csv
import io
import numbers
import struct
import tokenize
import warnings
import zipfile
import zlib

import numpy as np
import pandas as pd
import torch

from .batch import MAX_ROWS, MAX_TOKENS, REQUIRED, Batch, synthetic_batch

__all__ = [
    "MAX_UPLOAD_BYTES",
    "MAX_ROWS",
    "MAX_CSV_COLUMNS",
    "LONG_COLUMNS",
    "SCHEMA_MARKDOWN",
    "load_batch_file",
    "example_file",
    "batch_to_npz",
    "batch_to_long_frame",
]

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
_FLOAT32_EXACT = 2**24  # every integer up to this is a float32
_FLOAT64_EXACT = 2**53
# A long file needs 6 columns; a few extra (advantages, log-probs) are fine, 10**6 are an attack.
MAX_CSV_COLUMNS = 256
# An .npz is a zip: its members can decompress far beyond the upload cap. Four float64 arrays at the
# token cap, plus headers, is the most a legitimate file needs.
_MAX_NPZ_UNCOMPRESSED = 4 * 8 * MAX_TOKENS + 64 * 1024
LONG_COLUMNS = ("row", "t", "vpreds", "returns", "values")


SCHEMA_MARKDOWN = f"""
**`.npz`** (`np.savez`): 2-D arrays of one shape `(batch, response_length)` named
`vpreds` (new predictions v), `returns` (R), `values` (old values v_old) and, optionally, `mask`
(1 = real token, 0 = padding; all ones if absent). Numeric arrays only: object / pickled arrays are refused.

**`.csv` / `.parquet`**: long format, one line per token, columns `row`, `t` (0-based token position),
`vpreds`, `returns`, `values` and optionally `mask`. Cells of the `(row, t)` grid that you leave out are
padding. CSV text is read as float64; columns written from float32 data (pandas' `to_csv` does this by
default) are computed in float32, as the trainers do.

**Number types**: float64 stays float64 (in either byte order); float16, float32 and whole numbers up to
2**24 are computed in float32; `np.longdouble` is read as float64 (a value beyond float64's range is
refused, never turned into inf).

From a trainer, e.g. inside verl's critic update:

```python
np.savez("batch.npz", vpreds=vpreds.float().cpu().numpy(), returns=returns.float().cpu().numpy(),
         values=values.float().cpu().numpy(), mask=response_mask.float().cpu().numpy())
```

**Padded width**: a long file that lists real tokens only ends at its longest row. If the trainer padded
wider (verl's `response_length`), give that width in the *padded width T* box: seq-mean-token-sum-norm
divides by it. The page says which width it uses.

Limits: {MAX_UPLOAD_BYTES // (1024 * 1024)} MB per file, {MAX_ROWS:,} sequences, {MAX_TOKENS:,} cells
(`batch x response_length`) and {MAX_CSV_COLUMNS} columns per CSV (only the six above are read; each named once). Values, `row` and `t` are plain numbers:
list, text and nested Parquet columns are refused.
Real tokens must be finite; NaN is allowed only in padding (it shows which aggregation modes it poisons).
"""


def _bad(message: str) -> ValueError:
    return ValueError(message)


def load_batch_file(name: str, data: bytes, *, width: int | None = None) -> Batch:
    """Read an uploaded ``.npz``, ``.csv`` or ``.parquet`` batch, refusing anything unsafe or malformed.

    ``width`` is the padded width T (verl's ``response_length``). ``None`` takes it from the file: the
    arrays' width for ``.npz``, the longest row (largest ``t`` + 1) for the long formats. Give it when
    the long file does not reach the width the trainer padded to: seq-mean-token-sum-norm divides by
    it. A wider ``width`` than an ``.npz`` holds pads it with masked zeros.

    Every rejection is a ``ValueError`` that says what is wrong and how to fix it; nothing is ever
    unpickled, and sizes are checked (from zip, ``.npy`` and Parquet headers) before arrays are built.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a file name string, got {type(name).__name__}")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be the file's bytes, got {type(data).__name__}")
    if width is not None:
        if isinstance(width, bool) or not isinstance(width, numbers.Integral):
            raise TypeError(f"width must be a whole number or None, got {type(width).__name__}")
        if not 1 <= width <= MAX_TOKENS:
            raise ValueError(f"width must be between 1 and {MAX_TOKENS:,} (None: from the file), got {width}")
        width = int(width)
    data = bytes(data)
    suffix = name.lower().rsplit(".", 1)[-1] if "." in name else ""
    if suffix not in ("npz", "csv", "parquet", "pq"):
        raise _bad(
            f"unsupported file type {('.' + suffix[:20]) if suffix else '(no extension)'}: "
            "upload .npz, .csv or .parquet"
        )
    if len(data) == 0:
        raise _bad("the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise _bad(
            f"the file is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB. "
            "Upload one minibatch, or fewer sequences"
        )
    try:
        if suffix == "npz":
            return _batch_from_dense(_read_npz(data), width)
        columns = _read_csv(data) if suffix == "csv" else _read_parquet(data)
        return _batch_from_long(columns, width)
    except ValueError:
        raise
    except _PARSER_ERRORS as err:
        # A hostile or corrupt file can trip a parser in ways its documentation does not list; the
        # caller still gets one clear ValueError (never a traceback), the server log keeps the cause.
        raise _bad(
            f"could not read the file ({type(err).__name__}); save it again with np.savez, "
            "DataFrame.to_csv or DataFrame.to_parquet"
        ) from err


# What a parser may raise on a corrupt or hostile file besides ValueError (MemoryError included: the
# header checks below make it unlikely, they cannot prove a third-party decoder never over-allocates).
_PARSER_ERRORS = (
    ArithmeticError,
    AttributeError,
    EOFError,
    LookupError,
    MemoryError,
    NotImplementedError,
    OSError,
    RecursionError,
    RuntimeError,
    TypeError,
    UnicodeError,
    SyntaxError,
    tokenize.TokenError,
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
)
_MAX_NPZ_MEMBERS = 64
_MAX_NPY_HEADER = 64 * 1024


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an ``.npy`` member's header, read without loading the array."""
    key = info.filename.removesuffix(".npy")
    with zf.open(info) as fp:
        try:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp, max_header_size=_MAX_NPY_HEADER)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp, max_header_size=_MAX_NPY_HEADER)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except (ValueError, SyntaxError, EOFError, OSError, TypeError, tokenize.TokenError) as err:
            raise _bad(f"array '{key}' has a corrupt .npy header ({str(err)[:120]}); save the file again") from err
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise _bad(f"array '{key}' has an invalid shape in its header; save the file again")
    return shape, dtype


def _read_npz(data: bytes) -> dict[str, np.ndarray]:
    """The named arrays of an ``.npz``, with every size and dtype checked from headers first.

    Read with ``zipfile`` and ``np.lib.format`` rather than ``np.load``: np.load hands a member without
    the ``.npy`` suffix back as raw bytes unless it is an array, and allocates whatever shape a header
    declares.
    """
    buf = io.BytesIO(data)
    if not zipfile.is_zipfile(buf):
        raise _bad("not a valid .npz file (an .npz is a zip archive written by np.savez); save with np.savez")
    try:
        zf = zipfile.ZipFile(buf)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        raise _bad(f"the .npz archive is corrupt ({str(err)[:120]}); save it again with np.savez") from err
    with zf:
        infos = zf.infolist()
        if len(infos) > _MAX_NPZ_MEMBERS:
            raise _bad(
                f"the .npz holds {len(infos):,} members; a batch needs at most 4 (vpreds, returns, values, mask)"
            )
        total = sum(i.file_size for i in infos)
        if total > _MAX_NPZ_UNCOMPRESSED:
            raise _bad(
                f"the .npz decompresses to {total / 2**20:.0f} MB, more than {MAX_TOKENS:,} cells need; "
                "upload a smaller batch"
            )
        # np.savez writes "<name>.npy"; a bare "<name>" is read the same way (np.load does too), through
        # the same header checks: a member that is not an .npy array is refused, never handed back as bytes.
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            key = info.filename.removesuffix(".npy")
            if key in members:
                raise _bad(f"the .npz holds two arrays named {key[:80]!r}; keep one")
            members[key] = info
        missing = [k for k in REQUIRED if k not in members]
        if missing:
            raise _bad(
                f"missing array(s) {', '.join(missing)}; found {_names(sorted(members))}. "
                "Name them vpreds, returns, values (and optionally mask)"
            )
        arrays = {}
        for key in (*REQUIRED, "mask"):
            if key not in members:
                continue
            info = members[key]
            shape, dtype = _npy_header(zf, info)
            if dtype.hasobject:
                raise _bad(
                    f"array '{key}' holds Python objects (a pickled object array), which are never loaded; "
                    f"save plain numbers, e.g. {key}.astype(np.float32)"
                )
            _numeric(key, np.empty(0, dtype=dtype))
            if len(shape) != 2:
                raise _bad(
                    f"'{key}' must be 2-D (batch, response_length), got shape {shape}; "
                    "reshape a single sequence with x[None, :]"
                )
            _check_rows(shape[0])
            cells = shape[0] * shape[1]
            if cells > MAX_TOKENS:
                raise _bad(f"'{key}' has {cells:,} cells (shape {shape}); the limit is {MAX_TOKENS:,}")
            if cells * dtype.itemsize > info.file_size:
                raise _bad(f"array '{key}' is truncated: its header declares shape {shape}; save the file again")
            with zf.open(info) as fp:
                try:
                    arrays[key] = np.lib.format.read_array(fp, allow_pickle=False, max_header_size=_MAX_NPY_HEADER)
                except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                    raise _bad(f"array '{key}' is corrupt ({str(err)[:120]}); save the file again") from err
    return arrays


def _numeric(name: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind not in "fiub":
        kind = {"c": "complex", "O": "object", "U": "text", "S": "bytes", "M": "datetime", "m": "timedelta"}
        raise _bad(
            f"'{name}' must be real numbers, got {kind.get(arr.dtype.kind, str(arr.dtype))} data ({arr.dtype}); "
            "convert it to float32 or float64"
        )
    return arr


def _check_rows(rows: int) -> None:
    if rows > MAX_ROWS:
        raise _bad(
            f"the batch has {rows:,} sequences (rows); the limit is {MAX_ROWS:,}. Upload one minibatch, "
            "or a sample of its sequences (each row is one response)"
        )


def _float_dtype(arrays: dict[str, np.ndarray]) -> np.dtype:
    """float64 if any value array needs it (keep the user's precision), else float32 (the trainers').

    Floats of 8 bytes or more (float64 in either byte order, longdouble), and integers beyond 2**24
    (float32 would round them), need float64; longdouble has no torch dtype and is rounded to float64.
    """
    need64 = any(
        (arrays[k].dtype.kind == "f" and arrays[k].dtype.itemsize >= 8) or _int_needs_float64(k, arrays[k])
        for k in REQUIRED
    )
    return np.dtype(np.float64) if need64 else np.dtype(np.float32)


def _int_needs_float64(name: str, arr: np.ndarray) -> bool:
    """True for an integer array float32 cannot hold exactly; an error beyond float64's exact range."""
    if arr.dtype.kind not in "iu" or arr.size == 0:
        return False
    big = int(max(abs(int(arr.min())), abs(int(arr.max()))))
    if big > _FLOAT64_EXACT:
        raise _bad(
            f"'{name}' holds the integer {big:,}, beyond 2**53: no float dtype holds it exactly, and the loss is "
            "computed in floating point. Rescale the values (returns are usually O(1))"
        )
    return big > _FLOAT32_EXACT


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = _numeric("mask", mask)
    if mask.dtype.kind == "f" and not np.isfinite(mask).all():
        raise _bad("mask holds NaN or inf; it must be 0 (padding) or 1 (real token)")
    bad = (mask != 0) & (mask != 1)
    if bad.any():
        raise _bad(
            f"mask must hold only 0 and 1 (1 = real token, 0 = padding); found {mask[bad].flat[0]!r}. "
            "Convert a boolean or attention mask with (mask > 0)"
        )
    return mask


def _check_real_finite(cast: dict[str, np.ndarray], mask: np.ndarray, given: dict[str, np.ndarray]) -> None:
    """Real tokens must be finite in the dtype the loss is computed in (checked after the cast, so a
    longdouble 1e400 that becomes inf is caught, and said to be out of range rather than inf)."""
    real = mask.astype(bool)
    for key in REQUIRED:
        bad = real & ~np.isfinite(cast[key])
        if bad.any():
            r, t = np.argwhere(bad)[0]
            if np.isfinite(given[key][r, t]):
                raise _bad(
                    f"'{key}' holds {str(given[key][r, t])} at row {r}, t {t}: beyond the range of "
                    f"{cast[key].dtype}, the precision the loss is computed in. Rescale the values "
                    "(returns are usually O(1))"
                )
            raise _bad(
                f"'{key}' has {int(bad.sum())} NaN/inf value(s) on real tokens (first at row {r}, t {t}); "
                "the loss would be NaN. Fix the export, or set mask = 0 on those tokens"
            )


def _batch_from_dense(arrays: dict[str, np.ndarray], width: int | None = None) -> Batch:
    for key, arr in arrays.items():
        _numeric(key, arr)
        if arr.ndim != 2:
            raise _bad(
                f"'{key}' must be 2-D (batch, response_length), got shape {arr.shape}; "
                "reshape a single sequence with x[None, :]"
            )
    shape = arrays["vpreds"].shape
    for key, arr in arrays.items():
        if arr.shape != shape:
            raise _bad(f"'{key}' has shape {arr.shape} but 'vpreds' has shape {shape}; all arrays must match")
    if 0 in shape:
        raise _bad(f"the batch is empty (shape {shape})")
    _check_rows(shape[0])
    if shape[0] * shape[1] > MAX_TOKENS:
        raise _bad(f"the batch has {shape[0] * shape[1]:,} cells (shape {shape}); the limit is {MAX_TOKENS:,}")
    mask = _check_mask(arrays["mask"]) if "mask" in arrays else np.ones(shape)
    if width is not None and width != shape[1]:
        if width < shape[1]:
            raise _bad(
                f"the arrays are {shape[1]} tokens wide but the padded width given is {width}; "
                "give the width the arrays were padded to, or leave it empty"
            )
        if shape[0] * width > MAX_TOKENS:
            raise _bad(f"{shape[0]:,} rows x width {width:,} = {shape[0] * width:,} cells; the limit is {MAX_TOKENS:,}")
        extra = ((0, 0), (0, width - shape[1]))
        arrays = {k: np.pad(a, extra) for k, a in arrays.items()}
        mask = np.pad(mask, extra)
    return _make_batch(arrays, mask)


def _make_batch(arrays: dict[str, np.ndarray], mask: np.ndarray) -> Batch:
    """Cast to the compute dtype (native byte order), then check the real tokens are finite in it."""
    dtype = _float_dtype(arrays)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing cast is reported just below
        cast = {k: np.ascontiguousarray(arrays[k], dtype=dtype) for k in REQUIRED}
    _check_real_finite(cast, mask, arrays)
    t = {k: torch.from_numpy(cast[k]) for k in REQUIRED}
    m = torch.from_numpy(np.ascontiguousarray(mask, dtype=dtype))
    advantages = torch.where(m.bool(), t["returns"] - t["values"], 0.0)
    return Batch(
        vpreds=t["vpreds"], returns=t["returns"], values=t["values"], mask=m, rewards=None, advantages=advantages
    )


_WANTED = (*LONG_COLUMNS, "mask")
_COLUMN_TEXT = 80  # characters of a user's column name or cell quoted back in a message


def _names(names) -> str:
    shown = [repr(str(n)[:_COLUMN_TEXT]) for n in list(names)[:12]]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more:,} more" if more > 0 else "") if shown else "none"


def _missing_columns(names: list[str], what: str) -> None:
    missing = [c for c in LONG_COLUMNS if c not in names]
    if missing:
        raise _bad(
            f"the {what} file is missing column(s) {', '.join(missing)}; found {_names(names)}. "
            f"Columns must be {', '.join(LONG_COLUMNS)} (and optionally mask)"
        )


def _check_field_counts(data: bytes, n_header: int) -> None:
    """Refuse a line with more fields than the header.

    pandas would read such a line's first fields as an index and shift the rest into the wrong
    columns, or (with ``usecols``) drop them: a silently wrong number. Counted with numpy, a chunk of
    lines at a time (a few MB at most), when no field is quoted (the usual case); else with the csv
    module, streaming.
    """

    def too_many(line: int, fields: int, header: int):
        return _bad(
            f"CSV line {line} has {fields:,} fields but the header names {header}; every line needs one value per column"
        )

    if b'"' in data:
        reader = csv.reader(io.StringIO(data.decode("utf-8", errors="replace"), newline=""))
        try:
            header = len(next(reader, []))
            for number, fields in enumerate(reader, start=2):
                if len(fields) > header:
                    raise too_many(number, len(fields), header)
        except csv.Error as err:
            raise _csv_field_error(reader.line_num, err) from err
        return
    chunk, pos, first_line = 1 << 20, 0, 1
    while pos < len(data):
        end = data.find(b"\n", pos + chunk)
        end = len(data) if end < 0 else end + 1
        raw = np.frombuffer(data, dtype=np.uint8, count=end - pos, offset=pos)
        after_newline = np.flatnonzero(raw == ord("\n")) + 1
        starts = np.concatenate(([0], after_newline[after_newline < raw.size]))
        commas = np.add.reduceat(raw == ord(","), starts, dtype=np.int64)
        worst = int(np.argmax(commas))
        if commas[worst] + 1 > n_header:
            raise too_many(first_line + worst, int(commas[worst]) + 1, n_header)
        first_line += starts.size
        pos = end


def _csv_field_error(line: int, err: csv.Error) -> ValueError:
    """The csv module's own limits (a field over ``csv.field_size_limit()`` characters, a NUL byte) as a
    message: no cell of a batch file is anywhere near that long."""
    if "field larger than field limit" in str(err):
        return _bad(
            f"CSV line {line:,} has a field of more than {csv.field_size_limit():,} characters; every cell "
            "of a batch file is one number. Check the quoting, or write the file with DataFrame.to_csv"
        )
    return _bad(f"could not parse CSV line {line:,} ({str(err)[:120]}); write the file with DataFrame.to_csv")


def _header_names(data: bytes) -> list[str]:
    """The CSV header's names as written (pandas renames a repeated name to 'vpreds.1' and reads on)."""
    reader = csv.reader(io.StringIO(data[: 1 << 20].decode("utf-8", errors="replace"), newline=""))
    try:
        return [name.strip() for name in next(reader, [])]
    except csv.Error as err:
        raise _csv_field_error(1, err) from err


def _read_csv(data: bytes) -> dict[str, np.ndarray]:
    """Only the needed columns are parsed; a header with more than MAX_CSV_COLUMNS fields is refused first,
    and so is a header that names a needed column twice."""
    first_line = data.split(b"\n", 1)[0]
    n_fields = first_line.count(b",") + 1  # an upper bound (a quoted name may hold a comma)
    if n_fields > MAX_CSV_COLUMNS:
        raise _bad(
            f"the CSV header has {n_fields:,} fields; at most {MAX_CSV_COLUMNS} are read. "
            f"Keep the columns {', '.join(LONG_COLUMNS)} (and optionally mask)"
        )
    names = _header_names(data)
    twice = [c for c in _WANTED if names.count(c) > 1]
    if twice:
        raise _bad(f"the CSV names column '{twice[0]}' {names.count(twice[0])} times; keep one")
    _check_field_counts(data, n_fields)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.BytesIO(data),
                nrows=MAX_TOKENS + 1,
                skipinitialspace=True,
                index_col=False,
                usecols=lambda c: str(c).strip() in _WANTED,
            )
            header = pd.read_csv(io.BytesIO(first_line), nrows=0, skipinitialspace=True).columns
    except pd.errors.EmptyDataError as err:
        raise _bad("the CSV file has no header or rows") from err
    except (pd.errors.ParserError, pd.errors.ParserWarning, UnicodeDecodeError, ValueError) as err:
        raise _bad(f"could not parse the CSV file ({str(err).strip()[:200]}); write it with DataFrame.to_csv") from err
    if len(frame) > MAX_TOKENS:
        raise _bad(f"the CSV has more than {MAX_TOKENS:,} lines; upload a smaller batch")
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(set(frame.columns)) != len(frame.columns):
        raise _bad("the CSV names a column twice; keep one of each")
    _missing_columns(
        [str(c).strip() for c in header] if len(frame.columns) < len(LONG_COLUMNS) else list(frame.columns), "CSV"
    )
    columns = {}
    for c in _WANTED:
        if c not in frame.columns:
            continue
        col = frame[c]
        if col.dtype.kind not in "fiub":
            try:
                col = pd.to_numeric(col, errors="raise")
            except (ValueError, TypeError) as err:
                raise _bad(f"column '{c}' is not numeric ({str(err)[:200]}); write numbers only") from err
        columns[c] = col.to_numpy()
    return columns


def _parquet_numeric(pa, kind) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def _check_parquet_sizes(meta, wanted: list[str]) -> None:
    """From the footer, before decoding: the leaf (physical) columns of the wanted fields declare at most
    MAX_TOKENS values each and decompress to no more than that many numbers need."""
    leaves = [j for j in range(meta.num_columns) if meta.schema.column(j).path in wanted]
    budget = len(wanted) * 8 * MAX_TOKENS + 2**20
    need = 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        for j in leaves:
            chunk = group.column(j)
            need += max(chunk.total_uncompressed_size, 0)
            if chunk.num_values > MAX_TOKENS:
                raise _bad(
                    f"column '{chunk.path_in_schema}' declares {chunk.num_values:,} values; the limit is {MAX_TOKENS:,}"
                )
    if need > budget:
        raise _bad(
            f"the needed columns decompress to {need / 2**20:.0f} MB, more than {MAX_TOKENS:,} tokens need; "
            "upload a smaller batch"
        )


def _read_parquet(data: bytes) -> dict[str, np.ndarray]:
    """Schema and row-group sizes are checked from the footer before any column is decoded.

    Only scalar numeric columns are accepted (a list or string column can decompress to gigabytes
    while the row count stays small), and only the needed columns are read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(io.BytesIO(data))
        meta, schema = pf.metadata, pf.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as err:
        raise _bad(f"not a valid Parquet file ({str(err)[:200]}); write it with DataFrame.to_parquet") from err
    if meta.num_rows > MAX_TOKENS:
        raise _bad(f"the Parquet file has {meta.num_rows:,} rows; the limit is {MAX_TOKENS:,}")
    names = [str(n) for n in schema.names]
    _missing_columns(names, "Parquet")
    wanted = [c for c in _WANTED if c in names]
    for c in wanted:
        if names.count(c) > 1:
            raise _bad(f"the Parquet file names column '{c}' twice; keep one")
        kind = schema.field(c).type
        if not _parquet_numeric(pa, kind):
            raise _bad(f"column '{c}' must be numeric (one number per line), got {str(kind)[:80]}; write numbers only")
    _check_parquet_sizes(meta, wanted)
    try:
        table = pf.read(columns=wanted, use_pandas_metadata=False)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise _bad(f"could not read the Parquet file ({str(err)[:200]})") from err
    if table.num_rows > MAX_TOKENS:
        raise _bad(f"the Parquet file has {table.num_rows:,} rows; the limit is {MAX_TOKENS:,}")
    columns = {}
    for c in wanted:
        col = table.column(c)
        kind = col.type
        if not _parquet_numeric(pa, kind):
            raise _bad(f"column '{c}' must be numeric, got {str(kind)[:80]}; write numbers only")
        if col.null_count and not pa.types.is_floating(kind):
            raise _bad(f"column '{c}' has {col.null_count} missing value(s); fill them")
        arr = col.to_numpy(zero_copy_only=False)
        if pa.types.is_floating(kind) and col.null_count:
            arr = np.where(pd.isna(col.to_pandas()).to_numpy(), np.nan, arr)
        columns[c] = np.asarray(arr)
    return columns


def _index_column(name: str, col: np.ndarray) -> np.ndarray:
    """Whole numbers >= 0 as int64; checked before the cast (a cast wraps 1e300 to -2**63)."""
    col = _numeric(name, np.asarray(col))
    if col.dtype.kind == "f":
        if not np.isfinite(col).all():
            raise _bad(f"column '{name}' has missing or non-finite values; every line needs a whole-number {name}")
        if (col != np.round(col)).any():
            raise _bad(f"column '{name}' must hold whole numbers, found {col[col != np.round(col)][0]!r}")
    if (col < 0).any():
        raise _bad(f"column '{name}' must be >= 0, found {col[col < 0][0].item()!r}")
    # t must fit the cell cap; row ids may be any label, but must be exact integers.
    limit = MAX_TOKENS if name == "t" else _FLOAT64_EXACT if col.dtype.kind == "f" else np.iinfo(np.int64).max
    if col.size and col.max() >= limit:
        top = col.max()
        top = repr(float(top)) if col.dtype.kind == "f" else str(int(top))
        raise _bad(
            f"column '{name}' holds {top}; the limit is {limit:,}"
            + ("; t is the 0-based token position within its row" if name == "t" else "; number rows 0, 1, 2, ...")
        )
    return col.astype(np.int64)


def _column_dtype(name: str, col: np.ndarray) -> np.dtype:
    """float32 unless the column needs float64.

    Text (CSV) always parses to float64. A column whose every value is a float32 number, or the
    shortest decimal of one (what ``to_csv`` writes for float32 data), came from float32 data, so it is
    computed in float32 as the trainer did. A sample is tried first so float64 data fails fast.
    """
    if col.dtype != np.float64:
        return np.dtype(np.float64) if _int_needs_float64(name, col) else np.dtype(np.float32)
    finite = col[np.isfinite(col)]
    as32 = finite.astype(np.float32)
    if np.array_equal(as32.astype(np.float64), finite):
        return np.dtype(np.float32)

    def shortest_float32_text(x32: np.ndarray, x64: np.ndarray) -> bool:
        return np.array_equal(x32.astype(str).astype(np.float64), x64)

    if not shortest_float32_text(as32[:1000], finite[:1000]):
        return col.dtype
    return np.dtype(np.float32) if shortest_float32_text(as32, finite) else col.dtype


def _batch_from_long(columns: dict[str, np.ndarray], width: int | None = None) -> Batch:
    n = len(columns["row"])
    if n == 0:
        raise _bad("the file has a header but no tokens")
    for c in (*REQUIRED, "mask"):
        if c in columns:
            _numeric(c, columns[c])
    rows = _index_column("row", columns["row"])
    t = _index_column("t", columns["t"])
    row_ids, row_index = np.unique(rows, return_inverse=True)
    B, T = len(row_ids), int(t.max()) + 1
    _check_rows(B)
    if width is not None:
        if width < T:
            raise _bad(
                f"t reaches {T - 1} but the padded width given is {width} (t must be < width); "
                "give the width the trainer padded to, or leave it empty to use the longest row"
            )
        T = width
    if B * T > MAX_TOKENS:
        raise _bad(
            f"{B:,} rows x {T:,} positions = {B * T:,} cells; the limit is {MAX_TOKENS:,}. "
            "Check that t counts from 0 within each row"
        )
    flat = row_index * T + t
    counts = np.bincount(flat, minlength=B * T)
    if (counts > 1).any():
        cell = int(np.argmax(counts > 1))
        raise _bad(f"row {row_ids[cell // T]}, t {cell % T} appears more than once; each token needs one line")
    line_mask = _check_mask(np.asarray(columns["mask"])) if "mask" in columns else np.ones(n)
    dense = {}
    for key in REQUIRED:
        values = np.zeros(B * T, dtype=_column_dtype(key, columns[key]))
        values[flat] = columns[key]
        dense[key] = values.reshape(B, T)
    flat_mask = np.zeros(B * T)
    flat_mask[flat] = line_mask
    return _make_batch(dense, flat_mask.reshape(B, T))


def batch_to_npz(batch: Batch) -> bytes:
    """The batch as an ``.npz`` that :func:`load_batch_file` reads back exactly."""
    buf = io.BytesIO()
    np.savez(
        buf,
        vpreds=batch.vpreds.numpy(),
        returns=batch.returns.numpy(),
        values=batch.values.numpy(),
        mask=batch.mask.numpy(),
    )
    return buf.getvalue()


def batch_to_long_frame(batch: Batch) -> pd.DataFrame:
    """One line per cell (padding included, with mask 0): the CSV / Parquet upload format."""
    B, T = batch.shape
    rows, ts = np.divmod(np.arange(B * T), T)
    return pd.DataFrame(
        {
            "row": rows,
            "t": ts,
            "vpreds": batch.vpreds.numpy().ravel(),
            "returns": batch.returns.numpy().ravel(),
            "values": batch.values.numpy().ravel(),
            "mask": batch.mask.numpy().ravel().astype(np.int8),
        }
    )


def example_file(kind: str) -> bytes:
    """A small valid upload (4 sequences of 3 to 8 tokens) in ``kind`` = ``npz``, ``csv`` or ``parquet``."""
    batch = synthetic_batch(seed=7, batch_size=4, min_len=3, max_len=8)
    if kind == "npz":
        return batch_to_npz(batch)
    if kind == "csv":
        return batch_to_long_frame(batch).to_csv(index=False).encode()
    if kind == "parquet":
        buf = io.BytesIO()
        batch_to_long_frame(batch).to_parquet(buf, index=False)
        return buf.getvalue()
    raise ValueError(f"kind must be 'npz', 'csv' or 'parquet', got {kind!r}")
