# The README's two commands are `make run` and `make test`; everything they need is installed from here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
# pytest-xdist workers for `make test`: a module runs whole on one worker, the e2e tests together (tests/conftest.py)
TEST_WORKERS ?= 2

.PHONY: run test install system-deps test-system-deps postgis demo serve unit integration e2e bench load-test lint clean

run: install demo serve                    ## install, load the demo into the embedded database if empty, serve

test: install test-system-deps postgis lint  ## everything the tests need, the linters (make lint), then the whole suite
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25 tests

install: system-deps $(VENV)/.installed

system-deps:
	@bash scripts/system-deps.sh run

test-system-deps:
	@bash scripts/system-deps.sh test

postgis:
	@bash scripts/postgis-up.sh

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

demo: install
	$(BIN)/gridmap init
	$(BIN)/gridmap demo --if-empty

serve: install
	@echo "gridmap at http://$(HOST):$(PORT)/ — sign in (登录) as demo-dispatcher, demo-worker, demo-manager, … (one demo"
	@echo "account per role, see the README) with the password gridmap-demo-2026, or as admin with the one-time"
	@echo "password that 'gridmap init' printed when it made the database."
	$(BIN)/gridmap serve --host $(HOST) --port $(PORT)

# ruff (rules and format in pyproject.toml) over the repository; mypy over gridmap (strict), api and web (checked)
lint: install                              ## all three run; the target fails if any of them found something
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check . || status=1; \
	$(BIN)/mypy || status=1; \
	exit $$status

unit: install
	$(BIN)/pytest -q tests/unit

bench: install test-system-deps postgis
	$(BIN)/python tests/benchmarks/locate.py
	$(BIN)/python tests/benchmarks/cases.py
	$(BIN)/python tests/benchmarks/map.py
	$(BIN)/python tests/benchmarks/planning.py
	$(BIN)/python tests/benchmarks/series.py

# the mixed load test (issue 15 §8): locust (its own venv, pinned in requirements-load.lock, not in CI's
# requirements.lock) against `gridmap serve --workers 2` on PostGIS; LOAD_ARGS="--seconds 60 --users 30"
LOAD_ARGS ?=
load-test: install test-system-deps postgis .venv-load/.installed
	$(BIN)/python tests/benchmarks/load.py $(LOAD_ARGS)

.venv-load/.installed: requirements-load.lock
	$(PYTHON) -m venv .venv-load
	.venv-load/bin/pip install -q -r requirements-load.lock
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache
