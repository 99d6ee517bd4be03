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
from pathlib import Path

import pytest

from valueloss.tools.distributed import (
    LIMITS,
    BackgroundRun,
    PortBusyError,
    RunConfig,
    RunSlot,
    RunTimeout,
    ServerBusy,
    format_table,
    main,
    parse_line,
    run,
    stream,
)

pytestmark = pytest.mark.slow  # every test starts real torch.distributed ranks

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
    assert events[0][:2] == ("started", 2)
    assert {e[1] for e in events if e[0] == "connected"} == {0, 1}
    progress = [e for e in events if e[0] == "progress"]
    assert progress[-1][1:3] == (8, 8)
    # every rank reports each of its 4 micro-batches, in order
    assert sorted((e[3], e[4]) for e in progress) == [(r, j) for r in (0, 1) for j in range(1, 5)]
    assert all(e[5] == 4 for e in progress)
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
    """A timeout no run can meet (1 ms: starting the ranks alone takes longer; 0.2 s was met once the forkserver
    was warm), so the stop is what is tested, not the machine's speed."""
    t0 = time.monotonic()
    with pytest.raises(RunTimeout, match="did not finish within 0.001 s"):
        run(RunConfig(lengths=UNEVEN, ranks=2, timeout_s=0.001))
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


# ----------------------------------------------------------------------- issue 21.8: bounded arguments


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--features", "100000000"], "features must be between 1 and 256, got 100,000,000"),
        (["--ranks", "100"], "ranks must be between 1 and 8, got 100"),
        (["--lengths", ",".join(["1"] * 5000)], "the number of sequences must be between 1 and 4,096, got 5,000"),
        (["--lengths", "3,100000"], "the longest sequence must be between 0 and 8,192, got 100,000"),
        (["--lengths", ",".join(["8000"] * 600)], "numbers per rank; the limit is 4,194,304"),
        (["--timeout", "1e9"], "timeout_s must be > 0 and at most 600 s"),
        (["--eps", "inf"], "eps must be a finite number >= 0"),
        (["--seed", str(2**70)], "seed must be between 0 and"),
    ],
)
def test_arguments_are_bounded_before_anything_starts(capsys, argv, message):
    """`--features 100000000` used to print a traceback from an 89.6 GB allocation."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert LIMITS["elements"] * 8 <= 64 * 2**20  # what the limit means: at most 32 MB of float64 per rank


def test_the_api_takes_the_same_bounds():
    with pytest.raises(ValueError, match="seed must be between 0 and .*, got an integer of over 4,000 digits"):
        RunConfig(lengths=(2, 3), seed=10**5000).validate()
    with pytest.raises(TypeError, match="features must be a whole number, got float"):
        RunConfig(lengths=(2, 3), features=4.0).validate()
    with pytest.raises(ValueError, match="timeout_s must be > 0 and at most 600 s"):
        RunConfig(lengths=(2, 3), timeout_s=float("nan")).validate()


def test_the_cli_lines_parse_into_events():
    assert parse_line("started 4 ranks on 127.0.0.1:4567\n") == ("started", 4, 4567)
    assert parse_line("rank 3 connected") == ("connected", 3)
    assert parse_line("progress 5/8 rank 1 step 2/2") == ("progress", 5, 8, 1, 2, 2)
    assert parse_line("progress x/8 rank 1 step 2/2") is None
    assert parse_line("note: something") is None


# ------------------------------------------------------------ issue 21.1: the app's runs, one at a time


def processes() -> dict[int, tuple[int, int]]:
    """Every live process (zombies excluded) as pid -> (parent pid, process group), read from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return found


def _group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    return [pid for pid, (_, group) in processes().items() if group == pgid]


def descendants(pid: int) -> set[int]:
    """The live processes below ``pid``, and every process of their groups (a rank re-parented to PID 1
    when its parent died still counts: it is in the run's group)."""
    table = processes()
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    groups = {table[p][1] for p in found}
    return found | {p for p, (_, group) in table.items() if group in groups and group != table[pid][1]}


def _wait_until(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


SMALL = RunConfig(lengths=UNEVEN[:4], ranks=2, micro_batches=2, timeout_s=120)


@pytest.mark.timeout(240)
def test_a_background_run_reports_each_rank_then_leaves_no_process():
    slot = RunSlot()
    run_ = slot.start(SMALL, key="k")
    with pytest.raises(ServerBusy, match="another run is under way"):
        slot.start(SMALL)
    seen = set()
    while not run_.done:
        run_.touch()
        seen.update(_group(run_.proc.pid))
        time.sleep(0.1)
    assert run_.error is None and run_.result is not None
    assert run_.connected == {0, 1} and run_.steps == {0: 2, 1: 2}
    assert 2 <= len(seen) <= SMALL.ranks + 3, seen  # the CLI, its forkserver (and tracker), the ranks
    assert _wait_until(lambda: not _group(run_.proc.pid), 5), _group(run_.proc.pid)
    assert slot.active() is None
    slot.start(SMALL).stop("stopped: test")  # the slot is free again


@pytest.mark.timeout(120)
def test_an_unwatched_run_is_killed_whole():
    """Nobody polls it (the tab was closed): the watchdog kills the CLI, its forkserver and every rank."""
    run_ = BackgroundRun(RunConfig(lengths=UNEVEN[:4], ranks=2, micro_batches=2, timeout_s=120), abandon_after_s=1.0)

    def watched_until_the_forkserver_exists() -> bool:
        run_.touch()
        return len(_group(run_.proc.pid)) >= 2  # the CLI and its forkserver, which imports torch for seconds

    assert _wait_until(watched_until_the_forkserver_exists, 60)
    assert _wait_until(lambda: run_.done, 10)
    assert run_.error == "stopped: nobody watched it for 1 s (the page was closed or left)", run_.error
    assert _wait_until(lambda: not _group(run_.proc.pid), 5), _group(run_.proc.pid)


_SERVER = """
import sys, time
from valueloss.tools.distributed import RunConfig
from valueloss.tools.exclusive import REAL_RUNS
run = REAL_RUNS.start(RunConfig(lengths=(3, 9, 2, 14), ranks=2, micro_batches=2, timeout_s=120))
print(run.proc.pid, flush=True)
time.sleep(float(sys.argv[1]))
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["exits", "SIGTERM", "SIGKILL"])
def test_nothing_outlives_the_server(how):
    """The server exits (atexit kills the group) or is killed outright (the CLI sees its parent go)."""
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, "0.5" if how == "exits" else "60"], stdout=subprocess.PIPE, text=True
    )
    pgid = int(server.stdout.readline())
    if how != "exits":
        assert _wait_until(lambda: len(_group(pgid)) >= 2, 30)
        server.send_signal(getattr(signal, how))
    server.wait(timeout=30)
    assert _wait_until(lambda: not _group(pgid), 10), _group(pgid)
