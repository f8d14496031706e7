# Two commands for learners and CI (see README): `make tutorial` and `make test`.
# `make test` also installs Debian's Chromium for the browser tests when it is missing and it can.
# Everything installs into .venv, exactly as requirements-lock.txt says (every package, pinned),
# by uv; nothing is re-installed when neither pyproject.toml nor the lock changed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
LOCK   := requirements-lock.txt
STAMP  := $(VENV)/.installed-stamp
# The kit's Jupyter settings, laid out as in an environment's prefix (see jupyter-config/README.md).
JUPYTER_SETTINGS := $(shell find jupyter-config -type f -name '*.json')
UV_VERSION := $(shell sed -n 's/^uv==\([^ ;]*\).*/\1/p' $(LOCK))
# uv itself lives beside the package caches, one per version, shared by every clone of the kit
# on this machine: a fresh clone then sets up in seconds.
UV_HOME := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/acs-mi-kit/uv-$(UV_VERSION)
UV      := $(UV_HOME)/bin/uv

.PHONY: setup lock tutorial author test sandbox-stop lint clean site

setup: $(STAMP)

# The lock's uv, fetched with pip into a venv of its own the first time on this machine.
define ENSURE_UV
	@test -x $(UV) || { echo "fetching uv $(UV_VERSION) with pip (once per machine)"; \
	    $(PYTHON) -m venv $(UV_HOME) && \
	    $(UV_HOME)/bin/python -m pip install --quiet --disable-pip-version-check \
	        'uv==$(UV_VERSION)'; }
endef

# .venv is made by uv from $(PYTHON) (never a downloaded Python), with pip in it for learners;
# sync: the venv holds the lock's packages and nothing else, compiled to bytecode as pip does
# (uv does not by default: every kernel would compile the SDKs again, a second per notebook);
# then the kit itself, editable;
# check: the pins of pyproject.toml agree with the lock; last, the kit's Jupyter settings go
# into the venv's own Jupyter folders, where both `jupyter lab` and `jupyter notebook` read them.
$(STAMP): pyproject.toml $(LOCK) $(JUPYTER_SETTINGS)
	$(ENSURE_UV)
	@test -x $(PY) || $(UV) venv --quiet --seed --no-python-downloads --python $(PYTHON) $(VENV)
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) $(LOCK)
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@$(UV) pip check --quiet --python $(PY) || { \
	    echo "pyproject.toml and $(LOCK) disagree: run make lock" >&2; exit 1; }
	@cp -R jupyter-config/etc jupyter-config/share $(VENV)/
	@touch $(STAMP)

# Re-resolve after editing the pins in pyproject.toml (keeps every other pin it can; add
# --upgrade-package NAME to move one). Commit the lock with pyproject.toml.
lock:
	$(ENSURE_UV)
	$(UV) pip compile pyproject.toml --extra test --universal --quiet \
	    --custom-compile-command 'make lock' -o $(LOCK)

# Jupyter refuses to run as root unless told; containers (dev containers, CI) often are root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

# JupyterLab; `make tutorial JUPYTER_APP=notebook` opens the same kit in Notebook 7.
JUPYTER_APP ?= lab

tutorial: $(STAMP)
	$(PY) -m sandbox start
	$(VENV)/bin/jupyter $(JUPYTER_APP) --notebook-dir=notebooks $(ALLOW_ROOT) $(JUPYTER_ARGS)

# For authors: the notebook sources (tools/notebooks/*.md, MyST) in JupyterLab. Right-click one,
# Open With > Notebook: jupytext (installed by setup) runs it as a notebook and saves the same text.
author: $(STAMP)
	$(PY) -m sandbox start
	$(VENV)/bin/jupyter lab --notebook-dir=tools/notebooks $(ALLOW_ROOT) $(JUPYTER_ARGS)

# Two workers fit a 2-core machine; each notebook test runs its own kernel and sandbox.
# loadgroup keeps the tests of one real room (tests/test_room.py) on one worker: one hub.
PYTEST_WORKERS ?= 2

test: $(STAMP)
	@tools/ensure_chromium.sh
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

sandbox-stop: $(STAMP)
	$(PY) -m sandbox stop

# The notebooks with their committed outputs as static HTML in site/ (nothing is executed).
site: $(STAMP)
	$(PY) tools/build_site.py

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV)
