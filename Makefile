# The two commands of the quick start: `make run` and `make test`.
# Both create .venv when it is missing and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck unit fixtures bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[fast,test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/task-pod-webhook serve --no-kube

lint: $(STAMP)
	$(BIN)/ruff check webhook tests bench tools
	$(BIN)/ruff format --check webhook tests bench tools
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy webhook

unit: $(STAMP)
	$(BIN)/pytest

fixtures: $(STAMP)
	$(BIN)/task-pod-webhook test tests/fixtures

test: lint typecheck unit

bench: $(STAMP)
	bash bench/run.sh
	KUBEBUILDER_ASSETS="$${KUBEBUILDER_ASSETS:-$$(../shared/envtest/install.sh)}" \
		$(BIN)/python bench/audit.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
