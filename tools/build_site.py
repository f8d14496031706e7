"""Render the notebooks, with their committed outputs, as a static HTML site (``site/``).

For reading before or after a workshop, without Python or a sandbox: nothing is executed, the
pages show exactly the outputs that were committed (and that nbval checks). Images and SVG
diagrams are embedded in the pages, links between notebooks point at the pages, and no page
waits for the network (a room's Wi-Fi may be gone).

It is also the last gate before anything is published: outputs are meant to show tokens as
claims and keys as ``****last4``, and a page that still holds a JWT or an access key stops the
build.

    python tools/build_site.py                       # notebooks/ -> site/  (or: make site)
    python tools/build_site.py --notebooks DIR --out DIR
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

REPO = Path(__file__).resolve().parent.parent
# Marks a folder this script made, so a rebuild may replace it and nothing else.
MARKER = ".built-by-build_site"
TITLE = "Managed identities for Azure Communication Services"

# Three base64url parts, the first two JSON objects ("eyJ" is how '{"' starts in base64):
# a compact JWS/JWT, signed or not. Base64 image data never contains a dot, so it cannot match.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
# A connection string's key in clear; the redacted form (accesskey=****abcd) does not match.
ACCESS_KEY = re.compile(r"accesskey=[A-Za-z0-9+/]{16,}", re.IGNORECASE)

_NOTEBOOK_LINK = re.compile(r'href="(?![a-z][a-z0-9+.-]*:|/|#)([^"#?]+)\.ipynb(#[^"]*)?"')
_INDEX_LINK = re.compile(r'href="(?:\./)?README\.md(#[^"]*)?"')
_REQUIRE_JS = re.compile(r'<script src="[^"]*require(?:\.min)?\.js"></script>\s*')
_EXTERNAL_SCRIPT = re.compile(r'<script src="(https?://[^"]+)"(?![^>]*\b(?:async|defer)\b)')
_BODY_OPEN = re.compile(r"<body[^>]*>")


class SecretInOutput(Exception):
    """A page would publish a token or a key; the message names the notebook and the kind."""


@dataclass
class Page:
    source: Path
    file: str
    title: str
    summary: str


def find_notebooks(folder: Path) -> list[Path]:
    """The tutorial's notebooks in series order (their names are numbered)."""
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))


def _markdown_text(nb: nbformat.NotebookNode) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


def title_of(nb: nbformat.NotebookNode, fallback: str) -> str:
    for text in _markdown_text(nb):
        for line in text.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return fallback


def summary_of(nb: nbformat.NotebookNode) -> str:
    """The first paragraph of prose (no heading, rule, list or comment), as plain text."""
    for text in _markdown_text(nb):
        for para in re.split(r"\n\s*\n", text):
            para = para.strip()
            if para and not re.match(r"(#|---|<!--|[-*|>] |\d+\. )", para):
                plain = re.sub(r"[*_`]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", para)
                plain = " ".join(plain.split())
                if len(plain) <= 240:
                    return plain
                return plain[:237].rsplit(" ", 1)[0].rstrip(".,;:…") + "…"
    return ""


def find_secrets(text: str) -> list[str]:
    """Kinds of secret present in a rendered page ([] when it is clean)."""
    found = []
    if JWT.search(text):
        found.append("a JWT (access or ID token)")
    if ACCESS_KEY.search(text):
        found.append("an access key (accesskey=...)")
    return found


def _nav(pages: list[Page], i: int) -> str:
    parts = ['<a href="index.html">All notebooks</a>']
    if i > 0:
        parts.append(f'<a href="{pages[i - 1].file}">← {html.escape(pages[i - 1].title)}</a>')
    if i + 1 < len(pages):
        parts.append(f'<a href="{pages[i + 1].file}">{html.escape(pages[i + 1].title)} →</a>')
    return (
        '<nav class="kit-site-nav" style="font-family:sans-serif;padding:0.6em 1em;'
        'border-bottom:1px solid #ccc;display:flex;gap:2em">' + "".join(parts) + "</nav>"
    )


def _offline_friendly(page: str) -> str:
    """No script that blocks rendering on the network: require.js only serves saved widget
    state, and MathJax (for any LaTeX) may load later or never."""
    if "application/vnd.jupyter.widget-state+json" not in page:
        page = _REQUIRE_JS.sub("", page)
    return _EXTERNAL_SCRIPT.sub(r'<script async src="\1"', page)


def _link_pages(page: str) -> str:
    page = _NOTEBOOK_LINK.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', page)
    return _INDEX_LINK.sub(lambda m: f'href="index.html{m.group(1) or ""}"', page)


def _index(pages: list[Page]) -> str:
    items = "\n".join(
        f'<li><a href="{p.file}">{html.escape(p.title)}</a>'
        + (f"<p>{html.escape(p.summary)}</p>" if p.summary else "")
        + "</li>"
        for p in pages
    )
    if not pages:
        items = "<li>No notebook yet.</li>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(TITLE)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 48em; margin: 2em auto; padding: 0 1em;
       line-height: 1.5; color: #1b1b1b; }}
ol {{ padding-left: 1.5em; }} li {{ margin-bottom: 1em; }}
li p {{ margin: 0.2em 0 0; color: #444; }}
footer {{ margin-top: 3em; font-size: 0.9em; color: #555; }}
</style>
</head>
<body>
<h1>{html.escape(TITLE)}</h1>
<p>The tutorial's notebooks as they were committed, outputs included, for reading before or
after the workshop. To run them, open the kit in JupyterLab (see the repository's README).</p>
<ol>
{items}
</ol>
<footer>Built by <code>tools/build_site.py</code> from <code>notebooks/</code>; nothing was
executed to make these pages.</footer>
</body>
</html>
"""


def build(notebooks: Path, out: Path) -> list[Page]:
    """Render every notebook in ``notebooks`` into ``out`` with an index page; return the pages.

    Raises SecretInOutput (and writes nothing) if any page would hold a token or a key.
    """
    sources = find_notebooks(notebooks)
    parsed = [nbformat.read(p, as_version=4) for p in sources]
    pages = [
        Page(p, p.stem + ".html", title_of(nb, p.stem), summary_of(nb))
        for p, nb in zip(sources, parsed, strict=True)
    ]
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    rendered: dict[str, str] = {}
    problems = []
    for i, (page, nb) in enumerate(zip(pages, parsed, strict=True)):
        body, _ = exporter.from_notebook_node(
            nb, resources={"metadata": {"name": page.title, "path": str(page.source.parent)}}
        )
        body = _offline_friendly(_link_pages(body))
        nav = _nav(pages, i)
        body = _BODY_OPEN.sub(lambda m, nav=nav: m.group(0) + nav, body, count=1)
        problems += [f"{page.source.name}: {kind}" for kind in find_secrets(body)]
        rendered[page.file] = body
    if problems:
        raise SecretInOutput(
            "refusing to publish secrets found in rendered outputs (redact them in the "
            "notebook and re-run it): " + "; ".join(problems)
        )
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise FileExistsError(
                f"{out} is not empty and is not a site built here; not replacing it"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name, body in rendered.items():
        (out / name).write_text(body, encoding="utf-8")
    (out / "index.html").write_text(_index(pages), encoding="utf-8")
    (out / MARKER).write_text("built by tools/build_site.py; the whole folder is replaced\n")
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=Path, default=REPO / "notebooks")
    parser.add_argument("--out", type=Path, default=REPO / "site")
    args = parser.parse_args(argv)
    try:
        pages = build(args.notebooks, args.out)
    except (SecretInOutput, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(pages)} notebook page(s) and index.html to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
