# Two commands on a fresh machine: `make run` and `make test` (see README).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-sqlite lint migrate install clean bench openapi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/tthc migrate
	$(BIN)/tthc serve --host $(HOST) --port $(PORT)

migrate: install
	$(BIN)/tthc migrate

# The whole suite, against SQLite and PostgreSQL (127.0.0.1:5432, database `test`).
test: install
	bash scripts/ensure-chromium
	$(BIN)/pytest $(PYTEST_ARGS)

test-sqlite: install
	bash scripts/ensure-chromium
	$(BIN)/pytest --backends sqlite $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check app migrations tests bench
	$(BIN)/ruff format --check app migrations tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The committed API contract; a test fails when it differs from what the code serves.
openapi: install
	$(BIN)/tthc openapi --output openapi.json

# Every performance scenario beside the SELECT 1 baseline (about 30 minutes; see docs/benchmarks.md).
bench: install
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk"; exit 1; }
	$(BIN)/python -m bench.suite --output docs/benchmark-results.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tthc.db tthc.db-shm tthc.db-wal
