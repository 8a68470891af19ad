# Every target creates .venv in the repo root when it is missing and installs the project into it.
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-stamp
SERVE_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install system-deps serve test lint typecheck bench unasync clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip
	$(PY) -m pip install --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

system-deps:
	tools/system-deps.sh

serve: install
	$(VENV)/bin/chattts-server serve $(SERVE_ARGS)

test: install system-deps
	$(VENV)/bin/ruff check src tests bench tools
	$(VENV)/bin/ruff format --check src tests bench tools
	$(VENV)/bin/mypy
	GO=$(CURDIR)/$(VENV)/bin/go clients/go/check.sh
	$(PY) -m pytest --ignore=tests/image $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests bench tools
	$(VENV)/bin/ruff format --check src tests bench tools

typecheck: install
	$(VENV)/bin/mypy

unasync: install  # rewrite client/_sync.py from client/_async.py (a test checks they agree)
	$(PY) tools/unasync.py

bench: install
	$(PY) -m bench.run

.PHONY: image image-test

image:  # the container image, built with podman from a locally made Debian base
	tools/image.sh build

image-test: install  # build the image, then tests/image/ against it; bench/results/image.json
	PYTHON=$(PY) tools/image.sh test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
