"""Real torch.distributed runs (gloo, CPU, 127.0.0.1) against the core's prediction.

Each run spawns one process per rank (each imports torch: ~5-10 s on a busy 2-core box), so the
runs are few and bounded by their own timeout.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from valueloss.tools.distributed import PortBusyError, RunConfig, RunTimeout, format_table, main, run, stream

UNEVEN = (3, 9, 2, 14, 5, 7, 1, 11, 6)
TOL = 1e-12


def _close(a, b, tol=TOL):
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) <= tol * max(1.0, max(abs(y) for y in b))


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "ranks, kwargs",
    [
        (2, dict(micro_batches=2, scheme="verl-global")),
        (3, dict(micro_batches=None, max_token_len=14, scheme="verl-global")),
        (2, dict(micro_batches=3, scheme="openrlhf-global", loss_agg_mode="seq-mean-token-mean")),
    ],
)
def test_fixed_schemes_match_single_process_and_core(ranks, kwargs):
    cfg = RunConfig(lengths=UNEVEN, ranks=ranks, timeout_s=180, **kwargs)
    result = run(cfg)
    assert _close(result["measured"], result["predicted"])
    assert _close(result["measured"], result["reference"])
    assert result["max_abs_between_ranks"] == 0.0  # DDP leaves every rank the same gradient
    assert result["global_counts"] == [float(sum(UNEVEN)), float(len(UNEVEN))]  # all-reduced counts
    assert result["multiplier"] == pytest.approx(1.0)
    assert sum(result["logged_per_rank"]) / ranks == pytest.approx(result["reference_loss"], rel=1e-12)
    assert "measured (DDP)" in format_table(result)


@pytest.mark.timeout(240)
def test_before_the_fix_real_run_matches_core_not_single_process():
    """verl before #6957, 2 ranks x 4 micro-batches of uneven length, through the CLI as the app runs it."""
    cfg = RunConfig(lengths=UNEVEN[:8], ranks=2, micro_batches=4, scheme="verl-engine-local", timeout_s=180)
    events = list(stream(cfg))
    progress = [e for e in events if e[0] == "progress"]
    assert progress[-1][1:] == (8, 8)
    result = events[-1][1]
    assert _close(result["measured"], result["predicted"])
    assert not _close(result["measured"], result["reference"], 1e-3)
    assert result["multiplier"] == pytest.approx(4.0)
    assert result["measured_ratio"] == pytest.approx(result["predicted_ratio"], rel=1e-12)
    assert result["measured_ratio"] > 1.5


def test_busy_port_is_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortBusyError, match=f"port {port} on 127.0.0.1 is busy"):
            run(RunConfig(lengths=(2, 3), ranks=2, micro_batches=1), port=port)
        assert main(["--ranks", "2", "--lengths", "2,3", "--micro-batches", "1", "--port", str(port)]) == 2


def test_bad_input_fails_before_any_process_starts(capsys):
    with pytest.raises(ValueError, match=r"dp_size \(3\) is larger than the number of sequences \(2\)"):
        run(RunConfig(lengths=(2, 3), ranks=3, micro_batches=1))
    with pytest.raises(ValueError, match="smaller than the longest sequence"):
        run(RunConfig(lengths=(2, 9), ranks=1, micro_batches=None, max_token_len=4))
    assert main(["--lengths", "2,x"]) == 2
    assert "--lengths must be integers" in capsys.readouterr().err
    assert main(["--ranks", "4", "--lengths", "1,2"]) == 2
    assert "empty shard" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_timeout_stops_the_ranks():
    t0 = time.monotonic()
    with pytest.raises(RunTimeout, match="did not finish within 0.2 s"):
        run(RunConfig(lengths=UNEVEN, ranks=2, timeout_s=0.2))
    assert time.monotonic() - t0 < 30


@pytest.mark.timeout(90)
def test_ctrl_c_stops_cleanly(tmp_path):
    out = tmp_path / "r.json"
    cmd = [sys.executable, "-m", "valueloss.tools.distributed", "--ranks", "2", "--json", str(out), "--timeout", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # torch imported, the ranks are starting
    assert line.startswith("started 2 ranks on 127.0.0.1:"), line
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # the machine was fast enough to finish first: the run must be complete
        assert json.loads(out.read_text())["measured"]
    else:
        assert proc.returncode == 130, err
        assert "interrupted; the ranks were stopped" in err
        assert not out.exists()
