# ruff: noqa: F811 - the credential fixtures come from tests/test_arm.py
"""The Microsoft Graph slice: the lookups the Azure CLI makes, with Graph's shapes and errors,
over real HTTPS with real Entra tokens for the Graph audience."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox import world
from tests.conformance.compare import assert_conforms, load
from tests.test_arm import (  # noqa: F401 - fixtures
    dev_credential,
    raw,
    sp_credential,
    sp_secret,
)

MISSING = "0badc0de-0000-4000-8000-000000000000"


def graph_token(credential: Any, doc: dict[str, Any]) -> str:
    """A token for the sandbox cloud's Graph identifier (what the real CLI asks for)."""
    return credential.get_token(f"{doc['https_url']}/graph/.default").token


def get(doc: dict[str, Any], path: str, token: str | None) -> tuple[int, Any]:
    status, _, body = raw(doc, "GET", f"/graph/v1.0{path}", token)
    return status, body


def test_users_by_upn_filter_and_by_key(sandbox, fresh, dev_credential):
    token = graph_token(dev_credential, sandbox)
    upn = world.DEVELOPER_UPN
    status, body = get(sandbox, f"/users?$filter=userPrincipalName%20eq%20'{upn}'", token)
    assert status == 200
    (user,) = body["value"]
    assert user["id"] == world.DEVELOPER_OID and user["userPrincipalName"] == upn
    assert body["@odata.context"].endswith("/$metadata#users")
    for key in (upn, world.DEVELOPER_OID):
        status, user = get(sandbox, f"/users/{key}", token)
        assert status == 200 and user["displayName"] == "Sandbox Developer"
    status, me = get(sandbox, "/me", token)
    assert status == 200 and me["id"] == world.DEVELOPER_OID
    status, body = get(sandbox, "/users?$filter=userPrincipalName%20eq%20'nobody@x.org'", token)
    assert status == 200 and body["value"] == []


def test_service_principals_by_name_and_managed_identities(sandbox, fresh, dev_credential):
    token = graph_token(dev_credential, sandbox)
    flt = f"servicePrincipalNames/any(c:c%20eq%20'{world.SP_CLIENT_ID}')"
    status, body = get(sandbox, f"/servicePrincipals?$filter={flt}", token)
    assert status == 200
    (sp,) = body["value"]
    assert sp["id"] == world.SP_OID and sp["appId"] == world.SP_CLIENT_ID
    assert sp["servicePrincipalType"] == "Application" and sp["displayName"] == world.SP_NAME
    status, got = get(sandbox, f"/servicePrincipals/{world.SP_OID}", token)
    assert status == 200 and got["appId"] == world.SP_CLIENT_ID


def test_get_by_ids_names_users_and_service_principals(sandbox, fresh, dev_credential):
    token = graph_token(dev_credential, sandbox)
    body = {
        "ids": [world.DEVELOPER_OID, world.SP_OID, MISSING],
        "types": ["user", "group", "servicePrincipal", "directoryObjectPartnerReference"],
    }
    status, _, answer = raw(sandbox, "POST", "/graph/v1.0/directoryObjects/getByIds", token, body)
    assert status == 200
    kinds = {o["id"]: o["@odata.type"] for o in answer["value"]}
    assert kinds == {
        world.DEVELOPER_OID: "#microsoft.graph.user",
        world.SP_OID: "#microsoft.graph.servicePrincipal",
    }
    only_users = {"ids": [world.DEVELOPER_OID, world.SP_OID], "types": ["user"]}
    status, _, answer = raw(
        sandbox, "POST", "/graph/v1.0/directoryObjects/getByIds", token, only_users
    )
    assert [o["id"] for o in answer["value"]] == [world.DEVELOPER_OID]


def test_public_graph_audience_is_accepted_too(sandbox, fresh, dev_credential):
    token = dev_credential.get_token("https://graph.microsoft.com/.default").token
    status, me = get(sandbox, "/me", token)
    assert status == 200 and me["userPrincipalName"] == world.DEVELOPER_UPN


def test_refusals_are_graphs(sandbox, fresh, dev_credential, sp_credential):
    status, body = get(sandbox, "/me", None)
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationToken"
    assert body["error"]["message"] == "Access token is empty."
    arm = dev_credential.get_token("https://management.azure.com/.default").token
    status, body = get(sandbox, "/me", arm)
    assert status == 401
    assert body["error"]["message"] == "Access token validation failure. Invalid audience."
    sp = graph_token(sp_credential, sandbox)
    status, body = get(sandbox, "/me", sp)
    assert status == 400
    assert (
        body["error"]["message"] == "/me request is only valid with delegated authentication flow."
    )
    status, body = get(sandbox, f"/servicePrincipals/{world.SP_OID}", sp)
    assert status == 403 and body["error"]["code"] == "Authorization_RequestDenied"
    token = graph_token(dev_credential, sandbox)
    status, body = get(sandbox, "/users?$filter=jobTitle%20eq%20'x'", token)
    assert status == 400 and body["error"]["code"] == "Request_UnsupportedQuery"
    status, body = get(sandbox, "/groups", token)
    assert status == 400 and body["error"]["code"] == "BadRequest"


@pytest.mark.parametrize("name,fixture", load("graph"), ids=[n for n, _ in load("graph")])
def test_graph_conforms(sandbox, fresh, dev_credential, sp_credential, name, fixture):
    credential = dev_credential if fixture["request"]["as"] == "developer" else sp_credential
    token = graph_token(credential, sandbox)
    values = {"id": MISSING}
    path = fixture["request"]["path"].replace("{id}", MISSING)
    body = fixture["request"].get("body")
    if body:
        body = {k: [v.replace("{id}", MISSING) for v in vs] for k, vs in body.items()}
    status, _, answer = raw(sandbox, fixture["request"]["method"], path, token, body)
    assert_conforms(name, fixture, status, answer, values)
