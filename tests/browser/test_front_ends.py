"""The tutorial in a real browser, in both front ends the kit ships (JupyterLab, which ``make
tutorial`` opens, and Notebook 7, ``jupyter notebook``): every notebook through "Run All", the
widgets used with mouse and keyboard, and no prompt or request that leaves the machine.

One server (started by ``make tutorial``) and one Chromium serve the module per front end, as
one learner's session: the notebooks run in order against the same sandbox, each in its own
kernel. Every test stands on its own (each notebook's set-up cell catches up, the widget tests
run their notebook again), so pytest-xdist may share them out: each worker then starts its own.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from browser_lab import SCRATCH, Lab, screenshot_on_failure
from jupyter_ui import WIDGET_FALLBACK, CodeCell, JupyterUI, front_end

from sandbox import client

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))
WIDGET_CALL = re.compile(r"\bwidgets\.\w+\(")
WIDGET_DRAW_TIMEOUT_MS = 5_000


def _ui(browser: Any, lab: Lab) -> JupyterUI:
    ui = front_end(browser.new_page(), lab)
    ui.load()
    return ui


@pytest.fixture(scope="module")
def session_ui(browser: Any, lab: Lab) -> Iterator[JupyterUI]:
    ui = _ui(browser, lab)
    yield ui
    ui.page.close()


@pytest.fixture
def jupyter(session_ui: JupyterUI, request: pytest.FixtureRequest) -> Iterator[JupyterUI]:
    yield session_ui
    screenshot_on_failure(request, session_ui.page)


def widget_problems(ui: JupyterUI, cells: list[CodeCell]) -> list[str]:
    """What is wrong with the widgets of the notebook on show: a widget cell whose output the
    front end did not draw (only the text form, or ipywidgets' own error)."""
    problems = []
    for cell in cells:
        if not WIDGET_CALL.search(cell.source):
            continue
        drawn = ui.cell(cell.index).locator(".jp-OutputArea-output .jupyter-widgets .widget-button")
        try:
            drawn.first.wait_for(timeout=WIDGET_DRAW_TIMEOUT_MS)
        except Exception:  # Playwright's TimeoutError: reported below with the cell
            text = ui.cell(cell.index).locator(".jp-OutputArea").inner_text()
            problems.append(f"code cell {cell.index} shows no widget, only: {text[:200]!r}")
    for text in (WIDGET_FALLBACK, "Error displaying widget"):
        if ui.notebook.get_by_text(text).count():
            problems.append(f"the notebook shows {text!r}")
    return problems


def printed(cell: CodeCell) -> str:
    return "".join(
        "".join(out.get("text", "")) for out in cell.outputs if out.get("output_type") == "stream"
    )


# -- every notebook: Run All ----------------------------------------------------------------------


@pytest.mark.parametrize("name", NOTEBOOKS, ids=[n.split(".")[0] for n in NOTEBOOKS])
def test_run_all_cells_without_an_error(jupyter: JupyterUI, name: str):
    cells = jupyter.run_all(name)
    not_run = [c.index for c in cells if c.execution_count is None]
    assert not not_run, f"Run All stopped: code cells {not_run} of {name} did not run"
    failed = {c.index: c.errors() for c in cells if c.errors() and not c.meant_to_fail}
    assert not failed, f"{name}: cells that should work failed: {failed}"
    unraised = [c.index for c in cells if c.meant_to_fail and not c.errors()]
    assert not unraised, f"{name}: cells tagged raises-exception did not raise: {unraised}"
    assert widget_problems(jupyter, cells) == []
    # The page has been open all along: a news prompt would be showing by now (it stays).
    jupyter.expect(jupyter.news_prompt()).to_have_count(0)


# -- nothing asks for the internet ----------------------------------------------------------------


def test_the_server_fetches_no_news_and_checks_for_no_update(jupyter: JupyterUI, lab: Lab):
    """What the front ends would ask the server for, were news and update checks on: it answers
    from the kit's settings without a request beyond 127.0.0.1 (the loopback guard in the server
    would have refused and recorded one)."""
    assert lab.api("GET", "/lab/api/news") == {"news": []}
    assert lab.api("GET", "/lab/api/update") == {"notification": None}
    notification = lab.api("GET", "/lab/api/settings/@jupyterlab/apputils-extension:notification")
    defaults = {k: v["default"] for k, v in notification["schema"]["properties"].items()}
    assert defaults["fetchNews"] == "false" and defaults["checkForUpdates"] is False
    assert lab.refused() == []


# -- the widgets, used as a person uses them ------------------------------------------------------


def test_sms_composer_sends_and_its_inbox_view_shows_the_message(jupyter: JupyterUI, lab: Lab):
    # Run again: notebook 7 (clean-up) has removed the role the composer's client relies on,
    # and notebook 5's set-up cell (catch_up) puts it back, as it would for a learner.
    cells = jupyter.run_all("05-sms.ipynb")
    [index] = [c.index for c in cells if "sms_composer(" in c.source]
    composer = jupyter.widget_output(index)
    phone = lab.sandbox_status()["learner_phones"][1]  # not the default recipient
    text = f"sent from Chromium {uuid.uuid4().hex[:8]}"

    composer.locator(".widget-text input").fill(phone)
    composer.locator(".widget-textarea textarea").fill(text)
    composer.get_by_role("button", name="Send").click()

    result = composer.locator(".widget-html-content")
    expect = jupyter.expect
    expect(result).to_contain_text("✓ accepted")
    expect(result).to_contain_text(f"inbox of {phone}")
    expect(result).to_contain_text(text)
    inbox = client.control(lab.settings, "GET", f"/_sandbox/inbox/{quote(phone)}")
    [sent] = [m for m in inbox["messages"] if m["message"] == text]
    assert sent["tag"] == "sms-composer"


def test_token_inspector_shows_the_claims_of_the_scope_typed(jupyter: JupyterUI):
    cells = jupyter.ensure_ran(SCRATCH)
    principal = printed(cells[0]).split("VM principal:", 1)[1].strip()
    inspector = jupyter.widget_output(1)
    result = inspector.locator(".widget-html-content")
    expect = jupyter.expect

    inspector.get_by_role("button", name="Get token").click()
    expect(result).to_contain_text("signature not shown")
    expect(result).to_contain_text("https://communication.azure.com")
    expect(result).to_contain_text(principal)

    inspector.locator(".widget-text input").fill("https://management.azure.com/.default")
    inspector.get_by_role("button", name="Get token").click()
    expect(result).to_contain_text("https://management.azure.com")
    expect(result).not_to_contain_text("https://communication.azure.com")


def test_role_switch_call_refused_then_allowed_then_refused(jupyter: JupyterUI):
    jupyter.run_all(SCRATCH)  # its first cell resets the sandbox: the VM has no role
    switch = jupyter.widget_output(2)
    status, result = switch.locator(".widget-html-content").all()
    expect = jupyter.expect

    switch.get_by_role("button", name="Try the call").click()
    expect(result).to_contain_text("✗ refused (401")

    switch.get_by_role("radio", name=re.compile(r"^Contributor on ")).check()
    switch.get_by_role("button", name="Apply").click()
    expect(status).to_contain_text("✓ Contributor on acs-tutorial granted.")
    switch.get_by_role("button", name="Try the call").click()
    expect(result).to_contain_text("✓ allowed: create_user()")

    switch.get_by_role("radio", name="no role").check()
    switch.get_by_role("button", name="Apply").click()
    expect(status).to_contain_text("removed")
    switch.get_by_role("button", name="Try the call").click()
    expect(result).to_contain_text("✗ refused (401")


# -- the check itself can fail --------------------------------------------------------------------


@pytest.fixture
def lab_without_widgets(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Lab]:
    """A second ``make tutorial`` (same front end) whose ipywidgets front end is turned off, as a
    broken or missing widget extension leaves it, and whose learner chose to be asked about
    news (a user setting beats the kit's default)."""
    broken = Lab(tmp_path_factory.mktemp(f"browser-{lab.app}-broken"), app=lab.app)
    broken.prepare()
    labconfig = Path(broken.env["JUPYTER_CONFIG_DIR"]) / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyter-widgets/jupyterlab-manager": True}})
    )
    broken.user_setting(
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings", {"fetchNews": "none"}
    )
    try:
        broken.start()
        yield broken
    finally:
        broken.stop()


@pytest.fixture
def broken_ui(
    browser: Any, lab_without_widgets: Lab, request: pytest.FixtureRequest
) -> Iterator[JupyterUI]:
    ui = _ui(browser, lab_without_widgets)
    yield ui
    screenshot_on_failure(request, ui.page)
    ui.page.close()


def test_a_broken_widget_front_end_and_a_news_prompt_are_caught(broken_ui: JupyterUI):
    asked = 1 if broken_ui.asks_about_news else 0
    broken_ui.expect(broken_ui.news_prompt()).to_have_count(asked, timeout=60_000)
    cells = broken_ui.run_all("05-sms.ipynb")
    problems = widget_problems(broken_ui, cells)
    [index] = [c.index for c in cells if "sms_composer(" in c.source]
    assert any(p.startswith(f"code cell {index} shows no widget") for p in problems), problems
