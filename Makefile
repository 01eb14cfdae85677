# Quick start: `make demo` materializes today's caches, `make ui` opens the Dagster UI on them
# (`make ui PORT=3001` for another port), `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 3000
# dg (dagster-dg-cli) runs the example project in this virtual environment.
DG     := VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(BIN)):$$PATH PYTHONPATH=$(CURDIR) $(BIN)/dg
STAMP  := $(VENV)/.installed-dev
# azurite (Azure Blob's emulator, from npm) for the az:// tests; they skip, saying so, without Node.js.
AZURITE_VERSION := 3.37.0
AZURITE := .cache/node_modules/.bin/azurite-blob

.PHONY: install demo ui test test-fast stress lint docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(AZURITE):
	@if command -v npm >/dev/null 2>&1; then \
		npm install --silent --no-audit --no-fund --prefix .cache azurite@$(AZURITE_VERSION); \
	else echo "npm not found: the Azure Blob tests will be skipped (apt-get install nodejs npm)"; fi

install: $(STAMP) $(AZURITE)

demo: $(STAMP)
	$(BIN)/python -m definitions.demo

# `dg dev` on the demo's instance (DAGSTER_HOME, default .dagster_home; see definitions/demo.py).
ui: $(STAMP)
	$(BIN)/python -m definitions.demo ui --host 127.0.0.1 --port $(PORT)

# ruff, the import contracts in pyproject.toml (layers, no cycles, public API only), then mypy
# (strict on cache_utils, basic on dagster_cache), then `dg check defs` on the example project.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(DG) check defs

# The documentation site (mkdocs-material, API pages from the docstrings) into build/site; --strict:
# a broken link or reference fails.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint docs $(AZURITE)
	$(BIN)/python -m pytest -q

test-fast: lint docs $(AZURITE)
	$(BIN)/python -m pytest -q -m "not integration and not slow"

stress: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench_io
	$(BIN)/python -m benchmarks.bench_memory_cache
	$(BIN)/python -m benchmarks.bench_s3
	$(BIN)/python -m benchmarks.bench_range_loads
	$(BIN)/python -m benchmarks.bench_polars

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
