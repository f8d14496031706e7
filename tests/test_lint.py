"""The code and the notebooks' code cells stay ruff-clean and ruff-formatted (pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ruff_check_is_clean():
    result = _ruff("check", "--output-format", "concise")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_nothing_to_change():
    result = _ruff("format", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_sandbox_imports_point_downward():
    """The app assembles the route modules, so no route module may import the app back (the
    run-time state they share lives in sandbox/runtime.py, below both)."""
    import ast

    importers = []
    for path in sorted((REPO / "sandbox").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if "sandbox.app" in names:
                importers.append(path.relative_to(REPO).as_posix())
    assert sorted(set(importers)) == ["sandbox/server.py"]


def test_helpers_never_import_the_sandbox():
    """The helpers talk to the sandbox as a learner's code would (HTTPS, its command line, its
    status document), so they work the same against a sandbox run elsewhere or real Azure."""
    import ast

    importers = []
    for path in sorted((REPO / "helpers").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(n == "sandbox" or n.startswith("sandbox.") for n in names):
                importers.append(path.relative_to(REPO).as_posix())
    assert importers == []
