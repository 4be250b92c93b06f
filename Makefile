# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The PyTorch + torchvision pair this machine serves from local disk (the backbones need
# torchvision); override on another box, e.g. make test TORCH_SPEC="torch torchvision"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: venv demo test test-fast test-unit lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e ".[dev,vision]"
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/mr2 demo --out runs/demo

# the tests run on every core (pytest-xdist: -n auto); PYTEST_ARGS adds options, e.g.
# PYTEST_ARGS="-n 0" for one process
PYTEST := $(BIN)/python -m pytest src tests -q -n auto $(PYTEST_ARGS)

test: lint
	$(PYTEST)

# the tiers (tests/conftest.py): unit (no training), integration (tiny runs), e2e (the
# command line, comparisons, DDP, backbones, scripts); make test runs all three
test-unit: venv
	$(PYTEST) -m unit

test-fast: venv
	$(PYTEST) -m "unit or integration"

# static checks (also the first step of make test): ruff, ruff format, mypy (config in
# pyproject.toml)
lint: venv
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

bench: venv
	$(BIN)/python benchmarks/loss_speed.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
