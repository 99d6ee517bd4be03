# The two commands of the README: `make app` starts the app, `make test` runs every test
# (`make test-quick` is the inner loop: no slow and no browser tests, no lint; see tests/README.md).
# Both set up a local virtual environment first (once, and again when requirements change).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first, pinned: on this project's CI machines 2.13.0 is a local CPU build. Override on yours,
# e.g. `make app TORCH_SPEC="torch"` for the newest CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: app test bench bench-app browser

$(VENV)/.ready: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

# Debian's chromium for the browser tests (needs root; skipped with a note where that is not possible).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null); \
	  else echo "note: chromium not installed; browser tests will be skipped (install Debian's chromium)"; fi; }

app: $(VENV)/.ready
	$(BIN)/streamlit run app.py

# Lint, format, types (mypy: the app at Streamlit's Python floor, 3.11; the library again at its own, 3.10),
# dead code (vulture), tests.
test: $(VENV)/.ready browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy --python-version 3.10 valueloss
	$(BIN)/vulture
	$(BIN)/python -m pytest

.PHONY: test-quick
test-quick: $(VENV)/.ready
	$(BIN)/python -m pytest -m "not slow and not e2e" -q

bench: $(VENV)/.ready
	$(BIN)/python -m valueloss.tools.bench

bench-app: $(VENV)/.ready
	$(BIN)/python -m tests.app.rerun_benchmark
