"""Whole batches: a synthetic RLHF-like rollout, safe loaders for uploaded files, and batch statistics.

The synthetic batch follows the path a PPO-with-critic trainer takes (verl with ``adv_estimator=gae``):
variable-length responses padded to one width, a reward at the last real token, an optional per-token
KL penalty, returns by GAE (``returns = advantages + values``), old values from a noisy (possibly
mis-scaled) critic, and new predictions after one update of chosen size. Uploaded files are never
unpickled and are capped in bytes and tokens.

Shapes: every tensor is ``(batch, response_length)``; the mask is 1 on real tokens, 0 on padding.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
import struct
import tokenize
import warnings
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import _validate as check
from .anatomy import REGION_LABELS, value_loss_terms
from .dialects import DIALECTS, dialect_loss
from .losses import agg_loss, compute_value_loss

__all__ = [
    "Batch",
    "Param",
    "SYNTHETIC_PARAMS",
    "PADDING_CHOICES",
    "MAX_UPLOAD_BYTES",
    "MAX_TOKENS",
    "SCHEMA_MARKDOWN",
    "synthetic_batch",
    "gae_advantages_returns",
    "load_batch_file",
    "example_file",
    "batch_to_npz",
    "batch_to_long_frame",
    "BatchStats",
    "Histogram",
    "batch_stats",
    "histogram",
    "token_table",
    "aggregation_table",
    "aggregation_weights",
    "dialect_table",
    "BatchReport",
    "analyse_batch",
]

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
_FLOAT32_EXACT = 2**24  # every integer up to this is a float32
_FLOAT64_EXACT = 2**53
# A long file needs 6 columns; a few extra (advantages, log-probs) are fine, 10**6 are an attack.
MAX_CSV_COLUMNS = 256
MAX_TOKENS = 2_000_000  # batch x response_length cells (padding included): what the dense tensors hold
# An .npz is a zip: its members can decompress far beyond the upload cap. Four float64 arrays at the
# token cap, plus headers, is the most a legitimate file needs.
_MAX_NPZ_UNCOMPRESSED = 4 * 8 * MAX_TOKENS + 64 * 1024
REQUIRED = ("vpreds", "returns", "values")
LONG_COLUMNS = ("row", "t", "vpreds", "returns", "values")
PADDING_CHOICES = ("zeros", "nan")


@dataclass(frozen=True)
class Batch:
    """One minibatch as the critic update sees it (all tensors ``(B, T)``, one dtype).

    ``rewards`` (token-level, KL penalty included) and ``advantages`` (GAE, before whitening) are
    known for synthetic batches; an uploaded batch has ``rewards=None`` and ``advantages = returns -
    values`` on real tokens, which is how verl defines returns.
    """

    vpreds: torch.Tensor
    returns: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor
    rewards: torch.Tensor | None
    advantages: torch.Tensor | None

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(dim=-1).to(torch.int64)

    @property
    def n_tokens(self) -> int:
        return int(self.mask.sum().item())

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.vpreds.shape)


# ---------------------------------------------------------------------------------------------------
# Synthetic batches
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One knob of the synthetic batch: the range here is also what ``synthetic_batch`` accepts.

    The app builds its widgets from these specs, so the page, the URL and the core agree on limits.
    """

    name: str
    label: str
    default: float | int
    low: float | int
    high: float | int
    step: float | int
    integer: bool
    help: str
    slider: bool = False  # a bounded fraction reads better as a slider


SYNTHETIC_PARAMS: tuple[Param, ...] = (
    Param(
        "seed", "seed", 0, 0, 2**31 - 1, 1, True, "Random seed (torch.Generator): the same seed gives the same batch."
    ),
    Param("batch_size", "sequences", 64, 1, 4096, 1, True, "Number of responses in the batch (rows)."),
    Param("min_len", "min length", 16, 1, 8192, 1, True, "Shortest response, in tokens."),
    Param(
        "max_len",
        "max length",
        256,
        1,
        8192,
        1,
        True,
        "Longest response; also the padded width T (verl's response_length).",
    ),
    Param(
        "reward_mean",
        "reward mean",
        0.5,
        -1000.0,
        1000.0,
        0.1,
        False,
        "Mean of the reward given at the last real token of each response.",
    ),
    Param("reward_std", "reward std", 1.0, 0.0, 1000.0, 0.1, False, "Spread of the final reward across responses."),
    Param(
        "kl_coef",
        "KL coefficient",
        0.05,
        0.0,
        100.0,
        0.01,
        False,
        "beta in reward_t = score_t - beta * KL_t (verl's in-reward KL penalty); 0 turns it off.",
    ),
    Param(
        "kl_mean",
        "mean per-token KL",
        0.1,
        0.0,
        100.0,
        0.01,
        False,
        "Synthetic per-token KL(pi || pi_ref), drawn from an exponential distribution with this mean.",
    ),
    Param("gamma", "gamma", 1.0, 0.0, 1.0, 0.01, False, "Discount factor (verl's default is 1.0).", True),
    Param(
        "lam", "lambda", 1.0, 0.0, 1.0, 0.01, False, "GAE lambda (verl's default is 1.0: Monte-Carlo returns).", True
    ),
    Param(
        "value_noise",
        "critic noise",
        0.3,
        0.0,
        1000.0,
        0.05,
        False,
        "Std of the old critic's error around the true value.",
    ),
    Param(
        "value_scale",
        "critic scale",
        1.0,
        -1000.0,
        1000.0,
        0.1,
        False,
        "Old values = scale * true value + bias + noise. A scale far from 1 reproduces verl#498.",
    ),
    Param(
        "value_bias",
        "critic bias",
        0.0,
        -1000.0,
        1000.0,
        0.1,
        False,
        "Constant offset of the old critic (return units).",
    ),
    Param(
        "step",
        "update step",
        0.15,
        0.0,
        3.0,
        0.05,
        False,
        "vpreds = values + step * (returns - values) + noise: 0 = first minibatch (v == v_old), 1 = all the way to R, >1 overshoots.",
        True,
    ),
    Param(
        "pred_noise",
        "update noise",
        0.1,
        0.0,
        1000.0,
        0.05,
        False,
        "Std of the noise added to the new predictions.",
    ),
)
_PARAMS = {p.name: p for p in SYNTHETIC_PARAMS}


def _check_param(name: str, value):
    spec = _PARAMS[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value}")
    if spec.integer and float(value) != int(value):
        raise ValueError(f"{name} must be a whole number, got {value}")
    if not spec.low <= value <= spec.high:
        raise ValueError(f"{name} must be between {spec.low} and {spec.high}, got {value}")
    return int(value) if spec.integer else float(value)


def gae_advantages_returns(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and returns as verl's ``compute_gae_advantage_return`` defines them.

    Walks the response backwards; on padded (mask 0) slots the running next-value and GAE are carried
    through unchanged, so padding is skipped. ``returns = advantages + values``. The advantages are
    returned before whitening (the critic only sees the returns).
    """
    # The backward walk runs in numpy: the same IEEE float ops in the same dtype and order as the torch
    # loop, without torch's per-call overhead on 256 tiny steps.
    if rewards.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"rewards must be float32 or float64, got {rewards.dtype}")
    r, v = rewards.detach().cpu().numpy(), values.detach().cpu().to(rewards.dtype).numpy()
    m = mask.detach().cpu().to(rewards.dtype).numpy()
    next_value = np.zeros(r.shape[0], dtype=r.dtype)
    last_gae = np.zeros(r.shape[0], dtype=r.dtype)
    adv = np.empty_like(r)
    for t in range(r.shape[1] - 1, -1, -1):
        delta = r[:, t] + gamma * next_value - v[:, t]
        gae = delta + gamma * lam * last_gae
        next_value = v[:, t] * m[:, t] + (1 - m[:, t]) * next_value
        last_gae = gae * m[:, t] + (1 - m[:, t]) * last_gae
        adv[:, t] = last_gae
    advantages = torch.from_numpy(adv).to(rewards.device)
    return advantages, advantages + values


def synthetic_batch(
    seed: int = 0,
    batch_size: int = 64,
    min_len: int = 16,
    max_len: int = 256,
    reward_mean: float = 0.5,
    reward_std: float = 1.0,
    kl_coef: float = 0.05,
    kl_mean: float = 0.1,
    gamma: float = 1.0,
    lam: float = 1.0,
    value_noise: float = 0.3,
    value_scale: float = 1.0,
    value_bias: float = 0.0,
    step: float = 0.15,
    pred_noise: float = 0.1,
    padding: str = "zeros",
    dtype: torch.dtype = torch.float32,
) -> Batch:
    """An RLHF-like minibatch, reproducible from ``seed``.

    - lengths uniform in ``[min_len, max_len]``, padded to ``T = max_len``;
    - score ``~ Normal(reward_mean, reward_std)`` at the last real token, minus ``kl_coef * KL_t`` on
      every token (``KL_t ~ Exponential(mean kl_mean)``);
    - true value ``V_t = E[sum_k gamma^(k-t) reward_k]``; old values
      ``= value_scale * V_t + value_bias + Normal(0, value_noise)``;
    - returns by GAE from those old values (``gamma``, ``lam``);
    - new predictions ``vpreds = values + step * (returns - values) + Normal(0, pred_noise)``.

    Padding is 0 in every tensor (as verl, which masks the critic output); ``padding="nan"`` puts NaN
    in the padded slots of ``vpreds``, as an unmasked critic output might, to show which aggregation
    modes it poisons.
    """
    args = dict(
        seed=seed,
        batch_size=batch_size,
        min_len=min_len,
        max_len=max_len,
        reward_mean=reward_mean,
        reward_std=reward_std,
        kl_coef=kl_coef,
        kl_mean=kl_mean,
        gamma=gamma,
        lam=lam,
        value_noise=value_noise,
        value_scale=value_scale,
        value_bias=value_bias,
        step=step,
        pred_noise=pred_noise,
    )
    p = {name: _check_param(name, value) for name, value in args.items()}
    if p["min_len"] > p["max_len"]:
        raise ValueError(f"min_len ({p['min_len']}) must be <= max_len ({p['max_len']})")
    if p["batch_size"] * p["max_len"] > MAX_TOKENS:
        raise ValueError(
            f"batch_size x max_len = {p['batch_size'] * p['max_len']:,} cells exceeds the cap of {MAX_TOKENS:,}; "
            "use fewer sequences or a shorter max_len"
        )
    if padding not in PADDING_CHOICES:
        raise ValueError(f"padding must be one of {PADDING_CHOICES}, got {padding!r}")
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")

    B, T = p["batch_size"], p["max_len"]
    g = torch.Generator().manual_seed(p["seed"])
    f64 = torch.float64
    lengths = torch.randint(p["min_len"], p["max_len"] + 1, (B,), generator=g)
    pos = torch.arange(T)
    mask = (pos[None, :] < lengths[:, None]).to(f64)
    last = pos[None, :] == (lengths[:, None] - 1)

    score = p["reward_mean"] + p["reward_std"] * torch.randn(B, 1, generator=g, dtype=f64)
    kl = torch.empty(B, T, dtype=f64).exponential_(1.0, generator=g) * p["kl_mean"]
    rewards = (torch.where(last, score, 0.0) - p["kl_coef"] * kl) * mask

    # True value: expected discounted reward to go, E[score] at the end and E[KL] on every token.
    gam = p["gamma"]
    steps_to_end = (lengths[:, None] - 1 - pos[None, :]).clamp(min=0).to(f64)
    remaining = (lengths[:, None] - pos[None, :]).clamp(min=0).to(f64)
    kl_to_go = remaining if gam == 1.0 else (1 - gam**remaining) / (1 - gam)
    true_value = (gam**steps_to_end * p["reward_mean"] - p["kl_coef"] * p["kl_mean"] * kl_to_go) * mask

    noise_v = torch.randn(B, T, generator=g, dtype=f64)
    noise_p = torch.randn(B, T, generator=g, dtype=f64)
    values = (p["value_scale"] * true_value + p["value_bias"] + p["value_noise"] * noise_v) * mask

    rewards, values, mask_t = rewards.to(dtype), values.to(dtype), mask.to(dtype)
    advantages, returns = gae_advantages_returns(rewards, values, mask_t, gam, p["lam"])
    vpreds = (values + p["step"] * (returns - values) + p["pred_noise"] * noise_p.to(dtype)) * mask_t
    if padding == "nan":
        vpreds = torch.where(mask_t.bool(), vpreds, float("nan"))
    return Batch(vpreds=vpreds, returns=returns, values=values, mask=mask_t, rewards=rewards, advantages=advantages)


# ---------------------------------------------------------------------------------------------------
# Loading uploaded files
# ---------------------------------------------------------------------------------------------------

SCHEMA_MARKDOWN = f"""
**`.npz`** (`np.savez`): 2-D arrays of one shape `(batch, response_length)` named
`vpreds` (new predictions v), `returns` (R), `values` (old values v_old) and, optionally, `mask`
(1 = real token, 0 = padding; all ones if absent). Numeric arrays only: object / pickled arrays are refused.

**`.csv` / `.parquet`**: long format, one line per token, columns `row`, `t` (0-based token position),
`vpreds`, `returns`, `values` and optionally `mask`. Cells of the `(row, t)` grid that you leave out are
padding. CSV text is read as float64; columns written from float32 data (pandas' `to_csv` does this by
default) are computed in float32, as the trainers do.

From a trainer, e.g. inside verl's critic update:

```python
np.savez("batch.npz", vpreds=vpreds.float().cpu().numpy(), returns=returns.float().cpu().numpy(),
         values=values.float().cpu().numpy(), mask=response_mask.float().cpu().numpy())
```

**Padded width**: a long file that lists real tokens only ends at its longest row. If the trainer padded
wider (verl's `response_length`), give that width in the *padded width T* box: seq-mean-token-sum-norm
divides by it. The page says which width it uses.

Limits: {MAX_UPLOAD_BYTES // (1024 * 1024)} MB per file, {MAX_TOKENS:,} cells (`batch x response_length`)
and {MAX_CSV_COLUMNS} columns per CSV (only the six above are read). Values, `row` and `t` are plain numbers:
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


def _float_dtype(arrays: dict[str, np.ndarray]) -> np.dtype:
    """float64 if any value array needs it (keep the user's precision), else float32 (the trainers').

    float64 data, and integers beyond 2**24 (float32 would round them), need float64.
    """
    need64 = any(arrays[k].dtype == np.float64 or _int_needs_float64(k, arrays[k]) for k in REQUIRED)
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


def _check_real_finite(arrays: dict[str, np.ndarray], mask: np.ndarray) -> None:
    real = mask.astype(bool)
    for key in REQUIRED:
        bad = real & ~np.isfinite(arrays[key])
        if bad.any():
            r, t = np.argwhere(bad)[0]
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
    _check_real_finite(arrays, mask)
    return _make_batch(arrays, mask)


def _make_batch(arrays: dict[str, np.ndarray], mask: np.ndarray) -> Batch:
    dtype = _float_dtype(arrays)
    t = {k: torch.from_numpy(np.ascontiguousarray(arrays[k], dtype=dtype)) for k in REQUIRED}
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
        header = len(next(reader, []))
        for number, fields in enumerate(reader, start=2):
            if len(fields) > header:
                raise too_many(number, len(fields), header)
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


def _read_csv(data: bytes) -> dict[str, np.ndarray]:
    """Only the needed columns are parsed; a header with more than MAX_CSV_COLUMNS fields is refused first."""
    first_line = data.split(b"\n", 1)[0]
    n_fields = first_line.count(b",") + 1  # an upper bound (a quoted name may hold a comma)
    if n_fields > MAX_CSV_COLUMNS:
        raise _bad(
            f"the CSV header has {n_fields:,} fields; at most {MAX_CSV_COLUMNS} are read. "
            f"Keep the columns {', '.join(LONG_COLUMNS)} (and optionally mask)"
        )
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
    # Leaf (physical) columns of the wanted fields: uncompressed bytes and values, before decoding.
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
    mask = np.zeros(B * T)
    mask[flat] = line_mask
    mask = mask.reshape(B, T)
    _check_real_finite(dense, mask)
    return _make_batch(dense, mask)


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


# ---------------------------------------------------------------------------------------------------
# Batch statistics
# ---------------------------------------------------------------------------------------------------


MAX_BINS = 1000  # a figure cannot show more; 10**9 bins would allocate gigabytes


@dataclass(frozen=True)
class Histogram:
    """Pre-binned counts (so a figure ships ``bins`` numbers, not every token)."""

    edges: np.ndarray
    counts: np.ndarray


def histogram(x: np.ndarray, eps: float, bins: int = 60) -> Histogram:
    """Counts of ``x`` on a range that always shows ``[-eps, eps]``; non-finite values are dropped."""
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or not 1 <= bins <= MAX_BINS:
        raise ValueError(f"bins must be a whole number between 1 and {MAX_BINS}, got {bins!r}")
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    lo = min(float(x.min()) if x.size else 0.0, -eps)
    hi = max(float(x.max()) if x.size else 0.0, eps)
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    pad = 0.02 * (hi - lo)
    counts, edges = np.histogram(x, bins=bins, range=(lo - pad, hi + pad))
    return Histogram(edges=edges, counts=counts)


@dataclass(frozen=True)
class BatchStats:
    """Per-batch numbers the Batch page shows; token arrays hold real tokens only, row-major."""

    eps: float
    n_rows: int
    n_nonempty_rows: int
    n_tokens: int
    width: int
    lengths: np.ndarray
    delta: np.ndarray  # v - v_old
    gap: np.ndarray  # R - v_old
    loss_clipfrac: float  # verl's vf_clipfrac: share of real tokens with L_clip > L_unclip
    pred_clipfrac: float  # slime's value_clipfrac: share with |v - v_old| > eps
    zero_grad_share: float  # share of real tokens whose d loss / d v is exactly 0
    median_abs_gap: float  # median |R - v_old|: roughly eps x the rollouts the critic needs to catch up
    nan_real: int  # NaN / inf on real tokens (any of v, R, v_old)
    nan_padding: int  # NaN / inf in padded slots
    value_mean: float
    value_std: float
    return_mean: float
    return_std: float
    value_min: float
    value_max: float
    return_min: float
    return_max: float


def _real(x: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    return torch.masked_select(x, mask.bool()).double().numpy()


def _stat(fn, x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(fn(x)) if x.size else float("nan")


def batch_stats(batch: Batch, eps: float) -> BatchStats:
    """Clip fractions, zero-gradient share and the distributions of Δ and R - v_old over real tokens.

    ``loss_clipfrac`` is verl's ``vf_clipfrac`` (computed by :func:`compute_value_loss`, so it is the
    logged number); the zero-gradient share is the share of real tokens whose closed-form gradient
    d max(L_unclip, L_clip)/dv is exactly 0: the clipped tokens plus any already sitting at v = R.
    """
    check.clip_range("eps", eps)
    m = batch.mask.bool()
    _, clipfrac = compute_value_loss(batch.vpreds, batch.returns, batch.values, batch.mask, eps)
    terms = value_loss_terms(batch.vpreds, batch.returns, batch.values, eps)
    n = int(m.sum().item())
    finite = torch.isfinite(batch.vpreds) & torch.isfinite(batch.returns) & torch.isfinite(batch.values)
    v, r, o = _real(batch.vpreds, m), _real(batch.returns, m), _real(batch.values, m)
    lengths = batch.lengths.numpy()
    share = (lambda b: float(b[m].double().mean().item())) if n else (lambda b: 0.0)
    return BatchStats(
        eps=float(eps),
        n_rows=batch.shape[0],
        n_nonempty_rows=int((lengths > 0).sum()),
        n_tokens=n,
        width=batch.shape[1],
        lengths=lengths,
        delta=v - o,
        gap=r - o,
        loss_clipfrac=float(clipfrac.item()),
        pred_clipfrac=share(terms.prediction_clipped),
        zero_grad_share=share(terms.grad == 0),
        median_abs_gap=_stat(np.median, np.abs(r - o)),
        nan_real=int((~finite & m).sum().item()),
        nan_padding=int((~finite & ~m).sum().item()),
        value_mean=_stat(np.mean, o),
        value_std=_stat(np.std, o),
        return_mean=_stat(np.mean, r),
        return_std=_stat(np.std, r),
        value_min=_stat(np.min, o),
        value_max=_stat(np.max, o),
        return_min=_stat(np.min, r),
        return_max=_stat(np.max, r),
    )


def token_table(batch: Batch, eps: float, max_rows: int | None = 200) -> pd.DataFrame:
    """Per real token: inputs, both terms, who wins, the region and the gradient (verl's bounds clip)."""
    check.clip_range("eps", eps)
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1):
        raise ValueError(f"max_rows must be a positive integer or None, got {max_rows!r}")
    m = batch.mask.bool()
    idx = torch.nonzero(m)
    if max_rows is not None:
        idx = idx[:max_rows]
    rows, ts = idx[:, 0], idx[:, 1]
    v, r, o = (x[rows, ts] for x in (batch.vpreds, batch.returns, batch.values))
    terms = value_loss_terms(v, r, o, eps)
    regions = terms.region.numpy()
    return pd.DataFrame(
        {
            "row": rows.numpy(),
            "t": ts.numpy(),
            "v_old": o.double().numpy(),
            "v": v.double().numpy(),
            "R": r.double().numpy(),
            "Δ = v − v_old": (v - o).double().numpy(),
            "R − v_old": (r - o).double().numpy(),
            "clip(v)": terms.v_clipped.double().numpy(),
            "L_unclip": terms.loss_unclipped.double().numpy(),
            "L_clip": terms.loss_clipped.double().numpy(),
            "max": terms.loss_max.double().numpy(),
            "loss clipped": terms.clipped_wins.numpy(),
            "|Δ| > eps": terms.prediction_clipped.numpy(),
            "region": [REGION_LABELS[int(c)] for c in regions],
            "dmax/dv": terms.grad.double().numpy(),
        }
    )


def aggregation_weights(mask: torch.Tensor, loss_agg_mode: str) -> torch.Tensor:
    """d AGG(L, mask) / d L for every cell, by autograd (exact: AGG is linear in L).

    Multiply by 0.5 for verl's ``vf_loss``. Padding gets weight 0.
    """
    check.mask_tensor("mask", mask)
    L = torch.zeros(mask.shape, dtype=torch.float64, requires_grad=True)
    agg_loss(L, mask.to(torch.float64), loss_agg_mode).backward()
    return L.grad


def aggregation_table(batch: Batch, eps: float) -> pd.DataFrame:
    """Each verl mode's ``vf_loss`` and the weight it gives one token of the shortest and longest row.

    The weights are ``d AGG / d L_token`` (without the 0.5): token-mean gives every token ``1/N``;
    seq-mean-token-mean gives a token of a short sequence ``n_long / n_short`` times the weight of
    a token of a long one, so short answers dominate the critic's gradient.
    """
    check.clip_range("eps", eps)
    lengths = batch.lengths
    nonempty = torch.nonzero(lengths > 0).flatten()
    records = []
    for mode in (
        "token-mean",
        "token-sum",
        "seq-mean-token-sum",
        "seq-mean-token-mean",
        "seq-mean-token-sum-norm",
    ):
        loss, _ = compute_value_loss(batch.vpreds, batch.returns, batch.values, batch.mask, eps, mode)
        weights = aggregation_weights(batch.mask, mode)
        if len(nonempty):
            short = int(nonempty[torch.argmin(lengths[nonempty])])
            long = int(nonempty[torch.argmax(lengths[nonempty])])
            n_short, n_long = int(lengths[short]), int(lengths[long])
            w_short, w_long = float(weights[short, 0]), float(weights[long, 0])
        else:
            n_short = n_long = 0
            w_short = w_long = float("nan")
        records.append(
            {
                "mode": mode,
                "vf_loss": float(loss.item()),
                "short length": n_short,
                "long length": n_long,
                "weight per token (short)": w_short,
                "weight per token (long)": w_long,
                "short / long per token": w_short / w_long if w_long else float("nan"),
                "weight per sequence (short)": w_short * n_short,
                "weight per sequence (long)": w_long * n_long,
            }
        )
    return pd.DataFrame.from_records(records)


def _loss_units_note(d) -> str:
    return (
        f"{d.library}: {d.param_name} bounds the squared error (loss units), not the value, so eps does not "
        "carry over; shown at its own setting."
    )


def dialect_table(batch: Batch, eps: float, rllib_clip: float | None = None) -> pd.DataFrame:
    """Every library's logged value loss and clip fraction on this batch, at the same eps.

    Clipping is switched on (at ``eps``) for the libraries where it is off by default (SB3, TorchRL).
    Libraries whose parameter is in loss units (RLlib since 2021: ``eps_units == "loss"``) get
    ``rllib_clip`` (default: their own default, ``vf_clip_param = 10.0``). Every registry entry is a
    row, older releases included; ``library`` names the releases. ``clip fraction`` is NaN where the
    library logs none (``logs clip fraction`` is False).
    """
    check.clip_range("eps", eps)
    if rllib_clip is not None:
        check.clip_range("rllib_clip", rllib_clip)
    records = []
    for name, d in DIALECTS.items():
        param = eps if d.eps_units == "return" else (d.default_eps if rllib_clip is None else rllib_clip)
        result = dialect_loss(name, batch.vpreds, batch.returns, batch.values, batch.mask, param)
        records.append(
            {
                "dialect": name,
                "library": d.library,
                "parameter": d.param_name,
                "value": float(param),
                "loss": float(result.loss.item()),
                "clip fraction": float("nan") if result.clipfrac is None else float(result.clipfrac.item()),
                "logs clip fraction": result.clipfrac is not None,
                "clip fraction logged": d.clipfrac_definition or "not logged",
                "definition": d.sanity_definition if d.clipfrac_definition else None,
                "note": _loss_units_note(d)
                if d.eps_units == "loss"
                else ("default: off; on here" if d.default_eps is None else ""),
                "logged as": d.loss_metric or "",
                "what the logged number is": d.logged,
                "releases": d.versions,
            }
        )
    return pd.DataFrame.from_records(records)


@dataclass(frozen=True)
class BatchReport:
    """Everything the Batch page draws, computed once per (batch, eps, mode) and cached by the app."""

    stats: BatchStats
    delta_hist: Histogram
    gap_hist: Histogram
    vf_loss: float
    vf_clipfrac: float
    loss_agg_mode: str
    tokens: pd.DataFrame
    aggregation: pd.DataFrame
    dialects: pd.DataFrame


def analyse_batch(
    batch: Batch,
    eps: float,
    loss_agg_mode: str = "token-mean",
    *,
    table_rows: int = 200,
    bins: int = 60,
    rllib_clip: float | None = None,
) -> BatchReport:
    """One call for the page: statistics, histograms, verl's loss in the chosen mode, the tables."""
    check.clip_range("eps", eps)
    check.agg_mode(loss_agg_mode)
    stats = batch_stats(batch, eps)
    vf_loss, vf_clipfrac = compute_value_loss(batch.vpreds, batch.returns, batch.values, batch.mask, eps, loss_agg_mode)
    return BatchReport(
        stats=stats,
        delta_hist=histogram(stats.delta, eps, bins),
        gap_hist=histogram(stats.gap, eps, bins),
        vf_loss=float(vf_loss.item()),
        vf_clipfrac=float(vf_clipfrac.item()),
        loss_agg_mode=loss_agg_mode,
        tokens=token_table(batch, eps, table_rows),
        aggregation=aggregation_table(batch, eps),
        dialects=dialect_table(batch, eps, rllib_clip),
    )
