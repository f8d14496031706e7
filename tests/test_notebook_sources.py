"""The notebook sources are jupytext MyST notebooks: they read and write back unchanged, the
build makes from them exactly the committed notebooks' cells (plus the navigation), and
JupyterLab's server, with jupytext installed, opens one as a notebook and saves it back as the
same text with only the edited line changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from sandbox.personas import CREDENTIAL_VARIABLES
from tools import build_notebooks as build

REPO = Path(__file__).resolve().parent.parent
STEMS = [stem for stem, _ in build.SERIES]


def _text(stem: str) -> str:
    return (build.SOURCES / f"{stem}.md").read_text()


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n"), "no YAML front matter"
    return yaml.safe_load(text[4 : text.index("\n---\n", 4)])


def _cells(nb: nbformat.NotebookNode) -> list[tuple]:
    return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]


@pytest.mark.parametrize("stem", STEMS)
def test_source_is_a_jupytext_myst_notebook_that_round_trips(stem: str):
    text = _text(stem)
    meta = _front_matter(text)
    assert meta["kernelspec"]["name"] == "python3"
    assert meta["jupytext"]["text_representation"]["format_name"] == "myst"
    nb = jupytext.reads(text, fmt="md:myst")
    assert jupytext.writes(nb, fmt="md:myst") == text, (
        f"{stem}.md is not in jupytext's form: run tools/build_notebooks.py --format-sources"
    )
    assert any(c.cell_type == "code" for c in nb.cells)
    # Each code fence in the text is one code cell: no fence was read as prose.
    assert text.count("```{code-cell} ipython3") == sum(c.cell_type == "code" for c in nb.cells)


def test_format_sources_adds_the_front_matter_and_is_idempotent():
    bare = "# Title\n\nProse.\n\n```{code-cell} ipython3\n:tags: [raises-exception]\n1 / 0\n```\n"
    once = build.canonical_source(bare)
    assert _front_matter(once)["kernelspec"] == build.KERNELSPEC
    assert "```{code-cell} ipython3\n:tags: [raises-exception]\n\n1 / 0\n```" in once
    assert build.canonical_source(once) == once
    assert _cells(jupytext.reads(once, fmt="md:myst")) == [
        ("markdown", "# Title\n\nProse.", []),
        ("code", "1 / 0", ["raises-exception"]),
    ]


@pytest.mark.parametrize("index", range(len(STEMS)), ids=STEMS)
def test_a_fresh_build_has_the_committed_notebooks_cells(index: int, tmp_path: Path):
    """Sources and committed notebooks agree; the navigation is the build's, after the title
    and at the end, linking the neighbours in the series."""
    path = build.build(index, tmp_path)
    build.format_code([path])
    fresh = nbformat.read(path, as_version=4)
    committed = nbformat.read(build.NOTEBOOKS / path.name, as_version=4)
    assert _cells(fresh) == _cells(committed)
    assert [c.id for c in fresh.cells] == [c.id for c in committed.cells]
    assert fresh.metadata["kernelspec"] == build.KERNELSPEC
    assert "jupytext" not in fresh.metadata  # not paired: saving it never rewrites a source
    nav = [c.source for c in fresh.cells if c.source.startswith(build.NAV_MARK)]
    assert nav == [fresh.cells[1].source, fresh.cells[-1].source]
    assert "[Index](README.md)" in nav[0]
    if index > 0:
        assert f"({STEMS[index - 1]}.ipynb)" in nav[0]
    if index + 1 < len(STEMS):
        assert f"({STEMS[index + 1]}.ipynb)" in nav[0]
    assert len(fresh.cells) == len(build.parse(_text(STEMS[index]))) + 2


# -- JupyterLab's server with jupytext: open a source as a notebook, save it back ----------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """``jupyter server`` as ``make tutorial`` starts it (same venv, jupytext's server extension
    enabled by its install), serving a copy of the sources, with per-user folders in tmp."""
    root = tmp_path_factory.mktemp("jupytext-server")
    shutil.copytree(build.SOURCES, root / "sources")
    drop = {*CREDENTIAL_VARIABLES, "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("JUPYTER")}
    env.update(
        HOME=str(root),
        JUPYTER_CONFIG_DIR=str(root / "config"),
        JUPYTER_DATA_DIR=str(root / "data"),
        JUPYTER_RUNTIME_DIR=str(root / "runtime"),
    )
    port, token = _free_port(), secrets.token_hex(16)
    jupyter = Path(sys.executable).with_name("jupyter")
    command = [
        str(jupyter), "server", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root / 'sources'}",
        *(["--allow-root"] if os.getuid() == 0 else []),  # as the Makefile does
    ]  # fmt: skip
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def call(method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{base}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (root / "server.log").read_text()
            with contextlib.suppress(OSError):
                call("GET", "/api/status")
                break
            assert time.monotonic() < deadline, (root / "server.log").read_text()
            time.sleep(0.2)
        yield call, root / "sources"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_jupyterlab_opens_a_source_as_the_notebook_the_build_reads(server):
    call, _ = server
    model = call("GET", "/api/contents/03-authenticate.md?type=notebook&content=1")
    assert model["type"] == "notebook"
    opened = nbformat.from_dict(model["content"])
    assert _cells(opened) == _cells(jupytext.reads(_text("03-authenticate"), fmt="md:myst"))
    assert opened.metadata["kernelspec"]["name"] == "python3"


def test_an_edit_saved_from_jupyterlab_changes_only_its_line(server):
    call, folder = server
    path = "/api/contents/05-sms.md"
    before = (folder / "05-sms.md").read_text()
    model = call("GET", f"{path}?type=notebook&content=1")
    call("PUT", path, {"type": "notebook", "format": "json", "content": model["content"]})
    assert (folder / "05-sms.md").read_text() == before  # saved unchanged: same text

    cells = model["content"]["cells"]
    prose = next(c for c in cells if c["cell_type"] == "markdown" and "## Overview" in c["source"])
    prose["source"] = prose["source"].replace("## Overview", "## Overview (edited)")
    call("PUT", path, {"type": "notebook", "format": "json", "content": model["content"]})
    after = (folder / "05-sms.md").read_text()
    assert len(after.splitlines()) == len(before.splitlines())
    lines = zip(before.splitlines(), after.splitlines(), strict=True)
    assert [(a, b) for a, b in lines if a != b] == [("## Overview", "## Overview (edited)")]
