"""Resource Manager answers compared with recorded Azure answers and spec examples.

Each fixture in tests/conformance/arm/ names its source; this test makes the request it
describes against the live sandbox, as the caller it names (``sp``: the tutorial's service
principal, Contributor on the group; ``developer``: Owner of the subscription), and compares.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import pytest
from azure.mgmt.msi import ManagedServiceIdentityClient

from sandbox import world
from sandbox.arm import providers
from tests.conformance.compare import assert_conforms, fill, load
from tests.test_arm import MGMT_SCOPE, developer_credential, mgmt, sp_credential_for

FIXTURES = load("arm")
READER_GUID = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
ACS_OWNER_GUID = "09976791-48a7-449e-bb21-39d1a415f350"


def _values() -> dict[str, str]:
    vm = providers.resource_type("Microsoft.Compute/virtualMachines")
    ghost = str(uuid.uuid4())
    return {
        "acs": world.ACS_RESOURCE_ID,
        "vm": world.host_resource_id("vm-tutorial"),
        "group": world.GROUP_SCOPE,
        "sub": world.SUBSCRIPTION_SCOPE,
        "tenant": world.TENANT_ID,
        "location": world.LOCATION,
        "developer": world.DEVELOPER_OID,
        "new": str(uuid.uuid4()),
        "ghost": ghost,
        "ghost_hex": ghost.replace("-", ""),
        "seed_owner_hex": world.SEED_ASSIGNMENTS[0][0].replace("-", ""),
        "reader_definition": world.role_definition_id(READER_GUID),
        "owner_definition": world.role_definition_id(world.OWNER_ROLE_ID),
        "acs_owner_guid": ACS_OWNER_GUID,
        "vm_versions": ", ".join(vm.api_versions),
        "vm_locations": ", ".join(vm.locations),
    }


def _fill_all(doc: Any, values: dict[str, str]) -> Any:
    if isinstance(doc, dict):
        return {k: _fill_all(v, values) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_fill_all(v, values) for v in doc]
    return fill(doc, values)


def _call(doc: dict[str, Any], token: str, request: dict[str, Any]) -> tuple[int, Any]:
    query = {"api-version": request["api_version"], **request.get("query", {})}
    url = f"{doc['https_url']}{request['path']}?{urllib.parse.urlencode(query)}"
    body = request.get("body")
    data = (
        json.dumps(body).encode()
        if body is not None
        else b""
        if request["method"] == "POST"
        else None
    )
    req = urllib.request.Request(
        url,
        data,
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method=request["method"],
    )
    ctx = ssl.create_default_context(cafile=doc["ca_file"])
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture(scope="module")
def sp(sandbox, control):
    secret = control("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]
    with sp_credential_for(sandbox, secret) as cred:
        yield cred


@pytest.fixture(scope="module")
def tokens(sandbox, control, sp) -> dict[str, str]:
    dev_token = developer_credential(sandbox, control).get_token(MGMT_SCOPE).token
    return {"sp": sp.get_token(MGMT_SCOPE).token, "developer": dev_token}


@pytest.mark.parametrize(("name", "fixture"), FIXTURES, ids=[n for n, _ in FIXTURES])
def test_arm_answers_as_recorded(sandbox, fresh, tokens, sp, name, fixture):
    if fixture.get("setup"):
        msi = mgmt(ManagedServiceIdentityClient, sp, sandbox)
        msi.user_assigned_identities.create_or_update(
            world.RESOURCE_GROUP, "uai-conformance", {"location": world.LOCATION}
        )
    values = _values()
    request = _fill_all(fixture["request"], values)
    status, body = _call(sandbox, tokens[fixture["as"]], request)
    assert_conforms(name, fixture, status, body, values)
