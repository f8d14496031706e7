"""The plain scripts in examples/ (what notebooks 3, 4 and 5 end with) run as a deployed app
would: a separate process, no helpers, the variables ``python -m sandbox env --as vm-tutorial``
prints (as examples/README.md says), and the live sandbox answering. They are judged by what
they print and by what the sandbox saw: who called, how many token requests, the users left
behind, the messages in the inbox.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier
from azure.core.exceptions import HttpResponseError
from azure.identity import AzureCliCredential
from helpers_kit import connection_string

import helpers
from helpers import progress
from sandbox.personas import CREDENTIAL_VARIABLES
from tools.notebook_env import GUARD

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture
def caught_up(kit) -> dict[str, str]:
    """The world after notebook 2: identities on, roles granted; the principals by name."""
    helpers.catch_up(through=2, quiet=True)
    with helpers.acting_as("developer"):
        return progress.enable_identities(kit, AzureCliCredential())


def run(
    kit: Any, tmp_path: Path, script: str, persona: str, *args: str, **settings: str
) -> subprocess.CompletedProcess:
    """``eval "$(python -m sandbox env --as PERSONA)"; python examples/SCRIPT ARGS`` in a clean
    environment with the loopback guard, as examples/README.md tells a learner to."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in CREDENTIAL_VARIABLES and not k.startswith(("SANDBOX_", "KIT_", "REQUESTS_"))
    }
    guard_log = tmp_path / f"{script}-{persona}-guard.log"
    env.update(
        SANDBOX_STATE_DIR=kit.sandbox.status["state_dir"],
        PYTHONPATH=str(GUARD),
        KIT_LOOPBACK_GUARD_LOG=str(guard_log),
    )
    python = shlex.quote(sys.executable)
    # The app's settings after the persona's: it unsets every credential variable first.
    exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in settings.items())
    shell = f'eval "$({python} -m sandbox env --as {persona})" && {exports}exec {python} "$@"'
    result = subprocess.run(
        ["bash", "-c", shell, "example", str(EXAMPLES / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not guard_log.exists() or guard_log.read_text() == "", guard_log.read_text()
    assert "Traceback" not in result.stderr, result.stderr
    return result


def printed(result: subprocess.CompletedProcess) -> dict[str, str]:
    """``label: value`` lines of the script's output, by label."""
    lines = (line.partition(": ") for line in result.stdout.splitlines())
    return {label: value for label, sep, value in lines if sep}


def test_authenticate_on_the_vm_is_its_identity_and_one_token_request(kit, caught_up, tmp_path):
    mark = kit.sandbox.mark()
    result = run(kit, tmp_path, "authenticate.py", "vm-tutorial")
    assert result.returncode == 0, result.stderr
    shown = printed(result)
    assert shown["audience (aud)"] == "https://communication.azure.com/"
    assert shown["object id (oid)"] == caught_up["vm"]
    assert shown["managed identity (xms_mirid)"].endswith("/virtualMachines/vm-tutorial")
    assert shown["second call served from the credential's cache"] == "True"
    assert "eyJ" not in result.stdout  # claims only, never the token
    token_requests = [e for e in kit.sandbox.requests_since(mark) if e["listener"] == "mi"]
    assert [(e["caller"], e["status"]) for e in token_requests] == [("vm-tutorial", 200)]


def test_authenticate_picks_the_user_assigned_identity_by_client_id(kit, caught_up, tmp_path):
    client_id = caught_up["uai_client_id"]
    result = run(kit, tmp_path, "authenticate.py", "func-tutorial", AZURE_CLIENT_ID=client_id)
    assert result.returncode == 0, result.stderr
    assert printed(result)["object id (oid)"] == caught_up["uai"]
    # Without it, the Function app's own (system-assigned) identity answers.
    result = run(kit, tmp_path, "authenticate.py", "func-tutorial")
    assert printed(result)["object id (oid)"] == caught_up["func"]


def test_the_pinned_chain_gives_the_same_identity(kit, caught_up, tmp_path):
    pinned = {"AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential"}
    result = run(kit, tmp_path, "authenticate.py", "vm-tutorial", **pinned)
    assert result.returncode == 0, result.stderr
    assert printed(result)["object id (oid)"] == caught_up["vm"]


def test_authenticate_without_an_identity_says_so(kit, tmp_path):
    helpers.catch_up(through=0, quiet=True)  # the VM's identity is still off
    result = run(kit, tmp_path, "authenticate.py", "vm-tutorial")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("no token: ManagedIdentityCredential")
    assert result.stdout == ""


def test_identity_api_creates_a_user_and_deletes_it(kit, caught_up, tmp_path):
    acs = {"ACS_ENDPOINT": kit.acs_endpoint}
    mark = kit.sandbox.mark()
    result = run(kit, tmp_path, "identity_api.py", "vm-tutorial", **acs)
    assert result.returncode == 0, result.stderr
    shown = printed(result)
    user = shown["created user"]
    assert shown["deleted user"] == user
    assert "revoked its tokens" in result.stdout
    assert "eyJ" not in result.stdout
    calls = [
        (e["method"], e["path"], e["status"], e.get("principal_id"))
        for e in kit.sandbox.requests_since(mark)
        if e["listener"] == "https"
    ]
    vm = caught_up["vm"]
    assert calls == [
        ("POST", "/identities", 201, vm),
        ("POST", f"/identities/{user}/:issueAccessToken", 200, vm),
        ("POST", f"/identities/{user}/:revokeAccessTokens", 204, vm),
        ("DELETE", f"/identities/{user}", 204, vm),
    ]
    assert len([e for e in kit.sandbox.requests_since(mark) if e["listener"] == "mi"]) == 1
    # The user is gone: not even the access key can issue it a token.
    admin = CommunicationIdentityClient.from_connection_string(connection_string(kit))
    with pytest.raises(HttpResponseError):  # its status is the Identity API's business
        admin.get_token(CommunicationUserIdentifier(user), ["chat"])


def test_identity_api_without_a_role_is_refused_and_creates_nothing(kit, tmp_path):
    helpers.catch_up(through=1, quiet=True)  # identity on, no role yet
    mark = kit.sandbox.mark()
    result = run(kit, tmp_path, "identity_api.py", "vm-tutorial", ACS_ENDPOINT=kit.acs_endpoint)
    assert result.returncode == 1
    refusal = re.fullmatch(r"refused \((\d{3})\): .+", result.stderr.splitlines()[-1])
    assert refusal and refusal.group(1) in ("401", "403"), result.stderr
    created = [e for e in kit.sandbox.requests_since(mark) if e["path"] == "/identities"]
    assert [e["status"] for e in created] == [int(refusal.group(1))]


def test_send_sms_lands_in_each_recipients_inbox(kit, caught_up, tmp_path):
    text = f"examples test {uuid.uuid4()}"
    to = kit.phones[:2]
    settings = {
        "ACS_ENDPOINT": kit.acs_endpoint,
        "SMS_FROM_NUMBER": kit.sender,
        "SMS_TO_NUMBER": ",".join(to),
    }
    result = run(kit, tmp_path, "send_sms.py", "vm-tutorial", text, **settings)
    assert result.returncode == 0, result.stderr
    ids = {}
    for phone in to:
        line = next(x for x in result.stdout.splitlines() if x.startswith(phone))
        ids[phone] = line.rsplit(" ", 1)[-1]
        assert "accepted" in line
    for phone in to:
        inbox = kit.sandbox.call("GET", f"/_sandbox/inbox/{phone}")["messages"]
        ours = [m for m in inbox if m["message"] == text]
        assert [(m["from"], m["messageId"], m["tag"]) for m in ours] == [
            (kit.sender, ids[phone], "examples/send_sms.py")
        ]


@pytest.mark.parametrize("script", ["identity_api.py", "send_sms.py"])
def test_a_missing_setting_is_named(kit, tmp_path, script):
    result = run(kit, tmp_path, script, "vm-tutorial")
    assert result.returncode == 2
    assert result.stderr.startswith("set ACS_ENDPOINT")
