# The two commands a newcomer needs: `make demo` and `make test`.
# Both build a local .venv from pyproject.toml; nothing is installed outside it except the
# system tools the tests use (xmlsec1, pdfsig, SoftHSM2, fonts), by scripts/system-deps.sh.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/lienthong demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy node signing schemas storage adapters
	$(BIN)/mypy benchmarks  # apart: benchmarks/signing.py would clash with the signing package

system-deps:
	@scripts/system-deps.sh

unit: $(VENV)/.installed-dev system-deps
	$(BIN)/pytest -q

test: lint typecheck unit

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/edxml.py
	$(BIN)/python benchmarks/signing.py
	$(BIN)/python benchmarks/exchange.py
	$(BIN)/python benchmarks/archive.py
	$(BIN)/python benchmarks/audit.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
