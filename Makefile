# The two commands of the README: `make run` and `make test`. Everything else is a helper.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin

# make run installs what the engine runs on (requirements.lock); make test adds the test and lint
# tools (requirements-dev.lock). The build backend is locked too (requirements-build.lock).
RUNTIME := $(VENV)/.runtime
STAMP   := $(VENV)/.installed
# make test: pytest processes (pytest-xdist), each test file whole on one of them; at most 7
# (each takes a Redis database of its own from 9 up, tests/e2e/conftest.py)
TEST_WORKERS ?= 2

.PHONY: run test lint demo worker install services clean lock

run: $(RUNTIME)         ## start the engine (embedded default unless DATABASE_URL/REDIS_URL are set)
	$(BIN)/bitloot serve

test: $(STAMP) services lint  ## install, start PostgreSQL/Redis if needed, lint, run the whole suite
	$(BIN)/pytest --numprocesses $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)          ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: $(RUNTIME)        ## run one order end to end against a running engine
	$(BIN)/bitloot demo

worker: $(RUNTIME)      ## a Dramatiq worker process (needs REDIS_URL)
	$(BIN)/bitloot worker

install: $(STAMP)

# The locked versions, checked against their hashes, then the project itself (its own
# dependencies are already there: --no-deps; its build backend too: --no-build-isolation).
PIP := $(BIN)/pip install --quiet --disable-pip-version-check

$(RUNTIME): pyproject.toml requirements.lock requirements-build.lock
	$(PYTHON) -m venv $(VENV)
	$(PIP) --require-hashes --no-deps -r requirements-build.lock
	$(PIP) --require-hashes --no-deps -r requirements.lock
	$(PIP) --no-deps --no-build-isolation -e .
	touch $(RUNTIME)

# The development lock goes in through uv (itself locked): seconds where pip takes over a minute.
$(STAMP): $(RUNTIME) requirements-dev.lock requirements-installer.lock
	$(PIP) --require-hashes --no-deps -r requirements-installer.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --require-hashes --no-deps -r requirements-dev.lock
	touch $(STAMP)

lock:                   ## re-resolve requirements.lock and requirements-dev.lock from pyproject.toml
	bash scripts/lock.sh

services:
	bash scripts/ensure-services.sh
	bash scripts/ensure-browser.sh

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .venv-services
