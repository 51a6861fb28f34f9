# The two commands a newcomer needs:  `make demo`  and  `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Fetched data and trained models stay inside the checkout (both git-ignored).
export NIRSTREAM_DATA_DIR ?= $(CURDIR)/data
export NIRSTREAM_REGISTRY ?= $(CURDIR)/models

.PHONY: help setup data deploy-tools demo test clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/ --/'

setup: $(BIN)/.installed  ## create .venv and install nirstream with the trainer and the dev tools ([train,dev])

$(BIN)/.installed: pyproject.toml
	@# serving runs on every CPython >= 3.11; the trainer (TensorFlow) up to the newest it has wheels for (docs/install.md)
	$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 13), "make setup (trainer included) needs CPython 3.11 to 3.13"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[train,dev]"
	touch $@

data: setup  ## fetch the IDRC 2002 tablet set and the corn set once (sha256 verified)
	$(BIN)/nirstream data fetch

demo: setup  ## set up, then run the main job: the live demo (see README)
	$(BIN)/nirstream data fetch || echo "tablet data unavailable: the demo falls back to the shipped tecator set"
	$(BIN)/nirstream demo $(DEMO_ARGS)

deploy-tools:  ## promtool, prometheus, alertmanager (deployment tests), stunnel4 (Kafka TLS tests): Debian packages
	@command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus prometheus-alertmanager; \
	  else echo "promtool missing and no root apt-get: the deployment tests will be skipped"; fi; }
	@command -v stunnel4 >/dev/null || command -v stunnel >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stunnel4; \
	  else echo "stunnel missing and no root apt-get: the Kafka TLS tests will be skipped"; fi; }

# Four pytest processes, one test file each at a time: most of the suite waits on real brokers,
# workers and trainer services in subprocesses, so four files share 2 cores well (measured on fresh clones of the
# same commit: 7:57 and 9:16 with four, 8:55 with three; earlier 7:15 with three vs 8:08 with two).
# PYTEST_WORKERS=0 runs serially.
PYTEST_WORKERS ?= 4

test: setup data deploy-tools  ## set up, then run the whole default test suite
	NIRSTREAM_REQUIRE_TABLETS=1 $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS)

clean:  ## remove the virtualenv, fetched data and trained models
	rm -rf $(VENV) data models artifacts .pytest_cache .hypothesis
