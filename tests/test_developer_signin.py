"""The developer's sign-in: DeviceCodeCredential, the device-code web page, the sandbox's ``az``
and DefaultAzureCredential on a laptop with no managed identity."""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    AzureCliCredential,
    DefaultAzureCredential,
    DeviceCodeCredential,
    ManagedIdentityCredential,
)
from azure.identity._exceptions import CredentialUnavailableError

from sandbox import world
from tests.test_entra import (
    ACS_SCOPE,
    ARM_SCOPE,
    CLI,
    SP,
    TENANT,
    make_verifier,
    poll,
    start_device_code,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CODE_IN_MESSAGE = re.compile(r"enter the code (\w+) to authenticate")


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture(scope="module")
def verify(sandbox):
    return make_verifier(sandbox)


def https_text(sandbox, method: str, path: str, **kwargs) -> tuple[int, str]:
    ctx = ssl.create_default_context(cafile=sandbox["ca_file"])
    req = urllib.request.Request(sandbox["https_url"] + path, method=method, **kwargs)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# -- DeviceCodeCredential --------------------------------------------------------------------


def test_device_code_credential_completes_after_approval(sandbox, fresh, persona, verify):
    persona("developer")
    prompts = []

    def approve(uri: str, user_code: str, expires_on) -> None:
        prompts.append((uri, user_code))
        fresh("POST", f"/_sandbox/device-codes/{user_code}/approve")  # the person signs in

    cred = DeviceCodeCredential(
        client_id=CLI,
        tenant_id=TENANT,
        authority=sandbox["https_url"],
        disable_instance_discovery=True,
        prompt_callback=approve,
    )
    token = cred.get_token(ARM_SCOPE)
    assert prompts and prompts[0][0] == f"{sandbox['https_url']}/devicelogin"
    claims = verify(token.token, "https://management.azure.com")
    assert claims["oid"] == world.DEVELOPER_OID and "idtyp" not in claims  # a user token
    assert claims["upn"] == world.DEVELOPER_UPN

    # Another resource comes from MSAL's cache by refresh token: no second prompt.
    before = fresh.last_log_id()
    other = cred.get_token("https://graph.microsoft.com/.default")
    assert len(prompts) == 1
    assert claims_of(other.token)["aud"] == "https://graph.microsoft.com"
    grants = [e for e in fresh.log_after(before) if e["path"].endswith("/token")]
    assert [(e["credential"], e["decision"]) for e in grants] == [("refresh-token", "issued")]

    # Communication Services: Entra refuses the developer client (AADSTS65002), as on Azure.
    with pytest.raises(ClientAuthenticationError, match="AADSTS65002"):
        cred.get_token(ACS_SCOPE)


# -- the device-code page ----------------------------------------------------------------------


def developer_password(sandbox) -> str:
    """What a learner runs to see the password (the state folder's owner only)."""
    out = subprocess.run(
        [sys.executable, "-m", "sandbox", "password"],
        env=dict(os.environ, SANDBOX_STATE_DIR=sandbox["state_dir"]),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return re.search(r"password:\s+(\S+)", out).group(1)


def submit(sandbox, **fields) -> tuple[int, str]:
    return https_text(
        sandbox, "POST", "/devicelogin", data=urlencode(fields).encode(), headers=FORM
    )


def test_device_login_page_is_a_plain_accessible_form(sandbox):
    status, html = https_text(sandbox, "GET", "/devicelogin?otc=ABC")
    assert status == 200
    assert '<html lang="en">' in html
    for field in ("otc", "username", "password"):
        assert f'<label for="{field}">' in html and f'id="{field}"' in html
    assert 'value="ABC"' in html
    assert "<script" not in html and "<link" not in html and "src=" not in html


def test_device_login_page_checks_the_password(sandbox, fresh):
    password = developer_password(sandbox)
    flow = start_device_code(sandbox)
    code = flow["user_code"]

    status, html = submit(sandbox, otc=code, username=world.DEVELOPER_UPN, password="guess")
    assert status == 401
    assert "password is incorrect" in html and 'role="alert"' in html
    assert poll(sandbox, flow)[1]["error"] == "authorization_pending"  # nothing approved

    status, html = submit(sandbox, otc="WRONGCODE", username=world.DEVELOPER_UPN, password=password)
    assert status == 400 and "code didn&#x27;t work" in html

    status, html = submit(sandbox, otc=code.lower(), username=world.DEVELOPER_UPN.upper(),
                          password=password)  # fmt: skip
    assert status == 200 and "You have signed in" in html
    status, body = poll(sandbox, flow)
    assert status == 200 and claims_of(body["access_token"])["oid"] == world.DEVELOPER_OID

    status, html = submit(sandbox, otc=code, username=world.DEVELOPER_UPN, password=password)
    assert status == 400 and "already used" in html

    flow = start_device_code(sandbox)
    status, html = submit(sandbox, otc=flow["user_code"], username=world.DEVELOPER_UPN,
                          password=password, action="deny")  # fmt: skip
    assert status == 200 and "canceled" in html
    assert poll(sandbox, flow)[1]["error"] == "access_denied"


def test_python_m_sandbox_approve(sandbox, fresh):
    flow = start_device_code(sandbox)
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "approve", flow["user_code"]],
        env=dict(os.environ, SANDBOX_STATE_DIR=sandbox["state_dir"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert world.DEVELOPER_UPN in done.stdout
    assert poll(sandbox, flow)[0] == 200


# -- az and DefaultAzureCredential on the developer's laptop ------------------------------------


def az(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    """Run the persona's ``az`` as AzureCliCredential does: found on PATH, from /bin."""
    path = shutil.which("az")
    assert path and path.endswith("/bin/az"), path
    return subprocess.run(
        [path, *args], capture_output=True, text=True, timeout=60, cwd="/bin", check=check
    )


def az_login(control) -> list[dict]:
    """``az login --use-device-code``; the person's approval comes through the control API."""
    proc = subprocess.Popen(
        [shutil.which("az"), "login", "--use-device-code"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline()
        found = CODE_IN_MESSAGE.search(line)
        assert found, line
        assert "To sign in, use a web browser to open the page https://" in line
        control("POST", f"/_sandbox/device-codes/{found.group(1)}/approve")
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return json.loads(out)


@pytest.fixture
def developer(sandbox, fresh, persona):
    """The developer persona, signed out of ``az``."""
    env = persona("developer")
    shutil.rmtree(Path(sandbox["state_dir"]) / "azure-cli", ignore_errors=True)
    return env


def test_default_credential_before_and_after_az_login(sandbox, developer, control, verify):
    with pytest.raises(ClientAuthenticationError) as failed:
        DefaultAzureCredential().get_token("https://communication.azure.com/.default")
    message = str(failed.value)
    assert "DefaultAzureCredential failed to retrieve a token" in message
    assert "Please run 'az login'" in message

    subscriptions = az_login(control)
    assert subscriptions[0]["id"] == world.SUBSCRIPTION_ID
    assert subscriptions[0]["user"] == {"name": world.DEVELOPER_UPN, "type": "user"}

    before = control.last_log_id()
    cred = DefaultAzureCredential()
    token = cred.get_token(ARM_SCOPE)
    # az ran in a child process the socket guard cannot see: the sandbox's log shows every
    # request it made, and they are the expected ones only. (Read before the test's own
    # verification, whose first use in a session fetches the signing keys.)
    entries = control.log_after(before)
    claims = verify(token.token, "https://management.azure.com")
    assert claims["oid"] == world.DEVELOPER_OID and "idtyp" not in claims
    assert type(cred._successful_credential).__name__ == "AzureCliCredential"
    assert token.expires_on == claims["exp"]

    expected = {
        ("mi", "/hosts/developer-laptop/metadata/identity/oauth2/token"),  # no identity: 400
        ("https", f"/{TENANT}/oauth2/v2.0/token"),  # az's refresh-token grant
    }
    assert {(e["listener"], e["path"]) for e in entries} <= expected
    grants = [e for e in entries if e["listener"] == "https"]
    assert [(g["credential"], g["decision"], g["caller"]) for g in grants] == [
        ("refresh-token", "issued", world.DEVELOPER_UPN)
    ]

    # The Azure CLI cannot get a Communication Services token (Azure/azure-sdk-for-net#35816):
    # AzureCliCredential is unavailable in the chain with Entra's AADSTS65002, and the chain
    # ends in ClientAuthenticationError.
    with pytest.raises(ClientAuthenticationError) as refused:
        DefaultAzureCredential().get_token(ACS_SCOPE)
    assert "AzureCliCredential: ERROR: AADSTS65002: Consent between first party application" in (
        str(refused.value)
    )
    assert "To re-authenticate, please run:" in str(refused.value)
    with pytest.raises(ClientAuthenticationError, match="AADSTS65002"):
        AzureCliCredential().get_token(ACS_SCOPE)
    control("POST", "/_sandbox/faults/cli_preauthorized", {})  # the documented world switch
    try:
        lifted = AzureCliCredential().get_token(ACS_SCOPE)
        assert verify(lifted.token, "https://communication.azure.com/")["appid"] == CLI
    finally:
        control("DELETE", "/_sandbox/faults/cli_preauthorized")


def test_laptop_has_no_identity_endpoint_and_the_sdk_says_so_at_once(developer):
    """A real laptop: "no response from the IMDS endpoint", and the chain moves on at once."""
    started = time.monotonic()
    with pytest.raises(CredentialUnavailableError) as unavailable:
        ManagedIdentityCredential().get_token(ARM_SCOPE)
    assert str(unavailable.value).rstrip() == (
        "ManagedIdentityCredential authentication unavailable, no response from the IMDS endpoint."
    )
    with pytest.raises(ClientAuthenticationError) as chain:
        DefaultAzureCredential(exclude_cli_credential=True).get_token(ARM_SCOPE)
    lines = [line.strip() for line in str(chain.value).splitlines()]
    assert (
        "ManagedIdentityCredential: ManagedIdentityCredential authentication unavailable, no "
        "response from the IMDS endpoint."
    ) in lines
    assert time.monotonic() - started < 2  # a refused connection would cost ~5 s of retries


def test_az_login_service_principal_gives_acs_tokens(sandbox, developer, control, verify):
    secret = control("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]
    wrong = az("login", "--service-principal", "-u", SP, "-p", "wrong", "--tenant", TENANT)
    assert wrong.returncode == 1 and "AADSTS7000215: Invalid client secret provided" in wrong.stderr
    assert "wrong" not in wrong.stdout
    missing = az("login", "--service-principal", "-u", SP, f"-p={secret}")
    assert missing.returncode == 1 and "--tenant" in missing.stderr
    # As the real CLI's parser: a secret that starts with '-' needs --password=SECRET.
    dashed = az("login", "--service-principal", "-u", SP, "-p", "-" + secret, "--tenant", TENANT)
    assert (dashed.returncode, dashed.stderr.strip()) == (
        1, "ERROR: argument --password: expected one argument"
    )  # fmt: skip

    done = az("login", "--service-principal", "--username", SP, f"--password={secret}",
              "--tenant", TENANT, check=True)  # fmt: skip
    subscriptions = json.loads(done.stdout)
    assert subscriptions[0]["user"] == {"name": SP, "type": "servicePrincipal"}
    assert secret not in done.stdout + done.stderr
    shown = json.loads(az("account", "show", check=True).stdout)
    assert shown["user"] == {"name": SP, "type": "servicePrincipal"}

    before = control.last_log_id()
    cred = DefaultAzureCredential()  # the laptop's chain reaches AzureCliCredential: the SP
    claims = verify(cred.get_token(ACS_SCOPE).token, "https://communication.azure.com/")
    assert type(cred._successful_credential).__name__ == "AzureCliCredential"
    assert (claims["oid"], claims["appid"], claims["idtyp"]) == (world.SP_OID, SP, "app")
    grants = [e for e in control.log_after(before) if e["path"] == f"/{TENANT}/oauth2/v2.0/token"]
    assert [(g["credential"], g["decision"], g["caller"]) for g in grants] == [
        ("client-secret", "issued", world.SP_NAME)
    ]
    assert secret not in json.dumps(control.log_after(before))
    assert az("logout").returncode == 0
    assert az("account", "get-access-token").returncode == 1


def test_az_login_with_user_name_and_password_needs_no_polling(sandbox, developer, control):
    """``az login -u NAME -p PASSWORD`` (ROPC, the kit's catch-up path): one token request,
    the developer signed in, the password in no output; a wrong one is Entra's AADSTS50126."""
    who = control("GET", "/_sandbox/developer")
    assert who["username"] == world.DEVELOPER_UPN
    wrong = az("login", "-u", who["username"], "-p", "wrong")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("ERROR: AADSTS50126: Error validating credentials")
    assert az("account", "show").returncode == 1
    before = control.last_log_id()
    done = az("login", "-u", who["username"], f"--password={who['password']}", check=True)
    assert json.loads(done.stdout)[0]["user"] == {"name": world.DEVELOPER_UPN, "type": "user"}
    assert who["password"] not in done.stdout + done.stderr
    grants = [e for e in control.log_after(before) if e["path"].endswith("/oauth2/v2.0/token")]
    assert [(g["credential"], g["decision"], g["caller"]) for g in grants] == [
        ("password", "issued", world.DEVELOPER_UPN)
    ]
    assert who["password"] not in json.dumps(control.log_after(before))
    token = json.loads(az("account", "get-access-token", check=True).stdout)["accessToken"]
    assert claims_of(token)["oid"] == world.DEVELOPER_OID
    # The password comes from the control API, to its owner only.
    status, text = https_text(sandbox, "GET", "/_sandbox/developer")
    assert status in (401, 403) and who["password"] not in text


def test_az_account_commands_and_logout(sandbox, developer, control):
    assert az("account", "get-access-token").returncode == 1
    az_login(control)
    profile = Path(sandbox["state_dir"]) / "azure-cli" / "profile.json"
    assert profile.stat().st_mode & 0o077 == 0 and profile.parent.stat().st_mode & 0o077 == 0

    shown = json.loads(az("account", "show", "--output", "json", check=True).stdout)
    assert shown["id"] == world.SUBSCRIPTION_ID and shown["tenantId"] == TENANT

    before = control.last_log_id()
    args = ("account", "get-access-token", "--resource", "https://management.azure.com/")
    first = json.loads(az(*args, "--output", "json", check=True).stdout)
    assert set(first) == {"accessToken", "expiresOn", "expires_on", "subscription", "tenant",
                          "tokenType"}  # fmt: skip
    assert first["subscription"] == world.SUBSCRIPTION_ID and first["tenant"] == TENANT
    local = time.mktime(time.strptime(first["expiresOn"], "%Y-%m-%d %H:%M:%S.%f"))
    assert int(local) == first["expires_on"] == claims_of(first["accessToken"])["exp"]
    tsv = az(*args, "--query", "accessToken", "-o", "tsv", check=True).stdout.strip()
    assert tsv == first["accessToken"]  # the second call came from az's token cache
    assert len([e for e in control.log_after(before) if e["path"].endswith("/token")]) == 1

    bad = az(*args, "--subscription", "no-such-subscription")
    assert bad.returncode == 1 and "not found" in bad.stderr

    assert az("logout").returncode == 0
    after = az("account", "get-access-token")
    assert after.returncode == 1
    assert "Please run 'az login' to set up an account." in after.stderr
    assert az("logout").returncode == 1


def test_reset_signs_the_developer_out(sandbox, developer, control):
    az_login(control)
    assert az("account", "get-access-token").returncode == 0  # a token is now cached
    control.reset()
    for extra in ([], ["--resource", "https://communication.azure.com/"]):
        failed = az("account", "get-access-token", *extra)
        assert failed.returncode == 1
        assert "Please run 'az login' to set up an account." in failed.stderr
        assert "eyJ" not in failed.stderr  # no token in an error message


def test_unknown_az_command_says_what_is_supported(developer):
    done = az("vm", "list")
    assert done.returncode == 2 and "get-access-token" in done.stderr
