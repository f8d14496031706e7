"""az_login: the sandbox's real `az login --use-device-code`, approved as a facilitator would."""

from __future__ import annotations

import os
import re

import pytest
from azure.identity import AzureCliCredential

import helpers
from helpers import sandbox_api
from helpers.signin import AzLogin

DEVELOPER = "developer@contososandbox.onmicrosoft.com"


def test_device_code_sign_in_then_the_cli_credential_works(kit, shown):
    login = helpers.az_login()
    assert re.fullmatch(r"[A-Z0-9]{9}", login.code)
    assert login.url == kit.status["https_url"] + "/devicelogin"
    assert login.message == (
        f"To sign in, use a web browser to open the page {login.url} and enter the code "
        f"{login.code} to authenticate."
    )
    assert repr(shown[0]) == login.message
    assert repr(login) == "<az login: waiting for sign-in>"

    mark = kit.sandbox.mark()
    kit.sandbox.approve(login.code)
    login.wait(timeout=30)
    assert login.user == DEVELOPER
    # The sandbox's az waits (up to `interval`, until the answer) before it polls, so an
    # approval given as the code appears is there at the first poll: one redemption, no
    # authorization_pending.
    polls = [e for e in kit.sandbox.requests_since(mark) if e.get("credential") == "device-code"]
    assert [e["decision"] for e in polls] == ["issued"]
    assert repr(shown[-1]) == (
        f"✓ Signed in as {DEVELOPER} (subscription 'ACS tutorial subscription')."
    )
    token = AzureCliCredential().get_token("https://management.azure.com/.default")
    assert helpers.token_claims(token.token)["upn"] == DEVELOPER


def test_wait_times_out_and_can_be_called_again(kit, shown):
    login = helpers.az_login()
    with pytest.raises(TimeoutError, match=f"enter the code {login.code}"):
        login.wait(timeout=0.2)
    kit.sandbox.approve(login.code)
    login.wait(timeout=30)
    assert login.user == DEVELOPER


def test_a_declined_sign_in_fails_with_the_reason(kit):
    login = helpers.az_login()
    kit.sandbox.call("POST", f"/_sandbox/device-codes/{login.code}/deny")
    with pytest.raises(RuntimeError, match="az login failed: ERROR: "):
        login.wait(timeout=30)


def test_az_login_works_while_the_kernel_acts_as_a_host(kit):
    helpers.act_as("vm-tutorial")
    login = helpers.az_login()  # runs with the developer persona's environment, not the kernel's
    kit.sandbox.approve(login.code)
    login.wait(timeout=30)
    assert login.user == DEVELOPER
    assert os.environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST", "").endswith("/hosts/vm-tutorial")


def test_on_azure_it_only_tells_you_what_to_run(monkeypatch, shown):
    from helpers import target
    from helpers.target import AZURE, Kit

    monkeypatch.setattr(target, "_current", Kit(AZURE, "https://x.y/", "s", "g", "n", "+1", ["+2"]))
    login = helpers.az_login()
    assert login.code is None and "run `az login`" in login.message
    assert repr(shown[-1]) == login.message


def test_on_azure_wait_reports_the_cli_account(kit, shown, monkeypatch):
    """The Azure path runs `az account show`; the sandbox's az answers it the same way."""
    login = helpers.az_login()
    kit.sandbox.approve(login.code)
    login.wait(timeout=30)
    env = dict(os.environ)
    sandbox_api.apply_env(env, kit.sandbox.persona("developer"))
    monkeypatch.setenv("PATH", env["PATH"])
    AzLogin().wait()
    assert repr(shown[-1]).startswith(f"✓ Signed in as {DEVELOPER}")
    monkeypatch.setenv("PATH", "/nonexistent")
    AzLogin().wait()
    assert repr(shown[-1]).startswith("✗ The Azure CLI is not installed")
