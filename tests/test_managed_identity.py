"""Managed-identity endpoints of the simulated hosts, driven by the real azure-identity/MSAL code.

Identities are switched on through Resource Manager (the service principal is Contributor on
the group), exactly as a learner does, and every token is checked against the tenant's JWKS.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    CredentialUnavailableError,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential

from sandbox import world
from tests.test_arm import FUNC_ID, VM_ID, new_uai, set_identity, sp_credential_for
from tests.test_entra import make_verifier

ACS_SCOPE = "https://communication.azure.com//.default"
ACS_RESOURCE = "https://communication.azure.com/"


def azure_mirid(resource_id: str) -> str:
    """``xms_mirid`` as Azure writes it: ``resourcegroups`` in lower case (every real sample)."""
    return resource_id.replace("/resourceGroups/", "/resourcegroups/")


def claims_of(doc: dict[str, Any], token: str) -> dict[str, Any]:
    """Claims of a token whose signature, issuer and audience check out against the JWKS."""
    return make_verifier(doc)(token, ACS_RESOURCE)


def mi_get(doc: dict[str, Any], path: str, headers: dict[str, str] | None = None):
    """(status, json) of a raw call to the identity listener."""
    req = urllib.request.Request(doc["mi_url"] + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def async_token(scope: str = ACS_SCOPE, **kwargs: Any) -> str:
    async def run() -> str:
        async with AsyncManagedIdentityCredential(**kwargs) as cred:
            return (await cred.get_token(scope)).token

    return asyncio.run(run())


@pytest.fixture(scope="module")
def sp_credential(sandbox, control):
    """The service principal (Contributor on the group) switches identities on and off."""
    secret = control("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]
    with sp_credential_for(sandbox, secret) as cred:
        yield cred


@pytest.fixture
def vm(sandbox, persona):
    persona("vm-tutorial")
    return sandbox


# -- system-assigned --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host_id, persona_name", [(VM_ID, "vm-tutorial"), (FUNC_ID, "func-tutorial")]
)
def test_system_assigned_sync_and_async(
    sandbox, fresh, persona, sp_credential, host_id, persona_name
):
    host = set_identity(sandbox, sp_credential, host_id, {"type": "SystemAssigned"})
    persona(persona_name)
    before = time.time()
    token = ManagedIdentityCredential().get_token(ACS_SCOPE)
    assert 86000 <= token.expires_on - before <= 86400  # about 24 hours, as Azure's
    claims = claims_of(sandbox, token.token)
    assert claims["oid"] == host.identity.principal_id == claims["sub"]
    assert claims["tid"] == world.TENANT_ID
    # A v1.0 managed-identity token as Entra issues one (2025 IMDS capture).
    assert (claims["idtyp"], claims["appidacr"], claims["ver"]) == ("app", "2", "1.0")
    assert claims["idp"] == claims["iss"] == f"https://sts.windows.net/{world.TENANT_ID}/"
    assert claims["exp"] - claims["iat"] == 86399 + 300  # iat backdated five minutes
    assert claims["xms_mirid"] == azure_mirid(host_id) and "/resourcegroups/" in host_id.lower()
    assert claims["aud"] == ACS_RESOURCE
    assert claims_of(sandbox, async_token())["oid"] == host.identity.principal_id


def test_response_shape_and_audit(sandbox, fresh, control, sp_credential):
    host = set_identity(sandbox, sp_credential, VM_ID, {"type": "SystemAssigned"})
    before = control.last_log_id()
    # The resource arrives unencoded, as the SDKs send it.
    status, body = mi_get(
        sandbox,
        "/hosts/vm-tutorial/metadata/identity/oauth2/token?api-version=2018-02-01"
        "&resource=https://communication.azure.com/",
        {"Metadata": "true"},
    )
    assert status == 200
    # IMDS's fields, all strings, and no refresh_token (2025 IMDS capture).
    assert sorted(body) == ["access_token", "client_id", "expires_in", "expires_on",
                            "ext_expires_in", "not_before", "resource", "token_type"]  # fmt: skip
    assert all(isinstance(v, str) for v in body.values())
    for field in ("expires_in", "expires_on", "not_before"):
        assert body[field].isdigit()
    assert 86000 <= int(body["expires_in"]) <= 86399
    assert (body["resource"], body["token_type"]) == (ACS_RESOURCE, "Bearer")
    assert body["client_id"] == claims_of(sandbox, body["access_token"])["appid"]
    [entry] = [e for e in control.log_after(before) if e["listener"] == "mi"]
    assert (entry["caller"], entry["principal_id"]) == ("vm-tutorial", host.identity.principal_id)
    assert (entry["credential"], entry["host"], entry["decision"]) == (
        "managed-identity",
        "vm-tutorial",
        "issued",
    )
    assert "access_token" not in json.dumps(entry) and body["access_token"] not in json.dumps(entry)


# -- user-assigned ----------------------------------------------------------------------------


def test_user_assigned_on_imds(sandbox, fresh, persona, sp_credential):
    one = new_uai(sandbox, sp_credential, "uai-one")
    two = new_uai(sandbox, sp_credential, "uai-two")
    set_identity(
        sandbox,
        sp_credential,
        VM_ID,
        {"type": "UserAssigned", "userAssignedIdentities": {one.id: {}}},
    )
    persona("vm-tutorial")
    # With one user-assigned identity and no system-assigned one, it is the default.
    assert (
        claims_of(sandbox, ManagedIdentityCredential().get_token(ACS_SCOPE).token)["oid"]
        == one.principal_id
    )

    set_identity(
        sandbox,
        sp_credential,
        VM_ID,
        {"type": "UserAssigned", "userAssignedIdentities": {two.id: {}}},
    )
    by_client = ManagedIdentityCredential(client_id=two.client_id).get_token(ACS_SCOPE).token
    by_object = ManagedIdentityCredential(identity_config={"object_id": one.principal_id})
    by_resource = ManagedIdentityCredential(identity_config={"resource_id": two.id})
    assert claims_of(sandbox, by_client)["oid"] == two.principal_id
    assert claims_of(sandbox, by_client)["xms_mirid"] == azure_mirid(two.id)
    assert claims_of(sandbox, by_object.get_token(ACS_SCOPE).token)["oid"] == one.principal_id
    assert claims_of(sandbox, by_resource.get_token(ACS_SCOPE).token)["oid"] == two.principal_id
    assert claims_of(sandbox, async_token(client_id=one.client_id))["oid"] == one.principal_id
    # The async client sends identity_config verbatim: IMDS names the resource id msi_res_id.
    assert (
        claims_of(sandbox, async_token(identity_config={"msi_res_id": two.id}))["oid"]
        == two.principal_id
    )
    # Two identities and no selector: IMDS cannot choose.
    with pytest.raises(CredentialUnavailableError, match="Multiple user assigned identities"):
        ManagedIdentityCredential().get_token(ACS_SCOPE)


def test_user_assigned_on_app_service(sandbox, fresh, persona, sp_credential):
    uai = new_uai(sandbox, sp_credential, "uai-func")
    func = set_identity(
        sandbox,
        sp_credential,
        FUNC_ID,
        {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {uai.id: {}}},
    )
    persona("func-tutorial")
    system = ManagedIdentityCredential().get_token(ACS_SCOPE).token
    assert claims_of(sandbox, system)["oid"] == func.identity.principal_id
    for cred in (
        ManagedIdentityCredential(client_id=uai.client_id),
        ManagedIdentityCredential(identity_config={"object_id": uai.principal_id}),
        ManagedIdentityCredential(identity_config={"resource_id": uai.id}),
    ):
        assert claims_of(sandbox, cred.get_token(ACS_SCOPE).token)["oid"] == uai.principal_id
    assert claims_of(sandbox, async_token(client_id=uai.client_id))["oid"] == uai.principal_id


# -- no identity ------------------------------------------------------------------------------


def test_no_identity_is_unavailable(sandbox, fresh, persona, sp_credential):
    persona("vm-tutorial")
    with pytest.raises(CredentialUnavailableError, match="Identity not found"):
        ManagedIdentityCredential().get_token(ACS_SCOPE)
    with pytest.raises(CredentialUnavailableError):
        async_token()
    uai = new_uai(sandbox, sp_credential, "uai-elsewhere")  # exists, but not on this VM
    with pytest.raises(CredentialUnavailableError, match="Identity not found"):
        ManagedIdentityCredential(client_id=uai.client_id).get_token(ACS_SCOPE)

    persona("func-tutorial")
    with pytest.raises(
        CredentialUnavailableError, match="Unable to load the proper Managed Identity"
    ):
        ManagedIdentityCredential().get_token(ACS_SCOPE)
    # The async App Service client turns any 400 into ClientAuthenticationError (SDK behaviour).
    with pytest.raises(ClientAuthenticationError):
        async_token()


def test_enable_gives_tokens_at_once_and_disable_stops_them(sandbox, fresh, persona, sp_credential):
    persona("vm-tutorial")
    with pytest.raises(CredentialUnavailableError):
        ManagedIdentityCredential().get_token(ACS_SCOPE)
    on = set_identity(sandbox, sp_credential, VM_ID, {"type": "SystemAssigned"})
    token = ManagedIdentityCredential().get_token(ACS_SCOPE).token
    assert claims_of(sandbox, token)["oid"] == on.identity.principal_id
    set_identity(sandbox, sp_credential, VM_ID, {"type": "None"})
    with pytest.raises(CredentialUnavailableError, match="Identity not found"):
        ManagedIdentityCredential().get_token(ACS_SCOPE)


def test_the_endpoint_hands_out_the_same_token_again_as_azure_does(vm, fresh, sp_credential):
    set_identity(vm, sp_credential, VM_ID, {"type": "SystemAssigned"})
    first = ManagedIdentityCredential().get_token(ACS_SCOPE)
    again = ManagedIdentityCredential().get_token(ACS_SCOPE)  # a new credential: no SDK cache
    assert again.token == first.token
    other = ManagedIdentityCredential().get_token("https://management.azure.com/.default")
    assert other.token != first.token
    set_identity(vm, sp_credential, VM_ID, {"type": "None"})
    set_identity(vm, sp_credential, VM_ID, {"type": "SystemAssigned"})
    renewed = ManagedIdentityCredential().get_token(ACS_SCOPE)  # a new principal, a new token
    assert renewed.token != first.token


# -- DefaultAzureCredential -------------------------------------------------------------------


@pytest.mark.parametrize(
    "host_id, persona_name", [(VM_ID, "vm-tutorial"), (FUNC_ID, "func-tutorial")]
)
def test_default_credential_picks_managed_identity(
    sandbox, fresh, persona, sp_credential, host_id, persona_name
):
    host = set_identity(sandbox, sp_credential, host_id, {"type": "SystemAssigned"})
    persona(persona_name)
    cred = DefaultAzureCredential()
    token = cred.get_token(ACS_SCOPE).token
    assert isinstance(cred._successful_credential, ManagedIdentityCredential)
    assert claims_of(sandbox, token)["oid"] == host.identity.principal_id


def test_default_credential_moves_on_when_the_vm_has_no_identity(vm, fresh, monkeypatch):
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "prod")  # no developer tools in the chain
    with pytest.raises(ClientAuthenticationError) as failed:
        DefaultAzureCredential().get_token(ACS_SCOPE)
    text = str(failed.value)
    assert "ManagedIdentityCredential" in text and "Identity not found" in text


# -- protocol checks --------------------------------------------------------------------------


IMDS_PATH = "/hosts/{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={}"
MSI_PATH = "/hosts/{}/msi/token?api-version=2019-08-01&resource={}"


def test_imds_protocol_errors(sandbox, fresh, sp_credential):
    set_identity(sandbox, sp_credential, VM_ID, {"type": "SystemAssigned"})
    meta = {"Metadata": "true"}
    assert mi_get(sandbox, IMDS_PATH.format("vm-tutorial", ACS_RESOURCE)) == (
        400,
        {"error": "bad_request_102", "error_description": "Required metadata header not specified"},
    )
    status, body = mi_get(sandbox, IMDS_PATH.format("vm-tutorial", "https://vault.azure.net"), meta)
    assert (status, body["error"]) == (400, "invalid_resource")
    assert body["error_description"].startswith("AADSTS500011")
    status, body = mi_get(sandbox, IMDS_PATH.format("func-tutorial", ACS_RESOURCE), meta)
    assert status == 400 and "no IMDS endpoint" in body["error_description"]
    # The laptop has no identity endpoint: an empty answer the SDK reads as "no response".
    assert mi_get(sandbox, IMDS_PATH.format("developer-laptop", ACS_RESOURCE), meta) == (400, {})
    # The JavaScript SDKs' probe drops the host path; it must get a quick answer.
    status, body = mi_get(sandbox, "/metadata/identity/oauth2/token?api-version=2018-02-01")
    assert status == 400 and body["error"] == "invalid_request"


def test_app_service_protocol_errors(sandbox, fresh, control, sp_credential):
    set_identity(sandbox, sp_credential, FUNC_ID, {"type": "SystemAssigned"})
    header = control("GET", "/_sandbox/personas/func-tutorial")["set"]["IDENTITY_HEADER"]
    status, body = mi_get(sandbox, MSI_PATH.format("func-tutorial", ACS_RESOURCE))
    assert status == 400 and body["statusCode"] == 400 and "X-IDENTITY-HEADER" in body["message"]
    status, body = mi_get(
        sandbox, MSI_PATH.format("func-tutorial", ACS_RESOURCE), {"X-IDENTITY-HEADER": "guess"}
    )
    assert (status, body["statusCode"]) == (401, 401)
    status, body = mi_get(
        sandbox, MSI_PATH.format("vm-tutorial", ACS_RESOURCE), {"X-IDENTITY-HEADER": header}
    )
    assert status == 400 and "no App Service identity endpoint" in body["message"]
    status, body = mi_get(
        sandbox, MSI_PATH.format("func-tutorial", ACS_RESOURCE), {"X-IDENTITY-HEADER": header}
    )
    assert status == 200 and int(body["expires_on"]) > time.time() + 3600


# -- faults -----------------------------------------------------------------------------------


def test_unreachable_endpoint_fails_fast(sandbox, fresh, control, persona, sp_credential):
    set_identity(sandbox, sp_credential, VM_ID, {"type": "SystemAssigned"})
    set_identity(sandbox, sp_credential, FUNC_ID, {"type": "SystemAssigned"})
    control("POST", "/_sandbox/faults/mi_unreachable", {"hosts": ["vm-tutorial"]})
    try:
        persona("vm-tutorial")
        started = time.monotonic()
        with pytest.raises(CredentialUnavailableError, match="no response from the IMDS endpoint"):
            ManagedIdentityCredential().get_token(ACS_SCOPE)
        assert time.monotonic() - started < 3
        persona("func-tutorial")  # other hosts are unaffected
        assert ManagedIdentityCredential().get_token(ACS_SCOPE).token
    finally:
        control("DELETE", "/_sandbox/faults")
    persona("vm-tutorial")
    assert ManagedIdentityCredential().get_token(ACS_SCOPE).token


def test_slow_endpoint_answers_late(sandbox, fresh, control, persona, sp_credential):
    set_identity(sandbox, sp_credential, VM_ID, {"type": "SystemAssigned"})
    control("POST", "/_sandbox/faults/mi_slow", {"seconds": 0.6})
    try:
        persona("vm-tutorial")
        started = time.monotonic()
        assert ManagedIdentityCredential().get_token(ACS_SCOPE).token
        assert time.monotonic() - started >= 0.6
    finally:
        control("DELETE", "/_sandbox/faults")


# -- fidelity: what Azure's endpoints answer (sandbox/FIDELITY.md, managed-identity section) ----


def test_app_service_answer_has_the_2019_08_01_fields(sandbox, fresh, control, sp_credential):
    set_identity(sandbox, sp_credential, FUNC_ID, {"type": "SystemAssigned"})
    header = control("GET", "/_sandbox/personas/func-tutorial")["set"]["IDENTITY_HEADER"]
    status, body = mi_get(
        sandbox, MSI_PATH.format("func-tutorial", ACS_RESOURCE), {"X-IDENTITY-HEADER": header}
    )
    assert status == 200
    # App Service 2019-08-01: no expires_in, no refresh_token (docs example).
    assert sorted(body) == ["access_token", "client_id", "expires_on", "resource", "token_type"]
    assert 86000 <= int(body["expires_on"]) - time.time() <= 86400


def test_app_service_uses_only_the_system_assigned_identity_without_a_selector(
    sandbox, fresh, control, persona, sp_credential
):
    """App Service docs: without client_id/principal_id/mi_res_id "the token service will attempt
    to obtain a token for a system-assigned identity"; with none, 400 "Unable to load the proper
    Managed Identity." (IMDS, by contrast, defaults to a lone user-assigned identity)."""
    uai = new_uai(sandbox, sp_credential, "uai-only")
    set_identity(sandbox, sp_credential, FUNC_ID,
                 {"type": "UserAssigned", "userAssignedIdentities": {uai.id: {}}})  # fmt: skip
    header = control("GET", "/_sandbox/personas/func-tutorial")["set"]["IDENTITY_HEADER"]
    for query in ("", f"&client_id={world.SP_CLIENT_ID}"):
        status, body = mi_get(sandbox, MSI_PATH.format("func-tutorial", ACS_RESOURCE) + query,
                              {"X-IDENTITY-HEADER": header})  # fmt: skip
        assert status == 400
        assert sorted(body) == ["correlationId", "message", "statusCode"]
        assert (body["statusCode"], body["message"]) == (
            400,
            "Unable to load the proper Managed Identity.",
        )
    persona("func-tutorial")
    with pytest.raises(CredentialUnavailableError, match="Unable to load the proper Managed"):
        ManagedIdentityCredential().get_token(ACS_SCOPE)
    named = ManagedIdentityCredential(client_id=uai.client_id).get_token(ACS_SCOPE)
    assert claims_of(sandbox, named.token)["oid"] == uai.principal_id


def test_imds_msi_res_id_names_a_user_assigned_identity_not_the_vm(
    sandbox, fresh, persona, sp_credential
):
    """Security review D15: msi_res_id is IMDS's user-assigned selector; the VM's own id is not
    a user-assigned identity, so it does not return the system-assigned token."""
    set_identity(sandbox, sp_credential, VM_ID, {"type": "SystemAssigned"})
    meta = {"Metadata": "true"}
    status, body = mi_get(sandbox, IMDS_PATH.format("vm-tutorial", ACS_RESOURCE)
                          + f"&msi_res_id={VM_ID}", meta)  # fmt: skip
    assert (status, body) == (
        400,
        {"error": "invalid_request", "error_description": "Identity not found"},
    )
    persona("vm-tutorial")
    with pytest.raises(CredentialUnavailableError, match="Identity not found"):
        ManagedIdentityCredential(identity_config={"resource_id": VM_ID}).get_token(ACS_SCOPE)


def test_the_endpoint_renews_its_cached_token_only_near_expiry(sandbox, fresh, sp_credential):
    set_identity(sandbox, sp_credential, VM_ID, {"type": "SystemAssigned"})
    meta = {"Metadata": "true"}
    path = IMDS_PATH.format("vm-tutorial", ACS_RESOURCE)
    first = mi_get(sandbox, path, meta)[1]
    left = int(first["expires_on"]) - int(time.time())
    try:
        fresh("POST", "/_sandbox/faults/clock_skew", {"seconds": left - 900})  # 15 min left
        later = mi_get(sandbox, path, meta)[1]
        assert later["access_token"] == first["access_token"]
        assert 800 <= int(later["expires_in"]) <= 900  # counts down, as IMDS's does
        fresh("POST", "/_sandbox/faults/clock_skew", {"seconds": left - 300})  # 5 min left
        renewed = mi_get(sandbox, path, meta)[1]
        assert renewed["access_token"] != first["access_token"]
        assert int(renewed["expires_in"]) >= 86000
    finally:
        fresh("DELETE", "/_sandbox/faults/clock_skew")
