"""The widgets from the keyboard, and what a screen reader hears: every control has a name.

Each widget is drawn by JupyterLab in Chromium (the ``make tutorial`` of browser_lab.py), then
read through the browser's accessibility tree (Playwright's ARIA snapshot and role selectors,
which compute accessible names as assistive technology does), and used with Tab, Space, Enter
and the arrow keys only: no clicks after the first focus.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from browser_lab import Lab, screenshot_on_failure
from jupyter_ui import JupyterUI, front_end

from sandbox import client

NAME = "accessibility-widgets.ipynb"
# One cell per widget, in the state the notebooks show them: after notebook 2, as the VM.
CELLS = [
    """import helpers
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.sms import SmsClient
from azure.identity import ManagedIdentityCredential
from helpers import progress, widgets

kit = helpers.setup()
kit.sandbox.call("POST", "/_sandbox/reset")
helpers.catch_up(through=2, quiet=True)
with helpers.acting_as("developer"):
    principals = progress.enable_identities(kit, progress.SharedToken())
helpers.act_as("vm-tutorial")
credential = ManagedIdentityCredential()""",
    "widgets.sms_composer(SmsClient(kit.acs_endpoint, credential), kit)",
    "widgets.identity_explorer(CommunicationIdentityClient(kit.acs_endpoint, credential))",
    "widgets.role_switch(principals['vm'], credential=credential)",
    "widgets.token_inspector(credential)",
    "widgets.credential_chain_explorer()",
]
SMS, IDENTITY, ROLE, TOKEN, CHAIN = range(1, 6)
# The roles of controls a person operates; each must have a name in the accessibility tree.
CONTROLS = ("button", "checkbox", "combobox", "listbox", "radio", "slider", "spinbutton",
            "textbox")  # fmt: skip
_SNAPSHOT_LINE = re.compile(r"^\s*- (\w+)(?: \"([^\"]*)\")?")
_ICON_GLYPH = re.compile("[\ue000-\uf8ff]")


def notebook() -> dict[str, Any]:
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"a11y-{i}", "metadata": {},
         "outputs": [], "source": source}
        for i, source in enumerate(CELLS)
    ]  # fmt: skip
    kernel = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    return {"cells": cells, "metadata": {"kernelspec": kernel}, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture(scope="module")
def shown(browser: Any, lab: Lab) -> Iterator[JupyterUI]:
    """The front end (JupyterLab, then Notebook 7) with the widgets' notebook run once (the
    module's tests share it)."""
    (lab.kit / "notebooks" / NAME).write_text(json.dumps(notebook(), indent=1))
    ui = front_end(browser.new_page(), lab)
    ui.load()
    cells = ui.run_all(NAME)
    assert all(c.execution_count for c in cells), [c.errors() for c in cells]
    yield ui
    ui.page.close()


@pytest.fixture
def ui(shown: JupyterUI, request: pytest.FixtureRequest) -> Iterator[JupyterUI]:
    yield shown
    screenshot_on_failure(request, shown.page)


def badly_named_controls(widget: Any) -> list[str]:
    """Controls in the widget's accessibility tree that a screen reader would announce by role
    alone, or with an icon font's glyph (a private-use character) in the name."""
    found = []
    for line in widget.aria_snapshot().splitlines():
        match = _SNAPSHOT_LINE.match(line)
        if not match or match.group(1) not in CONTROLS:
            continue
        name = match.group(2) or ""
        if not name.strip() or _ICON_GLYPH.search(name):
            found.append(line.strip())
    return found


@pytest.mark.parametrize("index", [SMS, IDENTITY, ROLE, TOKEN, CHAIN])
def test_every_control_has_an_accessible_name(ui: JupyterUI, index: int):
    widget = ui.widget_output(index)
    snapshot = widget.aria_snapshot()
    assert any(_SNAPSHOT_LINE.match(x) and _SNAPSHOT_LINE.match(x).group(1) in CONTROLS
               for x in snapshot.splitlines()), snapshot  # fmt: skip
    assert badly_named_controls(widget) == [], snapshot


def test_the_names_say_what_each_control_is(ui: JupyterUI):
    sms = ui.widget_output(SMS)
    for role, name in [("combobox", "from"), ("combobox", "to"), ("textbox", "message"),
                       ("checkbox", "delivery report"), ("button", "Send")]:  # fmt: skip
        assert sms.get_by_role(role, name=name, exact=True).count() == 1, (role, name)
    identity = ui.widget_output(IDENTITY)
    assert identity.get_by_role("checkbox", name="voip", exact=True).count() == 1
    assert identity.get_by_role("spinbutton", name="expires in (min)").count() == 1
    role = ui.widget_output(ROLE)
    assert role.get_by_role("radio", name="no role", exact=True).count() == 1
    assert role.get_by_role("radio", name=re.compile(r"^Contributor on ")).count() == 1
    chain = ui.widget_output(CHAIN)
    assert chain.get_by_role("combobox", name="run as").count() == 1
    assert ui.widget_output(TOKEN).get_by_role("textbox", name="scope").count() == 1


def test_the_sms_composer_by_keyboard_alone(ui: JupyterUI, lab: Lab):
    composer = ui.widget_output(SMS)
    page, expect = ui.page, ui.expect
    sender = composer.get_by_role("combobox", name="from")
    to = composer.get_by_role("combobox", name="to")
    message = composer.get_by_role("textbox", name="message")
    report = composer.get_by_role("checkbox", name="delivery report")
    send = composer.get_by_role("button", name="Send")

    sender.focus()
    expect(sender).to_be_focused()
    page.keyboard.press("Tab")  # the focus order is the reading order
    expect(to).to_be_focused()
    phone = lab.sandbox_status()["learner_phones"][2]
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(phone)
    page.keyboard.press("Tab")
    expect(message).to_be_focused()
    text = f"typed, not clicked {uuid.uuid4().hex[:8]}"
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(text)
    page.keyboard.press("Tab")
    expect(report).to_be_focused()
    expect(report).to_be_checked()
    page.keyboard.press("Space")
    expect(report).not_to_be_checked()
    page.keyboard.press("Tab")
    expect(send).to_be_focused()
    page.keyboard.press("Enter")

    expect(composer.locator(".widget-html-content")).to_contain_text("✓ accepted")
    inbox = client.control(lab.settings, "GET", f"/_sandbox/inbox/{quote(phone)}")
    assert [m["message"] for m in inbox["messages"]] == [text]


def test_the_identity_explorer_by_keyboard_alone(ui: JupyterUI):
    explorer = ui.widget_output(IDENTITY)
    page, expect = ui.page, ui.expect
    chat = explorer.get_by_role("checkbox", name="chat", exact=True)
    voip = explorer.get_by_role("checkbox", name="voip", exact=True)
    expiry = explorer.get_by_role("spinbutton", name="expires in (min)")
    button = explorer.get_by_role("button", name="Create user and token")

    chat.focus()
    page.keyboard.press("Tab")
    expect(voip).to_be_focused()
    page.keyboard.press("Space")
    expect(voip).to_be_checked()
    for _ in range(3):  # past the other scopes, to the lifetime
        page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(expiry).to_be_focused()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("90")
    page.keyboard.press("Tab")  # leaving the field commits the value
    expect(button).to_be_focused()
    page.keyboard.press("Space")

    result = explorer.locator(".widget-html-content")
    expect(result).to_contain_text("token for chat, voip")
    expect(result).to_contain_text("(expires in 90 min)")


def test_the_role_switch_by_keyboard_alone(ui: JupyterUI):
    switch = ui.widget_output(ROLE)
    page, expect = ui.page, ui.expect
    none = switch.get_by_role("radio", name="no role", exact=True)
    granted = switch.get_by_role("radio", name=re.compile(r"^Contributor on "))
    apply = switch.get_by_role("button", name="Apply")
    status, result = switch.locator(".widget-html-content").all()

    none.focus()
    expect(none).to_be_checked()
    # Each choice is a Tab stop of its own and Space picks it: JupyterLab keeps the arrow
    # keys for moving between cells whenever the focus is not in a text field.
    page.keyboard.press("Tab")
    expect(granted).to_be_focused()
    page.keyboard.press("Space")
    expect(granted).to_be_checked()
    expect(none).not_to_be_checked()
    page.keyboard.press("Tab")
    expect(apply).to_be_focused()
    page.keyboard.press("Enter")
    expect(status).to_contain_text("✓ Contributor on acs-tutorial granted.")
    page.keyboard.press("Tab")
    expect(switch.get_by_role("button", name="Try the call")).to_be_focused()
    page.keyboard.press("Enter")
    expect(result).to_contain_text("✓ allowed: create_user()")
