"""Start worker processes without re-running the caller's ``__main__``.

``spawn`` and ``forkserver`` children import the parent's main module again before they run their
target. Streamlit installs each page script as ``sys.modules["__main__"]`` (and leaves it there), so a
pool started after a page has run (a notebook, the test suite, a page itself) would execute that page
once per worker, outside Streamlit, and die. Under :func:`plain_main` the children see an empty
``__main__``, unless a target they run is defined there (a CLI run with ``python -m``: its functions are
``__main__``'s, and the children must import it to find them).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import types
from collections.abc import Callable, Iterator

__all__ = ["plain_main"]

_SWAP = threading.RLock()  # two threads swapping at once would restore each other's stand-in


@contextlib.contextmanager
def plain_main(*targets: Callable) -> Iterator[None]:
    """Processes started inside this block, to run ``targets``, do not import the parent's ``__main__``
    (unless a target lives in it)."""
    if any(getattr(t, "__module__", None) == "__main__" for t in targets):
        yield
        return
    with _SWAP:
        saved = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")  # no __file__, no __spec__: nothing to re-run
        try:
            yield
        finally:
            if saved is not None:
                sys.modules["__main__"] = saved
