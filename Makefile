# Entry points a newcomer and CI use. `make run` / `make test` set everything up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=
# the suites mostly wait (node timeouts, failovers): one process more than this machine's
# 2 cores keeps it busy without starving the nodes (measured: see README, Development)
WORKERS ?= 3
REPEAT ?= 10
RUNS ?= 5
HOG ?= 0

.PHONY: setup run soak false-alarms test lint bench bench-migration matrix regressions clean

$(VENV)/.installed: pyproject.toml scripts/setup-system.sh
	bash scripts/setup-system.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,docker]'
	touch $@

setup: $(VENV)/.installed

## main job: the suites against the default implementation; report in reports/
run: setup
	$(PY) -m harness run --suite all -n $(WORKERS) --report-dir reports $(ARGS)

## false alarms: the suites REPEAT times with new seeds (HOG=N: N busy cores beside them);
## per test outcomes, failure seeds, metric spread; report in reports/soak/
soak: setup
	$(PY) -m harness soak --repeat $(REPEAT) --cpu-hog $(HOG) -n $(WORKERS) --report-dir reports/soak $(ARGS)

## the false-alarm measurement (about an hour): soaks of every suite on three local
## implementations, docker, and under a CPU hog; reports in reports/false-alarms/
false-alarms: setup
	bash scripts/false-alarms.sh

## the harness's own tests (unit, integration on real servers, bad input, leaks) in
## WORKERS processes; loadgroup keeps a module's xdist_group in one (ARGS='-n 0': serial)
test: setup
	$(PY) -m pytest tests -n $(WORKERS) --dist loadgroup $(ARGS)

## the regression catalogue (suites/regressions): documented bugs reproduced, RUNS runs
## each, reported as reproduced k of n; ARGS='--impl valkey-8.0'; report in reports/regressions/.
## One scenario at a time (REGRESSION_WORKERS=1): they race on timing, and a loaded
## machine changes their rates (measured: README, Known bugs, rediscovered)
REGRESSION_WORKERS ?= 1
regressions: setup
	$(PY) -m harness run --suite regressions --repeat $(RUNS) -n $(REGRESSION_WORKERS) --report-dir reports/regressions $(ARGS)

## the full matrix (every suite, implementation, backend, plain and secured); CI runs a
## subset. ONLY='docker-*' narrows it, SUITE=conformance runs one suite on every
## implementation row (the conformance matrix); reports in reports/matrix/
matrix: setup
	bash scripts/matrix.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## bring-up against node count, the harness's formation next to the server's own
## `--cluster create` (ARGS='--impl valkey-8.0 --sizes 3,30'; see bench/bringup.py)
bench: setup
	$(PY) bench/bringup.py $(ARGS)

## slot migration under load, keys/s: the harness's migrate_slots next to the server's own
## `--cluster reshard` (ARGS='--impl valkey-8.0 --shape 3x0,3x1'; see bench/migration.py)
bench-migration: setup
	$(PY) bench/migration.py $(ARGS)

clean:
	rm -rf $(VENV) reports/*.json reports/*.xml reports/logs
