"""The JavaScript SDKs against the sandbox: @azure/identity, @azure/communication-identity and
@azure/communication-sms, unmodified, in Node, over real HTTPS (issue 8: "The JavaScript and
Python SDKs must both keep working against the sandbox").

Each test runs ``tests/js/flow.mjs`` with one persona's environment (as ``python -m sandbox env
--as NAME`` gives it), the sandbox's CA in ``NODE_EXTRA_CA_CERTS``, and a proxy on a dead
loopback port for every host but 127.0.0.1, so a request meant for anywhere else fails loudly
instead of leaving the machine. The script prints JSON lines (claims, never tokens); the tests
assert on those and on what the sandbox recorded.

The packages come from npm once, with the exact versions of ``tests/js/package.json``, into a
cache folder outside the repository keyed by that file's hash: 11-17 s with an empty npm
cache, ~7 s from npm's own cache, nothing once installed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers.sandbox_api import apply_env
from sandbox import world
from sandbox.acs.errors import DENIED
from tests.acs_support import MESSAGE_ID, PHONE, SENDER, connection_string
from tests.test_acs_auth import CONTRIBUTOR, _assign
from tests.test_arm import FUNC_ID, VM_ID, set_identity
from tests.test_managed_identity import (  # noqa: F401 - sp_credential is a fixture
    azure_mirid,
    claims_of,
    mi_get,
    sp_credential,
)

JS = Path(__file__).resolve().parent / "js"
CACHE = Path.home() / ".cache" / "acs-mi-kit"
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, every proxied call fails
V1_ISSUER = f"https://sts.windows.net/{world.TENANT_ID}/"


def js_packages() -> Path:
    """The folder holding ``node_modules`` for tests/js/package.json, installed once (under a
    lock, for parallel workers) with scripts off and engines enforced."""
    manifest = (JS / "package.json").read_bytes()
    folder = CACHE / f"js-{hashlib.sha256(manifest).hexdigest()[:16]}"
    done = folder / ".installed"
    if done.exists():
        return folder
    npm = shutil.which("npm")
    assert npm, "the JavaScript SDK tests need Node.js 20+ and npm"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            (folder / "package.json").write_bytes(manifest)
            installed = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts",
                 "--no-package-lock", "--engine-strict", "--no-update-notifier",
                 "--loglevel=error"],
                cwd=folder, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            assert installed.returncode == 0, f"npm install failed:\n{installed.stderr}"
            done.touch()
    return folder


@pytest.fixture(scope="session")
def node_folder() -> Path:
    return js_packages()


def flow_script(node_folder: Path) -> Path:
    """tests/js/flow.mjs, copied beside ``node_modules`` (where its imports resolve) under a
    name of its content's hash, written whole before it appears (parallel workers share it)."""
    text = (JS / "flow.mjs").read_bytes()
    script = node_folder / f"flow-{hashlib.sha256(text).hexdigest()[:16]}.mjs"
    if not script.exists():
        partial = script.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(text)
        os.replace(partial, script)
    return script


def persona_env(control: Any, persona: str) -> dict[str, str]:
    """This process's environment as ``persona``'s, with every host but loopback behind a dead
    proxy so that a request meant for anywhere else fails instead of leaving the machine."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    apply_env(env, control("GET", f"/_sandbox/personas/{persona}"))
    env.update(HTTPS_PROXY=DEAD_PROXY, HTTP_PROXY=DEAD_PROXY, NO_PROXY="127.0.0.1,localhost")
    return env


def node_flow(
    node_folder: Path, control: Any, persona: str, step: str, **extra: str
) -> subprocess.CompletedProcess:
    """``node flow.mjs STEP`` as ``persona``, every host but loopback behind a dead proxy."""
    script = flow_script(node_folder)
    env = persona_env(control, persona)
    env.update(
        NODE_EXTRA_CA_CERTS=control.doc["ca_file"],
        ACS_ENDPOINT=control.doc["acs_endpoint"],
        SMS_FROM=SENDER,
        SMS_TO=PHONE,
        **extra,
    )
    return subprocess.run(
        ["node", str(script), step], env=env, capture_output=True, text=True, timeout=60
    )


def run_flow(
    node_folder: Path, control: Any, persona: str, step: str, **extra: str
) -> list[dict[str, Any]]:
    """The step's JSON lines; the test fails if the script exits non-zero."""
    done = node_flow(node_folder, control, persona, step, **extra)
    assert done.returncode == 0, f"node flow.mjs {step} exited {done.returncode}:\n{done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def by_step(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["step"]: line for line in lines}


def assert_user(line: dict[str, Any]) -> None:
    """A Communication Services user, and a user token made for it with the asked scope."""
    assert line["id"].startswith(f"8:acs:{world.ACS_IMMUTABLE_ID}_")
    assert line["skypeid"] == line["id"].removeprefix("8:")
    assert line["acsScope"] == "chat"


def test_service_principal_creates_a_user_and_sends_an_sms(sandbox, fresh, node_folder):
    before = fresh.last_log_id()
    steps = by_step(run_flow(node_folder, fresh, "service-principal", "sp"))
    token = steps["token"]
    assert (token["ver"], token["iss"], token["appid"]) == ("1.0", V1_ISSUER, world.SP_CLIENT_ID)
    assert token["aud"] == "https://communication.azure.com/"
    assert_user(steps["user"])
    sms = steps["sms"]
    assert (sms["to"], sms["successful"], sms["httpStatusCode"]) == (PHONE, True, 202)
    assert MESSAGE_ID.fullmatch(sms["messageId"])
    [msg] = fresh("GET", f"/_sandbox/inbox/{PHONE}")["messages"]
    assert (msg["messageId"], msg["message"]) == (sms["messageId"], "Hello from JavaScript")
    # The sandbox saw the service principal's bearer token, not a key, on both calls.
    acs = [e for e in fresh.log_after(before) if e["path"] in ("/identities", "/sms")]
    assert [(e["path"], e["status"], e["credential"]) for e in acs] == [
        ("/identities", 201, "bearer"),
        ("/sms", 202, "bearer"),
    ]


def test_vm_managed_identity_gets_a_v1_token_and_creates_a_user(
    sandbox,
    fresh,
    node_folder,
    sp_credential,  # noqa: F811 - the fixture imported above
):
    vm = set_identity(sandbox, sp_credential, VM_ID, {"type": "SystemAssigned"})
    _assign(fresh, vm.identity.principal_id, CONTRIBUTOR)
    before = fresh.last_log_id()
    steps = by_step(run_flow(node_folder, fresh, "vm-tutorial", "mi"))
    token = steps["token"]
    assert (token["ver"], token["iss"]) == ("1.0", V1_ISSUER)
    assert token["xms_mirid"] == azure_mirid(VM_ID) and token["xms_mirid"].endswith(
        "/virtualMachines/vm-tutorial"
    )
    assert token["oid"] == vm.identity.principal_id
    assert_user(steps["user"])
    [entry] = [e for e in fresh.log_after(before) if e["path"] == "/identities"]
    assert (entry["status"], entry["principal_id"]) == (201, vm.identity.principal_id)


def test_imds_path_with_the_trailing_slash_msal_for_node_sends(
    sandbox,
    fresh,
    sp_credential,  # noqa: F811 - the fixture imported above
):
    """The pod-identity endpoint serves ``…/oauth2/token/`` as ``…/oauth2/token``; without the
    installation's secret segment the path is still no identity endpoint."""
    vm = set_identity(sandbox, sp_credential, VM_ID, {"type": "SystemAssigned"})
    query = "?api-version=2018-02-01&resource=https://communication.azure.com/"
    meta = {"Metadata": "true"}
    path = "/hosts/vm-tutorial/metadata/identity/oauth2/token/"
    status, body = mi_get(sandbox, path + query, meta)
    assert (status, body["resource"]) == (200, "https://communication.azure.com/")
    assert claims_of(sandbox, body["access_token"])["oid"] == vm.identity.principal_id
    secret = sandbox["mi_url"].rsplit("/", 1)[1]
    outside = {**sandbox, "mi_url": sandbox["mi_url"].removesuffix("/" + secret) + "/wrong"}
    status, body = mi_get(outside, path + query, meta)
    assert (status, body["error"]) == (400, "invalid_request")


def test_identity_without_a_role_is_denied_as_a_rest_error(
    sandbox,
    fresh,
    node_folder,
    sp_credential,  # noqa: F811 - the fixture imported above
):
    func = set_identity(sandbox, sp_credential, FUNC_ID, {"type": "SystemAssigned"})
    lines = run_flow(node_folder, fresh, "func-tutorial", "refused")
    assert by_step(lines)["token"]["oid"] == func.identity.principal_id
    refused = {line["client"]: line for line in lines if line["step"] == "refused"}
    identity, sms = refused["identity"], refused["sms"]
    assert identity["refused"] is True and sms["refused"] is True
    assert (identity["name"], identity["statusCode"], identity["code"]) == (
        "RestError",
        401,
        "Denied",
    )
    assert identity["message"] == DENIED == "Denied by the resource provider."
    # The SMS client declares no error schema; core-client 1.10 still reads an `error` object
    # (older ones put the raw body in the message, as the JS SDK's live SMS tests of 2024 show).
    assert (sms["name"], sms["statusCode"], sms["code"]) == ("RestError", 401, "Denied")
    assert sms["message"] == DENIED
    assert fresh("GET", f"/_sandbox/inbox/{PHONE}")["messages"] == []


def test_access_key_connection_string_creates_a_user(sandbox, fresh, node_folder):
    before = fresh.last_log_id()
    conn = connection_string(fresh)
    steps = by_step(
        run_flow(node_folder, fresh, "service-principal", "key", ACS_CONNECTION_STRING=conn)
    )
    assert_user(steps["user"])
    [entry] = [e for e in fresh.log_after(before) if e["path"] == "/identities"]
    assert (entry["status"], entry["credential"], entry["reason"]) == (
        201,
        "hmac",
        "signed with primaryKey",
    )


def test_laptop_default_credential_skips_managed_identity_and_uses_az(sandbox, fresh, node_folder):
    """On the developer's laptop DefaultAzureCredential finds no managed identity and moves on;
    before ``az login`` the chain fails, after ``az login --service-principal`` it reaches ACS."""
    signed_in = Path(sandbox["state_dir"]) / "azure-cli"
    shutil.rmtree(signed_in, ignore_errors=True)
    before = node_flow(node_folder, fresh, "developer", "laptop")
    assert before.returncode == 1 and "Please run 'az login'" in before.stderr, before.stderr
    # The sandbox's laptop answers the IMDS path with an empty 400 (no socket to time out on):
    # MSAL for Node reads it as a token response without "expiresOn" and the chain goes on.
    assert 'AuthenticationRequiredError: Response had no "expiresOn" property.' in before.stderr

    env = persona_env(fresh, "developer")
    secret = fresh("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]
    login = subprocess.run(
        [shutil.which("az", path=env["PATH"]), "login", "--service-principal",
         "-u", world.SP_CLIENT_ID, "-p", secret, "--tenant", world.TENANT_ID],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    try:
        steps = by_step(run_flow(node_folder, fresh, "developer", "laptop"))
    finally:
        shutil.rmtree(signed_in, ignore_errors=True)  # the next test's developer is signed out
    token = steps["token"]
    assert (token["ver"], token["iss"], token["appid"]) == ("1.0", V1_ISSUER, world.SP_CLIENT_ID)
    assert_user(steps["user"])


def test_a_stray_request_goes_to_the_dead_proxy_not_out(sandbox, control, node_folder):
    """The guard the other tests rely on: a call to a host that is not loopback goes to the dead
    local proxy and fails there (the script exits non-zero); it never reaches the network."""
    elsewhere = "endpoint=https://acs.example.invalid/;accesskey=a2V5"
    done = node_flow(
        node_folder, control, "service-principal", "stray", ACS_CONNECTION_STRING=elsewhere
    )
    assert done.returncode == 1 and "ECONNREFUSED 127.0.0.1:9" in done.stderr, done.stderr
    assert '"reached"' not in done.stdout
