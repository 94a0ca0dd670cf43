# make run   - install into .venv if needed, then serve on :3000 (SQLite, offline `local` AI)
# make test  - install if needed, then run the whole suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
JS_STAMP := tests/js/node_modules/.installed-stamp

.PHONY: install run test lint format clean

install: $(STAMP) $(JS_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The Node client tests need npm; without it they are skipped (and fail under CI).
$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/js && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed-stamp; \
	else echo "npm not found: the Node client tests will be skipped"; fi

run: $(STAMP)
	$(PY) -m server

test: $(STAMP) $(JS_STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check server namespaces models tests
	$(VENV)/bin/ruff format --check server namespaces models tests
	$(VENV)/bin/mypy server namespaces models

format: $(STAMP)
	$(VENV)/bin/ruff format server namespaces models tests
	$(VENV)/bin/ruff check --fix server namespaces models tests

clean:
	rm -rf $(VENV) tests/js/node_modules data/*.sqlite3*
