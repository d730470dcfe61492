# make test: install into .venv, start Redis/PostgreSQL when installed but stopped, install promtool when
# missing, lint, run the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint unit services tools bench chaos clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The demo stack in the foreground. Redis must run; DATABASE_URL defaults to the embedded SQLite file.
run: install
	@$(BIN)/flow-engine health --check redis
	@$(BIN)/flow-engine db upgrade
	@$(BIN)/flow-engine flows load examples/flows/shop_demo.json --org demo --activate --if-changed
	@FLOW_ENGINE_METRICS_PORT=$${FLOW_ENGINE_METRICS_PORT:-9108} $(BIN)/flow-engine up

services:
	bash scripts/ensure-services.sh

# promtool, for the unit tests of deploy/prometheus/alerts.yml (installed when missing).
tools:
	bash scripts/ensure-tools.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy flow_engine bridge tests bench

test: install services tools lint
	$(BIN)/pytest

unit: install
	$(BIN)/pytest -m "not e2e"

# The full chaos suite: 20,000 events over 2,000 contacts, random SIGKILLs, with 2 and 3 worker processes.
chaos: install services
	CHAOS_EVENTS=20000 CHAOS_CONTACTS=2000 $(BIN)/pytest -s tests/runtime/test_chaos.py

bench: install services
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
