"""What one app server runs for one visitor at a time: the live benchmark and the run on real processes.

Module state on purpose. A Streamlit cache is no place for a lock: any websocket client can send
``BackMsg(clear_cache=True)`` (no token needed), which empties ``st.cache_resource``, so a lock kept there
is recreated and a second benchmark starts beside the first. A module is imported once per server
process and nothing a client sends re-imports it. No Streamlit here.
"""

from __future__ import annotations

import atexit
import threading

from .distributed import RunSlot

__all__ = ["BENCHMARK_LOCK", "REAL_RUNS"]

BENCHMARK_LOCK = threading.Lock()  # one live benchmark per server: two at once would time each other
REAL_RUNS = RunSlot()  # one run on real processes per server (a CLI, its forkserver and up to 8 ranks)
atexit.register(REAL_RUNS.stop)  # the server stops: kill the run's whole process group
