"""The C loop for small CPU batches (valueloss.fused.cloop): the compiled pass's outputs bit for bit, taken
by a default call on a small batch, a clean fallback where no C compiler works, and a cache nobody else
can slip a library into (not even between the check and the load)."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile

import pytest
import torch

import valueloss.fused as fused
import valueloss.fused.cloop as cpass
from tests.batches import random_batch
from valueloss.fused import fused_value_loss, passes

from .test_fused import assert_bitwise, assert_same, off_edge_ties, run_both

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
needs_loop = pytest.mark.skipif(cpass.library() is None, reason=f"no C loop here: {cpass.status()}")


def with_garbage(dtype, rows=6, width=67, seed=0):
    """Random tokens plus ties, band edges, signed zeros, NaN / inf / huge values, odd mask values."""
    v, r, o, m, eps = off_edge_ties(dtype, rows=rows, width=width, seed=seed)
    v[3, :3] = o[3, :3] + eps  # band edges: counted as needing the exact backward
    v[4, 5], r[4, 6], o[4, 7] = float("nan"), float("inf"), float("nan")  # in real tokens
    v[5, 9] = 1e30 if dtype == torch.float32 else 1e200  # a squared term beyond 2^120
    return v, r, o, m.to(dtype), eps


@needs_loop
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["tokens", "rows", "loss"])
def test_loop_equals_the_compiled_pass(dtype, kind):
    for seed in range(3):
        v, r, o, m, eps = with_garbage(dtype, seed=seed)
        m_odd = m.clone()
        m_odd[0, 0] = 2.0  # a mask value the pass must count as bad
        extra = (passes.ones_column(v.shape[0], dtype, v.device),) if kind == "rows" else ()
        want = passes.run(kind, "compiled", v, r, o, m_odd, *extra, eps)
        got = cpass.run_pass(kind, v, r, o, m_odd, eps)
        assert len(got) == len(want)
        torch.testing.assert_close(got[0][0], want[0][0].to(torch.float64), equal_nan=True)  # sums: any order
        counts = [1, 2, 4] if kind == "loss" else [1, 2, 3, 4]  # the forward-only pass counts no care tokens
        assert torch.equal(got[0][counts], want[0][counts].to(torch.float64))  # counts: exact
        if kind != "tokens":
            torch.testing.assert_close(got[1], want[1], equal_nan=True)
            assert torch.equal(got[2], want[2])
        if kind != "loss":
            assert_bitwise(got[-1], want[-1], "unit gradient")


@needs_loop
def test_a_default_small_call_runs_the_loop_and_a_large_one_does_not(monkeypatch):
    calls = []
    original = cpass.run_pass
    monkeypatch.setattr(cpass, "run_pass", lambda *a: calls.append(a[0]) or original(*a))
    v, r, o, m, eps = random_batch(1, rows=8, width=128, dtype=torch.float32)
    x = v.clone().requires_grad_(True)
    fused_value_loss(x, r, o, m, eps)[0].backward()
    assert calls == ["tokens"]
    big = fused.SMALL_TOKENS // 64 + 1
    v, r, o, m, eps = random_batch(2, rows=64, width=big, dtype=torch.float32)
    fused_value_loss(v.clone().requires_grad_(True), r, o, m, eps)[0].backward()
    assert calls == ["tokens"]  # beyond SMALL_TOKENS "auto" runs inductor's pass


@needs_loop
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scale_is_autograds_product(dtype):
    u = torch.randn(1000, dtype=dtype) * torch.logspace(-30, 30, 1000, dtype=dtype)
    for weight in (0.5 / 777, 3.0, 1e-20):
        w = float(torch.tensor(weight, dtype=dtype))
        assert_bitwise(cpass.scale(u.clone(), w), u * w, "scaled gradient")


@pytest.fixture
def fresh_loop(monkeypatch, tmp_path):
    """A clean build state and a cache folder of the test's own; the loop is built afresh afterwards."""
    cpass._loaded.cache_clear()
    monkeypatch.delenv("CC", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("VALUELOSS_CACHE_DIR", str(cache))
    yield cache
    cpass._loaded.cache_clear()


def test_without_a_compiler_the_compiled_pass_runs_and_the_report_says_why(fresh_loop, monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    with pytest.warns(RuntimeWarning, match="no-such-compiler"):
        assert cpass.library() is None
    assert cpass.status()["state"] == "unavailable" and "no-such-compiler" in cpass.status()["error"]
    v, r, o, m, eps = random_batch(3, rows=4, width=16, dtype=torch.float32)
    for backend in ("auto", "c"):
        assert_same(*run_both(v, r, o, m, eps, backend=backend), torch.float32)
    loop = [row for row in fused.fused_backend_report() if row["pass"] == "c-loop"]
    assert loop and loop[0]["state"] == "unavailable"


def test_builds_into_the_cache_folder_once(monkeypatch, tmp_path):
    compiler = cpass._compiler()
    if compiler is None:
        pytest.skip("no C compiler here")
    monkeypatch.setenv("VALUELOSS_CACHE_DIR", str(tmp_path))
    first = cpass._build(compiler)
    assert first.parent == tmp_path and first.exists()
    stamp = first.stat().st_mtime_ns
    assert cpass._build(compiler) == first and first.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary files left behind


def _loop_sanity():
    v, r, o, m, eps = random_batch(4, rows=4, width=16, dtype=torch.float32)
    assert_same(*run_both(v, r, o, m, eps, backend="c"), torch.float32)


def test_cc_with_arguments_builds_the_loop(fresh_loop, monkeypatch):
    compiler = cpass._compiler()
    if compiler is None:
        pytest.skip("no C compiler here")
    monkeypatch.setenv("CC", f"{compiler[0]} -O1")
    assert cpass.library() is not None, cpass.status()
    assert cpass.status()["compiler"].endswith(" -O1")
    _loop_sanity()


def test_a_cc_that_does_not_run_is_reported_and_warned(fresh_loop, monkeypatch):
    monkeypatch.setenv("CC", "no-such-cc -O1")
    with pytest.warns(RuntimeWarning, match="no-such-cc"):
        assert cpass.library() is None
    assert "no-such-cc" in cpass.status()["error"]
    loop = [row for row in fused.fused_backend_report() if row["pass"] == "c-loop"]
    assert loop[0]["state"] == "unavailable" and "no-such-cc" in loop[0]["error"]


def test_the_build_key_covers_what_shapes_the_build(monkeypatch):
    assert cpass.build_key(["cc"]) != cpass.build_key(["cc", "-O1"])
    base = cpass.build_key(["cc"])
    monkeypatch.setattr(cpass, "_compiler_version", lambda command: "cc 99.1")
    assert cpass.build_key(["cc"]) != base
    monkeypatch.setattr(cpass, "FLAGS", (*cpass.FLAGS, "-march=native"))
    assert cpass.build_key(["cc"]) != base


@pytest.mark.skipif(cpass._compiler() is None, reason="no C compiler here")
def test_the_cache_folder_is_private(fresh_loop):
    fresh_loop.mkdir(mode=0o777)
    fresh_loop.chmod(0o777)  # left open (an old version, a umask): tightened before use
    assert cpass.library() is not None
    assert stat.S_IMODE(fresh_loop.stat().st_mode) == 0o700
    (built,) = fresh_loop.iterdir()
    info = built.lstat()
    assert info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077 == 0


def _key_path(folder):
    return folder / f"cpass-{cpass.build_key(cpass._compiler())}.so"


@pytest.mark.skipif(cpass._compiler() is None, reason="no C compiler here")
@pytest.mark.parametrize("plant", ["garbage", "world-writable", "symlink", "wrong-numbers"])
def test_a_planted_or_damaged_library_is_never_loaded(fresh_loop, tmp_path, plant):
    fresh_loop.mkdir(mode=0o700)
    target = _key_path(fresh_loop)
    if plant == "garbage":
        target.write_bytes(b"\x7fELF not really a library")
        target.chmod(0o500)
    elif plant == "world-writable":
        target.write_bytes(b"\x7fELF planted")
        target.chmod(0o777)
    elif plant == "symlink":
        (tmp_path / "evil.so").write_bytes(b"\x7fELF planted")
        target.symlink_to(tmp_path / "evil.so")
    else:  # a loadable library with the right symbols that computes something else
        source = tmp_path / "evil.c"
        source.write_text(
            "#include <stdint.h>\n"
            + "".join(
                f"void valueloss_pass_{s}(void*a,void*b,void*c,void*d,{t} e,int64_t r,int64_t n,{t}*u,"
                f"void*x,void*y,double*z){{for(int64_t i=0;i<r*n;++i)u[i]=42;for(int i=0;i<5;++i)z[i]=7;}}\n"
                f"void valueloss_scale_{s}({t}*u,int64_t n,{t} w){{}}\n"
                for t, s in (("float", "float32"), ("double", "float64"))
            )
        )
        subprocess.run([*cpass._compiler(), "-shared", "-fPIC", str(source), "-o", str(target)], check=True)
        target.chmod(0o500)
    assert cpass.library() is not None, cpass.status()
    assert "rebuilt" in cpass.status()
    assert target.is_file() and not target.is_symlink()
    _loop_sanity()


@pytest.mark.skipif(cpass._compiler() is None, reason="no C compiler here")
@pytest.mark.skipif(os.getuid() != 0, reason="needs root to plant a folder owned by another user")
def test_a_folder_of_another_user_is_not_used(fresh_loop):
    fresh_loop.mkdir(mode=0o700)
    planted = _key_path(fresh_loop)
    planted.write_bytes(b"\x7fELF planted")
    os.chown(fresh_loop, 4242, 4242)
    os.chown(planted, 4242, 4242)
    assert cpass.library() is not None
    assert "private build folder for this process" in cpass.status()["cache"]
    assert planted.read_bytes() == b"\x7fELF planted"  # untouched, and not the file that was loaded
    _loop_sanity()


@pytest.mark.skipif(cpass._compiler() is None, reason="no C compiler here")
def test_an_uncreatable_cache_builds_privately_not_in_a_shared_tmp(fresh_loop, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("VALUELOSS_CACHE_DIR", str(blocker / "cache"))
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setenv("TMPDIR", str(shared))
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert cpass.library() is not None
    (folder,) = shared.iterdir()
    assert folder.name.startswith("valueloss-cpass-") and folder.name != "valueloss"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def _marker_library(path, marker):
    """A library that announces being loaded by creating ``marker`` (what planted code would do)."""
    source = path.with_suffix(".c")
    source.write_text(
        "#include <stdio.h>\n"
        f'__attribute__((constructor)) static void planted(void) {{ FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}\n'
    )
    subprocess.run([*cpass._compiler(), "-shared", "-fPIC", str(source), "-o", str(path)], check=True)
    path.chmod(0o500)


@pytest.mark.skipif(cpass._compiler() is None, reason="no C compiler here")
@pytest.mark.skipif(not cpass._PROC_FD.is_dir(), reason="no /proc/self/fd here")
def test_a_library_swapped_between_the_check_and_the_load_is_never_loaded(fresh_loop, tmp_path, monkeypatch):
    """issue 21.7: whoever owns a parent folder swaps the checked file for theirs right after the check."""
    marker, planted = tmp_path / "planted-code-ran", tmp_path / "evil.so"
    _marker_library(planted, marker)
    original = cpass._check_file

    def check_then_swap(path, info):
        original(path, info)
        os.replace(planted, path)  # the attacker's move, between the check and the load

    monkeypatch.setattr(cpass, "_check_file", check_then_swap)
    assert cpass.library() is not None, cpass.status()
    assert not marker.exists(), "the swapped-in library was loaded"
    assert cpass.status()["state"] == "ready" and "rebuilt" not in cpass.status()
    _loop_sanity()  # the checked file is the one that computes


@pytest.mark.skipif(cpass._compiler() is None, reason="no C compiler here")
def test_without_proc_every_folder_up_to_the_root_is_checked(fresh_loop, tmp_path, monkeypatch):
    monkeypatch.setattr(cpass, "_PROC_FD", tmp_path / "no-proc")
    assert cpass.library() is not None, cpass.status()  # tmp_path: ours, under root's sticky /tmp
    _loop_sanity()
    cpass._loaded.cache_clear()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # a folder anyone can write to (not sticky), above the cache
    monkeypatch.setenv("VALUELOSS_CACHE_DIR", str(shared / "cache"))
    with pytest.warns(RuntimeWarning, match="could be changed by another user"):
        assert cpass.library() is None
    assert "could be changed by another user" in cpass.status()["error"]
    _loop_sanity()  # the compiled pass runs instead
