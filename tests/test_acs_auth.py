"""Who may call the ACS data plane: HMAC access keys, Entra ID bearer tokens, and RBAC.

The SDKs sign and send; the sandbox must refuse exactly what ACS refuses, as ACS words it: 401
``Denied`` "Denied by the resource provider." for a bad key, a bad or stale token and a missing
role alike. Which part failed, who called, what it holds and which role would allow the call is
the request log's to say (``python -m sandbox log``), and these tests read it there.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import uuid
from email.utils import formatdate

import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.identity.aio import (
    CommunicationIdentityClient as AsyncIdentityClient,
)
from azure.core.exceptions import ClientAuthenticationError
from azure.mgmt.authorization import AuthorizationManagementClient

from sandbox import world
from sandbox.acs.auth import CLOCK_SKEW
from sandbox.acs.errors import DENIED
from tests.acs_support import (
    ARM_AUDIENCE,
    AsyncStaticCredential,
    StaticCredential,
    connection_string,
    developer_mgmt,
    forge,
    hmac_headers,
    key_of,
    raw,
    signed,
)

CONTRIBUTOR = world.role_definition_id(world.CONTRIBUTOR_ROLE_ID)
READER = world.role_definition_id("acdd72a7-3385-48ef-bd42-f606fba81ae7")
CESO = world.role_definition_id("09976791-48a7-449e-bb21-39d1a415f350")


pytestmark = pytest.mark.usefixtures("trust_sandbox_ca")


def _denied_and_logged(error, fresh, before: int, *needles: str) -> dict:
    """ACS's one refusal in the body; the diagnosis (every needle) in the request log."""
    assert error.status_code == 401
    assert (error.error.code, error.error.message) == ("Denied", DENIED)
    entry = [e for e in fresh.log_after(before) if e["status"] == 401][-1]
    assert entry["decision"] == "denied"
    for needle in needles:
        assert needle in entry["reason"], entry["reason"]
    return entry


def _bearer_client(sandbox, token: str) -> CommunicationIdentityClient:
    return CommunicationIdentityClient(sandbox["acs_endpoint"], StaticCredential(token))


def _new_principal(control) -> str:
    """A service principal with no role anywhere, made through the ARM slice (a user-assigned
    identity is the simplest principal a developer can create)."""
    name = f"uami-{uuid.uuid4().hex[:8]}"
    status, body, _ = _arm(
        control,
        "PUT",
        f"{world.GROUP_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}?api-version=2023-01-31",
        {"location": "eastus"},
    )
    assert status in (200, 201), body
    return body["properties"]["principalId"]


def _arm(control, method: str, path: str, body=None):
    token = forge(control.settings, control.doc, oid=world.DEVELOPER_OID, audience=ARM_AUDIENCE)
    data = json.dumps(body).encode() if body is not None else b""
    return raw(
        control.doc,
        method,
        path,
        data,
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def _authz(control) -> AuthorizationManagementClient:
    """The management SDK, acting as the developer (Owner of the subscription)."""
    return developer_mgmt(AuthorizationManagementClient, control)


def _assign(control, principal: str, role: str, scope: str = world.ACS_RESOURCE_ID) -> str:
    name = str(uuid.uuid4())
    _authz(control).role_assignments.create(
        scope,
        name,
        {
            "role_definition_id": role,
            "principal_id": principal,
            "principal_type": "ServicePrincipal",
        },
    )
    return name


# -- HMAC -------------------------------------------------------------------------------------


def test_connection_string_with_either_key_is_accepted_and_logged_as_access_key(sandbox, fresh):
    before = fresh.last_log_id()
    for key in ("primary", "secondary"):
        client = CommunicationIdentityClient.from_connection_string(connection_string(fresh, key))
        assert client.create_user().properties["id"].startswith(f"8:acs:{world.ACS_IMMUTABLE_ID}_")
    entries = [e for e in fresh.log_after(before) if e["path"] == "/identities"]
    assert [e["reason"] for e in entries] == ["signed with primaryKey", "signed with secondaryKey"]
    for e in entries:
        assert (e["credential"], e["principal_id"], e["decision"], e["status"]) == (
            "hmac",
            "access-key",
            "allowed",
            201,
        )
        assert e["operation"] == "Identity.Create"


def test_async_client_signs_the_decoded_path_and_is_accepted(sandbox, fresh):
    conn = connection_string(fresh)

    async def main():
        async with AsyncIdentityClient.from_connection_string(conn) as client:
            user = await client.create_user()
            token = await client.get_token(user, ["chat"])  # path holds 8%3Aacs%3A...
            await client.revoke_tokens(user)
            await client.delete_user(user)
        return token

    assert asyncio.run(main()).token


def test_wrong_key_is_denied_and_the_log_says_signature_mismatch(sandbox, fresh):
    before = fresh.last_log_id()
    wrong = base64.b64encode(os.urandom(64)).decode()
    client = CommunicationIdentityClient(sandbox["acs_endpoint"], wrong)
    with pytest.raises(ClientAuthenticationError) as e:
        client.create_user()
    entry = _denied_and_logged(e.value, fresh, before, "signature mismatch")
    assert entry["credential"] == "hmac"


def test_content_hash_that_differs_from_the_body_is_refused(sandbox, fresh):
    key = key_of(connection_string(fresh))
    body = {"createTokenWithScopes": ["chat"]}
    spoiled = base64.b64encode(b"x" * 32).decode()
    status, err, _ = signed(
        sandbox, key, "POST", "/identities?api-version=2023-10-01", body, content_hash=spoiled
    )
    assert status == 401
    assert err == {
        "error": {
            "code": "Denied",
            "message": "Request 'x-ms-content-sha256' differs from generated content hash.",
        }
    }


def test_date_outside_the_window_is_refused_and_inside_is_accepted(sandbox, fresh):
    key = key_of(connection_string(fresh))
    before = fresh.last_log_id()
    old = formatdate(time.time() - 6 * 60, usegmt=True)
    status, err, _ = signed(sandbox, key, "POST", "/identities?api-version=2023-10-01", date=old)
    assert status == 401 and err == {"error": {"code": "Denied", "message": CLOCK_SKEW}}
    [entry] = [e for e in fresh.log_after(before) if e["status"] == 401]
    assert "outside the allowed window of 5 minutes" in entry["reason"]
    recent = formatdate(time.time() - 4 * 60, usegmt=True)
    status, body, _ = signed(
        sandbox, key, "POST", "/identities?api-version=2023-10-01", date=recent
    )
    assert status == 201, body


def test_clock_skew_fault_makes_every_signed_request_stale(sandbox, fresh):
    client = CommunicationIdentityClient.from_connection_string(connection_string(fresh))
    fresh("POST", "/_sandbox/faults/clock_skew", {"seconds": 3600})
    try:
        with pytest.raises(ClientAuthenticationError) as e:
            client.create_user()
        assert (e.value.error.code, e.value.error.message) == ("Denied", CLOCK_SKEW)
    finally:
        fresh("DELETE", "/_sandbox/faults/clock_skew")
    assert client.create_user().properties["id"]


def test_signature_over_another_host_is_refused(sandbox, fresh):
    key = key_of(connection_string(fresh))
    status, err, _ = signed(
        sandbox, key, "POST", "/identities?api-version=2023-10-01", host="acs.example.com"
    )
    assert status == 401 and err == {"error": {"code": "Denied", "message": DENIED}}


@pytest.mark.parametrize("host", ["evil.example.com", "127.0.0.1", "localhost:1"])
def test_a_host_this_sandbox_does_not_serve_is_refused_even_when_signed_and_sent(
    sandbox, fresh, host
):
    """Security review D9: the signed Host must be this listener's (Azure routes a host to its
    resource, so a foreign host never reaches it)."""
    key = key_of(connection_string(fresh))
    path = "/identities?api-version=2023-10-01"
    headers = hmac_headers("POST", sandbox["https_url"] + path, b"", key, host=host)
    before = fresh.last_log_id()
    status, err, _ = raw(sandbox, "POST", path, b"", {**headers, "Host": host})
    assert status == 401 and err == {"error": {"code": "Denied", "message": DENIED}}
    [entry] = fresh.log_after(before)
    assert f"covers host '{host}', which is not this endpoint" in entry["reason"]


@pytest.mark.parametrize("name", ["localhost", "[::1]"])
def test_the_other_names_of_this_listener_are_served(sandbox, fresh, name):
    key = key_of(connection_string(fresh))
    port = sandbox["https_url"].rsplit(":", 1)[1]
    path = "/identities?api-version=2023-10-01"
    headers = hmac_headers("POST", sandbox["https_url"] + path, b"", key, host=f"{name}:{port}")
    status, body, _ = raw(sandbox, "POST", path, b"", {**headers, "Host": f"{name}:{port}"})
    assert status == 201, body


def test_non_ascii_content_hash_is_denied_not_a_500(sandbox, fresh):
    """Security review D6: a latin-1 header value broke the comparison (500, connection closed)."""
    headers = {
        "x-ms-date": formatdate(usegmt=True),
        "x-ms-content-sha256": "\xe9",
        "Authorization": "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256"
        "&Signature=AAAA",
    }
    status, err, _ = raw(sandbox, "POST", "/identities?api-version=2023-10-01", b"", headers)
    assert status == 401
    assert err["error"]["code"] == "Denied"


@pytest.mark.parametrize(
    "header, needle",
    [
        (None, "no usable Authorization header"),
        ("HMAC-SHA256 Signature=abc", "Malformed Authorization header"),
        ("Basic dXNlcjpwYXNz", "no usable Authorization header"),
    ],
)
def test_missing_or_malformed_authorization_is_denied(sandbox, fresh, header, needle):
    headers = {"Authorization": header} if header else {}
    status, err, _ = raw(sandbox, "POST", "/identities?api-version=2023-10-01", b"", headers)
    assert status == 401
    assert err == {"error": {"code": "Denied", "message": DENIED}}
    entry = fresh.log_after(fresh.last_log_id() - 1)[-1]
    assert entry["decision"] == "denied" and needle in entry["reason"]


# -- bearer tokens ----------------------------------------------------------------------------


def test_developer_token_is_allowed_through_the_subscription_owner_role(sandbox, fresh):
    before = fresh.last_log_id()
    token = forge(fresh.settings, sandbox, oid=world.DEVELOPER_OID)
    user = _bearer_client(sandbox, token).create_user()
    assert user.properties["id"]
    entry = [e for e in fresh.log_after(before) if e["path"] == "/identities"][-1]
    assert entry["credential"] == "bearer"
    assert entry["principal_id"] == world.DEVELOPER_OID
    assert entry["caller"] == world.DEVELOPER_UPN
    assert entry["decision"] == "allowed" and "'Owner'" in entry["reason"]


def test_async_bearer_client_is_authorized_the_same_way(sandbox, fresh):
    token = forge(fresh.settings, sandbox, oid=world.SP_OID, idtyp="app", appid=world.SP_CLIENT_ID)

    async def main():
        async with AsyncIdentityClient(sandbox["acs_endpoint"], AsyncStaticCredential(token)) as c:
            return await c.create_user_and_token(["voip"])

    user, access = asyncio.run(main())
    assert access.token and user.properties["id"]


@pytest.mark.parametrize(
    "kwargs, code, needle",
    [
        (
            {"audience": "https://management.azure.com/"},
            "InvalidAuthenticationTokenAudience",
            "audience",
        ),
        ({"lifetime": -3600}, "ExpiredAuthenticationToken", "is earlier than current UTC time"),
    ],
)
def test_bad_bearer_tokens_are_denied_and_the_log_has_the_reason(
    sandbox, fresh, kwargs, code, needle
):
    before = fresh.last_log_id()
    token = forge(fresh.settings, sandbox, oid=world.DEVELOPER_OID, **kwargs)
    with pytest.raises(ClientAuthenticationError) as e:
        _bearer_client(sandbox, token).create_user()
    entry = _denied_and_logged(e.value, fresh, before, code, needle)
    assert entry["credential"] == "bearer"


def _async_create_user_is_denied(sandbox, token: str) -> None:
    """The async client meets the same 401 Denied as the sync one."""

    async def main():
        async with AsyncIdentityClient(sandbox["acs_endpoint"], AsyncStaticCredential(token)) as c:
            await c.create_user()

    with pytest.raises(ClientAuthenticationError) as e:
        asyncio.run(main())
    assert (e.value.status_code, e.value.error.code, e.value.error.message) == (
        401,
        "Denied",
        DENIED,
    )


def test_async_client_gets_the_same_refusal(sandbox, fresh):
    token = forge(fresh.settings, sandbox, oid=world.DEVELOPER_OID, lifetime=-3600)

    _async_create_user_is_denied(sandbox, token)


def test_token_signed_by_a_foreign_key_is_refused(sandbox, fresh):
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        {"aud": "https://communication.azure.com/", "oid": world.DEVELOPER_OID},
        key,
        algorithm="RS256",
        headers={"kid": "someone-else"},
    )
    before = fresh.last_log_id()
    with pytest.raises(ClientAuthenticationError) as e:
        _bearer_client(sandbox, token).create_user()
    _denied_and_logged(e.value, fresh, before, "not signed by a key this tenant publishes")


def test_a_user_access_token_is_not_an_entra_token(sandbox, fresh):
    client = CommunicationIdentityClient.from_connection_string(connection_string(fresh))
    _, user_token = client.create_user_and_token(["chat"])
    before = fresh.last_log_id()
    with pytest.raises(ClientAuthenticationError) as e:
        _bearer_client(sandbox, user_token.token).create_user()
    _denied_and_logged(e.value, fresh, before, "user access token (for Chat and Calling)")


# -- RBAC -------------------------------------------------------------------------------------


def test_principal_without_role_gets_401_denied_and_the_log_names_principal_scope_role(
    sandbox, fresh
):
    oid = _new_principal(fresh)
    token = forge(fresh.settings, sandbox, oid=oid, idtyp="app")
    before = fresh.last_log_id()
    with pytest.raises(ClientAuthenticationError) as e:
        _bearer_client(sandbox, token).create_user()
    entry = _denied_and_logged(
        e.value,
        fresh,
        before,
        oid,
        world.ACS_RESOURCE_ID,
        "assign 'Contributor' or 'Communication and Email Service Owner'",
    )
    assert (entry["principal_id"], entry["credential"]) == (oid, "bearer")


def test_async_principal_without_role_gets_the_same_401(sandbox, fresh):
    oid = _new_principal(fresh)
    token = forge(fresh.settings, sandbox, oid=oid, idtyp="app")

    _async_create_user_is_denied(sandbox, token)


def test_reader_is_not_enough_and_the_message_says_what_is_held(sandbox, fresh):
    oid = _new_principal(fresh)
    _assign(fresh, oid, READER, world.GROUP_SCOPE)
    token = forge(fresh.settings, sandbox, oid=oid, idtyp="app")
    before = fresh.last_log_id()
    with pytest.raises(ClientAuthenticationError) as e:
        _bearer_client(sandbox, token).create_user()
    _denied_and_logged(e.value, fresh, before, "it holds only: Reader")


@pytest.mark.parametrize(
    "role, scope",
    [
        (CONTRIBUTOR, world.ACS_RESOURCE_ID),
        (CESO, world.ACS_RESOURCE_ID),
        (CONTRIBUTOR, world.GROUP_SCOPE),
    ],
)
def test_assignment_takes_effect_on_the_next_request_and_removal_too(sandbox, fresh, role, scope):
    oid = _new_principal(fresh)
    client = _bearer_client(sandbox, forge(fresh.settings, sandbox, oid=oid, idtyp="app"))
    name = _assign(fresh, oid, role, scope)
    assert client.create_user().properties["id"]
    _authz(fresh).role_assignments.delete(scope, name)
    before = fresh.last_log_id()
    with pytest.raises(ClientAuthenticationError) as e:
        client.create_user()
    _denied_and_logged(e.value, fresh, before, "no role on scope")


def test_role_propagation_fault_delays_a_new_assignment(sandbox, fresh):
    oid = _new_principal(fresh)
    client = _bearer_client(sandbox, forge(fresh.settings, sandbox, oid=oid, idtyp="app"))
    fresh("POST", "/_sandbox/faults/role_propagation", {"seconds": 120})
    _assign(fresh, oid, CONTRIBUTOR)
    before = fresh.last_log_id()
    with pytest.raises(ClientAuthenticationError) as e:
        client.create_user()
    _denied_and_logged(e.value, fresh, before, "has not propagated yet")
    # An old assignment is unaffected: the service principal's seeded Contributor still works.
    sp = forge(fresh.settings, sandbox, oid=world.SP_OID, idtyp="app", appid=world.SP_CLIENT_ID)
    assert _bearer_client(sandbox, sp).create_user().properties["id"]
    fresh("DELETE", "/_sandbox/faults/role_propagation")
    assert client.create_user().properties["id"]


# -- key rotation -----------------------------------------------------------------------------


def test_regenerating_a_key_breaks_its_connection_string_and_the_tokens_it_issued(sandbox, fresh):
    from azure.mgmt.communication import CommunicationServiceManagementClient

    old_primary = connection_string(fresh, "primary")
    secondary = connection_string(fresh, "secondary")
    by_key = CommunicationIdentityClient.from_connection_string(old_primary)
    _, key_token = by_key.create_user_and_token(["chat"])
    dev = forge(fresh.settings, sandbox, oid=world.DEVELOPER_OID)
    _, entra_token = _bearer_client(sandbox, dev).create_user_and_token(["chat"])

    mgmt_token = forge(fresh.settings, sandbox, oid=world.DEVELOPER_OID, audience=ARM_AUDIENCE)
    mgmt = CommunicationServiceManagementClient(
        StaticCredential(mgmt_token),
        world.SUBSCRIPTION_ID,
        base_url=sandbox["arm_url"],
        credential_scopes=["https://management.azure.com/.default"],
    )
    keys = mgmt.communication_services.regenerate_key(
        world.RESOURCE_GROUP, world.ACS_NAME, {"keyType": "Primary"}
    )
    assert keys.primary_key != key_of(old_primary)

    before = fresh.last_log_id()
    with pytest.raises(ClientAuthenticationError) as e:
        by_key.create_user()
    _denied_and_logged(e.value, fresh, before, "signature mismatch")
    assert CommunicationIdentityClient.from_connection_string(secondary).create_user()
    fresh_conn = mgmt.communication_services.list_keys(world.RESOURCE_GROUP, world.ACS_NAME)
    assert CommunicationIdentityClient.from_connection_string(
        fresh_conn.primary_connection_string
    ).create_user()

    check = lambda t: fresh("POST", "/_sandbox/acs/check-user-token", {"token": t})  # noqa: E731
    assert check(key_token.token) == {
        "valid": False,
        "reason": "issued with an access key that has since been regenerated",
    }
    assert check(entra_token.token)["valid"] is True  # not tied to a key


# -- where the diagnosis goes -------------------------------------------------------------------


def test_python_m_sandbox_log_prints_the_diagnosis_azure_does_not_send(sandbox, fresh):
    import subprocess
    import sys

    oid = _new_principal(fresh)
    token = forge(fresh.settings, sandbox, oid=oid, idtyp="app")
    with pytest.raises(ClientAuthenticationError) as e:
        _bearer_client(sandbox, token).create_user()
    assert e.value.error.message == DENIED
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "log", "--last", "1"],
        env=dict(os.environ, SANDBOX_STATE_DIR=str(fresh.settings.state_dir)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert "401 /identities" in line and "credential=bearer" in line
    assert f"no role on scope '{world.ACS_RESOURCE_ID}' allows the data plane" in line
    assert f"({oid})" in line
    assert "assign 'Contributor' or 'Communication and Email Service Owner'" in line
