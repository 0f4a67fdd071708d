# Two commands on a fresh machine with Python 3.11 and pip: `make repro` and `make test`.
SHELL := /bin/bash
# The base interpreter, also when a virtual environment (this one included) is active.
# Resolved once (`:=`), not at every use.
ifndef PYTHON
PYTHON := $(shell p=$$(command -v python3.11 2>/dev/null || command -v python3); \
	"$$p" -c 'import sys; print(getattr(sys, "_base_executable", None) or sys.executable)')
endif
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
UV = $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")

.PHONY: setup repro test lint bench docs clean-venv

## setup: create .venv and install the locked dependencies (bytecode compiled)
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 \
		|| $(PYTHON) -m pip install --quiet --user uv || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --locked --compile-bytecode --python $(PYTHON)
	@touch $@

## repro: set up, then run the whole pipeline with DVC
repro: setup
	dvc repro

# One xdist worker per core and one more: many tests wait on a subprocess, a server or DVC's
# retries, and the extra worker fills those waits (TEST_WORKERS=N to choose).
# Files go out whole, longest first (tests/conftest.py orders them; xdist keeps that order).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

## test: set up, then run the test suite
test: setup
	python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

## lint: ruff over the code
lint: setup
	ruff check pipeline stages tests bench

## bench: the loader and HDF5 build benchmarks (prints ratios; see docs/results.md)
bench: setup
	python bench/loader.py
	python bench/build.py

## docs: regenerate the params reference in the README
docs: setup
	python -m stages.cli params docs --update docs/params.md

clean-venv:
	rm -rf $(VENV)
