# Two commands: `make run` and `make test`. Everything else is set up by them:
# `setup` installs uv.lock (with the test extra) and this checkout into .venv/ with uv.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint setup ts-client ts-types browser worker migrate stop env bench-locomo bench-latency bench-ingest clean

setup:
	@bash scripts/bootstrap.sh >/dev/null

run: setup
	@$(VENV)/bin/loftmem up

test: setup lint browser
	@$(PY) -m pytest $(PYTEST_ARGS)

# Debian's chromium for the browser test (installed only when no chromium is on the PATH)
browser:
	@bash scripts/ensure_chromium.sh

# lint, format, types, the import graph's rules and the docs' links (CI runs them through
# `make test`); the TypeScript client type-checks and its generated types match the schema
lint: setup ts-client
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy
	@out=$$($(VENV)/bin/lint-imports --no-cache 2>&1) || { echo "$$out"; exit 1; }; echo "$$out" | grep '^Contracts:'
	@$(PY) scripts/check_links.py
	@clients/typescript/node_modules/.bin/tsc -p clients/typescript --noEmit
	@$(PY) scripts/ts_schema.py --check

# the TypeScript client's packages, from its package-lock.json
ts-client:
	@bash scripts/ts_client.sh

# write the TypeScript client's types again after a change of the API
ts-types: setup ts-client
	@$(PY) scripts/ts_schema.py

worker: setup
	@$(VENV)/bin/loftmem worker

migrate: setup
	@$(VENV)/bin/loftmem migrate

stop: setup
	@$(VENV)/bin/loftmem stop

env: setup
	@$(VENV)/bin/loftmem env

bench-locomo: setup
	@$(PY) -m bench.locomo --json

bench-latency: setup
	@$(PY) -m bench.latency --json

bench-ingest: setup
	@$(PY) -m bench.ingest --json

clean:
	rm -rf .pytest_cache build *.egg-info
