# hxgw developer and operator tasks. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HXGW_CACHE_DIR ?= /var/cache/hxgw
export HXGW_CACHE_DIR

.PHONY: help install install-test run test lint check test-stores test-litellm test-systemd test-browser test-node \
	install-systemd bench bench-capacity bench-instructions bench-ab eval-router test-faults \
	test-workers clean

help:
	@echo "make run            set up a venv and run the gateway (with the demo upstream unless HX_LITELLM_UPSTREAM is set)"
	@echo "make test           run the fast suite (unit + end-to-end against the real process)"
	@echo "make lint           ruff and mypy"
	@echo "make check          everything CI runs"
	@echo "make test-litellm   the seed's acceptance against a real LiteLLM proxy"
	@echo "make test-systemd   the unit under a real systemd (nspawn container)"
	@echo "make test-browser   the status page in headless chromium"
	@echo "make test-node      the node openai and anthropic SDKs and the Vercel AI SDK against the gateway"
	@echo "make test-stores    the tests that start real PostgreSQL and redis-server processes"
	@echo "make test-faults    fault injection, abuse, fuzzing, reload/stop under load, soak"
	@echo "make test-workers   --workers 2: a supervisor and its workers, as one daemon"
	@echo "make bench          benchmark: direct vs hxgw vs a plain aiohttp proxy vs nginx"
	@echo "make bench-capacity 10,000 concurrent slow streams, and an overload of twice a cap"
	@echo "make bench-instructions  instructions per request (valgrind): hxgw vs the aiohttp proxy"
	@echo "make bench-ab A=rev B=rev  CPU per request of two versions, measured in alternation"
	@echo "make eval-router    the router's classifier and strategies, evaluated"
	@echo "make install-systemd  install hxgw as hx-gateway-ml.service (root)"
	@echo "make clean          remove the venv and build leftovers (the next make sets it up again)"

# `install` is the gateway and the packages the README's examples import; `install-test`
# adds the test and lint tools (twice the download: `make run` does not wait for them).
install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# setuptools warns on every editable install that a folder named like the package may
# shadow it; here that folder is the package.
EDITABLE = PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q -e

# An older Python is refused before anything is made, and a venv one made is made again.
$(VENV)/.installed: setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "hxgw needs Python 3.11 or newer, and $(PYTHON) is " + sys.version.split()[0] + ": give make PYTHON=python3.11 (or newer)")'
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(EDITABLE) '.[examples]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(EDITABLE) '.[test]'
	touch $@

run: install
	$(VENV)/bin/hxgw quickstart

# Where the environment sets PYTHONDONTWRITEBYTECODE, every pytest process (each xdist
# worker, each suite) would rewrite the asserts of every test module again: 3 s of CPU.
unexport PYTHONDONTWRITEBYTECODE

# The end-to-end tests mostly wait on real processes and sockets: run them 6 at a time.
# Each of the suite's gateways imports hxgw: compiled first, that takes 0.35 s, not 0.47.
# --dist worksteal gives each worker a sixth of the tests in order (a file's tests keep
# their shared gateway) and lets one that is done take half of the busiest one's rest: the
# six end within 5 s of each other. xdist's default deals the first quarter of the tests,
# all end-to-end, out in six blocks (test_keys_cli's 76 tests, minutes of one worker, in
# one), and its workers ended up to a minute apart.
test: install-test
	$(PY) -m compileall -q hxgw
	$(PY) -m pytest -q -n 6 --dist worksteal

lint: install-test
	$(VENV)/bin/ruff check hxgw tests bench
	$(VENV)/bin/ruff format --check hxgw
	$(VENV)/bin/mypy

check: lint test test-stores test-workers test-faults test-litellm test-systemd test-browser test-node

test-litellm: install-test
	$(PY) -m pytest -q -m litellm -p no:cacheprovider tests/integration/litellm

test-systemd: install-test
	$(PY) -m pytest -q -m systemd -p no:cacheprovider tests/systemd

# Three processes a test, started and stopped: out of the fast suite, which stays under 5
# minutes on two cores. Its two tests marked faults run in test-faults.
test-workers: install-test
	$(PY) -m pytest -q -n 4 -m "workers and not faults" -p no:cacheprovider tests

# Real PostgreSQL and redis-server processes, started by the tests (marked by the fixtures
# they use, in tests/conftest.py); those marked workers or faults run in those suites.
test-stores: install-test
	$(PY) -m pytest -q -n 4 -m "(postgres or redis) and not workers and not faults" -p no:cacheprovider tests

test-faults: install-test
	HXGW_FAULTS_REPORT=bench/results/faults.md $(PY) -m pytest -q -p no:randomly -n 4 -m faults tests

test-browser: install-test
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)
	$(PY) -m pytest -q -m browser -p no:cacheprovider tests/browser

# The node packages, pinned in tests/node/package-lock.json; npm ci again when it changes.
NODE_MODULES := tests/node/node_modules/.package-lock.json

$(NODE_MODULES): tests/node/package.json tests/node/package-lock.json
	@command -v npm >/dev/null || { echo "make test-node needs node and npm (Debian: apt-get install nodejs npm)"; exit 1; }
	npm ci --prefix tests/node --no-audit --no-fund
	touch $@

test-node: install-test $(NODE_MODULES)
	$(PY) -m pytest -q -n 4 -m node -p no:cacheprovider tests/node

# make bench BENCH_ARGS='--compare REV --rounds 3'   adds hxgw at REV beside the working tree
bench: install-test
	bench/setup.sh
	$(PY) bench/run.py $(BENCH_ARGS)
	$(PY) bench/capacity.py

# 10,000 concurrent slow streams, then an overload of twice an upstream's cap
bench-capacity: install-test
	$(PY) bench/capacity.py $(BENCH_ARGS)

bench-instructions: install-test
	bench/setup.sh
	$(PY) bench/instructions.py $(BENCH_ARGS)

# make bench-ab A=<revision> B=<revision>   (. is the working tree)
A ?= HEAD~1
B ?= .
bench-ab: install-test
	bench/setup.sh
	$(PY) bench/ab.py $(A) $(B) $(BENCH_ARGS)

eval-router: install
	$(PY) -m hxgw.tools.router_eval.main $(EVAL_ARGS)

install-systemd:
	systemd/install.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
