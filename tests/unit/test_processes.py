"""Worker processes start the same after a Streamlit page has run in this process.

Streamlit leaves the last page installed as ``sys.modules["__main__"]``; spawn and forkserver children
would import it again (and die). The suite once failed this way only when an app test ran first."""

from __future__ import annotations

import sys
import types

import pytest

from valueloss.tools import ablate
from valueloss.tools.distributed import RunConfig, run
from valueloss.tools.processes import plain_main

pytestmark = pytest.mark.slow  # every test starts worker processes


@pytest.fixture
def page_as_main(tmp_path, monkeypatch):
    """A main module as Streamlit installs it: a script file that leaves a mark and fails when run."""
    mark = tmp_path / "ran"
    script = tmp_path / "page.py"
    script.write_text(f"open({str(mark)!r}, 'w').close()\nraise SystemExit(3)\n")
    page = types.ModuleType("__main__")
    page.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", page)
    return mark


def test_plain_main_hides_the_main_module_and_puts_it_back(page_as_main):
    page = sys.modules["__main__"]
    with plain_main():
        assert getattr(sys.modules["__main__"], "__file__", None) is None
        assert sys.modules["__main__"].__spec__ is None
    assert sys.modules["__main__"] is page


@pytest.mark.timeout(240)
def test_real_ranks_start_after_a_page_ran(page_as_main):
    result = run(RunConfig(lengths=(3, 5, 2, 4), ranks=2, micro_batches=2, scheme="verl-global", timeout_s=180))
    assert result["max_abs_between_ranks"] == 0.0
    assert not page_as_main.exists()


@pytest.mark.timeout(240)
def test_the_sweep_pool_starts_after_a_page_ran(page_as_main, tmp_path):
    spec = ablate.SweepSpec("CartPole-v1", eps=(None,), seeds=(1, 2), total_steps=512)
    curves = ablate.run_sweep(spec, tmp_path / "sweep", workers=2, progress=False)
    assert sorted(curves["seed"].unique()) == [1, 2]
    assert not page_as_main.exists()


def test_a_target_defined_in_main_keeps_it(page_as_main):
    """A CLI run with ``python -m`` defines its worker in ``__main__``: the children need it to find the worker."""
    page = sys.modules["__main__"]

    def worker():
        pass

    worker.__module__ = "__main__"
    with plain_main(worker):
        assert sys.modules["__main__"] is page


def test_a_rank_that_cannot_start_raises_its_own_error(monkeypatch):
    """The ranks' clean-up skips processes that never started, so the start's own error reaches the caller."""
    import multiprocessing.context

    def refuse(self):
        raise OSError("no more processes")

    monkeypatch.setattr(multiprocessing.context.ForkServerProcess, "start", refuse)
    with pytest.raises(OSError, match="no more processes"):
        run(RunConfig(lengths=(3, 5, 2, 4), ranks=2, micro_batches=2, scheme="verl-global", timeout_s=60))
