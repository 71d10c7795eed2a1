# Every target sets up .venv on first use; nothing needs to be installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NODE_DIR := tests/conformance/node

.PHONY: all demo emulator test lint unit integration conformance chaos bench docs docs-serve clean redis-server chromium

all: test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# node-agent-sdk (the peer) for the conformance tests; installed from the npm registry,
# never committed (node_modules is git-ignored).
$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@command -v node >/dev/null || { echo "node is required for the conformance tests"; exit 1; }
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests examples benchmarks tools
	$(VENV)/bin/ruff format --check src tests examples benchmarks tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	# The typing test: README/docs examples, examples/ and tests/typing (must pass / must fail).
	$(PY) tools/gen_typed_events.py --check
	$(PY) tools/check_typing.py

# The stateless-bot integration test runs a real redis-server (Debian's); installed only when missing.
redis-server:
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }

# The browser tests drive Debian's headless Chromium through Playwright (never a downloaded browser).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

test: $(VENV)/.installed $(NODE_DIR)/node_modules/.installed redis-server chromium lint
	$(PY) -m pytest -q

unit: $(VENV)/.installed
	$(PY) -m pytest -q tests/unit

integration: $(VENV)/.installed
	$(PY) -m pytest -q tests/integration

conformance: $(VENV)/.installed $(NODE_DIR)/node_modules/.installed
	$(PY) -m pytest -q tests/conformance

emulator: $(VENV)/.installed
	$(VENV)/bin/lpm emulator

# The long resilience run (a short version of the same suite runs inside `make test`).
chaos: $(VENV)/.installed
	LPM_CHAOS=long $(PY) -m pytest -q tests/chaos tests/fuzz tests/resilience --timeout=1800

# Our SDK and node-agent-sdk against the same emulator, same run; see docs/performance.md.
bench: $(VENV)/.installed $(NODE_DIR)/node_modules/.installed
	$(PY) -m benchmarks

# The documentation site (mkdocs.yml): docs/*.md plus the API reference, rendered from the
# docstrings at build time, into build/site (git-ignored).  Strict: a broken link, a missing
# reference or a docstring warning fails the build.  `make test` builds it too (tests/docs/).
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site

# Serve the site while you edit (reloads on change).
docs-serve: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

demo: $(VENV)/.installed
	$(VENV)/bin/lpm demo

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules
