# Two commands set everything up: `make run` and `make test` (see README).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: run test test-fast lint bench lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/chs demo

test: $(STAMP) | $(CHROMIUM)
	$(BIN)/python -m pytest

# Everything but the tests marked slow: flow runs, `chs` processes, Prefect servers, Chromium.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# tests/test_report_browser.py opens the report in headless Chromium: install Debian's package
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

# Re-resolve the pinned versions from pyproject.toml (needs the package registry).
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/python -m pip install --quiet --upgrade pip
	.lockenv/bin/python -m pip install --quiet -e '.[dev]'
	.lockenv/bin/python -m pip freeze --exclude-editable | grep -v '^customer-health-score' > requirements.lock
	rm -rf .lockenv

clean:
	rm -rf $(VENV) out demo .pytest_cache
