"""Export a scenario as a standalone Python file: torch only, with a pytest test of the numbers shown.

Why: a student or a reviewer can take the numbers home, run them without this package, and see that
the library's formula gives exactly what the app showed. The formula in the file is the source
(``inspect.getsource``) of the very function the app computes that library with
(``valueloss.library_code``), its helpers, and its settings written as constants, called by a small
fixed harness: there is no second copy of any formula to drift.

``export_token_code(v_old, R, eps, v, convention_or_dialect)``: one token, either the per-token
anatomy in a clip convention (``"bounds"``, ``"clamp"``, ``"delta"``) or a library's whole loss on a
one-token batch. ``batch_export(vpreds, returns, values, response_mask, eps, mode, dialect)`` (its text: ``export_batch_code``): a
batch, embedded exactly (every number as ``repr`` of its float, which round-trips), capped at
``MAX_EXPORT_ELEMENTS``.

The expected numbers embedded in the file are computed here with ``valueloss``: the loss and clip
fraction by the library's function in ``valueloss``; the gradient by the closed form
(``value_loss_grad``, bit-identical to autograd) for the max-form libraries, by autograd through
``valueloss`` for the others. The file's tests compare element-wise numbers exactly and reductions
of a batch within a few ulps (summation order may differ between torch builds).
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass

import torch

from .. import __version__
from .. import _validate as check
from ..anatomy import value_loss_grad_of_checked, value_loss_terms_of_checked
from ..dialects import DIALECTS, check_clip_param
from ..losses import clip_bounds, clip_clamp, clip_delta

__all__ = [
    "EXPORT_DIALECTS",
    "EXPORT_CONVENTIONS",
    "MAX_EXPORT_ELEMENTS",
    "export_token_code",
    "export_batch_code",
    "batch_export",
    "BatchExport",
    "AppNumbers",
    "app_numbers",
    "export_filename",
    "dialect_modes",
]

EXPORT_DIALECTS = tuple(name for name, d in DIALECTS.items() if d.export_source is not None)
EXPORT_CONVENTIONS = ("bounds", "clamp", "delta")
MAX_EXPORT_ELEMENTS = 4096  # e.g. 32 rows x 128 tokens; every number is written into the file
REDUCTION_ULPS = 16  # tolerance of batch reductions in the exported tests, in units of the dtype's eps

_DTYPE_NAMES = {
    torch.float64: "torch.float64",
    torch.float32: "torch.float32",
    torch.bfloat16: "torch.bfloat16",
    torch.float16: "torch.float16",
    torch.bool: "torch.bool",
    torch.int64: "torch.int64",
    torch.int32: "torch.int32",
    torch.int8: "torch.int8",
    torch.uint8: "torch.uint8",
}


def dialect_modes(dialect: str) -> tuple[str, ...]:
    """The aggregation modes an export supports for ``dialect`` (its registry entry's ``modes``)."""
    _check_dialect(dialect)
    return DIALECTS[dialect].modes


def export_filename(name: str, mode: str = "token-mean", *, token: bool = False) -> str:
    """A readable file name, e.g. ``valueloss_batch_verl_seq_mean_token_mean.py`` (an importable module name)."""
    kind = "token" if token else "batch"
    parts = ["valueloss", kind, name] + ([mode] if len(DIALECTS[name].modes) > 1 else [])
    return "".join(c if c.isalnum() else "_" for c in "_".join(parts)) + ".py"


# ----------------------------------------------------------------------------------------------
# Input checks


def _check_dialect(name: str) -> str:
    return check.choice("dialect", name, EXPORT_DIALECTS)


def _check_mode(dialect: str, mode: str) -> str:
    modes = dialect_modes(dialect)
    if mode not in modes:
        raise ValueError(
            f"loss_agg_mode {mode!r} is not available for {dialect}; choose one of: {', '.join(modes)}"
            + ("" if len(modes) > 1 else f" ({DIALECTS[dialect].aggregation})")
        )
    return mode


# ----------------------------------------------------------------------------------------------
# Embedding numbers exactly


def _float_literal(x: float) -> str:
    """``repr`` round-trips every float exactly; NaN and infinities are spelled out."""
    if math.isnan(x):
        return 'float("nan")'
    if math.isinf(x):
        return 'float("inf")' if x > 0 else '-float("inf")'
    return repr(float(x))


def _tensor_literal(t: torch.Tensor, indent: int = 4) -> str:
    """A nested list literal of ``t`` (2-D), one row per line, floats exact, masks as 0/1 or bools."""
    rows = t.detach().cpu()
    if rows.dtype == torch.bool:
        body = [", ".join("True" if b else "False" for b in row.tolist()) for row in rows]
    elif rows.is_floating_point():
        body = [", ".join(_float_literal(x) for x in row.to(torch.float64).tolist()) for row in rows]
    else:
        body = [", ".join(str(int(x)) for x in row.tolist()) for row in rows]
    pad = " " * indent
    return "[\n" + "".join(f"{pad}[{line}],\n" for line in body) + "]"


def _dtype_name(dtype: torch.dtype) -> str:
    if dtype not in _DTYPE_NAMES:
        raise TypeError(f"cannot export tensors of dtype {dtype}; use float64, float32, bfloat16 or float16")
    return _DTYPE_NAMES[dtype]


# ----------------------------------------------------------------------------------------------
# The app's numbers (computed with valueloss)


def _upstream(dialect: str, loss_max: torch.Tensor, m: torch.Tensor, mode: str) -> torch.Tensor:
    """d loss / d (per-token max term), by autograd through the library's aggregation alone (its ``reduce``)."""
    reduce = DIALECTS[dialect].reduce
    if reduce is None:
        raise ValueError(f"{dialect} is not a max form: its gradient has no closed form")
    leaf = loss_max.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(reduce(leaf, m, mode), leaf)
    return grad


@dataclass(frozen=True)
class AppNumbers:
    """What the app shows for an exported batch, computed once: the file embeds these and its tests assert them."""

    loss: torch.Tensor
    clipfrac: torch.Tensor | None  # None where the library logs none
    grad: torch.Tensor  # d loss / d vpreds
    grad_how: str  # how ``grad`` was obtained, written into the file


def app_numbers(dialect: str, v, r, v_old, m, eps, mode) -> AppNumbers:
    """The loss, clip fraction and gradient of ``dialect`` on a batch its caller has validated (one loss call).

    The gradient is the closed form (``value_loss_grad``, bit-identical to autograd) for the max-form
    libraries, else autograd through the same call that gives the loss."""
    d = DIALECTS[dialect]
    closed = d.closed_form is not None and not d.off(eps)
    leaf = v.detach().clone().requires_grad_(not closed)
    with torch.set_grad_enabled(not closed):
        loss, clipfrac = d.compute(leaf, r, v_old, m, eps, mode)
    if closed:
        return AppNumbers(loss, clipfrac, _closed_form_grad(d, v, r, v_old, m, eps, mode), _CLOSED_FORM)
    (grad,) = torch.autograd.grad(loss, leaf)
    how = "autograd through valueloss"
    if d.tie_rule != "torch":
        how += f" ({d.tie_rule}'s tie rule for the max, restated in torch)"
    elif d.closed_form is None:
        how += " (no closed form for this library's loss)"
    return AppNumbers(loss.detach(), None if clipfrac is None else clipfrac.detach(), grad, how)


_CLOSED_FORM = "closed form (valueloss.value_loss_grad), bit-identical to autograd"


def _closed_form_grad(d, v, r, v_old, m, eps, mode) -> torch.Tensor:
    """The max-form libraries' gradient: the per-token closed form weighted by the aggregation's own gradient."""
    convention = d.closed_form
    if d.zeroes_padded_predictions:  # masked_fill first: padding sees v = 0 and passes no gradient
        v = v.masked_fill(m == 0, 0)
    if d.indexed:
        valid = m.bool()
        terms = value_loss_terms_of_checked(v[valid], r[valid], v_old[valid], eps, convention)
        weights = _upstream(d.name, terms.loss_max, m, mode)
        grad = torch.zeros_like(v)
        grad[valid] = value_loss_grad_of_checked(v[valid], r[valid], v_old[valid], eps, convention, weights)
        return grad
    terms = value_loss_terms_of_checked(v, r, v_old, eps, convention)
    weights = _upstream(d.name, terms.loss_max, m, mode)
    grad = value_loss_grad_of_checked(v, r, v_old, eps, convention, weights)
    return grad.masked_fill(m == 0, 0) if d.zeroes_padded_predictions else grad


# ----------------------------------------------------------------------------------------------
# Assembling the file

_ASSERT_EXACT = '''
def assert_exact(actual, expected, what):
    """Bit for bit (NaN equals NaN)."""
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0, equal_nan=True, msg=lambda m: f"{what}: {m}")
'''

_ASSERT_REDUCTION = '''

def assert_reduction(actual, expected, what):
    """A sum over many tokens: bit for bit on the machine that exported it; a few ulps allowed on other
    torch builds, whose summation order may differ."""
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    rtol = REDUCTION_ULPS * torch.finfo(actual.dtype).eps
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=0, equal_nan=True, msg=lambda m: f"{what}: {m}")
'''


def _settings_literal(settings: dict) -> str:
    """The library's settings for this export (release flags, aggregation mode), one constant each entry."""
    if not settings:
        return "SETTINGS = {}  # the library's function takes no further settings\n"
    lines = "".join(f"    {name}={_setting_literal(value)},\n" for name, value in settings.items())
    return "SETTINGS = dict(  # the library's settings for this export, passed as keyword arguments\n" + lines + ")\n"


def _setting_literal(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # double quotes, as the library's docs write the option
    if isinstance(value, bool | int) or value is None:
        return repr(value)
    return _float_literal(float(value))


def _header(title: str, lines: list[str], filename: str) -> str:
    body = "\n".join(lines)
    return (
        f'"""{title}\n\n{body}\n\n'
        f"Exported by valueloss {__version__}. Standalone: needs only torch (and pytest for the tests).\n"
        f"    python {filename}    prints the numbers and checks them\n"
        f"    pytest {filename}    runs the same checks as tests\n"
        '"""\n'
    )


def _main_block(prints: list[str]) -> str:
    lines = "\n".join(f"    {p}" for p in prints)
    return f"""

def main():
    out = compute()
{lines}
    for name, test in sorted(globals().items()):
        if name.startswith("test_") and callable(test):
            test()
    print("all checks passed: these are the numbers the app showed")


if __name__ == "__main__":
    main()
"""


def _dialect_description(dialect: str, mode: str, eps) -> list[str]:
    d = DIALECTS[dialect]
    agg = f"loss_agg_mode = {mode}" if len(d.modes) > 1 else d.aggregation
    lines = [
        f"Library: {d.library} (releases: {d.versions})",
        f"Source: {d.source_url}",
        f"Clip parameter: {d.param_name} = {'None (clipping off)' if eps is None else repr(float(eps))}",
        f"Combine: {d.combine}",
        f"0.5 factor: {'yes' if d.half else 'no'}; aggregation: {agg}",
        f"Clip fraction logged: {d.clipfrac_definition or 'none'}",
        f"Logged as: {d.loss_metric or 'not logged'}"
        + (f" (clip fraction: {d.clipfrac_metric})" if d.clipfrac_metric else ""),
        f"Verified in CI: {d.verified}",
    ]
    return lines + ([f"Not modelled: {d.limits}"] if d.limits else [])


@dataclass(frozen=True)
class BatchExport:
    """An exported file and the numbers its tests assert (the ones the app shows)."""

    code: str
    filename: str
    numbers: AppNumbers


def _batch_file(
    dialect: str,
    mode: str,
    eps,
    tensors: dict[str, torch.Tensor],
    mask: torch.Tensor,
    *,
    title: str,
    scenario: list[str],
    filename: str,
    exact_reductions: bool,
) -> BatchExport:
    """The file for a validated batch: the app's numbers are computed here once and embedded."""
    v, r, v_old = tensors["vpreds"], tensors["returns"], tensors["values"]
    numbers = app_numbers(dialect, v, r, v_old, mask, eps, mode)
    loss, clipfrac, grad, grad_how = numbers.loss, numbers.clipfrac, numbers.grad, numbers.grad_how

    code = DIALECTS[dialect].compute
    source = code.source()
    settings = code.settings(mode)
    dtype = _dtype_name(v.dtype)
    eps_literal = "None" if eps is None else _float_literal(float(eps))
    parts = [
        _header(title, scenario + [""] + _dialect_description(dialect, mode, eps), filename),
        "\nimport torch\n" + ("import torch.nn.functional as F\n" if "F." in source else ""),
        f"\nDTYPE = {dtype}\nMASK_DTYPE = {_dtype_name(mask.dtype)}\nEPS = {eps_literal}\n"
        + ("" if exact_reductions else f"REDUCTION_ULPS = {REDUCTION_ULPS}\n")
        + _settings_literal(settings),
        f"\nVPREDS = {_tensor_literal(v)}\nRETURNS = {_tensor_literal(r)}\nVALUES = {_tensor_literal(v_old)}\n"
        f"RESPONSE_MASK = {_tensor_literal(mask)}\n",
        "\n\n" + source + "\n",
        '''

def compute():
    """The loss, its clip fraction (None where the library logs none) and d loss / d vpreds."""
    vpreds = torch.tensor(VPREDS, dtype=DTYPE, requires_grad=True)
    returns = torch.tensor(RETURNS, dtype=DTYPE)
    values = torch.tensor(VALUES, dtype=DTYPE)
    response_mask = torch.tensor(RESPONSE_MASK, dtype=MASK_DTYPE)
    loss, clipfrac = LOSS_FUNCTION(vpreds, returns, values, response_mask, EPS, **SETTINGS)
    loss.backward()
    return {"loss": loss.detach(), "clipfrac": clipfrac, "grad": vpreds.grad}
'''.replace("LOSS_FUNCTION", code.fn.__name__),
        "\n\n# The numbers the app showed, computed by valueloss (exact: repr round-trips every float).\n",
        f"EXPECTED_LOSS = {_float_literal(float(loss))}\n",
        f"EXPECTED_CLIPFRAC = {'None' if clipfrac is None else _float_literal(float(clipfrac))}\n",
        f"# gradient: {grad_how}\nEXPECTED_GRAD = {_tensor_literal(grad)}\n",
        "\n" + _ASSERT_EXACT + ("" if exact_reductions else _ASSERT_REDUCTION),
        f'''

def test_loss():
    {"assert_exact" if exact_reductions else "assert_reduction"}(compute()["loss"], EXPECTED_LOSS, "loss")


def test_clipfrac():
    clipfrac = compute()["clipfrac"]
    if EXPECTED_CLIPFRAC is None:
        assert clipfrac is None, "this library logs no value clip fraction"
    else:
        {"assert_exact" if exact_reductions else "assert_reduction"}(clipfrac, EXPECTED_CLIPFRAC, "clip fraction")


def test_gradient():
    """Element-wise: the same on every torch build (compared bit for bit)."""
    assert_exact(compute()["grad"], torch.tensor(EXPECTED_GRAD, dtype=DTYPE), "d loss / d vpreds")
''',
        _main_block(
            [
                'print("loss     ", repr(out["loss"].item()))',
                'print("clipfrac ", "none logged" if out["clipfrac"] is None else repr(out["clipfrac"].item()))',
                'print("d loss / d vpreds")',
                'print(out["grad"])',
            ]
        ),
    ]
    return BatchExport(code="".join(parts), filename=filename, numbers=numbers)


def batch_export(
    vpreds: torch.Tensor,
    returns: torch.Tensor,
    values: torch.Tensor,
    response_mask: torch.Tensor,
    eps,
    mode: str = "token-mean",
    dialect: str = "verl",
) -> BatchExport:
    """A standalone file that rebuilds this batch exactly and checks ``dialect``'s loss, clip fraction
    and gradient against the numbers valueloss computes for it.

    Tensors are ``(batch, response_length)``; at most ``MAX_EXPORT_ELEMENTS`` elements (every number
    is written into the file). ``eps=None`` turns clipping off where the library allows it. The inputs are
    checked here, once; the loss is computed once, and the record carries the numbers the file asserts, so a
    page shows those instead of computing them again.
    """
    _check_dialect(dialect)
    _check_mode(dialect, mode)
    check.batch_tensors(vpreds, returns, values, response_mask)
    if vpreds.dim() != 2:
        raise ValueError(f"vpreds must be 2-D (batch, response_length), got shape {tuple(vpreds.shape)}")
    if returns.dtype != vpreds.dtype or values.dtype != vpreds.dtype:
        raise TypeError(
            f"vpreds, returns and values must share one dtype, got {vpreds.dtype}, {returns.dtype}, {values.dtype}"
        )
    n = vpreds.numel()
    if n > MAX_EXPORT_ELEMENTS:
        raise ValueError(
            f"the batch has {n} elements ({vpreds.shape[0]} rows x {vpreds.shape[1]} tokens); export writes every "
            f"number into the file and is limited to {MAX_EXPORT_ELEMENTS}: export a slice (fewer rows or tokens)"
        )
    eps = check_clip_param("eps", dialect, eps)
    eps = None if eps is None else float(eps)  # the file writes it as a float literal
    _dtype_name(vpreds.dtype)
    _dtype_name(response_mask.dtype)
    tensors = {k: t.detach().cpu() for k, t in (("vpreds", vpreds), ("returns", returns), ("values", values))}
    mask = response_mask.detach().cpu()
    rows, width = vpreds.shape
    filename = export_filename(dialect, mode)
    scenario = [
        f"Scenario: a batch of {rows} rows x {width} tokens ({int((mask != 0).sum())} real tokens), "
        f"dtype {str(vpreds.dtype).replace('torch.', '')}, embedded exactly.",
    ]
    return _batch_file(
        dialect,
        mode,
        eps,
        tensors,
        mask,
        title=f"The {DIALECTS[dialect].library} value loss on one batch, exported from valueloss.",
        scenario=scenario,
        filename=filename,
        exact_reductions=False,
    )


def export_batch_code(*args, **kwargs) -> str:
    """The source text of :func:`batch_export`'s file (the same arguments)."""
    return batch_export(*args, **kwargs).code


def _anatomy_file(v_old: float, R: float, eps: float, v: float, convention: str) -> str:
    one = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    t = value_loss_terms_of_checked(one(v), one(R), one(v_old), eps, convention)
    filename = f"valueloss_token_{convention}.py"
    clip_fn = {"bounds": clip_bounds, "clamp": clip_clamp, "delta": clip_delta}[
        convention
    ]  # the app's own clip function, written into the file
    expected = {
        "v_clipped": t.v_clipped,
        "loss_unclipped": t.loss_unclipped,
        "loss_clipped": t.loss_clipped,
        "loss_max": t.loss_max,
        "grad": t.grad,
    }
    lines = [
        f"Scenario: one token with v_old = {v_old!r}, R = {R!r}, eps = {eps!r}, v = {v!r}.",
        f"Clip convention: {convention}. Per-token loss max((v - R)^2, (clip(v) - R)^2) before the 0.5 factor",
        "and the aggregation, and its gradient d max / dv.",
    ]
    expected_lines = (
        "".join(f"EXPECTED_{k.upper()} = {_float_literal(float(x))}\n" for k, x in expected.items())
        + f"EXPECTED_CLIPPED_WINS = {bool(t.clipped_wins)}\n"
    )
    return "".join(
        [
            _header("One token of the clipped value loss, exported from valueloss.", lines, filename),
            "\nimport torch\n",
            f"\nDTYPE = torch.float64\nV_OLD = {_float_literal(v_old)}\nR = {_float_literal(R)}\n"
            f"EPS = {_float_literal(eps)}\nV = {_float_literal(v)}\n",
            f"""

{inspect.getsource(clip_fn).strip()}


clip = {clip_fn.__name__}  # the {convention} clip convention, as the app computes it

def compute():
    v = torch.tensor(V, dtype=DTYPE, requires_grad=True)
    v_old = torch.tensor(V_OLD, dtype=DTYPE)
    v_clipped = clip(v, v_old, EPS)
    loss_unclipped = (v - R) ** 2
    loss_clipped = (v_clipped - R) ** 2
    loss_max = torch.max(loss_unclipped, loss_clipped)
    loss_max.backward()
    return {{
        "v_clipped": v_clipped.detach(),
        "loss_unclipped": loss_unclipped.detach(),
        "loss_clipped": loss_clipped.detach(),
        "loss_max": loss_max.detach(),
        "clipped_wins": bool(loss_clipped > loss_unclipped),  # the tokens vf_clipfrac counts
        "grad": v.grad,
    }}
""",
            "\n\n# The numbers the app showed (valueloss.value_loss_terms; the gradient is its closed form).\n",
            expected_lines,
            '''

def assert_exact(actual, expected, what):
    """Bit for bit: one token, no reduction, the same on every torch build."""
    assert actual.item() == expected, f"{what}: got {actual.item()!r}, the app showed {expected!r}"


def test_terms():
    out = compute()
    assert_exact(out["v_clipped"], EXPECTED_V_CLIPPED, "clip(v)")
    assert_exact(out["loss_unclipped"], EXPECTED_LOSS_UNCLIPPED, "(v - R)^2")
    assert_exact(out["loss_clipped"], EXPECTED_LOSS_CLIPPED, "(clip(v) - R)^2")
    assert_exact(out["loss_max"], EXPECTED_LOSS_MAX, "max")
    assert out["clipped_wins"] == EXPECTED_CLIPPED_WINS


def test_gradient():
    assert_exact(compute()["grad"], EXPECTED_GRAD, "d max / dv")
''',
            _main_block(
                [
                    'for name in ("v_clipped", "loss_unclipped", "loss_clipped", "loss_max", "grad"):',
                    '    print(f"{name:15s}", repr(out[name].item()))',
                    'print("clipped term wins (zero gradient)" if out["clipped_wins"] else "clipped term does not win")',
                ]
            ),
        ]
    )


def export_token_code(v_old, R, eps, v, convention_or_dialect: str = "verl", *, mode: str = "token-mean") -> str:
    """A standalone file for one token.

    ``convention_or_dialect``: a clip convention (``bounds``, ``clamp``, ``delta``) exports the per-token
    anatomy (both terms, the max, who wins, d max / dv); a registry entry (``EXPORT_DIALECTS``: every
    library and release) exports its whole loss on a one-token batch.
    """
    v_old, R, v = (check.finite_number(name, x) for name, x in (("v_old", v_old), ("R", R), ("v", v)))
    name = convention_or_dialect
    if not isinstance(name, str) or (name not in EXPORT_CONVENTIONS and name not in EXPORT_DIALECTS):
        raise ValueError(
            f"unknown convention or dialect {name!r}; choose a convention ({', '.join(EXPORT_CONVENTIONS)}) "
            f"or a library ({', '.join(EXPORT_DIALECTS)})"
        )
    if name in EXPORT_CONVENTIONS:
        eps = float(check.clip_range("eps", eps))
        if mode != "token-mean":
            raise ValueError("mode applies to a library export, not to a clip convention")
        return _anatomy_file(v_old, R, eps, v, name)
    _check_mode(name, mode)
    eps = check_clip_param("eps", name, eps)
    eps = None if eps is None else float(eps)  # finite, or the library's off value

    def one(x: float) -> torch.Tensor:
        return torch.tensor([[x]], dtype=torch.float64)

    filename = export_filename(name, mode, token=True)
    scenario = [f"Scenario: one token with v_old = {v_old!r}, R = {R!r}, eps = {eps!r}, v = {v!r} (a 1 x 1 batch)."]
    return _batch_file(
        name,
        mode,
        eps,
        {"vpreds": one(v), "returns": one(R), "values": one(v_old)},
        torch.ones(1, 1, dtype=torch.float32),
        title=f"One token of the {DIALECTS[name].library} value loss, exported from valueloss.",
        scenario=scenario,
        filename=filename,
        exact_reductions=True,
    ).code
