"""Resource Manager slice, driven by the real management SDKs with real Entra tokens.

The service principal is Contributor on the group (it may change hosts and identities but not
grant roles); the developer, signed in by device code, is Owner of the subscription.
"""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.request
import uuid
from typing import Any

import jwt
import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.identity import ClientSecretCredential, DeviceCodeCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.communication import CommunicationServiceManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

from helpers import progress
from sandbox import client, world
from sandbox.config import Settings

MGMT_SCOPE = "https://management.azure.com/.default"
# The api-versions the notebooks use for each host type (helpers/progress.py); ARM refuses any
# other a type's provider has not registered (sandbox/arm/providers.py).
API = progress.API_VERSIONS[progress.VM_TYPE]
WEB_API = progress.API_VERSIONS[progress.FUNC_TYPE]


def api_of(resource_id: str) -> str:
    return WEB_API if "/microsoft.web/" in resource_id.lower() else API


VM_ID = world.host_resource_id("vm-tutorial")
FUNC_ID = world.host_resource_id("func-tutorial")
OWNER_DEF = world.role_definition_id(world.OWNER_ROLE_ID)
ACS_OWNER_GUID = "09976791-48a7-449e-bb21-39d1a415f350"


# -- credentials and clients (also used by test_managed_identity.py) ---------------------------


def sp_credential_for(doc: dict[str, Any], secret: str) -> ClientSecretCredential:
    return ClientSecretCredential(
        world.TENANT_ID,
        world.SP_CLIENT_ID,
        secret,
        authority=doc["authority_host"],
        disable_instance_discovery=True,
        connection_verify=doc["ca_file"],
    )


@pytest.fixture(scope="session")
def sp_secret(control) -> str:
    return control("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]


@pytest.fixture(scope="session")
def sp_credential(sandbox, sp_secret):
    with sp_credential_for(sandbox, sp_secret) as cred:
        yield cred


def developer_credential(sandbox: dict[str, Any], control: Any) -> DeviceCodeCredential:
    """The developer, signed in with the device-code flow and approved through the control API
    (as a facilitator would) the moment the credential shows its code."""

    def approve(verification_uri: str, user_code: str, expires_on: Any) -> None:
        control("POST", f"/_sandbox/device-codes/{user_code}/approve")

    return DeviceCodeCredential(
        client_id=world.AZURE_CLI_CLIENT_ID,
        tenant_id=world.TENANT_ID,
        authority=sandbox["authority_host"],
        disable_instance_discovery=True,
        prompt_callback=approve,
        connection_verify=sandbox["ca_file"],
    )


@pytest.fixture(scope="session")
def dev_credential(sandbox, control):
    with developer_credential(sandbox, control) as cred:
        yield cred


def mgmt(cls: type, credential: Any, doc: dict[str, Any]) -> Any:
    return cls(
        credential,
        world.SUBSCRIPTION_ID,
        base_url=doc["https_url"],
        credential_scopes=[MGMT_SCOPE],
        connection_verify=doc["ca_file"],
    )


def set_identity(doc: dict[str, Any], credential: Any, host_id: str, identity: Any) -> Any:
    with mgmt(ResourceManagementClient, credential, doc) as rc:
        poller = rc.resources.begin_update_by_id(
            host_id, {"identity": identity}, api_version=api_of(host_id)
        )
        return poller.result()


def new_uai(doc: dict[str, Any], credential: Any, name: str) -> Any:
    with mgmt(ManagedServiceIdentityClient, credential, doc) as msi:
        return msi.user_assigned_identities.create_or_update(
            world.RESOURCE_GROUP, name, {"location": world.LOCATION}
        )


def status_of(pipeline_response: Any, deserialized: Any, headers: Any) -> tuple[int, Any]:
    """``cls=`` hook: the HTTP status along with the model."""
    return pipeline_response.http_response.status_code, deserialized


def raw(doc: dict[str, Any], method: str, path: str, token: str | None = None, body: Any = None):
    """(status, headers, json) of a raw HTTPS call, for what the SDKs cannot show."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = (
        body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    )
    req = urllib.request.Request(doc["https_url"] + path, data, headers, method=method)
    ctx = ssl.create_default_context(cafile=doc["ca_file"])
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            text = resp.read()
            return resp.status, resp.headers, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, e.headers, json.loads(text) if text else None


# -- authentication ---------------------------------------------------------------------------


def test_missing_and_invalid_tokens_get_arm_401s(sandbox, sp_credential):
    path = f"{VM_ID}?api-version={API}"
    status, headers, body = raw(sandbox, "GET", path)
    assert status == 401
    assert body["error"]["code"] == "AuthenticationFailed"
    challenge = headers["WWW-Authenticate"]
    assert (
        challenge.startswith("Bearer authorization_uri=") and 'error="invalid_token"' in challenge
    )

    status, _, body = raw(sandbox, "GET", path, token="not-a-jwt")
    assert (status, body["error"]["code"]) == (401, "InvalidAuthenticationToken")

    acs_token = sp_credential.get_token("https://communication.azure.com//.default").token
    status, _, body = raw(sandbox, "GET", path, token=acs_token)
    assert (status, body["error"]["code"]) == (401, "InvalidAuthenticationTokenAudience")
    assert body["error"]["message"] == (
        "The access token has been obtained for wrong audience or resource "
        "'https://communication.azure.com/'. It should exactly match with one of the allowed "
        "audiences 'https://management.core.windows.net/','https://management.core.windows.net',"
        "'https://management.azure.com/','https://management.azure.com'."
    )

    status, _, body = raw(sandbox, "GET", VM_ID, token=sp_credential.get_token(MGMT_SCOPE).token)
    assert (status, body["error"]["code"]) == (400, "MissingApiVersionParameter")


def test_expired_token_is_refused(sandbox, control, sp_credential):
    token = sp_credential.get_token(MGMT_SCOPE).token
    control("POST", "/_sandbox/faults/clock_skew", {"seconds": 4 * 3600})
    try:
        status, _, body = raw(sandbox, "GET", f"{VM_ID}?api-version={API}", token=token)
    finally:
        control("DELETE", "/_sandbox/faults")
    assert (status, body["error"]["code"]) == (401, "ExpiredAuthenticationToken")
    when = r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d\d:\d\d [AP]M"
    assert re.fullmatch(
        f"The access token expiry UTC time '{when}' is earlier than current UTC time '{when}'.",
        body["error"]["message"],
    ), body


# -- hosts and their identities ---------------------------------------------------------------


def test_enable_and_disable_system_assigned_identity(sandbox, fresh, sp_credential):
    rc = mgmt(ResourceManagementClient, sp_credential, sandbox)
    vm = rc.resources.get_by_id(VM_ID, api_version=API)
    assert (vm.name, vm.type, vm.identity) == (
        "vm-tutorial",
        "Microsoft.Compute/virtualMachines",
        None,
    )

    after = set_identity(sandbox, sp_credential, VM_ID, {"type": "SystemAssigned"})
    assert after.identity.type == "SystemAssigned"
    assert after.identity.tenant_id == world.TENANT_ID
    uuid.UUID(after.identity.principal_id)
    again = rc.resources.get_by_id(VM_ID, api_version=API)
    assert again.identity.principal_id == after.identity.principal_id

    # Enabling twice keeps the same principal; disabling removes it.
    same = set_identity(sandbox, sp_credential, VM_ID, {"type": "SystemAssigned"})
    assert same.identity.principal_id == after.identity.principal_id
    off = set_identity(sandbox, sp_credential, VM_ID, {"type": "None"})
    assert off.identity is None
    on = set_identity(sandbox, sp_credential, VM_ID, {"type": "SystemAssigned"})
    assert on.identity.principal_id != after.identity.principal_id


def test_put_and_patch_with_user_assigned_identities(sandbox, fresh, sp_credential):
    one = new_uai(sandbox, sp_credential, "uai-one")
    two = new_uai(sandbox, sp_credential, "uai-two")
    rc = mgmt(ResourceManagementClient, sp_credential, sandbox)
    put = rc.resources.begin_create_or_update_by_id(
        FUNC_ID,
        {
            "location": world.LOCATION,
            "identity": {
                "type": "SystemAssigned, UserAssigned",
                "userAssignedIdentities": {one.id: {}},
            },
        },
        api_version=WEB_API,
    ).result()
    assert put.identity.type == "SystemAssigned, UserAssigned"
    assert put.kind == "functionapp"
    ua = put.identity.user_assigned_identities
    assert list(ua) == [one.id]
    assert (ua[one.id].principal_id, ua[one.id].client_id) == (one.principal_id, one.client_id)

    # PATCH merges user-assigned identities; null removes one.
    both = set_identity(
        sandbox,
        sp_credential,
        FUNC_ID,
        {"type": "UserAssigned", "userAssignedIdentities": {two.id: {}}},
    )
    assert both.identity.type == "UserAssigned"
    assert both.identity.principal_id is None
    assert sorted(both.identity.user_assigned_identities) == sorted([one.id, two.id])
    left = set_identity(
        sandbox,
        sp_credential,
        FUNC_ID,
        {"type": "UserAssigned", "userAssignedIdentities": {one.id: None}},
    )
    assert list(left.identity.user_assigned_identities) == [two.id]

    # PUT replaces: no identity in the body means none.
    bare = rc.resources.begin_create_or_update_by_id(
        FUNC_ID, {"location": world.LOCATION}, api_version=WEB_API
    ).result()
    assert bare.identity is None


def test_identity_and_resource_errors(sandbox, fresh, sp_credential):
    rc = mgmt(ResourceManagementClient, sp_credential, sandbox)
    with pytest.raises(HttpResponseError) as bad_type:
        set_identity(sandbox, sp_credential, VM_ID, {"type": "Magic"})
    assert bad_type.value.status_code == 400
    assert bad_type.value.error.code == "InvalidRequestContent"

    missing_uai = (
        f"{world.GROUP_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nope"
    )
    with pytest.raises(HttpResponseError) as no_uai:
        set_identity(
            sandbox,
            sp_credential,
            VM_ID,
            {"type": "UserAssigned", "userAssignedIdentities": {missing_uai: {}}},
        )
    assert no_uai.value.status_code == 400

    ghost = f"{world.GROUP_SCOPE}/providers/Microsoft.Compute/virtualMachines/vm-ghost"
    with pytest.raises(ResourceNotFoundError) as not_found:
        rc.resources.get_by_id(ghost, api_version=API)
    assert not_found.value.error.code == "ResourceNotFound"
    assert not_found.value.error.message == (
        "The Resource 'Microsoft.Compute/virtualMachines/vm-ghost' under resource group "
        f"'{world.RESOURCE_GROUP}' was not found. For more details please go to "
        "https://aka.ms/ARMResourceNotFoundFix"
    )

    other_group = VM_ID.replace(world.RESOURCE_GROUP, "rg-elsewhere")
    status, _, body = raw(
        sandbox,
        "GET",
        f"{other_group}?api-version={API}",
        token=sp_credential.get_token(MGMT_SCOPE).token,
    )
    # The SP holds no role on that group, so ARM refuses before it looks the group up.
    assert (status, body["error"]["code"]) == (403, "AuthorizationFailed")


def test_group_subscription_and_listing(sandbox, fresh, sp_credential, dev_credential):
    rc = mgmt(ResourceManagementClient, sp_credential, sandbox)
    group = rc.resource_groups.get(world.RESOURCE_GROUP)
    assert (group.name, group.location) == (world.RESOURCE_GROUP, world.LOCATION)
    names = sorted(r.name for r in rc.resources.list_by_resource_group(world.RESOURCE_GROUP))
    assert names == sorted(["acs-tutorial", "func-tutorial", "vm-tutorial"])
    dev_rc = mgmt(ResourceManagementClient, dev_credential, sandbox)
    with pytest.raises(ResourceNotFoundError) as missing:
        dev_rc.resource_groups.get("rg-missing")
    assert missing.value.error.code == "ResourceGroupNotFound"


# -- user-assigned identities -----------------------------------------------------------------


def test_user_assigned_identity_lifecycle(sandbox, fresh, sp_credential):
    msi = mgmt(ManagedServiceIdentityClient, sp_credential, sandbox)
    uais = msi.user_assigned_identities
    status, made = uais.create_or_update(
        world.RESOURCE_GROUP, "uai-app", {"location": world.LOCATION}, cls=status_of
    )
    assert status == 201
    assert (
        made.id
        == f"{world.GROUP_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-app"
    )
    assert (made.name, made.type, made.location, made.tenant_id) == (
        "uai-app",
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        world.LOCATION,
        world.TENANT_ID,
    )
    uuid.UUID(made.client_id)
    uuid.UUID(made.principal_id)

    status, updated = uais.create_or_update(
        world.RESOURCE_GROUP,
        "uai-app",
        {"location": world.LOCATION, "tags": {"lab": "2"}},
        cls=status_of,
    )
    assert (
        status == 200 and updated.principal_id == made.principal_id and updated.tags == {"lab": "2"}
    )
    assert uais.get(world.RESOURCE_GROUP, "uai-app").client_id == made.client_id
    assert [u.name for u in uais.list_by_resource_group(world.RESOURCE_GROUP)] == ["uai-app"]
    assert [u.name for u in uais.list_by_subscription()] == ["uai-app"]

    # Attached to the VM, then deleted: the VM loses it.
    set_identity(
        sandbox,
        sp_credential,
        VM_ID,
        {"type": "UserAssigned", "userAssignedIdentities": {made.id: {}}},
    )
    status, _ = uais.delete(world.RESOURCE_GROUP, "uai-app", cls=status_of)
    assert status == 200
    status, _ = uais.delete(world.RESOURCE_GROUP, "uai-app", cls=status_of)
    assert status == 204
    with pytest.raises(ResourceNotFoundError):
        uais.get(world.RESOURCE_GROUP, "uai-app")
    vm = mgmt(ResourceManagementClient, sp_credential, sandbox).resources.get_by_id(
        VM_ID, api_version=API
    )
    assert vm.identity is None

    with pytest.raises(HttpResponseError) as no_location:
        uais.create_or_update(world.RESOURCE_GROUP, "uai-x", {})
    assert no_location.value.error.code == "LocationRequired"


# -- role definitions and assignments --------------------------------------------------------


def test_role_definitions(sandbox, sp_credential):
    auth = mgmt(AuthorizationManagementClient, sp_credential, sandbox)
    found = list(auth.role_definitions.list(world.GROUP_SCOPE, filter="roleName eq 'Contributor'"))
    assert [d.id for d in found] == [world.role_definition_id(world.CONTRIBUTOR_ROLE_ID)]
    assert found[0].role_name == "Contributor" and found[0].role_type == "BuiltInRole"
    assert "Microsoft.Authorization/*/Write" in found[0].permissions[0].not_actions
    owner = auth.role_definitions.get_by_id(OWNER_DEF)
    assert (owner.name, owner.role_name) == (world.OWNER_ROLE_ID, "Owner")
    everything = list(auth.role_definitions.list(world.ACS_RESOURCE_ID))
    assert len(everything) == len(world.ROLES)
    with pytest.raises(ResourceNotFoundError) as unknown:
        auth.role_definitions.get(world.GROUP_SCOPE, str(uuid.uuid4()))
    assert unknown.value.error.code == "RoleDefinitionDoesNotExist"


def test_role_definition_filters_arm_does_not_support_are_400(sandbox, sp_credential):
    auth = mgmt(AuthorizationManagementClient, sp_credential, sandbox)
    with pytest.raises(HttpResponseError) as bad:
        list(auth.role_definitions.list(world.GROUP_SCOPE, filter="name eq 'Owner'"))
    assert (bad.value.status_code, bad.value.error.code) == (400, "UnsupportedQuery")
    assert bad.value.error.message == (
        "The filter 'name eq 'Owner'' is not supported. Supported filters are either "
        "'roleName eq '{value}'' or 'type eq 'BuiltInRole|CustomRole''."
    )


def test_role_assignments_by_the_owner(sandbox, fresh, sp_credential, dev_credential):
    uai = new_uai(sandbox, sp_credential, "uai-sender")
    auth = mgmt(AuthorizationManagementClient, dev_credential, sandbox)
    ras = auth.role_assignments
    role_id = world.role_definition_id(ACS_OWNER_GUID)
    name = str(uuid.uuid4())
    params = {
        "role_definition_id": role_id,
        "principal_id": uai.principal_id,
        "principal_type": "ServicePrincipal",
    }
    status, made = ras.create(world.ACS_RESOURCE_ID, name, params, cls=status_of)
    assert status == 201
    assert (
        made.id
        == f"{world.ACS_RESOURCE_ID}/providers/Microsoft.Authorization/roleAssignments/{name}"
    )
    assert (made.scope, made.role_definition_id, made.principal_id, made.principal_type) == (
        world.ACS_RESOURCE_ID,
        role_id,
        uai.principal_id,
        "ServicePrincipal",
    )
    assert ras.get(world.ACS_RESOURCE_ID, name).principal_id == uai.principal_id

    at_acs = {a.name for a in ras.list_for_scope(world.ACS_RESOURCE_ID, filter="atScope()")}
    # At the resource and above it: the developer's Owner and the SP's Contributor apply there.
    assert at_acs == {name, world.SEED_ASSIGNMENTS[0][0], world.SEED_ASSIGNMENTS[1][0]}
    at_group = {a.name for a in ras.list_for_scope(world.GROUP_SCOPE, filter="atScope()")}
    assert name not in at_group
    mine = list(
        ras.list_for_scope(world.GROUP_SCOPE, filter=f"principalId eq '{uai.principal_id}'")
    )
    assert [a.name for a in mine] == [name]
    assert name in {a.name for a in ras.list_for_subscription()}

    with pytest.raises(ResourceExistsError) as dup:
        ras.create(world.ACS_RESOURCE_ID, str(uuid.uuid4()), params)
    assert dup.value.error.code == "RoleAssignmentExists"
    with pytest.raises(HttpResponseError) as nobody:
        ras.create(
            world.GROUP_SCOPE, str(uuid.uuid4()), {**params, "principal_id": str(uuid.uuid4())}
        )
    assert (nobody.value.status_code, nobody.value.error.code) == (400, "PrincipalNotFound")
    with pytest.raises(HttpResponseError) as no_role:
        ras.create(
            world.GROUP_SCOPE,
            str(uuid.uuid4()),
            {**params, "role_definition_id": world.role_definition_id(str(uuid.uuid4()))},
        )
    assert no_role.value.error.code == "RoleDefinitionDoesNotExist"

    # At subscription and group scope too.
    sub_name = str(uuid.uuid4())
    reader = world.role_definition_id("acdd72a7-3385-48ef-bd42-f606fba81ae7")
    ras.create(world.SUBSCRIPTION_SCOPE, sub_name, {**params, "role_definition_id": reader})
    assert ras.get(world.SUBSCRIPTION_SCOPE, sub_name).scope == world.SUBSCRIPTION_SCOPE

    status, deleted = ras.delete(world.ACS_RESOURCE_ID, name, cls=status_of)
    assert status == 200 and deleted.name == name
    assert ras.delete(world.ACS_RESOURCE_ID, name) is None
    with pytest.raises(ResourceNotFoundError):
        ras.get(world.ACS_RESOURCE_ID, name)


def test_contributor_cannot_assign_roles(sandbox, fresh, sp_credential, control):
    uai = new_uai(sandbox, sp_credential, "uai-denied")
    auth = mgmt(AuthorizationManagementClient, sp_credential, sandbox)
    before = control.last_log_id()
    with pytest.raises(HttpResponseError) as refused:
        auth.role_assignments.create(
            world.ACS_RESOURCE_ID,
            str(uuid.uuid4()),
            {
                "role_definition_id": world.role_definition_id(ACS_OWNER_GUID),
                "principal_id": uai.principal_id,
            },
        )
    assert refused.value.status_code == 403
    assert refused.value.error.code == "AuthorizationFailed"
    assert refused.value.error.message == (
        f"The client '{world.SP_CLIENT_ID}' with object id '{world.SP_OID}' does not have "
        "authorization to perform action 'Microsoft.Authorization/roleAssignments/write' over "
        f"scope '{world.ACS_RESOURCE_ID}' or the scope is invalid. If access was recently "
        "granted, please refresh your credentials."
    )
    entry = [e for e in control.log_after(before) if e["method"] == "PUT"][-1]
    assert entry["caller"] == world.SP_CLIENT_ID
    assert entry["principal_id"] == world.SP_OID
    assert entry["credential"] == "bearer"
    assert entry["decision"] == "refused"
    assert entry["operation"] == "Microsoft.Authorization/roleAssignments/write"
    # Reading assignments is within Contributor's rights at the group, not at the subscription.
    assert list(auth.role_assignments.list_for_scope(world.GROUP_SCOPE))
    with pytest.raises(HttpResponseError) as above:
        list(auth.role_assignments.list_for_subscription())
    assert above.value.error.code == "AuthorizationFailed"


# -- the Communication Services resource ------------------------------------------------------


def test_acs_resource_keys_and_regeneration(sandbox, fresh, sp_credential):
    from azure.communication.identity import CommunicationIdentityClient

    acs = mgmt(CommunicationServiceManagementClient, sp_credential, sandbox).communication_services
    res = acs.get(world.RESOURCE_GROUP, world.ACS_NAME)
    assert res.id == world.ACS_RESOURCE_ID
    assert res.properties.host_name == sandbox["https_url"].split("://", 1)[1]
    assert res.properties.immutable_resource_id == world.ACS_IMMUTABLE_ID
    assert res.properties.provisioning_state == "Succeeded"
    assert res.properties.data_location == "United States"

    keys = acs.list_keys(world.RESOURCE_GROUP, world.ACS_NAME)
    assert (
        keys.primary_connection_string
        == f"endpoint={sandbox['acs_endpoint']};accesskey={keys.primary_key}"
    )
    old = keys.primary_connection_string
    new = acs.regenerate_key(world.RESOURCE_GROUP, world.ACS_NAME, {"keyType": "Primary"})
    # As the spec example regenerateKey.json: only the regenerated key and its connection string.
    assert new.primary_key != keys.primary_key
    assert new.primary_connection_string.endswith(f"accesskey={new.primary_key}")
    assert (new.secondary_key, new.secondary_connection_string) == (None, None)
    after = acs.list_keys(world.RESOURCE_GROUP, world.ACS_NAME)
    assert (after.primary_key, after.secondary_key) == (new.primary_key, keys.secondary_key)

    def identity_client(conn: str) -> CommunicationIdentityClient:
        return CommunicationIdentityClient.from_connection_string(
            conn, connection_verify=sandbox["ca_file"], retry_total=0
        )

    assert identity_client(new.primary_connection_string).create_user().properties["id"]
    with pytest.raises(HttpResponseError) as stale:
        identity_client(old).create_user()
    assert stale.value.status_code == 401

    with pytest.raises(HttpResponseError) as bad_kind:
        acs.regenerate_key(world.RESOURCE_GROUP, world.ACS_NAME, {"keyType": "Tertiary"})
    assert bad_kind.value.status_code == 400


def test_managed_identity_token_at_arm_needs_a_role(
    sandbox, fresh, sp_credential, dev_credential, persona
):
    """A VM's identity calls ARM with its own token; Reader lets it read but not list keys."""
    from azure.identity import ManagedIdentityCredential

    vm = set_identity(sandbox, sp_credential, VM_ID, {"type": "SystemAssigned"})
    persona("vm-tutorial")
    mi = ManagedIdentityCredential()
    acs = mgmt(CommunicationServiceManagementClient, mi, sandbox).communication_services
    with pytest.raises(HttpResponseError) as refused:
        acs.get(world.RESOURCE_GROUP, world.ACS_NAME)
    assert refused.value.error.code == "AuthorizationFailed"
    assert f"with object id '{vm.identity.principal_id}'" in refused.value.error.message

    auth = mgmt(AuthorizationManagementClient, dev_credential, sandbox)
    auth.role_assignments.create(
        world.ACS_RESOURCE_ID,
        str(uuid.uuid4()),
        {
            "role_definition_id": world.role_definition_id("acdd72a7-3385-48ef-bd42-f606fba81ae7"),
            "principal_id": vm.identity.principal_id,
        },
    )
    assert acs.get(world.RESOURCE_GROUP, world.ACS_NAME).name == world.ACS_NAME
    with pytest.raises(HttpResponseError) as no_keys:
        acs.list_keys(world.RESOURCE_GROUP, world.ACS_NAME)
    assert (
        "Microsoft.Communication/communicationServices/ListKeys/action"
        in no_keys.value.error.message
    )

    # Disabling the identity deletes its service principal and the assignments it held.
    set_identity(sandbox, sp_credential, VM_ID, {"type": "None"})
    left = auth.role_assignments.list_for_scope(
        world.ACS_RESOURCE_ID, filter=f"principalId eq '{vm.identity.principal_id}'"
    )
    assert list(left) == []


# -- state survives a restart -----------------------------------------------------------------


def test_identities_survive_stop_and_start(tmp_path, monkeypatch):
    from azure.identity import ManagedIdentityCredential

    settings = Settings(state_dir=tmp_path / "state", https_port=0, mi_port=0)
    try:
        first = client.start(settings)
        secret = client.control(settings, "GET", "/_sandbox/personas/service-principal")["set"][
            "AZURE_CLIENT_SECRET"
        ]
        # Clients are closed before each stop: an open TLS keep-alive connection delays it.
        with sp_credential_for(first, secret) as cred:
            uai = new_uai(first, cred, "uai-kept")
            vm = set_identity(first, cred, VM_ID, {"type": "SystemAssigned"})
        client.stop(settings)

        second = client.start(settings)
        assert second["pid"] != first["pid"]
        with (
            sp_credential_for(second, secret) as cred,
            mgmt(ResourceManagementClient, cred, second) as rc,
            mgmt(ManagedServiceIdentityClient, cred, second) as msi,
        ):
            again = rc.resources.get_by_id(VM_ID, api_version=API)
            kept = msi.user_assigned_identities.get(world.RESOURCE_GROUP, "uai-kept")
        assert again.identity.principal_id == vm.identity.principal_id
        assert (kept.client_id, kept.principal_id) == (uai.client_id, uai.principal_id)

        monkeypatch.setenv(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST", f"{second['mi_url']}/hosts/vm-tutorial"
        )
        token = ManagedIdentityCredential().get_token(MGMT_SCOPE).token
        assert (
            jwt.decode(token, options={"verify_signature": False})["oid"]
            == vm.identity.principal_id
        )
    finally:
        client.stop(settings)


# -- api-versions, as strict as Azure --------------------------------------------------------

ROLE_ASSIGNMENTS_PATH = f"{world.GROUP_SCOPE}/providers/Microsoft.Authorization/roleAssignments"
ROLE_DEFINITIONS_PATH = f"{world.GROUP_SCOPE}/providers/Microsoft.Authorization/roleDefinitions"
UAI_LIST_PATH = f"{world.GROUP_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"


def test_unsupported_api_version_is_refused_per_resource_type(sandbox, sp_credential):
    rc = mgmt(ResourceManagementClient, sp_credential, sandbox)
    with pytest.raises(HttpResponseError) as vm:
        rc.resources.get_by_id(VM_ID, api_version="2023-12-01")  # Web's version, not Compute's
    assert (vm.value.status_code, vm.value.error.code) == (400, "NoRegisteredProviderFound")
    assert vm.value.error.message.startswith(
        "No registered resource provider found for location 'eastus' and API version "
        "'2023-12-01' for type 'virtualMachines'. The supported api-versions are "
        "'2015-05-01-preview, 2015-06-15, 2016-03-30, "
    )
    assert "2024-11-01, 2025-04-01, 2026-04-01'. The supported locations are 'eastus, " in (
        vm.value.error.message
    )

    token = sp_credential.get_token(MGMT_SCOPE).token
    status, _, body = raw(sandbox, "GET", f"{ROLE_ASSIGNMENTS_PATH}?api-version=2099-01-01", token)
    assert (status, body["error"]["code"]) == (404, "InvalidResourceType")
    assert body["error"]["message"].startswith(
        "The resource type 'roleAssignments' could not be found in the namespace "
        "'Microsoft.Authorization' for api version '2099-01-01'. The supported api-versions are "
        "'2014-04-01-preview,2014-07-01-preview,"
    )
    assert body["error"]["message"].endswith(",2022-01-01-preview,2022-04-01'.")

    status, _, body = raw(sandbox, "GET", f"{ROLE_DEFINITIONS_PATH}?api-version=2099-01-01", token)
    assert (status, body["error"]["code"]) == (400, "NoRegisteredProviderFound")
    assert body["error"]["message"].endswith(
        "2018-07-01, 2022-04-01, 2022-05-01-preview'. The supported locations are ''."
    )

    status, _, body = raw(sandbox, "GET", "/subscriptions?api-version=2099-01-01", token)
    assert (status, body["error"]["code"]) == (400, "InvalidApiVersionParameter")
    assert body["error"]["message"].startswith(
        "The api-version '2099-01-01' is invalid. The supported versions are '2025-04-01,"
    )
    assert body["error"]["message"].endswith(",2013-03-01,2014-02-26,2014-04'.")

    status, _, body = raw(sandbox, "GET", f"{UAI_LIST_PATH}?api-version=2024-07-01", token)
    assert (status, body["error"]["code"]) == (400, "NoRegisteredProviderFound")
    assert "for type 'userAssignedIdentities'" in body["error"]["message"]


@pytest.mark.parametrize(
    ("path", "version"),
    [
        (VM_ID, API),  # notebooks 01, 02, 06 and helpers/progress.py
        (FUNC_ID, WEB_API),
        ("/subscriptions", "2022-12-01"),  # sandbox/azcli.py
        (UAI_LIST_PATH, "2023-01-31"),  # tests/test_acs_auth.py
        (UAI_LIST_PATH, "2024-11-30"),  # azure-mgmt-msi 7.1.0's default
        (ROLE_ASSIGNMENTS_PATH, "2022-04-01"),  # azure-mgmt-authorization 4.0.0's default
        (ROLE_DEFINITIONS_PATH, "2022-04-01"),
        (world.ACS_RESOURCE_ID, "2025-09-01"),  # azure-mgmt-communication 3.0.0's default
        (world.ACS_RESOURCE_ID, "2023-04-01"),
        (world.GROUP_SCOPE, "2025-04-01"),  # azure-mgmt-resource 26.0.0's default
        (f"{world.GROUP_SCOPE}/resources", "2025-04-01"),
    ],
)
def test_every_api_version_the_kit_sends_is_accepted(sandbox, sp_credential, path, version):
    token = sp_credential.get_token(MGMT_SCOPE).token
    status, _, body = raw(sandbox, "GET", f"{path}?api-version={version}", token)
    assert status == 200, body


# -- what ARM adds to every answer ------------------------------------------------------------


def test_arm_response_headers(sandbox, sp_credential):
    token = sp_credential.get_token(MGMT_SCOPE).token
    _, first, _ = raw(sandbox, "GET", f"{VM_ID}?api-version={API}", token)
    _, second, _ = raw(sandbox, "GET", f"{VM_ID}?api-version={API}", token)
    for headers in (first, second):
        assert uuid.UUID(headers["x-ms-request-id"])
        correlation = headers["x-ms-correlation-request-id"]
        region, stamp, routed = headers["x-ms-routing-request-id"].split(":")
        assert (region, routed, len(stamp)) == ("EASTUS", correlation, 16)
    reads = [int(h["x-ms-ratelimit-remaining-subscription-reads"]) for h in (first, second)]
    assert reads[0] < 250 and reads[1] <= reads[0]
    assert "x-ms-ratelimit-remaining-subscription-writes" not in first

    req = urllib.request.Request(
        sandbox["https_url"] + f"{world.ACS_RESOURCE_ID}/listKeys?api-version=2025-09-01",
        data=b"",
        method="POST",
        headers={"Authorization": f"Bearer {token}", "x-ms-correlation-request-id": "c0ffee"},
    )
    ctx = ssl.create_default_context(cafile=sandbox["ca_file"])
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        assert resp.headers["x-ms-correlation-request-id"] == "c0ffee"
        assert resp.headers["x-ms-routing-request-id"].endswith(":c0ffee")
        assert int(resp.headers["x-ms-ratelimit-remaining-subscription-writes"]) < 200

    # Refusals carry them too.
    status, refused, _ = raw(sandbox, "GET", f"{VM_ID}?api-version={API}")
    assert status == 401 and refused["x-ms-correlation-request-id"]


def test_deeply_nested_body_is_a_400_not_a_500(sandbox, sp_credential):
    """Security review D7: the parser's recursion limit is bad input, answered as ARM does."""
    token = sp_credential.get_token(MGMT_SCOPE).token
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in (f"{world.ACS_RESOURCE_ID}?api-version=2025-09-01", f"{VM_ID}?api-version={API}"):
        status, _, body = raw(sandbox, "PATCH", path, token, deep)
        assert (status, body["error"]["code"]) == (400, "InvalidRequestContent")
        assert body["error"]["message"].startswith(
            "The request content was invalid and could not be deserialized: "
        )


# -- roles as Azure publishes them, judged as Azure judges them --------------------------------


def test_built_in_roles_are_the_published_definitions(sandbox, sp_credential):
    auth = mgmt(AuthorizationManagementClient, sp_credential, sandbox)
    contributor = auth.role_definitions.get(world.GROUP_SCOPE, world.CONTRIBUTOR_ROLE_ID)
    assert contributor.description == (
        "Grants full access to manage all resources, but does not allow you to assign roles in "
        "Azure RBAC, manage assignments in Azure Blueprints, or share image galleries."
    )
    assert contributor.assignable_scopes == ["/"]
    perms = contributor.permissions[0]
    assert perms.actions == ["*"] and perms.data_actions == [] and perms.not_data_actions == []
    assert len(perms.not_actions) == 11
    assert perms.not_actions[-1] == "Microsoft.Subscription/enable/action"
    found = auth.role_definitions.list(
        world.GROUP_SCOPE, filter="roleName eq 'User Access Administrator'"
    )
    uaa = next(iter(found)).permissions[0]
    assert uaa.actions == ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"]
    owner_acs = auth.role_definitions.get(world.GROUP_SCOPE, ACS_OWNER_GUID)
    assert owner_acs.description == (
        "Create, read, modify, and delete Communications and Email Service resources."
    )
    assert "Microsoft.Communication/CommunicationServices/ListKeys/action" in (
        owner_acs.permissions[0].actions
    )


def test_wildcards_and_not_actions_decide_as_in_azure(
    sandbox, fresh, sp_credential, dev_credential
):
    """Contributor's notActions ``Microsoft.Authorization/*/Write`` stop the SP assigning roles;
    User Access Administrator's ``Microsoft.Authorization/*`` then allows it (notActions subtract
    only from their own role); ``*/read`` in Reader never covers an action."""
    uai = new_uai(sandbox, sp_credential, "uai-wild")
    sp_auth = mgmt(AuthorizationManagementClient, sp_credential, sandbox)
    reader = world.role_definition_id("acdd72a7-3385-48ef-bd42-f606fba81ae7")
    params = {"role_definition_id": reader, "principal_id": uai.principal_id}
    with pytest.raises(HttpResponseError) as before:
        sp_auth.role_assignments.create(world.GROUP_SCOPE, str(uuid.uuid4()), params)
    assert before.value.error.code == "AuthorizationFailed"

    dev_auth = mgmt(AuthorizationManagementClient, dev_credential, sandbox)
    dev_auth.role_assignments.create(
        world.GROUP_SCOPE,
        str(uuid.uuid4()),
        {
            "role_definition_id": world.role_definition_id("18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"),
            "principal_id": world.SP_OID,
            "principal_type": "ServicePrincipal",
        },
    )
    made = sp_auth.role_assignments.create(world.GROUP_SCOPE, str(uuid.uuid4()), params)
    assert made.principal_id == uai.principal_id


def test_role_assignment_error_texts(sandbox, fresh, sp_credential, dev_credential):
    uai = new_uai(sandbox, sp_credential, "uai-texts")
    ras = mgmt(AuthorizationManagementClient, dev_credential, sandbox).role_assignments
    params = {
        "role_definition_id": world.role_definition_id(ACS_OWNER_GUID),
        "principal_id": uai.principal_id,
        "principal_type": "ServicePrincipal",
    }
    first = str(uuid.uuid4())
    ras.create(world.ACS_RESOURCE_ID, first, params)
    with pytest.raises(ResourceExistsError) as dup:
        ras.create(world.ACS_RESOURCE_ID, str(uuid.uuid4()), params)
    assert dup.value.error.message == (
        "The role assignment already exists.\nThe ID of the existing role assignment is "
        f"{first.replace('-', '')}."
    )
    ghost = str(uuid.uuid4())
    with pytest.raises(HttpResponseError) as nobody:
        ras.create(world.GROUP_SCOPE, str(uuid.uuid4()), {**params, "principal_id": ghost})
    assert nobody.value.error.message == (
        f"Principal {ghost.replace('-', '')} does not exist in the directory {world.TENANT_ID}. "
        "Check that you have the correct principal ID. If you are creating this principal and "
        "then immediately assigning a role, this error might be related to a replication delay. "
        "In this case, set the role assignment principalType property to a value, such as "
        "ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype"
    )
    with pytest.raises(HttpResponseError) as bad_filter:
        list(ras.list_for_scope(world.GROUP_SCOPE, filter=f"principalId eq {ghost}"))
    assert bad_filter.value.error.message == (
        f"The filter 'principalId eq {ghost}' is not supported. Supported filters are either "
        "'atScope()' or 'principalId eq '{value}' or assignedTo('{value}')'."
    )
