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

# Deploying to your account: every name can be set on the command line or in local.mk (git-ignored;
# see local.mk.example). The defaults are the tutorials' names.
CONNECTION ?=
ROLE ?= test_role
DATABASE ?= tutorial_db
SCHEMA ?= data_schema
WAREHOUSE ?= tutorial_warehouse
COMPUTE_POOL ?= tutorial_compute_pool
REPOSITORY ?= tutorial_repository
STAGE ?= tutorial_stage
ECHO_IMAGE ?= my_echo_service_image:latest
JOB_IMAGE ?= my_job_image:latest
CALLER_IMAGE ?= service_to_service:latest
CONFIRM ?=
-include local.mk
# The Snowflake CLI: the one on PATH, else the one `make snow-cli` installs in its own environment.
SNOW_VENV := .snow-venv
SNOW ?= $(shell command -v snow 2>/dev/null || echo $(CURDIR)/$(SNOW_VENV)/bin/snow)
SNOWFLAKE_CLI_VERSION := 3.30.0

.DEFAULT_GOAL := help
.PHONY: help venv demo test lint lint-spec images docker-demo bench run-echo local-snowflake run-job run-caller reset-local

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

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

reset-local: ## Delete the emulator's tables and the demo's logs (.local/, or LOCAL_DIR)
	rm -rf $(LOCAL_DIR)

DOCKER ?= docker
DEPLOY = $(PY) -m spcs_local.deploy --snow=$(SNOW) --docker=$(DOCKER) --connection=$(CONNECTION) \
	--role=$(ROLE) --database=$(DATABASE) --schema=$(SCHEMA) --warehouse=$(WAREHOUSE) \
	--compute-pool=$(COMPUTE_POOL) --repository=$(REPOSITORY) --stage=$(STAGE) \
	--echo-image=$(ECHO_IMAGE) --job-image=$(JOB_IMAGE) --caller-image=$(CALLER_IMAGE) --confirm=$(CONFIRM) --local-dir=$(LOCAL_DIR)
# Without buildx (as with Debian's docker client), build with the classic builder.
BUILD = $(shell $(DOCKER) buildx version >/dev/null 2>&1 || echo DOCKER_BUILDKIT=0) $(DOCKER) build --platform linux/amd64
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

snow-cli: ## Install the Snowflake CLI in its own environment (.snow-venv): its pins clash with the apps' Snowpark
	@test -x "$(SNOW)" || { $(PYTHON) -m venv $(SNOW_VENV) && \
		$(SNOW_VENV)/bin/pip install --quiet --disable-pip-version-check snowflake-cli==$(SNOWFLAKE_CLI_VERSION); }

DEPLOY_TARGETS := setup build push deploy deploy-echo deploy-tutorial-2 deploy-tutorial-3 \
	status logs results echo-query endpoints teardown
.PHONY: snow-cli $(DEPLOY_TARGETS)
setup: ## Your account: the tutorials' Common Setup (role, database, warehouse, pool, repository, stage)
build: ## Your account: build the three images for linux/amd64, tagged with your repository's URL
push: ## Your account: log docker in to your image registry and push the three images
deploy: ## Your account: upload the specs, start the Echo service and function, run both jobs
deploy-echo: ## Your account: Tutorial 1 only: the Echo service and my_echo_udf, waiting until READY
deploy-tutorial-2: ## Your account: Tutorial 2 only: EXECUTE JOB SERVICE, its status and logs
deploy-tutorial-3: ## Your account: Tutorial 3 only: EXECUTE JOB SERVICE, its status and logs
status: ## Your account: SHOW SERVICES in the tutorial schema
logs: ## Your account: the Echo service's and both jobs' logs
results: ## Your account: SELECT * FROM results
echo-query: ## Your account: the tutorial's my_echo_udf queries
endpoints: ## Your account: the Echo service's /ui URL
teardown: ## Your account: drop the jobs, service and function, stop the pool (CONFIRM=yes: drop pool, repo, stage)
$(DEPLOY_TARGETS): venv snow-cli
	@$(DEPLOY) $@
