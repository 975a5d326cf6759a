# Every target creates the virtual environment first if needed: `make demo` and `make test`
# are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test test-full lint format demo sweep clean study

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with its dev tools

test: $(STAMP) ## Run the default test suite (no slow tests, no network); "no tests" is a failure
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test-full: $(STAMP) ## Run every test, slow ones included
	@$(BIN)/python -m pytest -m "slow or not slow"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

lint: $(STAMP) ## Check style with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Format and fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: $(STAMP) ## The fast flagship on an offline set (bundled digits): 5 labels, verdict, CSV
	$(BIN)/python -m hackrobust.train experiment=demo

sweep: $(STAMP) ## A small multirun: ERM over three seeds on the offline quickstart
	$(BIN)/python -m hackrobust.train -m experiment=quickstart seed=0,1,2

# Studies: each writes its table and plots under experiments/results/ (real data from
# $$HACKROBUST_DATA_DIR; finished runs are kept in a .jsonl, so a stopped study resumes). Their
# command lines are in experiments/studies.py; ARGS are appended (e.g. ARGS="--jobs 4").
study: $(STAMP) ## Run the study NAME=... (experiments/studies.py); without NAME, list them
	@$(BIN)/python experiments/studies.py $(if $(NAME),$(NAME) $(ARGS),--list)

# The same, spelt `make study-NAME` (e.g. make study-hierarchical).
study-%: $(STAMP)
	@$(BIN)/python experiments/studies.py $* $(ARGS)

clean: ## Remove run outputs and caches (not .venv, not the dataset cache)
	rm -rf logs outputs multirun .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
