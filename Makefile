# Two entry points: `make demo` and `make test`. Each creates .venv when it is missing.
# Also: `make tutorial` (executes the tutorial notebooks, writes the paper's figures) and `make docs` (the site).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv clean fixtures tutorial docs

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	# torch first and by exact version: on our machines 2.13.0 is a CPU wheel on disk.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev,gw,onnx,docs,tutorial]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/astrocnn demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

# every notebook regenerated from its jupytext source and executed (ASTROCNN_TUTORIAL_QUICK=1: quick mode);
# the paper's figures 2-6 go to docs/figures
tutorial: $(STAMP)
	$(BIN)/python scripts/build_tutorial.py

# the documentation site, offline, into build/site; --strict: a broken link, anchor or README section fails it
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

fixtures: $(STAMP)
	$(BIN)/python scripts/make_fixtures.py tests/data

clean:
	rm -rf $(VENV) runs build src/*.egg-info
