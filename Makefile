# Two commands do everything on a fresh machine: `make run` and `make test`.
# The virtual environment is rebuilt only when pyproject.toml changes.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HDF5_USE_FILE_LOCKING := FALSE
# Jobs (and SLURM jobs, submitted with --export=ALL) find the venv's python and tools first.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup run report test lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores all

report: run
	$(BIN)/snakemake --report results/report.html

# Test files run in parallel, a file to a worker (the slow workflow tests share a module's run);
# workers wait on SLURM and on job start-ups while others compute.
test: lint
	$(BIN)/python -m pytest --numprocesses auto --maxprocesses 4 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check workflow
	$(BIN)/snakemake --lint

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(BIN)/snakefmt workflow

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf results .snakemake .pytest_cache
