# Two commands do all set-up: `make demo` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-stamp
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
	# test-only Sparkplug payload encoder; its paho-mqtt<2 pin does not apply to its payload classes
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps pysparkplug==0.6.1
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

# browser tests drive Debian's Chromium through Playwright (no browser download)
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
	  || (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null); \
	else echo "chromium missing and apt-get unusable: browser tests will fail"; fi

# the Sparkplug interop test drives Eclipse Tahu's JavaScript edge node (npm, pinned by the lock)
TAHU := tests/peers/tahu
TAHU_STAMP := $(TAHU)/node_modules/.installed-stamp
$(TAHU_STAMP): $(TAHU)/package.json $(TAHU)/package-lock.json
	@if command -v npm >/dev/null; then \
	  cd $(TAHU) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error && touch node_modules/.installed-stamp; \
	else echo "node/npm missing: the Tahu interop test will skip (and fail under CI)"; fi

demo: $(STAMP)  ## run the platform on embedded defaults with simulated plants
	$(VENV)/bin/indunet demo

test: $(STAMP) $(CHROMIUM) $(TAHU_STAMP)  ## lint and run the full test suite (PostgreSQL on 127.0.0.1:5432)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

bench: $(STAMP)  ## historian benchmarks (see bench/README.md)
	$(VENV)/bin/python bench/historian.py

clean:
	rm -rf $(VENV) indunet-data .pytest_cache $(TAHU)/node_modules
