# The two commands of the quick start: `make run` and `make test`.
# Both create .venv when it is missing and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck unit fixtures bench clean promtool dashboard image-test lock

# Exactly requirements/test.lock (hashes checked), then the project itself.
$(STAMP): pyproject.toml requirements/test.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/test.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
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
	KUBEBUILDER_ASSETS="$${KUBEBUILDER_ASSETS:-$$(../shared/envtest/install.sh)}" \
		$(BIN)/python bench/audit.py
	KUBEBUILDER_ASSETS="$${KUBEBUILDER_ASSETS:-$$(../shared/envtest/install.sh)}" \
		$(BIN)/python bench/api_memory.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

# The image, built with podman in a throwaway store and run by the tests
# (tests/image/; stand-in base image cached outside the repo): tools/image/.
image-test: $(STAMP)
	bash tools/image/image-test.sh

# Re-lock every transitive version, with hashes, from PyPI: runtime.lock (the
# image), build.lock (the image's build backend), test.lock (this venv).
LOCK := $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--no-header --index-url https://pypi.org/simple
lock: $(STAMP)
	$(LOCK) pyproject.toml --extra fast -o requirements/runtime.lock
	$(LOCK) requirements/build.in -o requirements/build.lock
	$(LOCK) pyproject.toml requirements/build.in --extra fast --extra test -o requirements/test.lock
