# Two commands a fresh machine needs: `make demo` and `make test`. Both bootstrap .venv themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_PORT ?= 8787

.PHONY: demo test lint typecheck unit bench clean sandbox messages

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job on the samples: a fresh local HubSpot sandbox, each sample imported into it over HTTP,
# results and ledger in out/demo/ (started clean, as the sandbox starts empty).
demo: $(STAMP)
	@rm -rf out/demo && mkdir -p out/demo
	@$(BIN)/meeting-importer sandbox --port 0 --port-file out/demo/port > out/demo/sandbox.log 2>&1 & echo $$! > out/demo/sandbox.pid
	@for i in $$(seq 50); do [ -s out/demo/port ] && break; sleep 0.2; done; [ -s out/demo/port ] || { cat out/demo/sandbox.log; exit 1; }
	@export HUBSPOT_BASE_URL=http://127.0.0.1:$$(cat out/demo/port) HUBSPOT_ACCESS_TOKEN=sandbox-token; \
	status=0; \
	$(BIN)/meeting-importer run samples/meetings_en.csv --results out/demo/meetings_en.results.csv --state out/demo/state.sqlite || status=$$?; \
	$(BIN)/meeting-importer run samples/meetings_ja.csv --config config/japanese.toml --results out/demo/meetings_ja.results.csv --state out/demo/state.sqlite || status=$$?; \
	$(BIN)/meeting-importer run samples/meetings.xlsx --results out/demo/meetings.results.xlsx --state out/demo/state.sqlite || status=$$?; \
	$(BIN)/python -c "import httpx, os; print('sandbox:', httpx.get(os.environ['HUBSPOT_BASE_URL'] + '/__sandbox/stats').text)"; \
	kill $$(cat out/demo/sandbox.pid); \
	echo "The samples hold deliberately bad rows, so exit 1 (some rows not created) is the expected outcome: $$status"

test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check importer tests bench samples
	$(BIN)/ruff format --check importer tests bench samples

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n 2 -q

sandbox: $(STAMP)
	$(BIN)/meeting-importer sandbox --port $(DEMO_PORT)

bench: $(STAMP)
	$(BIN)/python bench/read_validate.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/big_run.py
	$(BIN)/python bench/big_run.py --created 0 --mode log
	$(BIN)/python bench/log_mode.py

# After changing a message in the code: the template (.pot) extracted again, the Japanese .po merged with it.
# Translate the new or fuzzy entries in the .po; it is compiled to .mo on first use.
messages: $(STAMP)
	$(BIN)/pybabel extract --no-location --sort-output --project meeting-importer -F importer/locale/babel.cfg \
	  -k _code:1c,2 -o importer/locale/meeting_importer.pot importer
	$(BIN)/pybabel update --no-fuzzy-matching --width 110 -D meeting_importer -i importer/locale/meeting_importer.pot -d importer/locale

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache out
