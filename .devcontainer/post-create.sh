#!/usr/bin/env bash
# Dev container / Codespaces: run once when the container is created. Installs the kit and
# its test extras into .venv (the README's `make` set-up), so the tests run here too.
# Nothing is started here: a created container may be attached much later.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
make setup
