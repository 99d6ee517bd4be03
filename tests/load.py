"""A classroom against the app: N websocket sessions, each changing a value on the Batch page once a second.

    python -m tests.load --sessions 20 --duration 60            # starts its own server from this checkout
    python -m tests.load --url http://127.0.0.1:8501 --sessions 20   # against a server you started

Each session speaks Streamlit's browser protocol on ``/_stcore/stream``, the messages Chromium sends
(``tests/e2e/test_hostile_browser.py`` records them and checks this client against them): on connect a
``rerun_script`` with the page name and the browser's context; for every change a ``rerun_script`` that
carries every widget's value (the changed one new), the query string, the page's script hash and the
hashes of the messages the session has cached, which the server then sends as references. A session
reads ``ForwardMsg``s until ``script_finished``; the time from sending to that is one rerun's latency.
A session changes its value, waits for the page, and changes it again one second after the last change
(at once if the page took longer than that), as a student clicking along would. By default the class
follows the same steps (eps 0.10, 0.11, 0.12, ... for everyone, as students following the teacher do:
the first to ask for a value computes it, the others find it cached); ``--distinct`` gives every
session values no one else asks for (every rerun computes: the worst case).

It prints the load average before and after (the machine may be shared), the rerun latency p50 / p95 /
max, the reruns done, how many sessions got their first page (within ``--first-page-timeout``), and the
server's memory at rest before and after the load: after one warm-up visit (imports loaded), and after
every session has closed and the server's ``disconnectedSessionTTL`` has passed, each time once the
server has been without a tab for its idle grace and released (``valueloss/tools/idle.py``: caches
emptied, cycles collected, heap trimmed). Resident memory (RSS) is read from /proc; what the server's
objects hold in use (Python's blocks, malloc's bytes) from its own release line in its log, which
tells a leak apart from the allocators' free memory (the load's high-water, kept for the next load).
The RSS peak during the load is printed too. The targets of issue 21 on the team's 2-core machine are
printed beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.WidgetStates_pb2 import WidgetState

from valueloss.tools.idle import GRACE_S, IN_USE

ROOT = Path(__file__).resolve().parents[1]
TARGET_P95_S = 1.5
FINISHED = ForwardMsg.ScriptFinishedStatus


# ------------------------------------------------------------------------------------ the protocol


def widget_state(element: Element) -> WidgetState | None:
    """The value a browser sends back for a widget the server drew (None: not a value widget).

    The server draws each widget with its current value (``value`` / ``raw_value`` when it has set
    one, else its ``default``); the browser echoes it in every rerun, the way its widget manager does.
    """
    kind = element.WhichOneof("type")
    proto = getattr(element, kind, None) if kind else None
    widget_id = getattr(proto, "id", "")
    if not widget_id:
        return None
    state = WidgetState(id=widget_id)
    if kind == "number_input":
        value = proto.value if proto.HasField("value") else proto.default
        if proto.data_type == NumberInput.INT:
            state.int_value = int(value)
        else:
            state.double_value = value
    elif kind == "slider":
        state.double_array_value.data.extend(proto.value if proto.set_value else proto.default)
    elif kind in ("selectbox", "radio"):
        if proto.HasField("raw_value"):
            state.string_value = proto.raw_value
        elif proto.HasField("default"):
            state.string_value = proto.options[proto.default]
        else:
            return None
    elif kind == "multiselect":
        chosen = proto.raw_values if proto.set_value else [proto.options[i] for i in proto.default]
        state.string_array_value.data.extend(chosen)
    elif kind in ("checkbox", "text_input", "text_area"):
        value = proto.value if proto.HasField("value") else proto.default
        if kind == "checkbox":
            state.bool_value = value
        else:
            state.string_value = value
    else:  # buttons, uploads, components: nothing to echo until the user acts
        return None
    return state


@dataclass
class Session:
    """One browser tab on one page of the app, driven over the websocket."""

    url: str
    page: str
    query: dict[str, str] = field(default_factory=dict)
    page_hash: str = ""
    widgets: dict[str, WidgetState] = field(default_factory=dict)  # id -> the value the browser would send
    keys: dict[str, str] = field(default_factory=dict)  # user key (e.g. b_eps) -> widget id
    cache: dict[str, ForwardMsg] = field(default_factory=dict)  # the browser's message cache, by hash
    received_bytes: int = 0
    address: str = ""  # the address the tab was opened at (the browser keeps sending it as its context)

    async def open(self):
        import websockets

        parts = urlsplit(self.url)
        self.ws = await websockets.connect(
            f"ws://{parts.netloc}/_stcore/stream",
            subprotocols=["streamlit"],
            origin=f"http://{parts.netloc}",
            max_size=None,
            ping_interval=None,
        )
        return await self.rerun(first=True)

    async def close(self) -> None:
        await self.ws.close()

    def back_msg(self, *, first: bool) -> BackMsg:
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = urlencode(self.query)
        if first:
            state.page_name = self.page
            self.address = f"{self.url}/{self.page}" + (f"?{state.query_string}" if state.query_string else "")
        else:
            state.page_script_hash = self.page_hash
            state.widget_states.widgets.extend(self.widgets.values())
            state.cached_message_hashes.extend(self.cache)
        info = state.context_info
        info.timezone, info.timezone_offset, info.locale = "UTC", 0, "en-US"
        info.url = self.address
        info.is_embedded, info.color_scheme = False, "light"
        return msg

    async def rerun(self, *, first: bool = False) -> float:
        """Send a rerun as the browser does; wait for the page's script to finish. Returns the seconds."""
        start = time.perf_counter()
        await self.ws.send(self.back_msg(first=first).SerializeToString())
        await self._read_until_finished()
        return time.perf_counter() - start

    async def set(self, key: str, value: float) -> float:
        """Change the number input bound to ``key`` (and the URL) and rerun, as typing a value and Enter does."""
        state = self.widgets[self.keys[key]]
        if state.WhichOneof("value") == "int_value":
            state.int_value = int(value)
        else:
            state.double_value = float(value)
        self.query[key] = f"{value:g}"
        return await self.rerun()

    async def clear_cache(self) -> None:
        """What the browser's "Clear cache" sends (any client may send it; no token is needed)."""
        msg = BackMsg()
        msg.clear_cache = True
        await self.ws.send(msg.SerializeToString())

    async def _read_until_finished(self) -> None:
        seen: dict[str, WidgetState] = {}
        while True:
            data = await self.ws.recv()
            self.received_bytes += len(data)
            msg = ForwardMsg()
            msg.ParseFromString(data)
            kind = msg.WhichOneof("type")
            if kind == "ref_hash":
                msg = self.cache[msg.ref_hash]
                kind = msg.WhichOneof("type")
            elif msg.metadata.cacheable:
                self.cache[msg.hash] = msg
            if kind == "navigation":  # the page this run drew (st.navigation names it)
                self.page_hash = msg.navigation.page_script_hash
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                state = widget_state(msg.delta.new_element)
                if state is not None:
                    seen[state.id] = state
            elif kind == "delta" and msg.delta.WhichOneof("type") == "add_block":
                block = msg.delta.add_block  # a stateful (lazy) expander: the browser echoes it once opened
                if block.WhichOneof("type") == "expandable" and block.expandable.id and block.expandable.expanded:
                    seen[block.expandable.id] = WidgetState(
                        id=block.expandable.id, bool_value=block.expandable.expanded
                    )
            elif kind == "script_finished" and msg.script_finished == FINISHED.FINISHED_SUCCESSFULLY:
                self.widgets = seen
                self.keys = {widget_id.rsplit("-", 1)[-1]: widget_id for widget_id in seen}
                return
            elif kind == "page_not_found":
                raise RuntimeError(f"the server has no page {self.page!r}")


# ------------------------------------------------------------------------------------- the server


def server_pid(url: str) -> int | None:
    """The pid of the process listening on the URL's port on this machine (None if it is not local)."""
    port = urlsplit(url).port
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue
    return None


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system) the process has used so far: what the load cost the server itself, which
    other programs on a shared machine do not change."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


# --------------------------------------------------------------------------------------- the load


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    first_page: list[float] = field(default_factory=list)
    served: int = 0
    failures: list[str] = field(default_factory=list)
    peak_rss: float = 0.0
    received_bytes: int = 0
    server_cpu_s: float | None = None


async def student(number: int, url: str, args, result: Result, start_line: asyncio.Event) -> None:
    """One session: open Batch, then change eps once a second (a new value every time) until the end."""
    session = Session(url, "batch")
    try:
        result.first_page.append(await asyncio.wait_for(session.open(), args.first_page_timeout))
        result.served += 1
        await start_line.wait()
        end = time.monotonic() + args.duration
        step = 0
        while time.monotonic() < end:
            tick = time.monotonic()
            step += 1
            # the class's next step, or (--distinct) a value no other session sends: nothing is cached
            eps = 0.1 + (number * 1000 + step) * 1e-5 if args.distinct else round(0.1 + 0.01 * (step % 90), 2)
            result.latencies.append(await session.set(args.key, eps))
            await asyncio.sleep(max(0.0, tick + args.interval - time.monotonic()))
    except (TimeoutError, OSError, RuntimeError, KeyError) as err:
        result.failures.append(f"session {number}: {type(err).__name__}: {str(err)[:120]}")
    finally:
        result.received_bytes += session.received_bytes
        if hasattr(session, "ws"):
            await session.close()


async def sample_memory(pid: int | None, result: Result, stop: asyncio.Event) -> None:
    while not stop.is_set():
        result.peak_rss = max(result.peak_rss, rss_mb(pid) or 0.0)
        await asyncio.sleep(0.5)


async def classroom(url: str, args) -> Result:
    result = Result()
    pid = server_pid(url)
    cpu_before = cpu_seconds(pid)
    start_line, stop = asyncio.Event(), asyncio.Event()
    sampler = asyncio.create_task(sample_memory(pid, result, stop))
    students = [asyncio.create_task(student(i, url, args, result, start_line)) for i in range(args.sessions)]
    await asyncio.sleep(0)
    # everyone opens the page at once (the first page is part of the test); the changes start together
    await asyncio.wait_for(_all_opened(result, args), args.first_page_timeout + 5)
    start_line.set()
    await asyncio.gather(*students)
    stop.set()
    await sampler
    if cpu_before is not None:
        result.server_cpu_s = cpu_seconds(pid) - cpu_before
    return result


async def _all_opened(result: Result, args) -> None:
    while result.served + len(result.failures) < args.sessions:
        await asyncio.sleep(0.1)


async def warm_up(url: str, key: str) -> float:
    """One visit that loads the page and changes the value once: imports and caches are in memory."""
    session = Session(url, "batch")
    await session.open()
    seconds = await session.set(key, 0.25)
    await session.close()
    return seconds


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


@dataclass
class AtRest:
    """The server once it has been idle past its grace and released (valueloss/tools/idle.py): its resident
    memory, and what its heap holds in use as its release line states (None: no server log to read)."""

    rss: float | None
    python_blocks: int | None = None
    malloc_mb: float | None = None


def at_rest(pid: int | None, log: Path | None) -> AtRest:
    """Wait out the server's idle grace (no tab is open), then read it."""
    time.sleep(GRACE_S + 3)
    rest = AtRest(rss_mb(pid))
    lines = list(IN_USE.finditer(log.read_text(errors="replace"))) if log else []
    if lines:
        rest.python_blocks = int(lines[-1]["blocks"])
        rest.malloc_mb = None if lines[-1]["malloc"] == "n/a" else float(lines[-1]["malloc"])
    return rest


def report(args, url: str, warm: float, cold_rss, start: AtRest, result: Result, after: AtRest, load_before, load_after,
           previous: AtRest | None):  # fmt: skip
    lat = sorted(result.latencies)
    values = "values no other session asks for" if args.distinct else "the class's steps 0.10, 0.11, ..."
    print(f"\nserver {url}, {args.sessions} sessions on /batch, each setting {args.key} to a new value every "
          f"{args.interval:g} s for {args.duration:g} s ({values})")  # fmt: skip
    print(
        f"load average (1, 5, 15 min) before: {load_before}; after: {load_after}   (this machine: {os.cpu_count()} CPUs)"
    )
    print(f"warm-up visit's rerun: {warm * 1e3:.0f} ms")
    if lat:
        p50, p95 = pct(lat, 50), pct(lat, 95)
        verdict = "meets" if p95 < TARGET_P95_S else "misses"
        print(f"rerun latency (send -> script_finished), {len(lat)} reruns: p50 {p50 * 1e3:.0f} ms, "
              f"p95 {p95 * 1e3:.0f} ms, max {lat[-1] * 1e3:.0f} ms   [{verdict} the target p95 < {TARGET_P95_S:g} s]")  # fmt: skip
    if result.server_cpu_s is not None and lat:
        per = result.server_cpu_s / (len(lat) + result.served)
        print(f"server CPU: {result.server_cpu_s:.1f} s over the load, {per * 1e3:.0f} ms per page run (about "
              f"{1 / per:.0f} page runs per second for each core the server gets; its Python code runs on one)")  # fmt: skip
    first = sorted(result.first_page)
    if first:
        print(f"first page: p50 {pct(first, 50) * 1e3:.0f} ms, max {first[-1] * 1e3:.0f} ms")
    print(f"sessions served (first page within {args.first_page_timeout:g} s): {result.served} of {args.sessions}"
          f"   [target: all]")  # fmt: skip
    print(f"received {result.received_bytes / 2**20:.1f} MiB in all, "
          f"{result.received_bytes / max(len(lat) + result.served, 1) / 1024:.0f} KiB per page run")  # fmt: skip
    for failure in result.failures[:10]:
        print("  failed:", failure)

    def mb(x):
        return "n/a (server not on this machine)" if x is None else f"{x:.0f} MB"

    print(f"server memory (RSS): cold {mb(cold_rss)}; at rest after the warm-up visit {mb(start.rss)}; "
          f"peak during the load {mb(result.peak_rss or None)}; at rest after every session closed {mb(after.rss)}"
          f"   (at rest: {GRACE_S:g} s without a tab, the server has emptied its caches and trimmed its heap)")  # fmt: skip
    if start.rss is not None and after.rss is not None:
        print(f"memory at rest after the load minus before it: {after.rss - start.rss:+.0f} MB resident; "
              f"{in_use_change(start, after)}   [target: back to its start]")  # fmt: skip
    if previous is not None and previous.rss is not None and after.rss is not None:
        print(f"memory at rest after this round minus after the previous one: {after.rss - previous.rss:+.0f} MB "
              f"resident; {in_use_change(previous, after)}")  # fmt: skip


def in_use_change(before: AtRest, after: AtRest) -> str:
    """How much more the server's objects occupy: the part of a resident change that is not the allocators'
    free memory (the high-water of the load, kept for the next one)."""
    if before.python_blocks is None or after.python_blocks is None:
        return "in use: n/a (no server log to read)"
    blocks = after.python_blocks - before.python_blocks
    text = f"in use {blocks:+d} Python blocks ({blocks / before.python_blocks:+.2%})"
    if before.malloc_mb is not None and after.malloc_mb is not None:
        text += f", {after.malloc_mb - before.malloc_mb:+.2f} MB from malloc"
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.load", description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a running app (default: start one from this checkout on a free port)")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of changes per session")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between one session's changes")
    ap.add_argument("--key", default="b_eps", help="the Batch page's number input to change (default b_eps)")
    ap.add_argument("--first-page-timeout", type=float, default=120.0)
    ap.add_argument("--distinct", action="store_true", help="every session sets values no other session sets")
    ap.add_argument(
        "--settle",
        type=float,
        default=None,
        help="seconds to wait after the sessions close before the last memory reading "
        "(default: the server's disconnectedSessionTTL + 10)",
    )
    ap.add_argument(
        "--session-ttl",
        type=float,
        default=15.0,
        help="server.disconnectedSessionTTL of the server this script starts (default 15 s)",
    )
    ap.add_argument("--rounds", type=int, default=2, help="classes one after the other (memory should plateau)")
    args = ap.parse_args(argv)
    server = nullcontext((args.url.rstrip("/"), None)) if args.url else _own_server(args.session_ttl)
    with server as (url, log):
        pid = server_pid(url)
        cold = rss_mb(pid)
        warm = asyncio.run(warm_up(url, args.key))
        start = at_rest(pid, log)
        settle = args.settle if args.settle is not None else (_session_ttl() if args.url else args.session_ttl) + 10
        ok, previous = True, None
        for round_number in range(1, args.rounds + 1):
            load_before = load_average()
            result = asyncio.run(classroom(url, args))
            load_after = load_average()
            print(f"round {round_number}: sessions closed; waiting {settle:g} s (a closed tab's session is kept "
                  "that long for a reconnect)...", flush=True)  # fmt: skip
            time.sleep(settle)
            asyncio.run(_touch(url))  # a new visit makes the server drop the expired sessions
            after = at_rest(pid, log)
            print(f"\n=== round {round_number} of {args.rounds} ===")
            report(args, url, warm, cold, start, result, after, load_before, load_after, previous)
            ok, previous = ok and result.served == args.sessions and not result.failures, after
    return 0 if ok else 1


@contextmanager
def _own_server(session_ttl: float):
    """``streamlit run app.py`` of this checkout on a free port, keeping a closed tab's session for
    ``session_ttl`` seconds (the default 120 only makes the memory reading wait)."""
    import subprocess
    import sys
    import tempfile
    import urllib.request

    from tests.e2e.conftest import _free_port

    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    cmd += ["--server.fileWatcherType", "none", f"--server.disconnectedSessionTTL={int(session_ttl)}"]
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "server.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                        break
                except OSError:
                    time.sleep(0.3)
            yield url, log
        finally:
            proc.terminate()
            proc.wait(timeout=30)


async def _touch(url: str) -> None:
    session = Session(url, "batch")
    await session.open()
    await session.close()


def _session_ttl() -> float:
    from streamlit import config

    return float(config.get_option("server.disconnectedSessionTTL"))


if __name__ == "__main__":
    raise SystemExit(main())
