# Two commands on a fresh machine: `make run` and `make test` (see README).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-failover test-sqlite lint migrate install install-runtime lock clean bench openapi container-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installs come from the lock files only (exact versions, checked against their hashes): what
# `make run` installs today is what it installs in six months. `make lock` refreshes them.
$(VENV)/.runtime: $(BIN)/python requirements/runtime.txt
	$(BIN)/pip install --quiet --require-hashes -r requirements/runtime.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed: $(VENV)/.runtime requirements/dev.txt
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.txt
	touch $@

install-runtime: $(VENV)/.runtime

install: $(VENV)/.installed

run: install-runtime
	$(BIN)/tthc migrate
	$(BIN)/tthc serve --host $(HOST) --port $(PORT)

migrate: install-runtime
	$(BIN)/tthc migrate

# The lock files from pyproject.toml: the newest versions its ranges allow, with their hashes; the
# development set is the runtime set plus the tools. Commit both, then `make install`.
LOCK := CUSTOM_COMPILE_COMMAND='make lock' $(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
	--no-emit-find-links --no-emit-trusted-host
lock: install
	$(LOCK) --upgrade --output-file requirements/runtime.txt pyproject.toml
	$(LOCK) --upgrade --extra dev --constraint requirements/runtime.txt --output-file requirements/dev.txt \
		pyproject.toml
	for set in runtime dev; do cat requirements/below-3.11.3.txt >> requirements/$$set.txt; done

# The whole suite, against SQLite and PostgreSQL (127.0.0.1:5432, database `test`, and one database
# per worker beside it: test_gw0, …), in one process per core (pytest-xdist); then the tests of the
# real hot standby, alone, since a standby replays the whole cluster and they read its lag; then
# the clients generated from openapi.json by three generators, type-checked and run (Node.js and
# npm). PYTEST_WORKERS=0 runs the first part in one process.
PYTEST_WORKERS ?= auto
test: install
	bash scripts/ensure-chromium
	bash scripts/ensure-libreoffice
	bash scripts/ensure-auto-failover
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not standby and not failover" $(PYTEST_ARGS)
	$(BIN)/pytest -m "standby or failover" $(PYTEST_ARGS)
	bash scripts/check-clients

# The failover tests alone (a pg_auto_failover cluster of their own), printing the outage figures.
test-failover: install
	bash scripts/ensure-auto-failover
	$(BIN)/pytest -m failover -s $(PYTEST_ARGS)

test-sqlite: install
	bash scripts/ensure-chromium
	bash scripts/ensure-libreoffice
	$(BIN)/pytest -n $(PYTEST_WORKERS) --backends sqlite $(PYTEST_ARGS)

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

# The image built on a local Debian base and run with podman (as root; PostgreSQL on 127.0.0.1:5432):
# readiness, a write and a read, the non-root user, the HEALTHCHECK. Not in CI; see docs/deployment.md.
container-check:
	bash scripts/container-check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tthc.db tthc.db-shm tthc.db-wal
