# Two commands: `make run` (install everything into .venv, then train the embedded default) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-fast test-integration bench clean

install: $(STAMP)

# torch/torchvision are pinned in pyproject.toml to the builds this machine serves from local disk.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -e '.[detection,segmentation,test,docs]'
	touch $(STAMP)

run: install
	$(BIN)/raydata-agent run $(ARGS)

# Lanes: test-fast is every test that starts no Ray cluster (about a minute; tests/conftest.py fails a test
# that starts one unmarked); test-integration is the rest; test is both. --durations lists the slowest.
test: install
	$(BIN)/python -m pytest -q --durations=25

test-fast: install
	$(BIN)/python -m pytest -q -m "not integration" --durations=10

test-integration: install
	$(BIN)/python -m pytest -q -m integration --durations=25

bench: install
	$(BIN)/python benchmarks/bench_pool.py

clean:
	rm -rf runs mlruns mlflow.db .pytest_cache
