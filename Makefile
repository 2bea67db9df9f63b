# Two entry points do all set-up on a fresh machine: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test venv lint typecheck bench clean sysdeps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests use (dig); installed with apt-get when missing and we are root.
sysdeps:
	@command -v dig >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bind9-dnsutils >/dev/null; \
	  else echo "note: dig is missing (apt-get install bind9-dnsutils); its tests will be skipped"; fi; }

# The main job: a local single-validator devnet in ./data/devnet, DNS on 127.0.0.1:5353,
# RPC on 127.0.0.1:8353 (token in data/devnet/rpc.token). Ctrl-C stops it; run again to resume.
run: $(STAMP)
	$(BIN)/ledgerdns node --data-dir data/devnet

lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check chain ledgerdns tests tools

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) sysdeps lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python tools/bench_core.py --quick

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .hypothesis
