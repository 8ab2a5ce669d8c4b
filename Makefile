# The README's two commands are ./scripts/run and ./scripts/test (also `make run` / `make test`);
# each builds .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench reliability up down clean

$(STAMP): pyproject.toml
	bash -c 'source scripts/_venv.sh'

## run: start the service (API + scheduler) on SQLite at http://127.0.0.1:8000
run:
	./scripts/run

## test: the whole test suite (SQLite and PostgreSQL)
test:
	./scripts/test $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

reliability: $(STAMP)
	$(BIN)/python -m pytest tests/reliability -m slow -p no:randomly $(PYTEST_ARGS)

up:
	docker compose up -d --build

down:
	docker compose down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
