# Quick start: `make demo` runs the main job, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: install demo ui test test-fast stress lint docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m definitions.demo

# `dagster dev` on the demo's instance (DAGSTER_HOME, default .dagster_home; see definitions/demo.py).
ui: $(STAMP)
	$(BIN)/python -m definitions.demo ui

# ruff, the import contracts in pyproject.toml (layers, no cycles, public API only), then mypy
# (strict on cache_utils, basic on dagster_cache).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

# The documentation site (mkdocs-material, API pages from the docstrings) into build/site; --strict:
# a broken link or reference fails.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint docs
	$(BIN)/python -m pytest -q

test-fast: lint docs
	$(BIN)/python -m pytest -q -m "not integration and not slow"

stress: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench_io
	$(BIN)/python -m benchmarks.bench_memory_cache
	$(BIN)/python -m benchmarks.bench_s3
	$(BIN)/python -m benchmarks.bench_range_loads

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
