"""JupyterLab and Notebook 7 driven the way a person drives them: the file browser, the menus,
the widgets.

The two front ends are built from the same parts (the notebook panel, its toolbar's kernel
indicator, the menus and their labels, the widget manager), so one class drives both; what
differs is where a notebook opens: a tab inside JupyterLab, a page of its own in Notebook 7
(``JupyterLabUI``, ``NotebookUI``; ``front_end`` picks one).

Only clean-up goes around the UI (shutting kernels down through the REST API). Which cells are
meant to fail is read from the notebook file, where the ``raises-exception`` tag lives; what
they printed is read from the file after "Save", because the DOM cannot tell a traceback from
text written to stderr.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"
# The notebook toolbar's kernel name and kernel indicator, in both front ends. The indicator
# says "idle" before there is a kernel too; the name says "No Kernel" until there is one.
IDLE = f'{NOTEBOOK} .jp-Notebook-ExecutionIndicator[data-status="idle"]'
KERNEL_NAME = f"{NOTEBOOK} .jp-KernelName"
TABS = "#jp-main-dock-panel .lm-DockPanel-tabBar .lm-TabBar-tab"
RUN_TIMEOUT_MS = 240_000  # one whole notebook
KERNEL_TIMEOUT_MS = 60_000
WIDGET_FALLBACK = "interactive: run the notebook"  # the widgets' text form (helpers/widgets.py)
# The toast JupyterLab's notification plugin shows when news fetching is left undecided.
NEWS_PROMPT = "Would you like to get notified about official Jupyter news?"
SAVE_TIMEOUT_MS = 30_000

# Done when nothing is queued or running and every code cell has an execution count, or, if a
# cell that was meant to work failed (the kernel then drops the rest of the queue), when the
# kernel is idle again. Cells that Run All has queued show "[*]".
_FINISHED = """([expected, tagged]) => {
  const panel = document.querySelector('NOTEBOOK');
  if (!panel) return false;
  const cells = [...panel.querySelectorAll('.jp-CodeCell')];
  const prompts = cells.map(c => (c.querySelector('.jp-InputArea-prompt') || {}).textContent || '');
  if (prompts.some(t => t.includes('*'))) return false;
  if (prompts.filter(t => /\\d/.test(t)).length === expected) return true;
  const failed = cells.some((c, i) => !tagged.includes(i) &&
      c.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'));
  return failed && !!document.querySelector('IDLE');
}""".replace("IDLE", IDLE).replace("NOTEBOOK", NOTEBOOK)


@dataclass
class CodeCell:
    index: int  # among code cells
    source: str
    tags: list[str]
    execution_count: int | None
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def meant_to_fail(self) -> bool:
        return "raises-exception" in self.tags

    def errors(self) -> list[str]:
        found = []
        for out in self.outputs:
            if out.get("output_type") == "error":
                found.append(f"{out.get('ename')}: {out.get('evalue')}")
            elif out.get("name") == "stderr" and "Traceback" in "".join(out.get("text", "")):
                found.append("traceback on stderr: " + "".join(out["text"])[-300:])
        return found


def code_cells(path: Path) -> list[CodeCell]:
    doc = json.loads(path.read_text())
    cells = [c for c in doc["cells"] if c["cell_type"] == "code"]
    return [
        CodeCell(
            i,
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"],
            list(c.get("metadata", {}).get("tags", [])),
            c.get("execution_count"),
            list(c.get("outputs", [])),
        )
        for i, c in enumerate(cells)
    ]


class JupyterUI:
    """One browser page on a Jupyter front end, and the notebooks the test ran there."""

    home = ""  # the page the front end opens on: its file browser
    asks_about_news = True  # whether its pages carry JupyterLab's news prompt at all

    def __init__(self, page: Any, lab: Any) -> None:
        from playwright.sync_api import expect

        self.page = page
        self.lab = lab
        self.ran: set[str] = set()
        self.expect = expect  # Playwright's waiting assertions

    def code_cells(self, name: str) -> list[CodeCell]:
        """The code cells of a notebook as last saved."""
        return code_cells(self.lab.kit / "notebooks" / name)

    def load(self) -> None:
        self.page.goto(self.lab.page_url(self.home))
        self.page.locator(".jp-DirListing-item").first.wait_for(timeout=KERNEL_TIMEOUT_MS)

    def menu(self, top: str, item: str) -> None:
        self.page.locator(".lm-MenuBar-item", has_text=top).click()
        # A menu item's accessible name ends with its shortcut, if it has one ("… Ctrl+S").
        label = re.compile(rf"^{re.escape(item)}( \S+\+\S+)?$")
        self.page.get_by_role("menuitem", name=label).click()

    @property
    def notebook(self) -> Any:
        return self.page.locator(NOTEBOOK)

    def cell(self, index: int) -> Any:
        """The DOM of the index-th code cell of the notebook on show."""
        return self.notebook.locator(".jp-CodeCell").nth(index)

    def open(self, name: str) -> None:
        """Show a notebook, then wait for its kernel."""
        raise NotImplementedError

    def wait_idle(self) -> None:
        """Wait until the notebook on show has a kernel and it is idle (Run All before the
        kernel is there asks which kernel to start instead of running)."""
        has_kernel = self.page.locator(KERNEL_NAME).filter(has_not_text="No Kernel")
        has_kernel.wait_for(timeout=KERNEL_TIMEOUT_MS)
        self.page.locator(IDLE).wait_for(timeout=KERNEL_TIMEOUT_MS)

    def run_all(self, name: str) -> list[CodeCell]:
        """Clear the outputs, Run All Cells, wait, save; the code cells as saved."""
        path = self.lab.kit / "notebooks" / name
        cells = code_cells(path)
        tagged = [c.index for c in cells if c.meant_to_fail]
        self.open(name)
        self.menu("Edit", "Clear Outputs of All Cells")
        self.menu("Run", "Run All Cells")
        self.page.wait_for_function(
            _FINISHED, arg=[len(cells), tagged], timeout=RUN_TIMEOUT_MS, polling=200
        )
        before = path.stat().st_mtime_ns
        # The server answers the front end's save once the file is written (it writes in
        # place, so the file is not whole before that).
        with self.page.expect_response(
            lambda r: r.request.method == "PUT" and "/api/contents/" in r.url,
            timeout=SAVE_TIMEOUT_MS,
        ) as saved:
            self.menu("File", "Save Notebook")
        assert saved.value.ok, f"saving {name}: HTTP {saved.value.status}"
        assert path.stat().st_mtime_ns != before, f"{name} was not saved"
        self.ran.add(name)
        return code_cells(path)

    def ensure_ran(self, name: str) -> list[CodeCell]:
        """Show a notebook that has run in this session (Run All if it has not yet)."""
        if name not in self.ran:
            return self.run_all(name)
        self.open(name)
        return self.code_cells(name)

    def widget_output(self, index: int) -> Any:
        """The rendered widget in a code cell's output (waits for the front end to draw it)."""
        widget = self.cell(index).locator(".jp-OutputArea-output .jupyter-widgets").first
        widget.wait_for(timeout=15_000)
        return widget

    def news_prompt(self) -> Any:
        """The news toast (it stays until dismissed: autoClose is off)."""
        return self.page.get_by_text(NEWS_PROMPT)

    def shut_down_kernels(self) -> None:
        for kernel in self.lab.api("GET", "/api/kernels"):
            self.lab.api("DELETE", f"/api/kernels/{kernel['id']}")


class JupyterLabUI(JupyterUI):
    """JupyterLab: notebooks open as tabs inside one page."""

    home = "lab"

    def open(self, name: str) -> None:
        """Its tab if it is open, else a double click in the file browser."""
        tab = self.page.locator(TABS, has_text=name)
        if tab.count():
            tab.first.click()
        else:
            self.page.locator(".jp-DirListing-item", has_text=name).dblclick()
        self.page.locator(f"{TABS}.jp-mod-current", has_text=name).wait_for()
        self.wait_idle()


class NotebookUI(JupyterUI):
    """Notebook 7 (``jupyter notebook``): the file browser on /tree, each notebook on a page of
    its own (/notebooks/NAME), which this page goes to, as a learner following a link."""

    home = "tree"
    # Its pages do not load JupyterLab's announcements plugin: no news prompt, even when a
    # learner's settings ask for one (the server's news and update answers still matter).
    asks_about_news = False

    def open(self, name: str) -> None:
        if not self.page.url.split("?")[0].endswith(f"/notebooks/{name}"):
            self.page.goto(self.lab.page_url(f"notebooks/{name}"))
        self.notebook.wait_for(timeout=KERNEL_TIMEOUT_MS)
        self.wait_idle()


def front_end(page: Any, lab: Any) -> JupyterUI:
    """The driver for the front end ``lab`` runs (``lab.app``: ``lab`` or ``notebook``)."""
    return {"lab": JupyterLabUI, "notebook": NotebookUI}[lab.app](page, lab)
