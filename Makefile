# Companion repository for Snowflake's Snowpark Container Services tutorials.
# `make` lists the targets; `make demo` and `make test` are the two to start with.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APP_REQUIREMENTS := echo-service/requirements.txt tutorial-2-job/requirements.txt \
	tutorial-3-service-to-service/requirements.txt
# Local state: the emulator's tables under $(LOCAL_DIR)/snowflake, the local SPCS's catalog, images and logs,
# the demo's logs; `make reset-local` empties it.
LOCAL_DIR ?= .local
EMULATOR_PORT ?= 8765
REGISTRY_PORT ?= 5000

# Deploying to your account: every name can be set on the command line or in local.mk (git-ignored;
# see local.mk.example), and only there: a shell's own DATABASE or ROLE doesn't change the target.
# The defaults are the tutorials' names.
DEPLOY_NAMES := CONNECTION ROLE DATABASE SCHEMA WAREHOUSE COMPUTE_POOL REPOSITORY STAGE ECHO_IMAGE JOB_IMAGE \
	CALLER_IMAGE CONFIRM
$(foreach name,$(DEPLOY_NAMES),$(if $(filter environment%,$(origin $(name))),$(eval undefine $(name))))
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

# A value as one shell word, whatever it holds: variables never reach the shell as code.
quote = '$(subst ','\'',$(1))'

.DEFAULT_GOAL := help
.PHONY: help venv lock demo test test-long lint lint-spec bench run-echo run-job run-caller local-up local-down reset-local

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(VENV)/.installed ## Create .venv with the apps' and the tooling's dependencies

# uv makes every environment from the exact pins of locks/ (`make lock` re-resolves them): the uv on PATH,
# else one that pip installs in a folder of its own, .uv/.
UV_VERSION := 0.13.10
CHECK_PYTHON := $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed: make PYTHON=python3.x")'
UV ?= $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.uv/bin/uv)
$(CURDIR)/.uv/bin/uv:
	@$(CHECK_PYTHON)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target .uv uv==$(UV_VERSION)

# An environment from a lock file: $(call uv-env,folder,lock file). Compiled as pip does, for the first run's sake.
uv-env = $(UV) venv --quiet --allow-existing --python $(PYTHON) $(1) && $(UV) pip sync --quiet --compile-bytecode --python $(1) $(2)

$(VENV)/.installed: locks/dev.txt | $(UV)
	@$(CHECK_PYTHON)
	$(call uv-env,$(VENV),locks/dev.txt)
	@touch $@

CONNECTOR5_VENV := .connector5-venv
$(CONNECTOR5_VENV)/.installed: locks/connector5.txt | $(UV)
	$(call uv-env,$(CONNECTOR5_VENV),locks/connector5.txt)
	@touch $@

# The lock files from the pins: the apps' requirements.txt (what their images install), pyproject.toml's extras,
# and locks/*.in. Needs PyPI; run it after changing a pin, and commit what it writes.
lock: | $(UV) ## Re-resolve locks/ from the pins after changing one
	$(UV) pip compile --quiet --universal --python-version 3.11 -o locks/dev.txt \
		pyproject.toml --extra dev --extra local $(APP_REQUIREMENTS)
	$(UV) pip compile --quiet --universal --python-version 3.11 -o locks/snow-cli.txt \
		locks/snow-cli.in --override locks/snow-cli-overrides.txt
	$(UV) pip compile --quiet --universal --python-version 3.11 -o locks/connector5.txt locks/connector5.in

demo: venv ## Run the tutorials' whole flow offline: no account, no Docker
	$(PY) -m spcs_local.demo --local-dir $(call quote,$(LOCAL_DIR)/demo)

test: venv $(CONNECTOR5_VENV)/.installed ## Run every test
	$(PY) -m pytest

test-long: venv ## The generated-input tests with 10 times the inputs (10,000 Echo bodies, deep ones included)
	$(PY) -m pytest --hypothesis-profile=long tests/test_echo_service.py -k "generated or raw_bytes"

SPECS := echo-service/echo_spec.yaml tutorial-2-job/my_job_spec.yaml \
	tutorial-3-service-to-service/service_to_service_spec.yaml
DOCKERFILES := echo-service/Dockerfile tutorial-2-job/Dockerfile tutorial-3-service-to-service/Dockerfile

lint: venv ## Lint every spec, every Dockerfile (hadolint) and the code (ruff)
	$(PY) -m spcs_local.lint $(SPECS)
	$(VENV)/bin/hadolint $(DOCKERFILES)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

lint-spec: venv ## Lint specs: make lint-spec SPEC='a.yaml specs/*.yaml' [STRICT=1: warnings fail too]
	$(PY) -m spcs_local.lint $(if $(STRICT),--strict) $(foreach spec,$(SPEC),$(call quote,$(spec)))

bench: venv ## Benchmark our code against its baselines (not a test; prints medians and ratios)
	@command -v wrk >/dev/null || { echo "Installing wrk from Debian's packages"; \
		apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	$(PY) -m benchmarks

run-echo: venv ## Run Tutorial 1's Echo service on 127.0.0.1:8000 as Bob (the tutorial's local command)
	SERVER_HOST=127.0.0.1 SERVER_PORT=8000 CHARACTER_NAME=Bob $(PY) echo-service/echo_service.py

run-job: venv ## Run Tutorial 2's job with the tutorial's query (export what `make local-up` prints first)
	$(PY) tutorial-2-job/main.py --query="select current_time() as time,'hello'" --result_table=results

run-caller: venv ## Run Tutorial 3's caller against the Echo service on port 8000 (make run-echo first)
	SERVICE_URL=http://localhost:8000/echo $(PY) tutorial-3-service-to-service/service_to_service.py

LOCAL_UP = $(PY) -m spcs_local.local up --local-dir $(call quote,$(LOCAL_DIR)) --port $(call quote,$(EMULATOR_PORT)) \
	--registry-port $(call quote,$(REGISTRY_PORT))
local-up: venv docker-registry ## Start the local SPCS in the background: the emulator and an image registry
	@$(LOCAL_UP)

# Before a deploy target with CONNECTION=local: the same, saying no more than what it started.
.PHONY: local-spcs
local-spcs: venv docker-registry
	@$(LOCAL_UP) --brief

local-down: venv ## Stop the local SPCS, its services and jobs (the data stays in .local/)
	@$(PY) -m spcs_local.local down --local-dir $(call quote,$(LOCAL_DIR))

# The local SPCS keeps images in Debian's docker-registry: installed when missing, as bench does for wrk.
.PHONY: docker-registry
docker-registry:
	@command -v docker-registry >/dev/null || { \
		command -v apt-get >/dev/null || { echo "Install the Distribution registry as docker-registry on PATH" \
			"(Debian and Ubuntu: apt-get install docker-registry)."; exit 1; }; \
		echo "Installing Debian's docker-registry"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null; }

reset-local: ## Stop the local SPCS and delete .local/ (or LOCAL_DIR): tables, catalog, images, logs
	@if [ -x $(PY) ] && [ -d $(call quote,$(LOCAL_DIR)/run) ]; then \
		$(PY) -m spcs_local.local down --local-dir $(call quote,$(LOCAL_DIR)); fi
	rm -rf $(call quote,$(LOCAL_DIR))

DOCKER ?= docker
# CONNECTION=local is the local SPCS: snow reads its connection from .local, never from ~/.snowflake,
# and probes no cloud platform; any deploy target starts the local SPCS first when it is not running.
ifeq ($(CONNECTION),local)
SNOW_ENV := SNOWFLAKE_HOME=$(call quote,$(abspath $(LOCAL_DIR))/snowflake-home) SNOWFLAKE_DISABLE_PLATFORM_DETECTION=true
LOCAL_SPCS := local-spcs
endif
# Each value quoted; the driver checks every name before it runs anything.
flag = --$(1)=$(call quote,$(2))
DEPLOY = $(SNOW_ENV) $(PY) -m spcs_local.deploy $(call flag,snow,$(SNOW)) $(call flag,docker,$(DOCKER)) \
	$(call flag,connection,$(CONNECTION)) $(call flag,role,$(ROLE)) $(call flag,database,$(DATABASE)) \
	$(call flag,schema,$(SCHEMA)) $(call flag,warehouse,$(WAREHOUSE)) $(call flag,compute-pool,$(COMPUTE_POOL)) \
	$(call flag,repository,$(REPOSITORY)) $(call flag,stage,$(STAGE)) $(call flag,echo-image,$(ECHO_IMAGE)) \
	$(call flag,job-image,$(JOB_IMAGE)) $(call flag,caller-image,$(CALLER_IMAGE)) $(call flag,confirm,$(CONFIRM)) \
	$(call flag,local-dir,$(LOCAL_DIR))
snow-cli: $(SNOW) ## Install the Snowflake CLI in its own environment (.snow-venv): its pins clash with the apps' Snowpark
$(CURDIR)/$(SNOW_VENV)/bin/snow: locks/snow-cli.txt | $(UV)
	$(call uv-env,$(SNOW_VENV),locks/snow-cli.txt)
	@touch $@

DEPLOY_TARGETS := setup build push deploy deploy-echo deploy-tutorial-2 deploy-tutorial-3 \
	status logs results echo-query endpoints teardown
.PHONY: snow-cli $(DEPLOY_TARGETS)
# Each runs against the account CONNECTION names, or the local SPCS with CONNECTION=local.
setup: ## Deploy: the tutorials' Common Setup (role, database, warehouse, pool, repository, stage)
build: ## Deploy: build the three images for linux/amd64, tagged with the repository's URL
push: ## Deploy: log docker in to the image registry and push the three images
deploy: ## Deploy: upload the specs, start the Echo service and function, run both jobs
deploy-echo: ## Deploy: Tutorial 1 only: the Echo service and my_echo_udf, waiting until READY
deploy-tutorial-2: ## Deploy: Tutorial 2 only: EXECUTE JOB SERVICE, its status and logs
deploy-tutorial-3: ## Deploy: Tutorial 3 only: EXECUTE JOB SERVICE, its status and logs
status: ## Deploy: SHOW SERVICES in the tutorial schema
logs: ## Deploy: the Echo service's and both jobs' logs
results: ## Deploy: SELECT * FROM results
echo-query: ## Deploy: the tutorial's my_echo_udf queries
endpoints: ## Deploy: the Echo service's /ui URL
teardown: ## Deploy: drop the jobs, service and function, stop the pool (CONFIRM=yes: drop pool, repo, stage)
$(DEPLOY_TARGETS): venv snow-cli $(LOCAL_SPCS)
	@$(DEPLOY) $@
