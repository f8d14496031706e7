"""Build the tutorial notebooks from their sources, and optionally run them.

Sources live in ``tools/notebooks/NN-name.md`` as MyST Markdown notebooks, jupytext's
``md:myst`` format: a YAML front matter (kernel, format), prose as Markdown, a code cell as a
fenced block opened with ```` ```{code-cell} ipython3 ```` (an option line such as
``:tags: [raises-exception]`` may follow), and a line holding only ``+++`` splitting two
Markdown cells. jupytext reads them, so the same file opens as a notebook in JupyterLab (right
click, *Open With → Notebook*; ``make author``) and an edit saved there comes back as the same
text. Writing prose as prose keeps reviews readable and lets this script add the navigation
links, so the series' order lives in one place (``SERIES`` below).

    python tools/build_notebooks.py              # write notebooks/*.ipynb (outputs cleared)
    python tools/build_notebooks.py --execute    # ... and run each in its own fresh sandbox
    python tools/build_notebooks.py --execute 05 # only the notebooks whose name starts with 05
    python tools/build_notebooks.py --format-sources  # rewrite sources in jupytext's own form

Executing gives every notebook a new state folder and free ports (as the nbval runner does), so
they can run in parallel, and stops that sandbox afterwards. Outputs are then committed.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jupytext
import nbformat
from nbformat.v4 import new_markdown_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the sandbox package
from tools.notebook_env import notebook_env  # noqa: E402 - needs the line above

REPO = Path(__file__).resolve().parent.parent
SOURCES = REPO / "tools" / "notebooks"
NOTEBOOKS = REPO / "notebooks"

# (file stem, short title): the order of the series.
SERIES = [
    ("00-welcome", "Welcome and set-up"),
    ("01-enable-managed-identity", "Enable a managed identity"),
    ("02-assign-role", "Assign a role"),
    ("03-authenticate", "Authenticate: development environment versus Azure"),
    ("04-identity-api", "The Identity API with a managed identity"),
    ("05-sms", "SMS with a managed identity"),
    ("06-troubleshooting", "Troubleshooting lab"),
    ("07-clean-up", "Clean up"),
]

NAV_MARK = "<!-- NAVIGATION -->"
SOURCE_FORMAT = "md:myst"  # jupytext's MyST Markdown notebooks
LEXER = "ipython3"  # named on every code cell: ```{code-cell} ipython3
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def read_source(text: str) -> nbformat.NotebookNode:
    """A source as jupytext reads it: the notebook JupyterLab shows when it opens the file."""
    return jupytext.reads(text, fmt=SOURCE_FORMAT)


def parse(text: str) -> list:
    """The cells of a source (Markdown and code; a code cell's tags in its metadata)."""
    return read_source(text).cells


def canonical_source(text: str) -> str:
    """The source as jupytext writes it, with the front matter that names kernel and format.

    A source in this form reads and writes back to the same text, so saving it from JupyterLab
    changes only what was edited.
    """
    nb = read_source(text)
    nb.metadata = {"jupytext": {"default_lexer": LEXER}, "kernelspec": dict(KERNELSPEC)}
    return jupytext.writes(nb, fmt=SOURCE_FORMAT)


def navigation(index: int) -> str:
    parts = []
    if index > 0:
        stem, title = SERIES[index - 1]
        parts.append(f"← Previous: [{title}]({stem}.ipynb)")
    parts.append("[Index](README.md)")
    if index + 1 < len(SERIES):
        stem, title = SERIES[index + 1]
        parts.append(f"Next: [{title}]({stem}.ipynb) →")
    return f"{NAV_MARK}\n" + " · ".join(parts)


def build(index: int, out: Path = NOTEBOOKS) -> Path:
    """Write ``out/NN-name.ipynb`` from its source, with the navigation; outputs empty."""
    stem, _ = SERIES[index]
    cells = parse((SOURCES / f"{stem}.md").read_text())
    nav = navigation(index)
    # Navigation after the title cell and at the very end.
    cells.insert(1, new_markdown_cell(nav))
    cells.append(new_markdown_cell(nav))
    for n, cell in enumerate(cells):
        cell["id"] = f"{stem[:2]}-{n:03d}"  # stable ids keep diffs small
    nb = new_notebook(cells=cells)
    # The built notebook is not paired with its source: only the kernel and language stay.
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    path = out / f"{stem}.ipynb"
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path


def format_code(paths: list[Path]) -> None:
    """The project's formatter has the last word on code cells (ruff reads notebooks too)."""
    ruff = Path(sys.executable).with_name("ruff")
    if paths and ruff.exists():
        subprocess.run([str(ruff), "format", "--quiet", *map(str, paths)], check=True)


def format_sources(stems: list[str]) -> list[Path]:
    """Rewrite each source in jupytext's own form (front matter added); the changed ones."""
    changed = []
    for stem in stems:
        path = SOURCES / f"{stem}.md"
        text = path.read_text()
        if (canonical := canonical_source(text)) != text:
            path.write_text(canonical)
            changed.append(path)
    return changed


# What must never appear in a committed output: a JWT, an unmasked access key, a long run of
# base64 with digits and both cases (ACS keys are 88 such characters; URL paths have no digits).
_SECRETS = {
    "a JWT": re.compile(r"eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]{10,}"),
    "an access key": re.compile(r"accesskey=(?!\*\*\*\*)[^;\s'\"]+", re.IGNORECASE),
}
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{60,}={0,2}")


def _looks_like_key(run: str) -> bool:
    return all(re.search(p, run) for p in (r"\d", r"[a-z]", r"[A-Z]")) and "/" not in run[:1]


def installation_secrets(env: dict[str, str]) -> list[str]:
    """The running sandbox's own secrets (service principal's, developer's password, keys)."""

    def run(*args: str) -> str:
        cmd = [sys.executable, "-m", "sandbox", *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True).stdout

    found = re.findall(
        r"^export AZURE_CLIENT_SECRET=(.+)$", run("env", "--as", "service-principal"), re.M
    )
    found += re.findall(r"^password:\s*(\S+)", run("password"), re.M)
    values = []
    for value in found:
        values += shlex.split(value)
    return [v for v in values if len(v) >= 8]


def leaked_secrets(path: Path, known: list[str] = ()) -> list[str]:
    """Cells whose outputs hold one of ``known`` or something that looks like a secret."""
    nb = nbformat.read(path, as_version=4)
    found = []
    for n, cell in enumerate(nb.cells):
        text = json.dumps(cell.get("outputs", []))
        kinds = [kind for kind, pattern in _SECRETS.items() if pattern.search(text)]
        kinds += ["an installation secret" for secret in known if secret in text]
        if any(_looks_like_key(run) for run in _BASE64_RUN.findall(text)):
            kinds.append("a base64 key")
        found += [f"{path.name} cell {n}: {kind}" for kind in kinds]
    return found


def execute(path: Path, timeout: int = 120) -> tuple[Path, float, str]:
    """Run one notebook in place with nbclient against its own fresh sandbox."""
    with tempfile.TemporaryDirectory(prefix="nb-sandbox-") as state:
        guard_log = Path(state) / "non-loopback.log"
        env = notebook_env(Path(state) / "sandbox", guard_log)
        code = (
            "import sys, nbformat\n"
            "from nbclient import NotebookClient\n"
            "p = sys.argv[1]\n"
            "nb = nbformat.read(p, as_version=4)\n"
            f"NotebookClient(nb, timeout={timeout}, kernel_name='python3', record_timing=False,\n"
            "    resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
            "nbformat.write(nb, p)\n"
        )
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-c", code, str(path), str(NOTEBOOKS)],
            env=env,
            capture_output=True,
            text=True,
        )
        took = time.monotonic() - started
        known = installation_secrets(env)
        left_loopback = guard_log.read_text() if guard_log.exists() else ""
        subprocess.run(
            [sys.executable, "-m", "sandbox", "stop"], env=env, capture_output=True, text=True
        )
    problem = "" if run.returncode == 0 else (run.stderr.strip().splitlines() or ["failed"])[-1]
    if run.returncode != 0:
        sys.stderr.write(run.stderr[-4000:])
    elif left_loopback:
        problem = "tried to leave 127.0.0.1: " + left_loopback.strip()
    elif leaks := leaked_secrets(path, known):
        problem = "secret-like output: " + "; ".join(leaks)
    return path, took, problem


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="build only notebooks whose name starts so")
    parser.add_argument("--execute", action="store_true", help="run them and keep the outputs")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks run at the same time")
    parser.add_argument(
        "--format-sources",
        action="store_true",
        help="first rewrite the chosen sources in jupytext's form (front matter, spacing)",
    )
    args = parser.parse_args(argv)

    chosen = [
        i
        for i, (stem, _) in enumerate(SERIES)
        if (SOURCES / f"{stem}.md").exists()
        and (not args.only or any(stem.startswith(o) for o in args.only))
    ]
    if args.format_sources:
        for path in format_sources([SERIES[i][0] for i in chosen]):
            print(f"formatted {path.relative_to(REPO)}")
    paths = [build(i) for i in chosen]
    format_code(paths)
    for p in paths:
        print(f"wrote {p.relative_to(REPO)}")
    if not args.execute:
        return 0
    started = time.monotonic()
    failed = 0
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for path, took, problem in pool.map(execute, paths):
            status = "ok" if not problem else f"FAILED: {problem}"
            failed += bool(problem)
            print(f"{path.name:40} {took:6.1f} s  {status}")
    print(f"{'total (wall clock)':40} {time.monotonic() - started:6.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
