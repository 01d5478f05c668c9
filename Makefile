# The two commands of the quick start: `make devnet` and `make test`; `make lint` runs ruff and mypy.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINT_PATHS := node wallet genesis devnet simulation scripts tests
TYPED_PATHS := node wallet genesis devnet simulation scripts

.PHONY: install test test-all lint devnet down bench simulate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --runslow $(PYTEST_ARGS)

# both run, each reports all it finds; fails if either found anything (settings: pyproject.toml)
lint: $(STAMP)
	status=0; \
	$(BIN)/ruff check $(LINT_PATHS) || status=1; \
	$(BIN)/mypy $(TYPED_PATHS) || status=1; \
	exit $$status

devnet: $(STAMP)
	$(BIN)/ledger-devnet up

down: $(STAMP)
	$(BIN)/ledger-devnet down

bench: $(STAMP)
	$(BIN)/ledger-devnet bench --validators 4 --duration 60 --max --json bench-result.json

simulate: $(STAMP)
	$(BIN)/ledger-node simulate --seeds 1000 --validators 4-7 --byzantine f

clean:
	rm -rf $(VENV) .devnet build *.egg-info
