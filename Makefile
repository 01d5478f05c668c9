# The two commands of the quick start: `make devnet` and `make test`; `make lint` runs ruff and mypy.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINT_PATHS := node wallet genesis devnet simulation scripts tests
TYPED_PATHS := node wallet genesis devnet simulation scripts

.PHONY: install browser test test-all lint devnet down bench simulate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

# The explorer's browser tests drive Debian's chromium: installed here when missing and running as root (quietly;
# a failed install never fails the target, those tests then skip and say why).
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
			|| echo "chromium could not be installed: the browser tests will skip"; \
	fi

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-all: $(STAMP) browser
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
