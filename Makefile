# Decile: `make run` starts the fleet, `make test` runs every check. Both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
XDIST ?= -n 2 --dist loadfile

.PHONY: help install lock run test test-fast test-slow lint typecheck bench proto clean ops ops-tools

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q uv
	$(UV) venv -q --allow-existing --python 3.11 $(VENV)
	$(UV) pip sync -q --python $(BIN)/python requirements.lock
	@touch $@

install: $(BIN)/.installed ## install the pinned environment (requirements.lock) into .venv

lock: ## re-resolve and export the pinned lock (uv.lock stays local: it names the registry)
	$(UV) lock
	$(UV) export --all-groups --all-extras --no-hashes --no-header -q -o requirements.lock

run: install ## start NATS (embedded if none answers) and every service, replaying bundled real data
	$(BIN)/decile up $(ARGS)

lint: install ## ruff
	$(BIN)/ruff check libs services tests tools

typecheck: install ## mypy (strict) on the shared library
	$(BIN)/mypy libs/decile/src/decile

ops-tools: ## promtool for tests/ops (Debian's prometheus package; no daemon is started)
	@command -v promtool >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

ops: install ## regenerate deploy/ (prometheus, grafana, nats, k8s) from the fleet registry
	$(BIN)/python -m tools.ops.generate

test: install ops-tools lint typecheck ## lint, type check and the whole suite against real servers
	$(BIN)/pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

test-fast: install ## unit tests only
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-slow: install ## full-dataset checks (needs ../shared/data)
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

bench: install ## benchmarks, each beside its reference, into bench-results/
	$(BIN)/python -m tests.bench.run

proto: install ## regenerate proto/ (AsyncAPI per service, JSON Schema per event)
	$(BIN)/python -m decile.proto

clean:
	rm -rf $(VENV) .state bench-results .pytest_cache .mypy_cache .ruff_cache
