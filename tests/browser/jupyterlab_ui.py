"""JupyterLab driven the way a person drives it: the file browser, the menus, the widgets.

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
TABS = "#jp-main-dock-panel .lm-DockPanel-tabBar .lm-TabBar-tab"
RUN_TIMEOUT_MS = 240_000  # one whole notebook
KERNEL_TIMEOUT_MS = 60_000
WIDGET_FALLBACK = "interactive: run the notebook"  # the widgets' text form (helpers/widgets.py)

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
  const status = [...document.querySelectorAll('.jp-StatusBar-TextItem')]
      .some(e => / \\| Idle$/.test(e.textContent));
  return failed && status;
}""".replace("NOTEBOOK", NOTEBOOK)


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


class JupyterLabUI:
    """One browser tab holding JupyterLab; notebooks open as tabs inside it."""

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
        self.page.goto(self.lab.page_url("lab"))
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
        """Show a notebook: its tab if it is open, else a double click in the file browser;
        then wait for its kernel."""
        tab = self.page.locator(TABS, has_text=name)
        if tab.count():
            tab.first.click()
        else:
            self.page.locator(".jp-DirListing-item", has_text=name).dblclick()
        self.page.locator(f"{TABS}.jp-mod-current", has_text=name).wait_for()
        self.wait_idle()

    def wait_idle(self) -> None:
        self.page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r" \| Idle$")).wait_for(
            timeout=KERNEL_TIMEOUT_MS
        )

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
        self.menu("File", "Save Notebook")
        self.page.locator(f"{TABS}.jp-mod-current:not(.jp-mod-dirty)", has_text=name).wait_for()
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

    def shut_down_kernels(self) -> None:
        for kernel in self.lab.api("GET", "/api/kernels"):
            self.lab.api("DELETE", f"/api/kernels/{kernel['id']}")
