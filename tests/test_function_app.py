"""The tutorial's Function app (apps/func-tutorial) served by the sandbox for site func-tutorial:
found through Resource Manager as a client finds a deployed app (its ``defaultHostName`` and a
host key from ``host/default/listkeys``), called over HTTPS, running in a worker process with
the site's environment only, calling ACS with the site's managed identity."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests
from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.web import WebSiteManagementClient

from sandbox import client, world
from tests.acs_support import (
    ARM_AUDIENCE,
    PHONE,
    StaticCredential,
    connection_string,
    developer_mgmt,
    forge,
)
from tests.test_arm import FUNC_ID, new_uai, set_identity, sp_credential_for

SITE = "func-tutorial"
RG = world.RESOURCE_GROUP
READER = world.role_definition_id("acdd72a7-3385-48ef-bd42-f606fba81ae7")
CONTRIBUTOR = world.role_definition_id(world.CONTRIBUTOR_ROLE_ID)


def web_client(fresh, oid: str = world.DEVELOPER_OID) -> WebSiteManagementClient:
    return developer_mgmt(WebSiteManagementClient, fresh, oid)


def authz(fresh) -> AuthorizationManagementClient:
    return developer_mgmt(AuthorizationManagementClient, fresh)


def grant(fresh, principal_id: str, role_id: str, scope: str = world.ACS_RESOURCE_ID) -> None:
    params = {"role_definition_id": role_id, "principal_id": principal_id}
    authz(fresh).role_assignments.create(scope, str(uuid.uuid4()), params)


@pytest.fixture
def site(sandbox, fresh, control):
    """The site with its system-assigned identity on, Contributor on the ACS resource; its URL
    and host key as a client reads them."""
    secret = control("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]
    with sp_credential_for(sandbox, secret) as sp:
        host = set_identity(sandbox, sp, FUNC_ID, {"type": "SystemAssigned"})
    grant(fresh, host.identity.principal_id, CONTRIBUTOR)
    web = web_client(fresh)
    found = web.web_apps.get(RG, SITE)
    keys = web.web_apps.list_host_keys(RG, SITE)
    return {
        "base": f"https://{found.default_host_name}/api",
        "key": keys.function_keys["default"],
        "master": keys.master_key,
        "principal": host.identity.principal_id,
        "ca": sandbox["ca_bundle"],
    }


def call(site, route, *, key="key", method="GET", **kw):
    headers = {"x-functions-key": site[key]} if key in site else {}
    return requests.request(
        method, f"{site['base']}/{route}", headers=headers, verify=site["ca"], timeout=60, **kw
    )


def test_the_app_runs_as_the_site_and_leaves_no_user(site, fresh):
    assert site["base"].startswith(fresh.doc["https_url"] + "/sites/func-tutorial")
    answer = call(site, "acs-token", params={"scopes": "chat,voip"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # The Entra token the app called ACS with names the site (xms_mirid), as on Azure.
    assert body["called_as"]["oid"] == site["principal"]
    assert body["called_as"]["xms_mirid"].lower() == FUNC_ID.lower()
    claims = body["token_claims"]  # the ACS token's claims, never the token
    assert set(claims["acsScope"].split(",")) == {"chat", "voip"}
    assert claims["resourceId"] == world.ACS_IMMUTABLE_ID
    assert body["user_id"].endswith(claims["skypeid"])
    assert "token" not in body and all(len(str(v)) < 400 for v in body.values())
    # The ACS user was deleted in the same call: ACS no longer issues tokens for it (401
    # Denied, as ACS answers for an identity that is gone).
    assert body["user_deleted"] is True
    acs = CommunicationIdentityClient.from_connection_string(connection_string(fresh))
    with pytest.raises(ClientAuthenticationError) as gone:
        acs.get_token(CommunicationUserIdentifier(body["user_id"]), ["chat"])
    assert gone.value.error.code == "Denied"
    # Unless the caller asks to keep it.
    kept = call(site, "acs-token", params={"keep": "true"}).json()
    assert kept["user_deleted"] is False
    assert acs.get_token(CommunicationUserIdentifier(kept["user_id"]), ["chat"]).token
    # The master key opens it too; a warm call is well under a second.
    started = time.perf_counter()
    assert call(site, "acs-token", key="master").status_code == 200
    assert time.perf_counter() - started < 1.0


def test_send_sms_and_bad_input(site, fresh):
    sent = call(site, "send-sms", method="POST", json={"to": PHONE, "message": "from the app"})
    assert sent.status_code == 200 and sent.json()["successful"] is True
    [msg] = fresh("GET", f"/_sandbox/inbox/{PHONE}")["messages"]
    assert msg["message"] == "from the app" and msg["from"] == world.SENDER_NUMBERS[0]
    for bad in ({"to": "4255550101"}, {"to": "+1 425 555"}, ["+14255550101"], {}):
        refused = call(site, "send-sms", method="POST", json=bad)
        assert refused.status_code == 400 and "error" in refused.json(), bad
    assert "E.164" in call(site, "send-sms", method="POST", json={"to": "12"}).json()["error"]
    assert call(site, "send-sms", method="POST", data=b"not json").status_code == 400
    assert call(site, "acs-token", params={"scopes": "email"}).status_code == 400
    assert call(site, "acs-token", params={"keep": "maybe"}).status_code == 400


def test_keys_wrong_key_unknown_route(site, fresh):
    for key in (None, "wrong"):
        site_with = {**site, "wrong": "x" * 56}
        answer = call(site_with, "acs-token", key=key or "none")
        assert answer.status_code == 401 and answer.content == b""
    # The key in the query string works as the header does.
    url = f"{site['base']}/acs-token?code={site['key']}"
    assert requests.get(url, verify=site["ca"], timeout=60).status_code == 200
    assert call(site, "no-such-function").status_code == 404
    assert call(site, "send-sms", method="GET").status_code == 404  # POST only
    before = fresh.last_log_id()
    call(site, "acs-token", key="none")
    [entry] = [e for e in fresh.log_after(before) if e["path"].endswith("/api/acs-token")]
    assert entry["decision"] == "refused" and "no key" in entry["reason"]


def test_listkeys_refused_to_reader(site, fresh, sandbox, control):
    # A principal that holds only Reader on the group (a user-assigned identity's).
    secret = control("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]
    with sp_credential_for(sandbox, secret) as sp:
        oid = new_uai(sandbox, sp, "id-reader").principal_id
    grant(fresh, oid, READER, world.GROUP_SCOPE)
    web = web_client(fresh, oid)
    assert web.web_apps.get(RG, SITE).name == SITE  # Reader may read the site
    with pytest.raises(HttpResponseError) as refused:
        web.web_apps.list_host_keys(RG, SITE)
    assert refused.value.status_code == 403
    assert refused.value.error.code == "AuthorizationFailed"
    assert "Microsoft.Web/sites/host/listkeys/action" in refused.value.error.message


def test_a_raising_function_is_500_with_no_body(site, fresh):
    web = web_client(fresh)
    settings = web.web_apps.list_application_settings(RG, SITE).properties
    assert settings["ACS_ENDPOINT"] == fresh.doc["acs_endpoint"]
    del settings["ACS_ENDPOINT"]  # the app then raises KeyError: a missing app setting
    web.web_apps.update_application_settings(RG, SITE, {"properties": settings})
    before = fresh.last_log_id()
    answer = call(site, "acs-token")
    assert answer.status_code == 500 and answer.content == b""
    [entry] = [e for e in fresh.log_after(before) if e["path"].endswith("/api/acs-token")]
    assert "KeyError" in entry["reason"] and "ACS_ENDPOINT" in entry["reason"]
    assert "Traceback" in (Path(fresh.doc["state_dir"]) / "sandbox.log").read_text()


def test_the_worker_has_only_the_sites_environment(site, fresh):
    assert call(site, "acs-token").status_code == 200
    workers = _workers_of(fresh.doc["pid"])
    assert len(workers) == 1
    env = dict(
        line.split("=", 1)
        for line in (workers[0] / "environ").read_bytes().decode().split("\0")
        if "=" in line
    )
    allowed = {"PATH", "HOME", "WEBSITE_SITE_NAME", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE",
               "CURL_CA_BUNDLE",
               "AZURE_POD_IDENTITY_AUTHORITY_HOST", "IDENTITY_ENDPOINT", "IDENTITY_HEADER",
               "FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME", "ACS_ENDPOINT",
               "SMS_FROM_NUMBER", "KIT_LOOPBACK_GUARD_LOG", "PYTHONPATH", "PYTHONPYCACHEPREFIX",
               "LC_CTYPE"}  # fmt: skip
    assert set(env) <= allowed, set(env) - allowed
    assert env["IDENTITY_ENDPOINT"].endswith("/hosts/func-tutorial/msi/token")
    assert env["WEBSITE_SITE_NAME"] == SITE
    # the sandbox's CA alone: all it may reach is the sandbox, and a bundle with the public
    # roots costs every new connection about 25 ms
    assert env["REQUESTS_CA_BUNDLE"] == env["SSL_CERT_FILE"] == fresh.doc["ca_file"]


def _workers_of(pid: int) -> list[Path]:
    return [
        p
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _ppid(p) == pid and b"sandbox.functions.worker" in _cmd(p)
    ]


def test_the_worker_ends_with_the_sandbox(own_settings):
    """A site's worker starts on its first request and is stopped with the sandbox."""
    doc = client.start(own_settings)
    try:
        # An unknown route needs the app's function table, so the worker starts; no key needed.
        url = f"{doc['https_url']}/sites/{SITE}/api/no-such-function"
        assert requests.get(url, verify=doc["ca_bundle"], timeout=60).status_code == 404
        [worker] = _workers_of(doc["pid"])
        assert requests.get(url, verify=doc["ca_bundle"], timeout=60).status_code == 404
        assert _workers_of(doc["pid"]) == [worker]  # one worker per site, reused
    finally:
        client.stop(own_settings)
    assert not worker.exists()


def _ppid(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _cmd(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def test_claims_are_not_a_token(site):
    body = call(site, "acs-token").json()
    for value in body["token_claims"].values():
        with pytest.raises(jwt.PyJWTError):
            jwt.decode(str(value), options={"verify_signature": False})


def test_user_assigned_by_app_setting(site, fresh, sandbox, control):
    """AZURE_CLIENT_ID as an app setting makes the app use that user-assigned identity; the
    change restarts the app; without it, the system-assigned identity again."""
    secret = control("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]
    with sp_credential_for(sandbox, secret) as sp:
        uai = new_uai(sandbox, sp, "id-func-test")
        both = {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {uai.id: {}}}
        set_identity(sandbox, sp, FUNC_ID, both)
    grant(fresh, uai.principal_id, CONTRIBUTOR)
    web = web_client(fresh)
    settings = web.web_apps.list_application_settings(RG, SITE)
    settings.properties["AZURE_CLIENT_ID"] = uai.client_id
    web.web_apps.update_application_settings(RG, SITE, settings)
    body = call(site, "acs-token").json()
    assert body["called_as"]["oid"] == uai.principal_id
    assert body["called_as"]["xms_mirid"].lower() == uai.id.lower()
    del settings.properties["AZURE_CLIENT_ID"]
    web.web_apps.update_application_settings(RG, SITE, settings)
    assert call(site, "acs-token").json()["called_as"]["oid"] == site["principal"]


def test_a_new_identity_is_a_new_app_process(site, fresh, sandbox, control):
    """Turning the identity off and on makes a new principal; the app, restarted, uses it."""
    assert call(site, "acs-token").json()["called_as"]["oid"] == site["principal"]
    secret = control("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]
    with sp_credential_for(sandbox, secret) as sp:
        set_identity(sandbox, sp, FUNC_ID, {"type": "None"})
        gone = call(site, "acs-token")
        assert gone.status_code == 502 and "no token" in gone.json()["error"]
        again = set_identity(sandbox, sp, FUNC_ID, {"type": "SystemAssigned"})
    assert again.identity.principal_id != site["principal"]
    grant(fresh, again.identity.principal_id, CONTRIBUTOR)
    assert call(site, "acs-token").json()["called_as"]["oid"] == again.identity.principal_id


def test_the_worker_stays_on_loopback(own_settings, tmp_path, monkeypatch):
    """Under the tests' loopback guard the sandbox hands the guard down to the site's worker: an
    app setting pointing at a real Azure host is refused inside the app (a 500, the refusal in
    the guard's log), and nothing leaves 127.0.0.1."""
    guard_log = tmp_path / "guard.log"
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent / "loopback_guard"))
    monkeypatch.setenv("KIT_LOOPBACK_GUARD_LOG", str(guard_log))
    doc = client.start(own_settings)
    from azure.mgmt.resource.resources import ResourceManagementClient

    token = forge(own_settings, doc, oid=world.DEVELOPER_OID, audience=ARM_AUDIENCE)
    kwargs = {
        "base_url": doc["arm_url"],
        "credential_scopes": ["https://management.azure.com/.default"],
        "connection_verify": doc["ca_bundle"],
    }
    rm = ResourceManagementClient(StaticCredential(token), world.SUBSCRIPTION_ID, **kwargs)
    rm.resources.begin_update_by_id(
        FUNC_ID, {"identity": {"type": "SystemAssigned"}}, api_version="2023-12-01"
    ).result()
    web = WebSiteManagementClient(StaticCredential(token), world.SUBSCRIPTION_ID, **kwargs)
    settings = web.web_apps.list_application_settings(RG, SITE)
    settings.properties["ACS_ENDPOINT"] = "https://acs-tutorial.communication.azure.com/"
    web.web_apps.update_application_settings(RG, SITE, settings)
    key = web.web_apps.list_host_keys(RG, SITE).function_keys["default"]
    url = f"https://{web.web_apps.get(RG, SITE).default_host_name}/api/acs-token"
    answer = requests.get(
        url, headers={"x-functions-key": key}, verify=doc["ca_bundle"], timeout=60
    )
    assert answer.status_code == 500
    [worker] = _workers_of(doc["pid"])
    refusals = guard_log.read_text()
    assert f"{worker.name} DNS lookup of 'acs-tutorial.communication.azure.com'" in refusals


def test_the_app_folder_is_deployable_as_it_stands():
    """requirements.txt pins what the kit's lock pins (the app runs in Azure with the SDKs the
    notebooks teach); host.json has the extension bundle; local settings are never committed."""
    app = Path(__file__).resolve().parent.parent / "apps" / "func-tutorial"
    lock = {}
    for line in (app.parent.parent / "requirements-lock.txt").read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, version = line.split(";")[0].strip().split("==")
            lock[name.lower()] = version
    pins = [
        line.split("==")
        for line in (app / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    wanted = {"azure-functions", "azure-identity", "azure-communication-identity"}
    assert {n for n, _ in pins} >= wanted | {"azure-communication-sms"}
    for name, version in pins:
        assert lock[name.lower()] == version, name
    host = json.loads((app / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    ignored = (app.parent.parent / ".gitignore").read_text().split()
    assert "local.settings.json" in ignored and not (app / "local.settings.json").exists()
    assert "local.settings.json" in (app / ".funcignore").read_text().split()


def test_app_settings_refuse_a_bad_body(site, fresh):
    token = forge(fresh.settings, fresh.doc, oid=world.DEVELOPER_OID, audience=ARM_AUDIENCE)
    url = f"{fresh.doc['arm_url'].rstrip('/')}{FUNC_ID}/config/appsettings?api-version=2023-12-01"
    headers = {"Authorization": f"Bearer {token}"}
    for body in ({"properties": {"A": 1}}, {"settings": {}}, [1]):
        answer = requests.put(url, json=body, headers=headers, verify=site["ca"], timeout=60)
        assert answer.status_code == 400, body
        assert answer.json()["error"]["code"] == "InvalidRequestContent"
    answer = requests.get(url, headers=headers, verify=site["ca"], timeout=60)
    assert answer.status_code == 405 and answer.json()["error"]["code"] == "MethodNotAllowed"
