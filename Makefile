# Two commands a fresh machine needs: `make demo` and `make test`. Both bootstrap .venv themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_PORT ?= 8787

.PHONY: demo test lint typecheck unit bench clean sandbox

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/meeting-importer run samples/meetings_en.csv --dry-run || true
	$(BIN)/meeting-importer run samples/meetings_ja.csv --config config/japanese.toml --dry-run || true
	$(BIN)/meeting-importer run samples/meetings.xlsx --dry-run || true

test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check importer tests bench
	$(BIN)/ruff format --check importer tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n 2 -q

sandbox: $(STAMP)
	$(BIN)/meeting-importer sandbox --port $(DEMO_PORT)

bench: $(STAMP)
	$(BIN)/python bench/read_validate.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
