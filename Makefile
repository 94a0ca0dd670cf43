# make run   - install into .venv if needed, then serve on :3000 (SQLite, offline `local` AI)
# make test  - install if needed, then run the whole suite (in parallel: pytest-xdist)
# make test-fast - the suite without browsers, clusters, fuzz campaigns and benchmarks (<1 min)
# make lint  - ruff check, ruff format --check, mypy (the versions pinned in pyproject)
# make lock  - recompute requirements.lock from pyproject.toml (UPGRADE=1: newest allowed versions)
# make bench - the chat load benchmark against the NestJS-style reference (BENCH_QUICK=1: tiny)
# make bench-voice - N concurrent voice calls (PROVIDERS=local: offline STT/TTS; needs espeak-ng)
# make format - ruff's fixes; make clean - remove the venv, node_modules, .bench, SQLite files
# make help  - this list; `.venv/bin/python -m server --help` lists the settings
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
JS_STAMP := tests/js/node_modules/.installed-stamp
BENCH_JS_STAMP := bench/js/node_modules/.installed-stamp
REF_STAMP := .bench/ref/node_modules/.installed-stamp
LOCK := requirements.lock
# pytest-xdist workers (WORKERS=0: one process); each test has its own database, ports, keys
WORKERS ?= auto
FAST := not slow and not browser and not cluster and not fuzz and not bench and not server_db
LINTED := server namespaces models tests bench

.PHONY: install run test test-fast lint format clean bench bench-voice lock help

help:
	@sed -n 's/^# \(make .*\)/\1/p' $(firstword $(MAKEFILE_LIST))

install: $(STAMP) $(JS_STAMP) $(BENCH_JS_STAMP)

# Exactly the locked versions (hashes checked), then the project itself without resolving
# anything; `pip check` fails when pyproject.toml asks for what the lock lacks (`make lock`).
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

# pip-compile keeps every pin that still fits pyproject.toml and resolves only what changed
lock:
	@test -x $(VENV)/bin/pip-compile || $(MAKE) $(STAMP)
	$(VENV)/bin/pip-compile --quiet --generate-hashes --extra dev --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade) \
		--output-file $(LOCK) pyproject.toml

# The Node client tests need npm; without it they are skipped (and fail under CI).
$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/js && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed-stamp; \
	else echo "npm not found: the Node client tests will be skipped"; fi

run: $(STAMP)
	$(PY) -m server

$(BENCH_JS_STAMP): bench/js/package.json bench/js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd bench/js && npm ci --no-audit --no-fund --loglevel=error >&2 && touch node_modules/.installed-stamp; \
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
	@$(PY) -m bench.chat $(if $(BENCH_QUICK),--quick) $(BENCH_ARGS)

# make bench-voice [PROVIDERS=fake|local] [BENCH_VOICE_ARGS='--calls 1,10,20 --turns 3']
bench-voice: $(STAMP)
	$(PY) -m bench.voice --providers $(or $(PROVIDERS),fake) $(BENCH_VOICE_ARGS)

# pytest's exit 5 (no test collected) fails the target like any other failure
test: $(STAMP) $(JS_STAMP) $(BENCH_JS_STAMP)
	$(PY) -m pytest -n $(WORKERS) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -n $(WORKERS) -m '$(FAST)' $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy server namespaces models

format: $(STAMP)
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED)

clean:
	rm -rf $(VENV) tests/js/node_modules bench/js/node_modules .bench data/*.sqlite3*
