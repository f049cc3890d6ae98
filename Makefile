# OncoFed: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck imports proto proto-check unit integration bench models clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: the CPU build on disk; anything else downloads gigabytes
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)
	@bash ops/scripts/ensure_wireguard.sh  # wireguard-go + wg for the testbed (Debian)

demo: install  # e.g. make demo DEMO_ARGS='--network loopback --patients 100 --exit'
	$(BIN)/oncofed-ops demo $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

imports: install
	$(BIN)/lint-imports

proto: install
	$(BIN)/python -m protocol.codegen

proto-check: install
	$(BIN)/python -m protocol.codegen --check

# Unit tests in two workers (each test has its own database and tmp dir); the
# integration tests, which start hubs, edges and testbeds of their own, one at a time.
test: install lint typecheck imports proto-check
	source ops/scripts/ensure_postgres.sh && { \
	  $(BIN)/python -m pytest -p no:cacheprovider -n 2 tests/unit; unit=$$?; \
	  $(BIN)/python -m pytest -p no:cacheprovider tests/integration; integration=$$?; \
	  exit $$(( unit || integration )); }

unit: install
	source ops/scripts/ensure_postgres.sh && $(BIN)/python -m pytest -n 2 tests/unit

integration: install
	source ops/scripts/ensure_postgres.sh && $(BIN)/python -m pytest tests/integration

bench: install
	source ops/scripts/ensure_postgres.sh && $(BIN)/python -m pytest tests/benchmarks -s -p no:cacheprovider

models: install  # retrain the shipped clause classifiers (edge_node/structure/models/)
	$(BIN)/python -m edge_node.structure.train --task all

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
