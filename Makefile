# The targets the README tells people to type. Everything installs from this repo's own files.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU machines get the CPU wheel pinned here; GPU boxes keep their own torch (pyproject gives a range).
TORCH_SPEC ?= torch==2.13.0
PARAMS ?= params/demo.yaml
PYTEST_ARGS ?=

.PHONY: setup demo test smoke-fullsize lint notebooks-clean bench clean

$(BIN)/.installed: pyproject.toml requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev,notebook]"
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	touch $@

setup: $(BIN)/.installed  ## create .venv and install the workbook (CPU)

demo: setup  ## run the seven notebooks on the demo profile into outputs/demo/
	$(BIN)/echoscript run $(PARAMS)

test: setup  ## unit tests + every notebook executed through papermill
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

smoke-fullsize: setup  ## every stage with hub-sized random models in the hub's folder layouts, offline, on a CPU
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/echoscript run params/smoke_fullsize.yaml

lint: setup
	$(BIN)/ruff check echoscript_utils tests benchmarks scripts

notebooks-clean: setup  ## strip outputs from the committed notebooks
	$(BIN)/nbstripout notebooks/*.ipynb

bench: setup  ## time the demo workbook end to end, per stage
	$(BIN)/python benchmarks/bench_workbook.py

clean:
	rm -rf outputs
