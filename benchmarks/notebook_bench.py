"""Issue 10 figures: each notebook's Run All on the sandbox, one after another, and the series.

Each notebook runs as the notebook tests run it (tests/test_notebooks.py): a copy of the
committed notebook, a kernel of its own, a fresh sandbox (new state folder, free ports) that its
set-up cell starts, stopped afterwards. Run All is timed from the first cell to the last with
the kernel already up, as a learner presses it in JupyterLab; the kernel's start is reported
beside it, and the slowest cells, so a slow notebook says where its time goes.

Targets: Run All within 5 s per notebook, 30 s for the series (on two cores).

Run: .venv/bin/python -m benchmarks.notebook_bench [NN ...] [--slowest 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.notebook_env import notebook_env

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
TARGET_EACH, TARGET_SERIES = 5.0, 30.0

# Runs inside the notebook's environment (its own sandbox state, the loopback guard): start a
# kernel, then run every cell and time each, and print one JSON document.
_RUNNER = r"""
import json, sys, time
import nbformat
from nbclient import NotebookClient

nb = nbformat.read(sys.argv[1], as_version=4)
client = NotebookClient(nb, timeout=300, kernel_name="python3",
                        resources={"metadata": {"path": sys.argv[2]}})
t0 = time.perf_counter()
with client.setup_kernel():
    kernel = time.perf_counter() - t0
    cells = []
    t1 = time.perf_counter()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tc = time.perf_counter()
        client.execute_cell(cell, index)
        first = next((line for line in cell.source.splitlines() if line.strip()), "")
        cells.append({"index": index, "seconds": time.perf_counter() - tc, "first_line": first})
    run_all = time.perf_counter() - t1
print(json.dumps({"kernel": kernel, "run_all": run_all, "cells": cells}))
"""


def measure(path: Path) -> dict[str, Any]:
    """Run All of one notebook against its own fresh sandbox; the timings."""
    with tempfile.TemporaryDirectory(prefix="nb-bench-") as state:
        env = notebook_env(Path(state) / "sandbox", Path(state) / "non-loopback.log")
        copy = Path(state) / path.name  # never write into the committed notebook
        copy.write_bytes(path.read_bytes())
        started = time.perf_counter()
        try:
            run = subprocess.run(
                [sys.executable, "-c", _RUNNER, str(copy), str(NOTEBOOKS)],
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
        finally:
            subprocess.run(
                [sys.executable, "-m", "sandbox", "stop"], env=env, capture_output=True, timeout=60
            )
        wall = time.perf_counter() - started
    if run.returncode != 0:
        tail = (run.stderr.strip().splitlines() or ["failed"])[-1]
        return {"notebook": path.stem, "error": tail, "wall": wall}
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return {"notebook": path.stem, "wall": wall, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="only notebooks whose name starts so")
    parser.add_argument("--slowest", type=int, default=3, help="cells to list per notebook")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    paths = [
        p
        for p in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
        if not args.only or any(p.name.startswith(o) for o in args.only)
    ]
    print(f"{'notebook':32} {'Run All':>8} {'kernel':>7} {'process':>8}")
    results = []
    for path in paths:
        r = measure(path)
        results.append(r)
        if "error" in r:
            print(f"{r['notebook']:32} FAILED: {r['error']}")
            continue
        mark = "" if r["run_all"] <= TARGET_EACH else f"  > {TARGET_EACH:.0f} s target"
        times = f"{r['run_all']:7.1f}s {r['kernel']:6.1f}s {r['wall']:7.1f}s"
        print(f"{r['notebook']:32} {times}{mark}")
        for cell in sorted(r["cells"], key=lambda c: -c["seconds"])[: args.slowest]:
            print(f"    cell {cell['index']:3d} {cell['seconds']:6.2f}s  {cell['first_line'][:60]}")
    done = [r for r in results if "error" not in r]
    series = sum(r["run_all"] for r in done)
    mark = "" if series <= TARGET_SERIES else f"  > {TARGET_SERIES:.0f} s target"
    print(f"{'series (Run All, one after another)':32} {series:7.1f}s{mark}")
    print(f"{'series with kernel starts':32} {sum(r['run_all'] + r['kernel'] for r in done):7.1f}s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if len(done) < len(results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
