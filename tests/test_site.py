"""The static site: every committed notebook gets a page with its outputs embedded, the index
links them all, and a page that would publish a token or a key stops the build."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from tests.conftest import REPO
from tools import build_site

# A 1x1 PNG, and a small SVG: the kinds of picture the notebooks draw.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082"
    )
).decode()
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><circle r="4"/></svg>'


def _b64url(doc: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


FAKE_JWT = ".".join(
    [_b64url({"alg": "RS256", "typ": "JWT"}), _b64url({"aud": "https://x", "oid": "1"}), "c2ln"]
)


@pytest.fixture(scope="module")
def committed_site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    pages = build_site.build(REPO / "notebooks", out)
    return out, pages


def _svg_embedded(svg: str, page: str) -> bool:
    """nbconvert puts an SVG output in the page as markup or as a base64 data URI."""
    as_data = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    return svg.strip()[:40] in page or as_data in page


def _notebooks() -> list[Path]:
    return build_site.find_notebooks(REPO / "notebooks")


def test_each_committed_notebook_has_a_page_linked_from_the_index(committed_site):
    out, pages = committed_site
    index = (out / "index.html").read_text()
    notebooks = _notebooks()
    assert [p.source for p in pages] == notebooks
    for nb_path in notebooks:
        page = out / f"{nb_path.stem}.html"
        assert page.is_file(), nb_path.name
        assert f'href="{nb_path.stem}.html"' in index
        nb = nbformat.read(nb_path, as_version=4)
        title = build_site.title_of(nb, nb_path.stem)
        assert title in page.read_text() or title.replace("&", "&amp;") in page.read_text()
    assert len(re.findall(r'<li><a href="[^"]+\.html">', index)) == len(notebooks)


def test_pages_show_the_committed_outputs_with_pictures_embedded(committed_site):
    out, _ = committed_site
    for nb_path in _notebooks():
        page = (out / f"{nb_path.stem}.html").read_text()
        nb = nbformat.read(nb_path, as_version=4)
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if "image/png" in data:
                    assert data["image/png"].strip()[:60] in page, nb_path.name
                if "image/svg+xml" in data:
                    svg = "".join(data["image/svg+xml"])
                    assert _svg_embedded(svg, page), nb_path.name
        assert not re.search(r'<img[^>]+src="(?!data:)', page), "an image is not embedded"


def test_no_page_holds_a_token_or_a_key_or_waits_for_the_network(committed_site):
    out, _ = committed_site
    for page in out.glob("*.html"):
        text = page.read_text()
        assert build_site.find_secrets(text) == [], page.name
        assert "accesskey=" not in text.lower() or not build_site.ACCESS_KEY.search(text)
        for tag in re.findall(r"<script[^>]*\bsrc=\"https?://[^>]*>", text):
            assert re.search(r"\b(async|defer)\b", tag), f"{page.name}: blocking {tag}"


def _fixture_notebooks(folder: Path, extra_output: str | None = None) -> None:
    folder.mkdir()
    (folder / "diagram.png").write_bytes(base64.b64decode(PNG))
    first = new_notebook(
        cells=[
            new_markdown_cell("# First step\n\nWhat this step teaches, in one sentence."),
            new_markdown_cell(
                "![flow](diagram.png)\n\n[Index](README.md) · Next: [Second](02-second.ipynb#top)"
            ),
            new_code_cell(
                "draw()",
                outputs=[
                    new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"}),
                    new_output("display_data", data={"image/svg+xml": SVG, "text/plain": "<SVG>"}),
                ],
            ),
        ]
    )
    second_outputs = (
        [new_output("stream", name="stdout", text=extra_output)] if extra_output else []
    )
    second = new_notebook(
        cells=[new_markdown_cell("# Second step"), new_code_cell("show()", outputs=second_outputs)]
    )
    nbformat.write(first, folder / "01-first.ipynb")
    nbformat.write(second, folder / "02-second.ipynb")


def test_pictures_and_links_are_made_to_work_in_the_site(tmp_path):
    _fixture_notebooks(tmp_path / "nb")
    pages = build_site.build(tmp_path / "nb", tmp_path / "site")
    assert [p.title for p in pages] == ["First step", "Second step"]
    assert pages[0].summary == "What this step teaches, in one sentence."
    first = (tmp_path / "site" / "01-first.html").read_text()
    # the PNG output and the markdown picture (a file beside the notebook) are both inline
    assert first.count("data:image/png;base64,") >= 2
    assert 'src="diagram.png"' not in first
    assert _svg_embedded(SVG, first)
    assert 'href="02-second.html#top"' in first and 'href="index.html"' in first
    assert ".ipynb" not in re.sub(r"<script.*?</script>", "", first, flags=re.S).split("<body")[1]
    second = (tmp_path / "site" / "02-second.html").read_text()
    assert 'href="01-first.html"' in second  # the added navigation: previous page


@pytest.mark.parametrize(
    "leak, kind",
    [
        (f"token: {FAKE_JWT}", "JWT"),
        (
            # Built at run time, so the repository itself holds nothing that looks like a key.
            "endpoint=https://x.communication.azure.com/;accesskey="
            + base64.b64encode(b"secret-key-not-redacted").decode(),
            "access key",
        ),
    ],
)
def test_a_secret_in_an_output_stops_the_build(tmp_path, leak, kind):
    _fixture_notebooks(tmp_path / "nb", extra_output=leak)
    with pytest.raises(build_site.SecretInOutput, match=rf"02-second\.ipynb: .*{kind}"):
        build_site.build(tmp_path / "nb", tmp_path / "site")
    assert not (tmp_path / "site").exists()  # nothing half-published


def test_redacted_values_are_allowed(tmp_path):
    _fixture_notebooks(
        tmp_path / "nb", extra_output="accesskey=****Zx9Q  token claims: {'aud': 'https://x'}"
    )
    build_site.build(tmp_path / "nb", tmp_path / "site")
    assert "accesskey=****Zx9Q" in (tmp_path / "site" / "02-second.html").read_text()


def test_command_line_builds_refuses_secrets_and_never_clobbers_other_folders(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(REPO / "tools" / "build_site.py"), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    _fixture_notebooks(tmp_path / "nb")
    ok = run("--notebooks", str(tmp_path / "nb"), "--out", str(tmp_path / "site"))
    assert ok.returncode == 0, ok.stderr
    assert "wrote 2 notebook page(s)" in ok.stdout
    (tmp_path / "nb" / "02-second.ipynb").unlink()
    build_site.build(tmp_path / "nb", tmp_path / "site")  # a site built here is replaced whole
    assert sorted(p.name for p in (tmp_path / "site").glob("*.html")) == [
        "01-first.html",
        "index.html",
    ]

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "work.txt").write_text("mine")
    (precious / "index.html").write_text("<p>someone's own page</p>")
    refused = run("--notebooks", str(tmp_path / "nb"), "--out", str(precious))
    assert refused.returncode == 1 and (precious / "work.txt").read_text() == "mine"

    _fixture_notebooks(tmp_path / "leaky", extra_output=FAKE_JWT)
    leaked = run("--notebooks", str(tmp_path / "leaky"), "--out", str(tmp_path / "out2"))
    assert leaked.returncode == 1 and "refusing to publish" in leaked.stderr


def test_make_site_target_runs_the_builder():
    makefile = (REPO / "Makefile").read_text()
    target = re.search(r"(?m)^site:.*\n((?:\t.*\n)+)", makefile)
    assert target and "tools/build_site.py" in target.group(1)
