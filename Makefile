# Companion repository for Snowflake's Snowpark Container Services tutorials.
# `make` lists the targets; `make demo` and `make test` are the two to start with.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APP_REQUIREMENTS := echo-service/requirements.txt tutorial-2-job/requirements.txt \
	tutorial-3-service-to-service/requirements.txt
# Local state: the emulator's tables under $(LOCAL_DIR)/snowflake, the demo's logs; `make reset-local` empties it.
LOCAL_DIR ?= .local
DATA_DIR := $(LOCAL_DIR)/snowflake
EMULATOR_PORT ?= 8765

.DEFAULT_GOAL := help
.PHONY: help venv demo test lint lint-spec images docker-demo bench run-echo local-snowflake run-job run-caller reset-local

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(VENV)/.installed ## Create .venv with the apps' and the tooling's dependencies

$(VENV)/.installed: pyproject.toml $(APP_REQUIREMENTS)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed: make PYTHON=python3.x")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(addprefix -r ,$(APP_REQUIREMENTS)) -e '.[dev,local]'
	@touch $@

demo: venv ## Run the tutorials' whole flow offline: no account, no Docker
	$(PY) -m spcs_local.demo --local-dir $(LOCAL_DIR)

test: venv ## Run every test
	$(PY) -m pytest

SPECS := echo-service/echo_spec.yaml tutorial-2-job/my_job_spec.yaml \
	tutorial-3-service-to-service/service_to_service_spec.yaml
DOCKERFILES := echo-service/Dockerfile tutorial-2-job/Dockerfile tutorial-3-service-to-service/Dockerfile \
	spcs_local/Dockerfile

lint: venv ## Lint every spec, every Dockerfile (hadolint) and the code (ruff)
	$(PY) -m spcs_local.lint $(SPECS)
	$(VENV)/bin/hadolint $(DOCKERFILES)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

lint-spec: venv ## Lint one spec: make lint-spec SPEC=path/to/spec.yaml
	$(PY) -m spcs_local.lint $(SPEC)

bench: venv ## Benchmark our code against its baselines (not a test; prints medians and ratios)
	@command -v wrk >/dev/null || { echo "Installing wrk from Debian's packages"; \
		apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	$(PY) -m benchmarks

run-echo: venv ## Run Tutorial 1's Echo service on port 8000 as Bob (the tutorial's local command)
	SERVER_PORT=8000 CHARACTER_NAME=Bob $(PY) echo-service/echo_service.py

local-snowflake: venv ## Run the embedded Snowflake emulator in the foreground; prints the env a client needs
	$(PY) -m spcs_local.emulator --port $(EMULATOR_PORT) --data-dir $(DATA_DIR)

run-job: venv ## Run Tutorial 2's job with the tutorial's query (export the local-snowflake lines first)
	$(PY) tutorial-2-job/main.py --query="select current_time() as time,'hello'" --result_table=results

run-caller: venv ## Run Tutorial 3's caller against the Echo service on port 8000 (make run-echo first)
	SERVICE_URL=http://localhost:8000/echo $(PY) tutorial-3-service-to-service/service_to_service.py

reset-local: ## Delete the emulator's tables and the demo's logs ($(LOCAL_DIR))
	rm -rf $(LOCAL_DIR)

DOCKER ?= docker
# Without buildx (as with Debian's docker client), build with the classic builder.
BUILD := $(shell $(DOCKER) buildx version >/dev/null 2>&1 || echo DOCKER_BUILDKIT=0) $(DOCKER) build --platform linux/amd64
# The local images, named as the specs name them (the image path's last part).
images: ## Build the three apps' images (linux/amd64) and the emulator's, tagged as the specs name them
	$(BUILD) -t my_echo_service_image:latest echo-service
	$(BUILD) -t my_job_image:latest tutorial-2-job
	$(BUILD) -t service_to_service:latest tutorial-3-service-to-service
	$(BUILD) -t spcs-local-emulator:latest spcs_local

docker-demo: venv images ## Run the tutorials' flow in containers, from their spec files, as SPCS would
	$(PY) -m spcs_local.runner \
		service echo_service echo-service/echo_spec.yaml \
		job tutorial_3_job_service tutorial-3-service-to-service/service_to_service_spec.yaml \
		job tutorial_2_job_service tutorial-2-job/my_job_spec.yaml
