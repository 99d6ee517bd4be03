"""Exported files are standalone (torch only), run as scripts and under pytest, and check the app's numbers.

Every preset x every export target (three clip conventions and every library) and batch exports of
every library and aggregation mode are generated, then executed in subprocesses: ``pytest`` over all
of them at once, every file as ``__main__`` through one driver process, and a few by ``python file.py``.
"""

from __future__ import annotations

import math
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.batches import random_batch
from valueloss import DIALECTS, ValueLoss, compute_value_loss, dialect_loss, value_loss_terms
from valueloss.teach.presets import PRESETS
from valueloss.tools import export

TARGETS = export.EXPORT_CONVENTIONS + export.EXPORT_DIALECTS
REQUIRED_DIALECTS = {"verl", "openrlhf", "trl", "cleanrl", "sb3"}


def padded_batch(dtype=torch.float64, seed=0):
    """Padding, a fully masked row, ties on the band edges (placed for eps = 0.2) and NaN in the padded slots."""
    return random_batch(seed, dtype, rows=4, width=6, eps=0.2, nan_padding=True)[:4]


def batch_eps(dialect: str):
    return 1.0 if DIALECTS[dialect].eps_units == "loss" else 0.2  # RLlib's parameter bounds the squared error


def module_name(*parts) -> str:
    """An importable file name (version names hold dots and dashes)."""
    return "".join(c if c.isalnum() else "_" for c in "_".join(str(p) for p in parts)) + ".py"


def _batch_cases():
    cases = []
    for dialect in export.EXPORT_DIALECTS:
        for mode in export.dialect_modes(dialect):
            cases.append((dialect, mode, torch.float64))
    cases += [("verl", "token-mean", torch.float32), ("trl", "token-mean", torch.float32)]
    cases += [("verl", "seq-mean-token-mean", torch.bfloat16), ("sb3", "token-mean", torch.float32)]
    return cases


BATCH_CASES = _batch_cases()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every export written to one folder: {name: path}."""
    folder = tmp_path_factory.mktemp("exports")
    files = {}
    for preset in PRESETS.values():
        for target in TARGETS:
            code = export.export_token_code(preset.v_old, preset.R, preset.eps, preset.v, target)
            path = folder / module_name("token", preset.key, target)
            path.write_text(code)
            files[("token", preset.key, target)] = path
    for dialect, mode, dtype in BATCH_CASES:
        v, r, o, m = padded_batch(dtype)
        path = folder / module_name("batch", dialect, mode, str(dtype)[6:])
        path.write_text(export.export_batch_code(v, r, o, m, batch_eps(dialect), mode, dialect))
        files[("batch", dialect, mode, dtype)] = path
    for dialect in ("sb3", "openrlhf", "torchrl"):  # clipping off
        v, r, o, m = padded_batch()
        path = folder / f"batch_{dialect}_off.py"
        path.write_text(export.export_batch_code(v, r, o, m, None, "token-mean", dialect))
        files[("batch-off", dialect)] = path
    return folder, files


def _clean_env():
    """No route back to this repository: the exported files must stand alone."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def test_every_required_library_is_exported():
    assert set(export.EXPORT_DIALECTS) >= REQUIRED_DIALECTS
    assert set(export.dialect_modes("verl")) == {
        "token-mean",
        "token-sum",
        "seq-mean-token-sum",
        "seq-mean-token-mean",
        "seq-mean-token-sum-norm",
    }


def test_exports_import_only_torch(exported):
    _, files = exported
    for path in files.values():
        source = path.read_text()
        imports = set(re.findall(r"^\s*(?:import|from)\s+([\w.]+)", source, flags=re.M))
        assert imports <= {"torch", "torch.nn.functional"}, (path.name, imports)
        compile(source, path.name, "exec")


@pytest.mark.slow
def test_all_exports_pass_their_tests_under_pytest(exported):
    folder, files = exported
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        *sorted(p.name for p in files.values()),
    ]
    proc = subprocess.run(cmd, cwd=folder, env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", proc.stdout).group(1))
    assert passed >= 2 * len(files)
    assert "failed" not in proc.stdout


@pytest.mark.slow
def test_all_exports_run_as_scripts(exported):
    folder, files = exported
    driver = "import runpy, sys\nfor path in sys.argv[1:]:\n    runpy.run_path(path, run_name='__main__')\n"
    names = sorted(p.name for p in files.values())
    proc = subprocess.run(
        [sys.executable, "-c", driver, *names],
        cwd=folder,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("all checks passed") == len(names)


@pytest.mark.slow
def test_python_file_py_runs_standalone(exported):
    folder, files = exported
    picks = [  # a per-token anatomy file and a library's batch file; the driver above runs all of them
        files[("token", "past-band-toward-R", "bounds")],
        files[("batch", "verl", "seq-mean-token-mean", torch.float64)],
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, p.name],
            cwd=folder,
            env=_clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in picks
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
        assert "all checks passed" in out


@pytest.mark.parametrize("preset", list(PRESETS), ids=list(PRESETS))
def test_token_exports_embed_the_numbers_the_app_shows(preset, exported):
    _, files = exported
    p = PRESETS[preset]
    one = lambda x: torch.tensor([[x]], dtype=torch.float64)  # noqa: E731
    mask = torch.ones(1, 1)
    for convention in export.EXPORT_CONVENTIONS:
        ns = runpy.run_path(str(files[("token", preset, convention)]))
        t = value_loss_terms(p.v, p.R, p.v_old, p.eps, convention)
        assert ns["EXPECTED_LOSS_MAX"] == t.loss_max.item()
        assert ns["EXPECTED_GRAD"] == t.grad.item()
        assert ns["EXPECTED_CLIPPED_WINS"] == bool(t.clipped_wins)
    ns = runpy.run_path(str(files[("token", preset, "verl")]))
    loss, clipfrac = compute_value_loss(one(p.v), one(p.R), one(p.v_old), mask, p.eps)
    assert ns["EXPECTED_LOSS"] == loss.item()
    assert ns["EXPECTED_CLIPFRAC"] == clipfrac.item()
    ns = runpy.run_path(str(files[("token", preset, "sb3")]))
    assert ns["EXPECTED_LOSS"] == dialect_loss("sb3", one(p.v), one(p.R), one(p.v_old), mask, p.eps).loss.item()
    assert ns["EXPECTED_CLIPFRAC"] is None


def _autograd(dialect, mode, v, r, o, m, eps):
    leaf = v.clone().requires_grad_(True)
    if dialect == "verl":
        loss = compute_value_loss(leaf, r, o, m, eps, mode)[0]
    elif dialect == "openrlhf":
        loss = ValueLoss(clip_eps=eps, token_level_loss=mode == "token-mean")(leaf, o, r, m)
    else:
        loss = dialect_loss(dialect, leaf, r, o, m, eps, loss_agg_mode=mode).loss
    (grad,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), grad


@pytest.mark.parametrize(("dialect", "mode", "dtype"), BATCH_CASES, ids=[f"{d}-{m}-{t}" for d, m, t in BATCH_CASES])
def test_batch_exports_embed_the_numbers_the_app_shows(dialect, mode, dtype, exported):
    _, files = exported
    ns = runpy.run_path(str(files[("batch", dialect, mode, dtype)]))
    v, r, o, m = padded_batch(dtype)
    # the batch is embedded exactly, NaN included
    torch.testing.assert_close(torch.tensor(ns["VPREDS"], dtype=dtype), v, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(torch.tensor(ns["RESPONSE_MASK"], dtype=ns["MASK_DTYPE"]), m)
    loss, grad = _autograd(dialect, mode, v, r, o, m, batch_eps(dialect))
    torch.testing.assert_close(
        torch.tensor(ns["EXPECTED_LOSS"], dtype=loss.dtype), loss, rtol=0, atol=0, equal_nan=True
    )
    # the embedded gradient (closed form for the max-form libraries) is autograd's, bit for bit
    torch.testing.assert_close(torch.tensor(ns["EXPECTED_GRAD"], dtype=dtype), grad, rtol=0, atol=0, equal_nan=True)


def _with_expected(path: Path, name: str, change, tmp_path: Path) -> dict:
    """Load an exported file with one embedded expected number replaced by ``change(old)``."""
    source = path.read_text()
    old = float(re.search(rf"^{name} = (.+)$", source, flags=re.M).group(1))
    new = re.sub(rf"^{name} = .+$", f"{name} = {change(old)!r}", source, count=1, flags=re.M)
    out = tmp_path / f"changed_{path.name}"
    out.write_text(new)
    return runpy.run_path(str(out))


def test_exported_tests_fail_when_the_numbers_differ(exported, tmp_path):
    _, files = exported
    one_ulp = lambda x: math.nextafter(x, math.inf)  # noqa: E731
    # one token: compared bit for bit, so even one ulp fails
    ns = _with_expected(files[("token", "rlhf-verl", "verl")], "EXPECTED_LOSS", one_ulp, tmp_path)
    with pytest.raises(AssertionError):
        ns["test_loss"]()
    ns = _with_expected(files[("token", "moved-away", "delta")], "EXPECTED_GRAD", one_ulp, tmp_path)
    with pytest.raises(AssertionError):
        ns["test_gradient"]()
    # a batch reduction: a few ulps are allowed (other torch builds may sum in another order), 1e-9 is not
    batch = files[("batch", "verl", "token-mean", torch.float64)]  # NaN-safe: a finite loss
    _with_expected(batch, "EXPECTED_LOSS", one_ulp, tmp_path)["test_loss"]()
    ns = _with_expected(batch, "EXPECTED_LOSS", lambda x: x * (1 + 1e-9), tmp_path)
    with pytest.raises(AssertionError):
        ns["test_loss"]()


def test_filenames_are_readable():
    assert export.export_filename("verl", "seq-mean-token-mean") == "valueloss_batch_verl_seq_mean_token_mean.py"
    assert export.export_filename("trl", token=True) == "valueloss_token_trl.py"


def test_size_cap_is_a_clear_error():
    rows = export.MAX_EXPORT_ELEMENTS // 64 + 1
    v = torch.zeros(rows, 64, dtype=torch.float64)
    with pytest.raises(ValueError, match=rf"{rows * 64} elements.*limited to {export.MAX_EXPORT_ELEMENTS}"):
        export.export_batch_code(v, v, v, torch.ones(rows, 64), 0.2)
    ok = torch.zeros(export.MAX_EXPORT_ELEMENTS // 64, 64, dtype=torch.float64)
    assert "EXPECTED_LOSS" in export.export_batch_code(ok, ok, ok, torch.ones_like(ok), 0.2)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"dialect": "keras"}, ValueError, "unknown dialect"),
        ({"dialect": "trl", "mode": "token-sum"}, ValueError, "not available for trl"),
        ({"mode": "mean"}, ValueError, "not available for verl"),
        ({"eps": None}, ValueError, "eps"),
        ({"eps": -1.0}, ValueError, "eps"),
    ],
)
def test_bad_batch_export_arguments(kwargs, exc, match):
    v, r, o, m = padded_batch()
    args = {"eps": 0.2, "mode": "token-mean", "dialect": "verl", **kwargs}
    with pytest.raises(exc, match=match):
        export.export_batch_code(v, r, o, m, args["eps"], args["mode"], args["dialect"])


def test_bad_batch_shapes_and_dtypes():
    v, r, o, m = padded_batch()
    with pytest.raises(ValueError, match="2-D"):
        export.export_batch_code(v[None], r[None], o[None], m[None], 0.2)
    with pytest.raises(TypeError, match="one dtype"):
        export.export_batch_code(v, r.float(), o, m, 0.2)
    with pytest.raises(ValueError, match="shape"):
        export.export_batch_code(v, r[:, :3], o, m, 0.2)


@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        ((0.0, 1.0, 0.2, float("nan"), "verl"), ValueError, "v must be a finite number"),
        ((0.0, True, 0.2, 0.5, "verl"), TypeError, "R must be a number"),
        ((0.0, 1.0, 0.2, 0.5, "pytorch"), ValueError, "unknown convention or dialect"),
        ((0.0, 1.0, -0.2, 0.5, "bounds"), ValueError, "eps"),
        ((0.0, 1.0, None, 0.5, "verl"), ValueError, "eps"),
    ],
)
def test_bad_token_export_arguments(args, exc, match):
    with pytest.raises(exc, match=match):
        export.export_token_code(*args)


def test_clipping_off_where_the_library_allows_it(exported):
    _, files = exported
    source = files[("batch-off", "sb3")].read_text()
    assert "clip_range_vf=None: no clipping" in source
    assert "EPS = None" in export.export_token_code(0.0, 1.0, None, 0.5, "sb3")
