# Two entry points: `make demo` (set up, then run the main job: `rnncore diagnose`) and `make test` (set up, then test).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-slow test-all lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,lint]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/rnncore diagnose

test: setup
	$(BIN)/python -m pytest -q -n 2 -m "not slow and not gpu"

test-slow: setup
	$(BIN)/python -m pytest -q -m "slow and not gpu"

test-all: setup
	$(BIN)/python -m pytest -q -n 2

# ruff (lint and format) and mypy, configured in pyproject.toml; any finding fails.
lint: setup
	$(BIN)/ruff check rnncore tests benchmarks notebooks
	$(BIN)/ruff format --check rnncore tests benchmarks notebooks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
