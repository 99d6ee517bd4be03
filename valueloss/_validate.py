"""Input checks shared by every public entry point: one rule per kind of value, in one place.

Each check names the argument and says what is allowed, so a user who passes the wrong thing
learns how to fix it instead of getting a silently wrong number. A boundary (a public function, a
page's input, a file reader) checks once; the layers below it take what it checked and do not check
again.

Kinds of value: :func:`float_tensor` / :func:`mask_tensor` / :func:`batch_tensors` (a batch),
:func:`real_scalar` (any real number), :func:`finite_number` (a finite real in a range, whole where
asked: widgets, URLs, knobs), :func:`whole_number` (an ``int`` and nothing else: counts, seeds, sizes),
:func:`clip_range`, :func:`positive_count`, :func:`dp_size` and :func:`aggregation` (the data-parallel
arguments), :func:`choice` (one name of a fixed set).
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import torch

AGG_MODES = (
    "token-mean",
    "token-sum",
    "seq-mean-token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum-norm",
)
CONVENTIONS = ("bounds", "clamp", "delta")


def float_tensor(name: str, x) -> torch.Tensor:
    """A floating tensor, or a TypeError that names ``name``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating tensor (float32, float64, bfloat16 or float16), got {x.dtype}; "
            f"convert it with {name}.float()"
        )
    return x


def as_float_tensor(name: str, x, like: torch.Tensor | None = None) -> torch.Tensor:
    """Accept tensors, numpy arrays and numbers (for grids and single tokens)."""
    if isinstance(x, torch.Tensor):
        return float_tensor(name, x)
    if isinstance(x, bool):
        raise TypeError(f"{name} must be a number or an array of numbers, got bool")
    if isinstance(x, np.ndarray) and x.dtype.kind == "c":
        raise TypeError(f"{name} must be real numbers, got a complex array ({x.dtype}); pass {name}.real if meant")
    try:
        with warnings.catch_warnings():
            # numpy only warns when it drops an imaginary part: that is a silent wrong number here.
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError, np.exceptions.ComplexWarning) as err:
        raise TypeError(f"{name} must be a number or an array of real numbers, got {type(x).__name__}") from err
    t = torch.from_numpy(arr)
    if like is not None:
        t = t.to(dtype=like.dtype, device=like.device)
    return t


def mask_tensor(name: str, m) -> torch.Tensor:
    """A 0/1 mask (bool, integer or floating), or a clear error."""
    if not isinstance(m, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of 0/1 or bool, got {type(m).__name__}")
    if m.is_complex():
        raise TypeError(f"{name} must be a bool, integer or floating tensor of 0/1, got {m.dtype}")
    if m.dtype != torch.bool:
        bad = (m != 0) & (m != 1)
        if bool(bad.any()):
            example = m[bad].flatten()[0].item()
            raise ValueError(
                f"{name} must hold only 0 and 1 (1 = real token, 0 = padding); found {example!r}. "
                "Pass a boolean mask or a 0/1 tensor."
            )
    return m


def same_shape(ref_name: str, ref: torch.Tensor, **others: torch.Tensor) -> None:
    """All inputs share one shape and one device: the libraries broadcast silently, we refuse."""
    for name, x in others.items():
        if x.shape != ref.shape:
            raise ValueError(
                f"{name} has shape {tuple(x.shape)} but {ref_name} has shape {tuple(ref.shape)}; "
                "all inputs must have the same (batch, response_length) shape"
            )
        if x.device != ref.device:
            raise ValueError(f"{name} is on {x.device} but {ref_name} is on {ref.device}; move them to one device")


def nonempty(name: str, x: torch.Tensor) -> None:
    if x.dim() == 0:
        raise ValueError(f"{name} must have at least one dimension (batch, response_length), got a 0-d tensor")
    if x.numel() == 0:
        raise ValueError(f"empty batch: {name} has shape {tuple(x.shape)} and no elements")


def shown_value(x) -> str:
    """``x`` for a message: a huge integer is described, not printed (str() of 10**5000 raises)."""
    if isinstance(x, numbers.Integral) and not isinstance(x, bool) and abs(int(x)) > 10**18:
        return f"an integer of {len(str(abs(int(x)))) if abs(int(x)) < 10**4000 else 'over 4,000'} digits"
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def real_scalar(name: str, x, *, allow_tensor: bool = True):
    """The one rule for every scalar argument of the library (clip ranges, counts, scale factors).

    Any real number is accepted and used as its ``float`` value: ``int``, ``float``, numpy scalars,
    ``fractions.Fraction`` (anything registered as ``numbers.Real``); a one-element real tensor is
    returned as it is (its dtype and device take part in the arithmetic, as in the libraries). A bool,
    a string, a complex number, a ``Decimal`` or a longer tensor is a ``TypeError`` / ``ValueError`` naming
    ``name``; a number too large for a float (``10**400``) is a ``ValueError``, never an ``OverflowError``.
    """
    if isinstance(x, torch.Tensor):
        if not allow_tensor:
            raise TypeError(f"{name} must be a number, got a tensor")
        if x.numel() != 1:
            raise ValueError(f"{name} must be a single number, got a tensor of shape {tuple(x.shape)}")
        if x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"{name} must be a real number, got a {x.dtype} tensor")
        return x
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a number (a real: int, float or Fraction), got {type(x).__name__}")
    try:
        return float(x)
    except OverflowError:
        raise ValueError(
            f"{name} must be a finite number, got {shown_value(x)}, which is too large for a float"
        ) from None


def _value(x) -> float:
    return float(x.item()) if isinstance(x, torch.Tensor) else x


def clip_range(name: str, eps, *, allow_none: bool = False, off_values: tuple = ()):
    """A finite, non-negative clip range, as :func:`real_scalar` reads it (a float, or a one-element
    tensor unchanged, so the arithmetic matches the libraries). ``off_values`` are the library's own
    switches (RLlib's ``float("inf")``), accepted as they are; ``None`` too where ``allow_none``."""
    if eps is None:
        if allow_none:
            return None
        raise ValueError(f"{name} must be a finite number >= 0, got None")
    eps = real_scalar(name, eps)
    value = _value(eps)
    if value in off_values:
        return eps
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (in return units), got {value}")
    return eps


def choice(name: str, value, allowed, *, label: str | None = None) -> str:
    """One of the names in ``allowed``, or a ValueError that lists them (``label`` names the kind of value)."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {label or name} {shown_value(value)}; choose one of: {', '.join(allowed)}")
    return value


def agg_mode(mode: str) -> str:
    if not isinstance(mode, str) or mode not in AGG_MODES:
        raise ValueError(f"unknown loss_agg_mode {shown_value(mode)}; valid modes are: {', '.join(AGG_MODES)}")
    return mode


def convention(name: str) -> str:
    return choice("convention", name, CONVENTIONS, label="clip convention")


def positive_count(name: str, value, *, integer: bool = False):
    """Global counts and scale factors: positive and finite, read by :func:`real_scalar` (None passes)."""
    if value is None:
        return None
    value = real_scalar(name, value)
    number = _value(value)
    if integer and number != int(number):
        raise ValueError(f"{name} must be a whole number, got {number}")
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {number}")
    return value


def whole_number(name: str, value, low: int, high: int | None = None) -> int:
    """An ``int`` (numpy integers too) in ``[low, high]``: counts, sizes, seeds. A float, even ``3.0``, or a bool
    is a TypeError, since a count typed as a float is usually a unit mistake; see :func:`finite_number` for
    numbers read from a widget or a URL."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < low or high is not None and value > high:
        bound = f">= {low:,}" if high is None else f"between {low:,} and {high:,}"
        raise ValueError(f"{name} must be an integer {bound}, got {shown_value(value)}")
    return value


def dp_size(value) -> int:
    """The loss functions' number of data-parallel ranks: :func:`whole_number` >= 1, where every refusal is a
    ValueError (a float or a bool too), as the drop-in APIs have always raised it."""
    try:
        return whole_number("dp_size", value, 1)
    except TypeError:
        raise ValueError(f"dp_size must be an integer >= 1, got {shown_value(value)}") from None


def aggregation(loss_agg_mode, dp_size, batch_num_tokens, global_batch_size, loss_scale_factor) -> dict:
    """The aggregation arguments of verl's ``agg_loss`` (and of every entry point that passes them on), checked
    before any work: with several data-parallel ranks the mode's global count is required. Returns the keyword
    arguments ``dp_size``, ``batch_num_tokens``, ``global_batch_size``, ``loss_scale_factor`` as read here."""
    agg_mode(loss_agg_mode)
    needed = {"token-mean": "tokens", "token-sum": None}.get(loss_agg_mode, "sequences")
    ranks, tokens, sequences = global_counts(dp_size, batch_num_tokens, global_batch_size, needed=needed)
    return {
        "dp_size": ranks,
        "batch_num_tokens": tokens,
        "global_batch_size": sequences,
        "loss_scale_factor": positive_count("loss_scale_factor", loss_scale_factor),
    }


def global_counts(dp_size_value, batch_num_tokens, global_batch_size, *, needed: str | None):
    """``dp_size`` and the global counts; with ``dp_size > 1`` the count the loss divides by (``needed``:
    ``"tokens"``, ``"sequences"`` or None) must be given, since each rank would otherwise divide by its own."""
    ranks = dp_size(dp_size_value)
    batch_num_tokens = positive_count("batch_num_tokens", batch_num_tokens)
    global_batch_size = positive_count("global_batch_size", global_batch_size)
    if ranks > 1 and needed == "tokens" and batch_num_tokens is None:
        raise ValueError("batch_num_tokens (the global number of tokens) is required when dp_size > 1")
    if ranks > 1 and needed == "sequences" and global_batch_size is None:
        raise ValueError("global_batch_size (the global number of non-empty sequences) is required when dp_size > 1")
    return ranks, batch_num_tokens, global_batch_size


def batch_tensors(
    vpreds, returns, values, mask, mask_name: str = "response_mask", names=("vpreds", "returns", "values")
) -> None:
    """A batch: three floating tensors of one non-empty shape and device, and a 0/1 mask of that shape (or None).
    ``names`` are the caller's names of the three tensors (OpenRLHF's are values, old_values, returns)."""
    tensors = dict(zip(names, (vpreds, returns, values), strict=True))
    for name, x in tensors.items():
        float_tensor(name, x)
    first, *others = names
    nonempty(first, tensors[first])
    if mask is not None:
        mask_tensor(mask_name, mask)
        tensors[mask_name] = mask
    same_shape(first, tensors[first], **{name: tensors[name] for name in tensors if name != first})


def _number_text(x: float) -> str:
    """A bound or a value for a message: whole numbers with thousands separators, others in ``g`` format."""
    return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def finite_number(
    name: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
):
    """A real, finite number within ``[low, high]`` (either bound optional; ``low_open``: ``> low``), as a float,
    or as an int where ``integer`` (then ``3.0`` is accepted and ``2.5`` is not): what a widget, a URL or a knob
    gives. Read by :func:`real_scalar`; a one-element tensor is read as its number."""
    if isinstance(value, torch.Tensor):
        value = real_scalar(name, value).item()
    value = real_scalar(name, value, allow_tensor=False)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if integer and value != int(value):
        raise ValueError(f"{name} must be a whole number, got {value}")
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or high is not None and value > high:
        lower = None if low is None else f"{'>' if low_open else '>='} {_number_text(low)}"
        upper = None if high is None else f"<= {_number_text(high)}"
        if low is not None and high is not None and not low_open:
            bound = f"between {_number_text(low)} and {_number_text(high)}"
        else:
            bound = " and ".join(b for b in (lower, upper) if b)
        raise ValueError(f"{name} must be {bound}, got {_number_text(value)}")
    return int(value) if integer else value
