# Quick start: `make demo` trains the offline default; `make test` runs the test suite.
# Each target creates .venv (if missing) and installs what it needs into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= runs/demo
DEMO_STEPS ?= 2500

.PHONY: demo test test-slow lint format bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/activate setup.py
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/dcgan train --preset=digits32 --steps=$(DEMO_STEPS) --model_dir=$(DEMO_DIR)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/dcgan sample --model_dir=$(DEMO_DIR) --num=100 --output=$(DEMO_DIR)/final_grid.png

test: $(VENV)/.installed-dev
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest

test-slow: $(VENV)/.installed-dev
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -m slow

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: $(VENV)/.installed
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python bench/train_throughput.py

clean:
	rm -rf $(VENV) runs *.egg-info
