# Mission Control developer entry points. See README.md.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
DEV_STAMP := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 8080
RUN_ENV := MC_DATABASE_PATH=$${MC_DATABASE_PATH:-./var/mission-control.db} MC_STATE_DIR=$${MC_STATE_DIR:-./var} MALLOC_ARENA_MAX=$${MALLOC_ARENA_MAX:-2}

.PHONY: run test lint typecheck unit bench lock clean test-deps provision-test

$(DEV_STAMP): requirements-dev.lock pyproject.toml scripts/bootstrap-venv.sh
	@scripts/bootstrap-venv.sh dev

## run: set up the venv, create the database and a local admin, serve on 127.0.0.1:8080 with a worker and the notifier (channels: var/notify.toml)
run: $(DEV_STAMP)
	@mkdir -p var
	@$(RUN_ENV) $(BIN)/missionctl db migrate
	@MC_HOST=$(HOST) MC_PORT=$(PORT) $(RUN_ENV) $(BIN)/missionctl first-run
	@echo "Mission Control: open http://$(HOST):$(PORT)/ in a browser (Ctrl-C stops it)"
	@$(RUN_ENV) $(BIN)/missionctl worker --name dev & worker=$$!; \
	$(RUN_ENV) MC_NOTIFY_CHANNELS_PATH=$${MC_NOTIFY_CHANNELS_PATH:-./var/notify.toml} $(BIN)/missionctl notify run & notifier=$$!; \
	trap 'kill $$worker $$notifier 2>/dev/null; wait $$worker $$notifier 2>/dev/null' EXIT INT TERM; \
	$(RUN_ENV) $(BIN)/missionctl serve --host $(HOST) --port $(PORT)

## test: lint, type-check and the whole test suite (what CI runs)
test: $(DEV_STAMP) test-deps lint typecheck unit

test-deps:
	@scripts/install-test-deps.sh
	@scripts/e2e/install-deps.sh --arm64

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

# The end-to-end checks (a provisioned stand-in Pi, tests/e2e) and the arm64
# smoke test run here whenever the machine allows them (root, network
# namespaces, systemd-nspawn): CI does. MC_E2E=0 / MC_E2E_ARM64=0 leave them out;
# elsewhere they skip and say why.
unit: $(DEV_STAMP)
	MC_E2E=$${MC_E2E:-1} MC_E2E_ARM64=$${MC_E2E_ARM64:-1} \
	$(BIN)/pytest --cov=app --cov-report=term:skip-covered --cov-report=xml:build/coverage.xml

## bench: benchmarks that print their figures
bench: $(DEV_STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python "$$b" || exit 1; done

## provision-test: apply provisioning/site.yml twice to a debootstrapped bookworm root (root)
provision-test: $(DEV_STAMP)
	@scripts/provision-chroot-test.sh

## lock: regenerate the hash-pinned lock files (needs network to the package index)
lock:
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --universal --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --universal --python-version 3.11 -o requirements-dev.lock

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
