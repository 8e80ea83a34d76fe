# KAIRÓS Core. `make run` and `make test` set everything up on a fresh machine.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE := 1

help:  #-- list targets
	@grep -E '^[a-z-]+:.*#--' $(MAKEFILE_LIST) | sed -E 's/:.*#-- /\t/' | column -t -s $$'\t'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)  #-- create/update the local .venv (idempotent)

proto: $(STAMP)  #-- regenerate gRPC code from proto/ into kairos/api/gen
	$(BIN)/python -m scripts.gen_proto

DEV_TOKEN := $(or $(KAIROS__SUPERVISOR__API_TOKEN),kairos-dev)
# The local engine's configuration layer (config/dev.yaml: its own database, Redis db, 1 day of market data).
DEV_CONFIG := APP_ENV=$(or $(APP_ENV),dev)

# `make run` forces paper mode; refuse before installing or starting anything rather than silently ignore a live request.
paper-only:
	@if [ "$${KAIROS__EXECUTION__MODE:-paper}" != paper ]; then \
	  echo "make run is paper-only (the local simulator): unset KAIROS__EXECUTION__MODE (now '$$KAIROS__EXECUTION__MODE')." >&2; \
	  echo "Live trading: execution.mode live, one systemd unit per process, keys in the env file; see docs/DEPLOY.md." >&2; \
	  exit 2; fi

run: paper-only $(STAMP) proto  #-- run the whole engine offline against the bundled exchange simulator (paper)
	@echo "KAIROS: paper trading against the local simulator; gRPC on 127.0.0.1:50551, /metrics on 127.0.0.1:9464, API token '$(DEV_TOKEN)'."
	@echo "        In another shell: export KAIROS_API_TOKEN=$(DEV_TOKEN); $(BIN)/kairosctl status. Ctrl-C stops everything."
	@echo "        Data: PostgreSQL database kairos_dev, Redis db 1 (config/dev.yaml); paper account in var/gate (make reset)."
	$(DEV_CONFIG) KAIROS__SUPERVISOR__API_TOKEN=$(DEV_TOKEN) KAIROS__EXECUTION__MODE=paper $(BIN)/python -m procs.supervisor --sim

test: $(STAMP) proto  #-- run every test (unit, stress, process, service, e2e)
	$(BIN)/python -m pytest -q

bench: $(STAMP) proto  #-- run the benchmarks with same-run baselines
	$(BIN)/python -m scripts.bench all

lint: $(STAMP)  #-- ruff
	$(BIN)/ruff check .

clean-shm: $(STAMP)  #-- remove this config's leftover shared memory (shm_prefix only; refused while it runs)
	$(DEV_CONFIG) $(BIN)/python -m kairos.cli.reset shm

reset: $(STAMP)  #-- start the paper account fresh: remove its ledgers, gate journal, PlaceOrder log (refused while running)
	$(DEV_CONFIG) $(BIN)/python -m kairos.cli.reset paper

.PHONY: help venv proto paper-only run test bench lint clean-shm reset
