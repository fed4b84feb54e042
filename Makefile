# Two entry points: `make demo` (set up, then run the main job: `rnncore diagnose`) and `make test` (set up, then test).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-slow test-tensorflow test-notebooks test-all lint docs clean

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
	$(BIN)/python -m pytest -q -n 2 -m "not slow and not gpu and not notebooks and not tensorflow"

test-slow: setup
	$(BIN)/python -m pytest -q -n 2 -m "slow and not gpu and not tensorflow"

# Files saved by Keras on TensorFlow: a second virtualenv has Keras with TensorFlow (CPU), which saves
# the everyday models (tests/keras_user_models.py); rnncore reads them in the first.
TF_VENV ?= .venv-tf

$(TF_VENV)/.installed:
	$(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TF_VENV)/bin/python -m pip install --quiet "tensorflow-cpu>=2.16" "keras>=3.8" "h5py>=3.8"
	touch $@

test-tensorflow: setup $(TF_VENV)/.installed
	RNNCORE_TF_PYTHON=$(TF_VENV)/bin/python RNNCORE_REQUIRE_TF=1 $(BIN)/python -m pytest -q -m tensorflow

# The nine notebooks executed from their jupytext sources (their headline answers are assertions).
test-notebooks: setup
	$(BIN)/python -m pytest -q -n 2 -m notebooks

test-all: setup
	$(BIN)/python -m pytest -q -n 2

# ruff (lint and format) and mypy, configured in pyproject.toml; any finding fails.
lint: setup
	$(BIN)/ruff check rnncore tests benchmarks notebooks docs
	$(BIN)/ruff format --check rnncore tests benchmarks notebooks docs
	$(BIN)/mypy

# The documentation site (docs/conf.py): the README's sections, the notebooks executed, the API reference.
# Warnings are errors. MathJax is served by the site itself: npm installs it into the build folder.
MATHJAX := docs/_build/vendor/node_modules/mathjax/es5/tex-chtml.js

$(VENV)/.docs-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,lint,docs]"
	touch $@

$(MATHJAX):
	npm install --prefix docs/_build/vendor --no-save --no-audit --no-fund --silent mathjax@3.2.2

docs: $(VENV)/.docs-installed $(MATHJAX)
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html

clean:
	rm -rf $(VENV) $(TF_VENV) .pytest_cache .hypothesis docs/_build docs/_api docs/guide
