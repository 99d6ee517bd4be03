"""The rules of ``valueloss._validate`` (one per kind of value) and the boundaries that apply them once."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from valueloss import _validate as check
from valueloss.tools import export


@pytest.mark.parametrize("value", [3, np.int64(3), np.int8(3)])
def test_whole_number_takes_integers(value):
    assert check.whole_number("n", value, 1, 10) == 3 and type(check.whole_number("n", value, 1)) is int


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (3.0, TypeError, "n must be an integer, got float"),
        (True, TypeError, "n must be an integer, got bool"),
        ("3", TypeError, "n must be an integer, got str"),
        (0, ValueError, "n must be an integer between 1 and 10,000, got 0"),
        (10**5000, ValueError, "n must be an integer between 1 and 10,000, got an integer of over 4,000 digits"),
    ],
    ids=["float", "bool", "str", "too-small", "huge"],
)
def test_whole_number_refusals_name_the_argument(value, error, message):
    with pytest.raises(error, match=message):
        check.whole_number("n", value, 1, 10_000)


def test_dp_size_refuses_everything_as_a_value_error_like_the_drop_in_apis():
    for bad in (0, 2.0, True, "2"):
        with pytest.raises(ValueError, match="dp_size must be an integer >= 1"):
            check.dp_size(bad)
    assert check.dp_size(np.int64(4)) == 4


@pytest.mark.parametrize(
    ("kwargs", "value", "want"),
    [
        ({}, Fraction(1, 4), 0.25),
        ({"low": 0.0, "high": 1.0}, torch.tensor(0.5), 0.5),
        ({"integer": True, "low": 1, "high": 4096}, 64.0, 64),
        ({"low": 0.0, "low_open": True}, 1e-300, 1e-300),
    ],
)
def test_finite_number_reads_any_real_number(kwargs, value, want):
    got = check.finite_number("x", value, **kwargs)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize(
    ("kwargs", "value", "error", "message"),
    [
        ({}, math.nan, ValueError, "x must be a finite number, got nan"),
        ({}, True, TypeError, "x must be a number"),
        ({}, 1j, TypeError, "x must be a number"),
        ({}, torch.ones(2), ValueError, "x must be a single number"),
        ({"low": 0.0, "high": 1.0}, 1.5, ValueError, "x must be between 0 and 1, got 1.5"),
        ({"low": 0.0}, -2.0, ValueError, "x must be >= 0, got -2"),
        ({"high": 3.0}, 4.0, ValueError, "x must be <= 3, got 4"),
        ({"low": 0.0, "high": 100.0, "low_open": True}, 0.0, ValueError, "x must be > 0 and <= 100, got 0"),
        ({"integer": True, "low": 1, "high": 2**31 - 1}, 2.5, ValueError, "x must be a whole number, got 2.5"),
        ({"integer": True, "low": 1, "high": 2**31 - 1}, 2**40, ValueError, "between 1 and 2,147,483,647"),
    ],
)
def test_finite_number_refusals_name_the_argument(kwargs, value, error, message):
    with pytest.raises(error, match=message):
        check.finite_number("x", value, **kwargs)


def test_choice_lists_what_is_allowed():
    assert check.choice("padding", "nan", ("zero", "nan")) == "nan"
    with pytest.raises(ValueError, match="unknown padding 'x'; choose one of: zero, nan"):
        check.choice("padding", "x", ("zero", "nan"))
    with pytest.raises(ValueError, match="unknown clip convention"):
        check.convention(["bounds"])  # unhashable: still a clear error


def test_global_counts_name_the_count_the_mode_divides_by():
    assert check.global_counts(1, None, None, needed="tokens") == (1, None, None)
    with pytest.raises(ValueError, match=r"batch_num_tokens \(the global number of tokens\) is required"):
        check.global_counts(2, None, 8, needed="tokens")
    with pytest.raises(ValueError, match=r"global_batch_size \(the global number of non-empty sequences\)"):
        check.global_counts(2, 8, None, needed="sequences")
    assert check.global_counts(2, None, None, needed=None)[0] == 2  # token-sum needs no count
    counts = {"dp_size": 2, "batch_num_tokens": None, "global_batch_size": None, "loss_scale_factor": None}
    assert check.aggregation("token-sum", 2, None, None, None) == counts


def test_batch_tensors_use_the_callers_names():
    v = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="old_values has shape"):
        check.batch_tensors(v, torch.zeros(2, 2), v, None, "action_mask", names=("values", "old_values", "returns"))
    with pytest.raises(TypeError, match="returns must be a floating tensor"):
        check.batch_tensors(v, v, v.long(), None, "action_mask", names=("values", "old_values", "returns"))
    with pytest.raises(ValueError, match="response_mask must hold only 0 and 1"):
        check.batch_tensors(v, v, v, torch.full((2, 3), 2.0))


def test_an_export_checks_once_and_computes_the_loss_once(monkeypatch):
    """The page asks the export once; the export computes the library's loss once (it was three times)."""
    calls = []
    dialects = dict(export.DIALECTS)
    for name in ("verl", "trl", "cleanrl"):
        code = dialects[name].compute
        counted = dataclasses.replace(code, fn=lambda *a, fn=code.fn, **k: calls.append(fn) or fn(*a, **k))
        dialects[name] = dataclasses.replace(dialects[name], compute=counted)
    monkeypatch.setattr(export, "DIALECTS", dialects)
    g = torch.Generator().manual_seed(0)
    v, r, o = (torch.randn(3, 5, generator=g) for _ in range(3))
    m = torch.ones(3, 5)
    m[1, 3:] = 0
    for name in ("verl", "trl", "cleanrl"):  # closed form, and autograd through the same call
        calls.clear()
        result = export.batch_export(v, r, o, m, 0.2, "token-mean", name)
        assert len(calls) == 1, name
        assert f"EXPECTED_LOSS = {float(result.numbers.loss)!r}" in result.code
