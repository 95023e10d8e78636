# keeptrusts-authz — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
CLI    := $(BIN)/keeptrusts-authz
STAMP  := $(VENV)/.installed

export KEEPTRUSTS_CONFIG ?= config/keeptrusts.example.yaml

CURRENCY    ?= USD
DESCRIPTION ?=
PERIOD      ?= $(shell date -u +%Y-%m)

.PHONY: help venv run test lint typecheck unit integration e2e k8s-validate protos \
        credit allocate reclaim transfer balance ledger audit restore periods report bench soak render-envoy clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "keeptrusts-authz targets:\n"} /^[a-zA-Z0-9_-]+:.*##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv and install the package with its dev extras

run: $(STAMP) ## Run everything locally: Redis, the authz service and Envoy (Ctrl-C stops all)
	$(PY) -m keeptrusts_authz.devrun --config $(KEEPTRUSTS_CONFIG)

test: $(STAMP) lint typecheck ## Lint, type-check and run every tier (unit, integration, e2e)
	$(PY) -m pytest -q

unit: $(STAMP) ## Tests that need neither Redis nor Envoy (seconds)
	$(PY) -m pytest -q -m unit

integration: $(STAMP) ## Tests against a real redis-server (no Envoy)
	$(PY) -m pytest -q -m integration

e2e: $(STAMP) ## Tests through the real Envoy binary
	$(PY) -m pytest -q -m e2e

lint: $(STAMP) ## ruff check + ruff format --check + import layering (.importlinter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP) ## mypy --strict on the package
	$(BIN)/mypy

k8s-validate: $(STAMP) ## Render every kustomize overlay and validate it offline
	$(PY) -m pytest -q tests/deploy

protos: $(STAMP) ## Regenerate the wallet API's Python code and descriptor set
	$(PY) protos/generate.py

render-envoy: $(STAMP) ## Render the Envoy config for $(KEEPTRUSTS_CONFIG) to envoy/envoy.yaml
	$(CLI) render-envoy --config $(KEEPTRUSTS_CONFIG) --output envoy/envoy.yaml

credit: $(STAMP) ## Credit the org pool: make credit AMOUNT=5000
	@test -n "$(AMOUNT)" || { echo "usage: make credit AMOUNT=5000 [CURRENCY=USD]"; exit 2; }
	$(CLI) credit --amount "$(AMOUNT)" --currency "$(CURRENCY)" --description "$(or $(DESCRIPTION),Org credit)"

allocate: $(STAMP) ## Fund a team from the org pool: make allocate TEAM=team_engineering AMOUNT=1200
	@test -n "$(TEAM)" -a -n "$(AMOUNT)" || { echo "usage: make allocate TEAM=team_x AMOUNT=1200 [CURRENCY=USD DESCRIPTION=...]"; exit 2; }
	$(CLI) allocate --team "$(TEAM)" --amount "$(AMOUNT)" --currency "$(CURRENCY)" --description "$(or $(DESCRIPTION),Allocation to $(TEAM))"

reclaim: $(STAMP) ## Return team funds to the org pool: make reclaim TEAM=team_x AMOUNT=100
	@test -n "$(TEAM)" -a -n "$(AMOUNT)" || { echo "usage: make reclaim TEAM=team_x AMOUNT=100"; exit 2; }
	$(CLI) reclaim --team "$(TEAM)" --amount "$(AMOUNT)" --currency "$(CURRENCY)" --description "$(or $(DESCRIPTION),Reclaim from $(TEAM))"

transfer: $(STAMP) ## Move funds between teams: make transfer FROM=team_a TO=team_b AMOUNT=50
	@test -n "$(FROM)" -a -n "$(TO)" -a -n "$(AMOUNT)" || { echo "usage: make transfer FROM=team_a TO=team_b AMOUNT=50"; exit 2; }
	$(CLI) transfer --from-team "$(FROM)" --to-team "$(TO)" --amount "$(AMOUNT)" --currency "$(CURRENCY)" --description "$(or $(DESCRIPTION),Transfer $(FROM) -> $(TO))"

balance: $(STAMP) ## Show every wallet (TEAM=... for one team)
	$(CLI) balance $(if $(TEAM),--team "$(TEAM)",)

ledger: $(STAMP) ## Show the latest ledger entries
	$(CLI) ledger --limit 50

audit: $(STAMP) ## Replay the ledger and compare it with every wallet
	$(CLI) audit

restore: $(STAMP) ## After a store loss: rebuild Redis's wallets from PostgreSQL's ledger, re-arm, audit: make restore [FORCE=1]
	$(CLI) restore $(if $(FORCE),--force)

periods: $(STAMP) ## Apply every due budget boundary (idempotent), then show each budget's period: make periods [NOW=ISO8601]
	$(CLI) periods run $(if $(NOW),--now "$(NOW)")
	$(CLI) periods status $(if $(NOW),--now "$(NOW)")

report: $(STAMP) ## Write the chargeback report for PERIOD (2026-12, 2027-Q1, 2026-W49, ...) under reports/
	@mkdir -p reports
	$(CLI) report --period "$(PERIOD)" --format csv --output "reports/chargeback-$(PERIOD).csv"
	$(CLI) report --period "$(PERIOD)" --format html --output "reports/chargeback-$(PERIOD).html"

bench: $(STAMP) ## Benchmarks: reserve throughput, a budget boundary for 1,000 wallets, Envoy direct vs full path
	$(PY) bench/run.py

clean: ## Remove caches and build output (keeps .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info .run

soak: $(STAMP) ## Soak: Redis bytes per request after N requests, ledger untrimmed vs trimmed
	$(PY) bench/soak.py
