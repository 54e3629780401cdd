# The two commands of the quick start: `make run` and `make test`.
# Both create .venv when it is missing and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck unit fixtures bench clean image-test lock

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

unit: $(STAMP)
	$(BIN)/pytest

fixtures: $(STAMP)
	$(BIN)/task-pod-webhook test tests/fixtures

test: lint typecheck unit

bench: $(STAMP)
	bash bench/run.sh

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
