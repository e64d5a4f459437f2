# grukit — the README's commands. Everything runs inside ./.venv, made on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# torch is pinned for set-up only: 2.13.0 is the CPU build on this machine's disk.
# The package itself asks for torch>=2.4.
TORCH   := torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: setup test lint demo bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

demo: $(STAMP)
	$(BIN)/grukit lm demo --out runs/demo

bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py --out bench-out

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
