# Two entry points do all set-up on a fresh machine: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test venv lint typecheck bench fuzz clean sysdeps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests and benchmarks use, installed with apt-get when one is missing
# and we are root: dig and nsupdate (bind9-dnsutils), kdig (knot-dnsutils), a Knot secondary
# (knot), dnsperf, dnsmasq (dnsmasq-base: the binary only, no system service), and unbound
# (the resolver tests forward a ledger TLD to `ledgerdns resolver` through it; started in a temp dir),
# and systemd for `systemd-analyze verify` of tools/systemd/ledgerdns.service (a few MB; nothing
# is started: the test only reads the unit).
SYSDEPS = dig:bind9-dnsutils nsupdate:bind9-dnsutils kdig:knot-dnsutils knotd:knot dnsperf:dnsperf dnsmasq:dnsmasq-base unbound:unbound promtool:prometheus systemd-analyze:systemd
sysdeps:
	@missing=""; for pair in $(SYSDEPS); do \
	  cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: missing Debian packages:$$missing (apt-get install them); their tests will be skipped"; fi; \
	fi

# The main job: a local single-validator devnet in ./data/devnet, DNS on 127.0.0.1:8553,
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

# Every fuzz target under atheris for a few seconds (long runs: tools/fuzz.py --all --seconds N).
fuzz: $(STAMP)
	$(BIN)/python tools/fuzz.py --quick

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .hypothesis
