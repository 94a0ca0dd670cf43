# make run   - install into .venv if needed, then serve on :3000 (SQLite, offline `local` AI)
# make test  - install if needed, then run the whole suite
# make bench - the chat load benchmark against the NestJS-style reference (BENCH_QUICK=1: tiny)
# make bench-voice - N concurrent voice calls (PROVIDERS=local: offline STT/TTS; needs espeak-ng)
# make lint  - ruff and mypy; make format - ruff's fixes
# make clean - remove the venv, node_modules, the benchmark folder and the SQLite files
# make help  - this list; `.venv/bin/python -m server --help` lists the settings
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
JS_STAMP := tests/js/node_modules/.installed-stamp
BENCH_JS_STAMP := tests/bench/js/node_modules/.installed-stamp
REF_STAMP := .bench/ref/node_modules/.installed-stamp

.PHONY: install run test lint format clean bench bench-voice help

help:
	@sed -n 's/^# \(make .*\)/\1/p' $(firstword $(MAKEFILE_LIST))

install: $(STAMP) $(JS_STAMP) $(BENCH_JS_STAMP)

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

$(BENCH_JS_STAMP): tests/bench/js/package.json tests/bench/js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/bench/js && npm ci --no-audit --no-fund --loglevel=error >&2 && touch node_modules/.installed-stamp; \
	else echo "npm not found: the benchmark smoke test will be skipped" >&2; fi

# The reference server's packages, in a scratch folder outside the project (gitignored).
# Its output goes to stderr: `make bench` keeps stdout for the JSON lines.
$(REF_STAMP):
	@mkdir -p .bench/ref
	@cd .bench/ref && { [ -f package.json ] || echo '{"private": true}' > package.json; } && \
		npm install --no-audit --no-fund --loglevel=error socket.io@4 mysql2@3 openai >&2 && \
		touch node_modules/.installed-stamp

# make bench [BENCH_QUICK=1] [BENCH_ARGS='--repeat 3']: JSON lines on stdout, progress on stderr
bench: $(STAMP) $(BENCH_JS_STAMP) $(REF_STAMP)
	@$(PY) -m tests.bench.chat $(if $(BENCH_QUICK),--quick) $(BENCH_ARGS)

# make bench-voice [PROVIDERS=fake|local] [BENCH_VOICE_ARGS='--calls 1,10,20 --turns 3']
bench-voice: $(STAMP)
	$(PY) -m tests.bench.voice --providers $(or $(PROVIDERS),fake) $(BENCH_VOICE_ARGS)

test: $(STAMP) $(JS_STAMP) $(BENCH_JS_STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check server namespaces models tests
	$(VENV)/bin/ruff format --check server namespaces models tests
	$(VENV)/bin/mypy server namespaces models

format: $(STAMP)
	$(VENV)/bin/ruff format server namespaces models tests
	$(VENV)/bin/ruff check --fix server namespaces models tests

clean:
	rm -rf $(VENV) tests/js/node_modules tests/bench/js/node_modules .bench data/*.sqlite3*
