# Sổ tay: `make run` brings the platform up on this machine; `make test` checks all of it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PACKAGES := libs/events libs/platform $(sort $(dir $(wildcard services/*/pyproject.toml)))
SOURCES  := $(foreach p,$(PACKAGES),$(p)/src)
TEST_DIRS := libs/events/tests libs/platform/tests tests/contract tests/replicas deploy/tests $(foreach p,$(sort $(dir $(wildcard services/*/pyproject.toml))),$(p)tests)

.PHONY: run test venv lint typecheck registry registry-check unit bench drill clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate constraints.txt requirements-dev.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -r requirements-dev.txt $(foreach p,$(PACKAGES),-e $(p))
	touch $@

venv: $(VENV)/.installed

run: venv
	$(BIN)/python -m sotay_platform.devrun

lint: venv
	$(BIN)/ruff check libs services tests bench deploy
	$(BIN)/ruff format --check libs services tests bench deploy

typecheck: venv
	$(BIN)/mypy $(SOURCES)
	$(BIN)/mypy deploy/tests

registry: venv
	$(BIN)/python -m sotay_events.schema_registry write

registry-check: venv
	$(BIN)/python -m sotay_events.schema_registry check

# Each package runs in its own pytest process, with its own embedded servers.
test: lint typecheck registry-check
	@set -e; for dir in $(TEST_DIRS); do \
	  echo "== $$dir"; \
	  $(BIN)/python -m pytest $$dir -q -p no:logging || exit $$?; \
	done

unit: venv
	$(BIN)/python -m pytest -q $(foreach d,$(TEST_DIRS),$(wildcard $(d)/unit)) libs/events/tests/test_catalogue.py tests/contract

bench: venv
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit $$?; done

# Fault drills on the embedded servers with several replicas; writes docs/DRILLS.md.
drill: venv
	$(BIN)/python -m sotay_platform.drills --markdown docs/DRILLS.md

clean:
	rm -rf $(VENV) .stack
