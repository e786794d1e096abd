# Two entry points: `make demo` (set up + main job) and `make test` (set up + whole suite).
# `make demo DATASET=meld` runs the main job on a generated mini MELD release instead of IEMOCAP.
# Both create .venv at the repo root when missing and (re)install when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dgnode-installed
DATASET ?= iemocap

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python jobs/pipeline.py --workdir demo_output --dataset $(DATASET)

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf demo_output .pytest_cache
