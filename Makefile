# Two commands on a fresh machine: `make up` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEV_INSTALLED := $(VENV)/.dev-installed

.PHONY: up test lint typecheck unit bench-api bench-economics bench-scheduler bench-fleet clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(INSTALLED)

up: $(INSTALLED)  ## install, migrate, and run the whole platform on http://127.0.0.1:8080
	$(BIN)/hcp db upgrade
	$(BIN)/hcp up

# pytest runs on every core (pytest-xdist): each test has its own database, PostgreSQL schema,
# NATS stream and ports, so they may run side by side.
test: $(DEV_INSTALLED) lint typecheck  ## ruff, mypy and pytest
	$(BIN)/pytest -n auto

lint: $(DEV_INSTALLED)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

typecheck: $(DEV_INSTALLED)
	$(BIN)/mypy

unit: $(DEV_INSTALLED)  ## the pure core only: fast, no servers
	$(BIN)/pytest -n auto tests/unit

bench-api: $(DEV_INSTALLED)  ## POST /api/v1/workloads throughput vs a bare FastAPI + SQLite baseline
	$(BIN)/python scripts/bench_api.py

bench-economics: $(DEV_INSTALLED)  ## every strategy on ERCOT 2024 and Winter Storm Uri
	$(BIN)/python -m hcp.backtest.bench

bench-scheduler: $(DEV_INSTALLED)  ## placement latency and throughput, 10k GPUs / 100k queued
	$(BIN)/python -m hcp.scheduling.bench

bench-fleet: $(DEV_INSTALLED)  ## curtail 10k/100k miners, telemetry ingest, one 10k+1k tick
	$(BIN)/python scripts/bench_fleet.py

clean:
	rm -rf var test-artifacts .pytest_cache .mypy_cache .ruff_cache .hypothesis
