# Two entry points: `make demo` and `make test`. Each creates .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv clean fixtures

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	# torch first and by exact version: on our machines 2.13.0 is a CPU wheel on disk.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev,gw,onnx]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/astrocnn demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

fixtures: $(STAMP)
	$(BIN)/python scripts/make_fixtures.py tests/data

clean:
	rm -rf $(VENV) runs build src/*.egg-info
