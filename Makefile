# Companion repository for Snowflake's Snowpark Container Services tutorials.
# `make` lists the targets; `make demo` and `make test` are the two to start with.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APP_REQUIREMENTS := echo-service/requirements.txt

.DEFAULT_GOAL := help
.PHONY: help venv test lint bench run-echo

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(VENV)/.installed ## Create .venv with the apps' and the tooling's dependencies

$(VENV)/.installed: pyproject.toml $(APP_REQUIREMENTS)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed: make PYTHON=python3.x")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(addprefix -r ,$(APP_REQUIREMENTS)) -e '.[dev]'
	@touch $@

test: venv ## Run every test
	$(PY) -m pytest

lint: venv ## Check the code with ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: venv ## Benchmark our code against its baselines (not a test; prints medians and ratios)
	@command -v wrk >/dev/null || { echo "Installing wrk from Debian's packages"; \
		apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	$(PY) -m benchmarks.bench_echo

run-echo: venv ## Run Tutorial 1's Echo service on port 8000 as Bob (the tutorial's local command)
	SERVER_PORT=8000 CHARACTER_NAME=Bob $(PY) echo-service/echo_service.py
