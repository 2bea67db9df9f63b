# Two entry points do all set-up on a fresh machine: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test venv lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Until the node lands (issue #4), the main job is a walk through the ledger core on a
# real LevelDB chain in ./data/demo.
run: $(STAMP)
	$(BIN)/python tools/demo_core.py --data-dir data/demo

lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check chain ledgerdns tests tools

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python tools/bench_core.py --quick

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .hypothesis
