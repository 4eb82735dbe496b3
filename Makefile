# Two commands set everything up: `make run` and `make test` (see README).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
# uv itself comes from the package registry with pip, into .uv/ (no installer script to fetch)
UV_VERSION := 0.13.9
UV     := .uv/bin/uv

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
# uv builds .venv on $(PYTHON) and never downloads an interpreter of its own; it compiles
# bytecode at install, as pip did (PYTHONDONTWRITEBYTECODE would otherwise make every start slow)
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_COMPILE_BYTECODE := 1

.PHONY: run test test-fast lint bench lock clean

$(UV):
	$(PYTHON) -m pip install --quiet --target .uv "uv==$(UV_VERSION)"

# .venv holds exactly uv.lock (runtime and dev group) and the project, editable
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --quiet
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/chs demo

# One worker per core (pytest-xdist), each test file kept on one worker so its module fixtures
# are built once: 514 tests in 7 min 48 s on 2 cores against 13 min 14 s in one process.
# Plain `.venv/bin/python -m pytest` runs them in one process.
test: $(STAMP) | $(CHROMIUM)
	$(BIN)/python -m pytest -n auto --dist loadfile

# Everything but the tests marked slow: flow runs, `chs` processes, Prefect servers, Chromium.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# tests/tasks/report/test_report_browser.py opens the report in headless Chromium: install Debian's package
# when it is missing and we may (root with apt-get); otherwise that one test skips and says why.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) \
	  || echo "make: could not install chromium; the browser test will skip"; \
	else echo "make: $(CHROMIUM) is missing (install chromium as root); the browser test will skip"; fi

# ruff checks the code, codespell the code and the docs; mypy reads its files from pyproject.
# .pre-commit-config.yaml runs the same checks on each commit (after `pre-commit install`).
CODE  := flows tasks tests benchmarks demodata
PROSE := README.md BENCHMARKS.md docs $(CODE) reports expectations
lint: $(STAMP)
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy
	$(BIN)/codespell $(PROSE)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# Re-resolve uv.lock from pyproject.toml's ranges (needs the package registry).
lock: | $(UV)
	$(UV) lock

clean:
	rm -rf $(VENV) .uv out demo .pytest_cache
