# Two commands do everything on a fresh machine:
#   make demo   run Accord on the embedded default (SQLite files under accord-data/)
#   make test   lint, types, import contracts and every test (SQLite and PostgreSQL)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUM    := $(shell cksum pyproject.toml | cut -d' ' -f1)
# Two stamps: the demo needs only Accord and what it runs on; the test tools (mypy, Playwright,
# Schemathesis, OpenMined's PSI, PySpark ...) come with `make test`.
STAMP  := $(VENV)/.installed-$(SUM)
DEV    := $(VENV)/.installed-dev-$(SUM)
export ACCORD_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres

.PHONY: install install-dev demo test lint typecheck contracts unit services bench clean

install: $(STAMP)

install-dev: $(DEV)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Accord needs Python 3.11 or newer"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "python3 -m venv failed: installing Debian's python3-venv"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

$(DEV): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,spark]'
	@touch $@

demo: install
	$(BIN)/accord demo
	@echo "The accord command is in $(BIN): run 'source $(BIN)/activate', then the commands above (README: Using it)."

lint: install-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install-dev
	$(BIN)/mypy

contracts: install-dev
	$(BIN)/lint-imports

services:
	@bash scripts/ensure-services.sh
	@bash scripts/ensure-redis.sh
	@bash scripts/ensure-chromium.sh
	@bash scripts/ensure-wrk.sh
	@bash scripts/ensure-java.sh

unit: install-dev
	$(BIN)/pytest -m "not postgres and not slow"

# The newcomer's walkthrough (a copy of the repository running `make demo` and every documented
# command, about three minutes, mostly in its own processes) runs beside the rest of the suite;
# `make test` fails if either fails, and prints the walkthrough's report after. The rest runs on
# two pytest-xdist workers, each taking one test file at a time (a file's module fixtures and the
# state its tests share stay in one process).
WALK_LOG := .pytest-walkthrough.log
WORKERS  ?= 2

test: install-dev lint typecheck contracts services
	@$(BIN)/pytest -p no:cacheprovider tests/test_walkthrough.py > $(WALK_LOG) 2>&1 & walk=$$!; \
	$(BIN)/pytest -n $(WORKERS) --dist loadfile --ignore=tests/test_walkthrough.py; suite=$$?; \
	wait $$walk; walked=$$?; \
	echo "--- tests/test_walkthrough.py (run beside the suite) ---"; cat $(WALK_LOG); \
	test $$suite -eq 0 && test $$walked -eq 0

bench: install-dev
	@bash scripts/ensure-wrk.sh
	$(BIN)/python benchmarks/decide.py
	$(BIN)/python benchmarks/ledger.py
	$(BIN)/python benchmarks/ledger_small.py
	$(BIN)/python benchmarks/release.py
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/api_in_process.py
	$(BIN)/python benchmarks/exchange_steps.py
	$(BIN)/python benchmarks/psi.py
	$(BIN)/python benchmarks/cleanroom.py
	$(BIN)/python benchmarks/auction.py
	$(BIN)/python benchmarks/ads_model.py
	$(BIN)/python benchmarks/ads_api.py
	$(BIN)/python benchmarks/ads_steps.py
	$(BIN)/python benchmarks/privacy_centre.py
	@bash scripts/ensure-java.sh
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/soak.py
	$(BIN)/python benchmarks/kills.py

clean:
	rm -rf $(VENV) accord-data accord-report.html .pytest_cache .mypy_cache .ruff_cache .hypothesis
