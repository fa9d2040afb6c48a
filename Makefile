# Magpie: `make run` starts the all-in-one server, `make test` checks everything.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: run test lint format types unit bench browser tag tag-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/magpie serve

browser:
	./tag/scripts/install-browser.sh

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

types: $(DEV_STAMP)
	$(BIN)/mypy

tag:
	cd tag && npm ci --no-audit --no-fund && npm run build

tag-check:
	./tag/scripts/check.sh

test: $(DEV_STAMP) browser lint types tag-check
	$(BIN)/pytest -q

bench: $(DEV_STAMP)
	./bench/install-wrk.sh
	$(BIN)/python -m bench.collector
	$(BIN)/python -m activation.identity.bench
	$(BIN)/python -m activation.profiles_api.bench
	$(BIN)/python -m activation.identity.tick_bench
	$(BIN)/python -m activation.audiences.bench
	$(BIN)/python -m activation.connections.bench
	$(BIN)/python -m activation.audiences.stream_bench
	$(BIN)/python -m activation.privacy.bench

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
