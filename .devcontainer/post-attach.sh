#!/usr/bin/env bash
# Dev container / Codespaces: run each time VS Code attaches. Starts this user's sandbox
# through the same hook as Binder and JupyterHub (binder/start), or reuses the one running,
# then shows where it answers. Notebooks opened in VS Code or JupyterLab find it through its
# state folder, whatever ports it picked.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$repo/.venv/bin:$PATH"
exec "$repo/binder/start" python -m sandbox status
