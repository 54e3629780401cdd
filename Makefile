# The two commands of the quick start: `make run` and `make test`.
# Both create .venv when it is missing and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck unit fixtures bench clean promtool dashboard

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

unit: $(STAMP) promtool
	$(BIN)/pytest

# promtool checks and unit-tests the alert rules (tests/test_monitoring.py). It
# ships in Debian's prometheus package; installing it must not start a server:
# RUNLEVEL=1 keeps invoke-rc.d from starting the service where no policy-rc.d does.
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  apt-get update -qq && \
	  RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@promtool --version 2>&1 | head -n 1

fixtures: $(STAMP)
	$(BIN)/task-pod-webhook test tests/fixtures

test: lint typecheck unit

# The monitoring component ships a copy of the dashboard (kustomize reads no file
# outside a kustomization's folder); tests/test_monitoring.py fails when they differ.
dashboard:
	cp dashboards/task-pod-webhook.json manifests/components/monitoring/task-pod-webhook.json

bench: $(STAMP)
	bash bench/run.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
