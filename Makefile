# The two commands: `make test` (set up + whole test suite) and `make demo` (the main job on the
# embedded default). Both create .venv and install the project on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.udc-installed
export TORCHAO_FORCE_SKIP_LOADING_SO_FILES := 1
PYTEST_ARGS ?=

.PHONY: test demo install clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Until the data, training and export issues land, the demo runs what exists end to end:
# the reference model's parameter/MAC table, then both stages and torch.export on the tiny config.
demo: $(STAMP)
	$(BIN)/udc info --config tiny
	@echo
	$(BIN)/udc check --config tiny
	@echo
	@echo "Next (open issues): udc-synth (synthetic UDC faces), udc-train (stage 1 + 2), udc-export (bundles), udc-predict/udc-bench."

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
