# Two commands for learners and CI (see README): `make tutorial` and `make test`.
# `make test` also installs Debian's Chromium for the browser tests when it is missing and it can.
# Everything installs into .venv from pyproject.toml; nothing is re-installed when nothing changed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup tutorial author test sandbox-stop lint clean site

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

# Jupyter refuses to run as root unless told; containers (dev containers, CI) often are root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

tutorial: $(STAMP)
	$(PY) -m sandbox start
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(ALLOW_ROOT) $(JUPYTER_ARGS)

# For authors: the notebook sources (tools/notebooks/*.md, MyST) in JupyterLab. Right-click one,
# Open With > Notebook: jupytext (installed by setup) runs it as a notebook and saves the same text.
author: $(STAMP)
	$(PY) -m sandbox start
	$(VENV)/bin/jupyter lab --notebook-dir=tools/notebooks $(ALLOW_ROOT) $(JUPYTER_ARGS)

# Two workers fit a 2-core machine; each notebook test runs its own kernel and sandbox.
PYTEST_WORKERS ?= 2

test: $(STAMP)
	@tools/ensure_chromium.sh
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

sandbox-stop: $(STAMP)
	$(PY) -m sandbox stop

# The notebooks with their committed outputs as static HTML in site/ (nothing is executed).
site: $(STAMP)
	$(PY) tools/build_site.py

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV)
