# Quick start: `make demo` runs the main job, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: install demo ui test test-fast stress lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m definitions.demo

ui: $(STAMP)
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/.dagster_home} sh -c 'mkdir -p "$$DAGSTER_HOME" && $(BIN)/dagster dev'

# ruff, then the import contracts in pyproject.toml (layers, no cycles, public API only).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

test: lint
	$(BIN)/python -m pytest -q

test-fast: lint
	$(BIN)/python -m pytest -q -m "not integration and not slow"

stress: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench_io
	$(BIN)/python -m benchmarks.bench_memory_cache
	$(BIN)/python -m benchmarks.bench_s3

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
