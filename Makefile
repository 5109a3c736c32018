# `make test` installs everything the tests need into .venv and tests/js, builds
# the extension once (release), and runs the Rust and Python suites.
# The PostgreSQL cases run on the server KERNIA_TEST_POSTGRES_URL names, or else on
# 127.0.0.1:5432 when it answers, each run in a database it creates and drops; skips are
# listed with their reason, and under CI (CI set) a missing PostgreSQL or Node.js fails.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: test install js chromium redis lint bench example

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip

# The extension is built once and again only when a source changes, so `make lint`
# and `make test` in one run share one build.
SOURCES := Cargo.toml Cargo.lock pyproject.toml $(shell find src python -type f -not -path '*/__pycache__/*')
STAMP := $(VENV)/.kernia-installed

$(STAMP): $(BIN)/python $(SOURCES)
	$(BIN)/pip install -q ".[test]"
	touch $@

install: $(STAMP)

js:
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error

# The browser tests (tests/python/test_browser.py) drive Debian's Chromium: installed here
# when it is missing and apt-get can (as root); otherwise they are skipped, and fail under CI.
chromium:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "make: no /usr/bin/chromium; the browser tests will be skipped"

# The secondary-storage tests (tests/python/test_secondary_storage.py) start and stop
# redis-server processes of their own: Debian's, installed here the same way.
redis:
	@command -v redis-server >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } \
		|| echo "make: no redis-server; the secondary-storage tests will be skipped"

test: install js chromium redis
	cargo test --release
	$(BIN)/python -m pytest

lint: install
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings
	cargo clippy --release --features python -- -D warnings
	$(BIN)/ruff check python tests bench scripts examples
	$(BIN)/ruff format --check python tests bench scripts examples

# kernia-rs against Kernia and Better Auth; prints figures and ratios (see bench/run.py).
bench: install
	$(BIN)/python bench/run.py

# The example shop (examples/shop): builds its page once, then serves it on http://localhost:8000.
example: install
	$(BIN)/python -m examples.shop
