# CRM Warehouse. `make` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export AIRFLOW__COSMOS__ENABLE_TELEMETRY := false
export GX_ANALYTICS_ENABLED := false
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DO_NOT_TRACK := 1
export UV_PYTHON_DOWNLOADS := never

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-unit test-integration test-e2e bench drills lint clean

help: ## list the targets
	@echo "CRM Warehouse: make <target>"
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required: install it and retry (or set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON) --quiet
	@touch $@

# The Compose Specification's JSON schema, as published in the docker-compose 1.29.2 wheel on PyPI
# (read by tests/integration/test_compose_file.py; nothing of it is installed).
COMPOSE_WHEEL := .crm/cache/docker_compose-1.29.2-py2.py3-none-any.whl
$(COMPOSE_WHEEL): $(UV)
	$(TOOLS)/bin/pip download --quiet --disable-pip-version-check --no-deps docker-compose==1.29.2 -d .crm/cache

setup: $(VENV)/.synced $(COMPOSE_WHEEL) ## create .venv from the lock file (uv.lock)

demo: setup ## run the whole pipeline on the embedded defaults and print a summary
	$(VENV)/bin/crm demo

test: setup ## unit, integration and end-to-end tests (needs nothing but Python 3.11)
	tools/ensure_chromium.sh
	$(VENV)/bin/pytest -p no:cacheprovider tests

test-unit: setup ## unit tests only (seconds)
	$(VENV)/bin/pytest -m unit tests

test-integration: setup ## integration tests (real PostgreSQL, SFTP and HTTP on loopback)
	tools/ensure_chromium.sh
	$(VENV)/bin/pytest -m integration tests

test-e2e: setup ## end-to-end: every DAG through Airflow against the sandbox
	$(VENV)/bin/pytest -m e2e tests

drills: setup ## every failure drill, the heavy ones too (tens of minutes; `make test` runs the essential ones)
	$(VENV)/bin/pytest -p no:cacheprovider -m drill --durations=0 tests

bench: setup ## benchmarks (minutes; writes BENCHMARKS.md)
	$(VENV)/bin/python -m bench

lint: setup ## ruff
	$(VENV)/bin/ruff check plugins dags sandbox tests

clean: ## remove the venv and local state (.crm/)
	rm -rf $(VENV) $(TOOLS) .crm
