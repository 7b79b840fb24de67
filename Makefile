# Two commands for a fresh machine (see README.md):
#   make quickstart   set up .venv and run the main job on the embedded procedural default
#   make test         set up .venv with the dev extra and run the test suite
#
# PYTHON must be CPython 3.11 or 3.12. TORCH_SPEC is installed before the project so that
# pip never resolves a CUDA build of torch on CPU machines; on a laptop without the local
# CPU wheel, add TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU build.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
CONFIG ?= configs/quickstart.yaml
PYTEST_ARGS ?=
# Test processes (pytest-xdist): much of the suite waits on process and server start-ups, which two overlap; the
# trained model and the shards the tests share are made once per run (tests/conftest.py, under a file lock).
# Whole modules go to the processes as they free up (their module fixtures made once), the slow modules first
# (tests/conftest.py's slow_modules_first), so that both processes end together.
TEST_WORKERS ?= 2

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PIP := $(BIN)/python -m pip
TORCH_INDEX_ARG := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

# Quiet, reproducible tool behaviour: no update checks or telemetry from the stack.
export NO_ALBUMENTATIONS_UPDATE := 1
export MLFLOW_DISABLE_TELEMETRY := true
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: quickstart test lint venv dev clean

quickstart: $(STAMP)
	$(BIN)/pare quickstart $(CONFIG)

test: $(DEV_STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

# mypy checks the files listed in pyproject.toml's [tool.mypy]: pare_model and pipelines' typed-contract modules.
lint: $(DEV_STAMP)
	$(BIN)/ruff check pare_model preprocessing pipelines tests bench
	$(BIN)/ruff format --check pare_model preprocessing pipelines tests bench
	$(BIN)/mypy

venv: $(STAMP)

dev: $(DEV_STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if (3, 11) <= v[:2] <= (3, 12) else "Python 3.11 or 3.12 is needed, found %d.%d: run make PYTHON=python3.11" % v[:2])'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# pip installs without byte-compiling (--no-compile): it compiles file by file on one core, about 40 s of the 85 s
# a fresh `make dev` took on 2 cores, for 22,000 files of which a run imports about a quarter. Those are compiled
# when first imported and kept, also where PYTHONDONTWRITEBYTECODE is set (as on some machines and in many
# container images), which would otherwise recompile torch, Ray and MLflow in every process a run starts (8 s
# instead of 3.6 s to import them): the make targets unset it.
unexport PYTHONDONTWRITEBYTECODE

$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install --quiet --no-compile $(TORCH_INDEX_ARG) $(TORCH_SPEC)
	$(PIP) install --quiet --no-compile -e .
	touch $@

$(DEV_STAMP): $(STAMP)
	$(PIP) install --quiet --no-compile -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) outputs .pytest_cache .mypy_cache
