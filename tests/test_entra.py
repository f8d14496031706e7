"""Entra ID in the sandbox: metadata, the token endpoint for apps (secret, workload identity),
the device-code and refresh-token protocol, and error answers shaped exactly like Entra's."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlencode

import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    ClientSecretCredential,
    DefaultAzureCredential,
    WorkloadIdentityCredential,
)
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox import client, world
from tests.conftest import https_json

TENANT = world.TENANT_ID
SP = world.SP_CLIENT_ID
CLI = world.AZURE_CLI_CLIENT_ID
ACS_SCOPE = "https://communication.azure.com//.default"  # what the ACS SDKs ask for
ARM_SCOPE = "https://management.azure.com/.default"
V1_ISSUER = f"https://sts.windows.net/{TENANT}/"  # what Entra writes in ARM and ACS tokens
GRANT_DC = "urn:ietf:params:oauth:grant-type:device_code"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def post_form(sandbox, path: str, **fields: str):
    return https_json(sandbox, "POST", path, data=urlencode(fields).encode(), headers=FORM)


def token_path(tenant: str = TENANT) -> str:
    return f"/{tenant}/oauth2/v2.0/token"


@pytest.fixture(scope="module")
def sp_secret(control) -> str:
    return control("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]


def make_verifier(sandbox):
    """Check a token the way a resource server does: signature from the JWKS fetched over
    HTTPS, issuer, audience and lifetime."""
    ctx = ssl.create_default_context(cafile=sandbox["ca_file"])
    keys = jwt.PyJWKClient(f"{sandbox['https_url']}/{TENANT}/discovery/v2.0/keys", ssl_context=ctx)

    def check(token: str, audience: str) -> dict:
        key = keys.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=audience,
            issuer=V1_ISSUER,
        )

    return check


@pytest.fixture(scope="module")
def verify(sandbox):
    return make_verifier(sandbox)


def assert_entra_error(body: dict, code: int, error: str) -> None:
    assert body["error"] == error
    assert body["error_codes"] == [code]
    first, trace, corr, stamp = body["error_description"].split("\r\n")
    assert first.startswith(f"AADSTS{code}: ")
    assert trace == f"Trace ID: {body['trace_id']}"
    assert corr == f"Correlation ID: {body['correlation_id']}"
    assert stamp == f"Timestamp: {body['timestamp']}"
    assert body["error_uri"].endswith(f"/error?code={code}")
    uuid.UUID(body["trace_id"])


def last_token_entry(control, after: int) -> dict:
    entries = [e for e in control.log_after(after) if "/oauth2/" in e["path"]]
    assert entries, "the token request was not logged"
    return entries[-1]


# -- metadata --------------------------------------------------------------------------------


def test_openid_configuration_for_id_domain_and_aliases(sandbox):
    base = sandbox["https_url"]
    status, by_id = https_json(sandbox, "GET", f"/{TENANT}/v2.0/.well-known/openid-configuration")
    assert status == 200
    assert by_id["issuer"] == f"{base}/{TENANT}/v2.0"
    assert by_id["token_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/token"
    assert by_id["authorization_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/authorize"
    assert by_id["device_authorization_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/devicecode"
    assert by_id["jwks_uri"] == f"{base}/{TENANT}/discovery/v2.0/keys"

    status, by_domain = https_json(
        sandbox, "GET", f"/{world.TENANT_DOMAIN}/v2.0/.well-known/openid-configuration"
    )
    assert status == 200 and by_domain == by_id  # Entra answers a domain with the tenant id

    status, alias = https_json(
        sandbox, "GET", "/organizations/v2.0/.well-known/openid-configuration"
    )
    assert status == 200
    assert alias["token_endpoint"] == f"{base}/organizations/oauth2/v2.0/token"
    assert alias["issuer"] == f"{base}/{{tenantid}}/v2.0"

    status, v1 = https_json(sandbox, "GET", f"/{TENANT}/.well-known/openid-configuration")
    assert status == 200
    assert v1["token_endpoint"] == f"{base}/{TENANT}/oauth2/token"
    assert v1["jwks_uri"] == f"{base}/{TENANT}/discovery/keys"
    assert v1["issuer"] == V1_ISSUER  # the issuer of the access tokens ARM and ACS accept
    status, v1_alias = https_json(sandbox, "GET", "/common/.well-known/openid-configuration")
    assert v1_alias["issuer"] == "https://sts.windows.net/{tenantid}/"

    status, jwks = https_json(sandbox, "GET", f"/{TENANT}/discovery/v2.0/keys")
    assert status == 200
    (key,) = jwks["keys"]
    # As Entra publishes them: x5t equal to kid (the certificate's thumbprint), the certificate
    # in x5c, the issuer on v2.0 keys, no alg.
    assert sorted(key) == ["e", "issuer", "kid", "kty", "n", "use", "x5c", "x5t"]
    assert key["x5t"] == key["kid"] and key["issuer"] == f"{base}/{TENANT}/v2.0"
    thumbprint = hashlib.sha1(base64.b64decode(key["x5c"][0])).digest()
    assert base64.urlsafe_b64encode(thumbprint).rstrip(b"=").decode() == key["x5t"]
    status, v1_keys = https_json(sandbox, "GET", f"/{TENANT}/discovery/keys")
    assert status == 200
    assert v1_keys == {"keys": [{k: v for k, v in key.items() if k != "issuer"}]}


@pytest.mark.parametrize(
    "path",
    [
        "/00000000-1111-2222-3333-444444444444/v2.0/.well-known/openid-configuration",
        "/nosuch.onmicrosoft.com/.well-known/openid-configuration",
        "/consumers/discovery/v2.0/keys",
        "/00000000-1111-2222-3333-444444444444/oauth2/v2.0/token",
    ],
)
def test_unknown_tenant_is_aadsts90002(sandbox, path):
    if path.endswith("/token"):
        status, body = post_form(sandbox, path, grant_type="client_credentials", client_id=SP)
    else:
        status, body = https_json(sandbox, "GET", path)
    assert status == 400
    assert_entra_error(body, 90002, "invalid_request")
    assert "not found" in body["error_description"]


def test_error_echoes_the_client_request_id(sandbox):
    corr = str(uuid.uuid4())
    status, body = https_json(
        sandbox,
        "POST",
        token_path(),
        data=b"grant_type=client_credentials",
        headers={**FORM, "client-request-id": corr},
    )
    assert status == 400 and body["correlation_id"] == corr


# -- apps: client secret -------------------------------------------------------------------------


def test_client_secret_credential_gets_a_verifiable_app_token(
    sandbox, control, persona, sp_secret, verify
):
    persona("service-principal")  # trusts the sandbox CA
    before = control.last_log_id()
    cred = ClientSecretCredential(
        TENANT, SP, sp_secret, authority=sandbox["https_url"], disable_instance_discovery=True
    )
    token = cred.get_token(ACS_SCOPE)
    claims = verify(token.token, "https://communication.azure.com/")
    assert claims["tid"] == TENANT
    assert claims["oid"] == world.SP_OID
    assert claims["appid"] == SP
    assert claims["idtyp"] == "app"
    assert claims["nbf"] <= time.time() + 5 and claims["iat"] <= time.time() + 5
    assert 3600 <= claims["exp"] - claims["iat"] <= 5400  # Entra: 60-90 minutes
    assert abs(token.expires_on - claims["exp"]) <= 2
    # A v1.0 token, as Entra issues for first-party resources: appid/appidacr, never azp/azpacr.
    assert (claims["ver"], claims["appidacr"], claims["idp"]) == ("1.0", "1", V1_ISSUER)
    assert claims["sub"] == claims["oid"]  # app-only: the subject is the service principal
    assert not {"azp", "azpacr"} & set(claims)
    header = jwt.get_unverified_header(token.token)
    assert header == {"typ": "JWT", "alg": "RS256", "x5t": header["kid"], "kid": header["kid"]}

    entry = last_token_entry(control, before)
    assert entry["status"] == 200
    assert entry["credential"] == "client-secret"
    assert entry["decision"] == "issued"
    assert entry["caller"] == world.SP_NAME
    assert entry["principal_id"] == world.SP_OID
    assert entry["audience"] == "https://communication.azure.com/"
    logged = json.dumps(control.log_after(before))
    assert sp_secret not in logged and token.token not in logged


def test_environment_credential_uses_management_scope(sandbox, persona, verify):
    persona("service-principal")
    cred = DefaultAzureCredential(disable_instance_discovery=True)
    claims = verify(cred.get_token("https://management.azure.com/.default").token,
                    "https://management.azure.com")  # fmt: skip
    assert claims["oid"] == world.SP_OID and claims["idtyp"] == "app"


def _secret_credential(sandbox, tenant=TENANT, client_id=SP, secret="wrong"):
    return ClientSecretCredential(
        tenant, client_id, secret, authority=sandbox["https_url"], disable_instance_discovery=True
    )


def test_wrong_secret_is_aadsts7000215(sandbox, control, persona):
    persona("service-principal")
    before = control.last_log_id()
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        _secret_credential(sandbox).get_token(ACS_SCOPE)
    entry = last_token_entry(control, before)
    assert entry["status"] == 401
    assert entry["decision"] == "denied"
    assert entry["credential"] == "client-secret"
    assert entry["reason"].startswith("AADSTS7000215")


def test_unknown_client_is_aadsts700016(sandbox, persona):
    persona("service-principal")
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        _secret_credential(sandbox, client_id=str(uuid.uuid4())).get_token(ACS_SCOPE)


def test_unknown_tenant_fails_in_the_sdk(sandbox, persona, sp_secret):
    persona("service-principal")
    with pytest.raises(ClientAuthenticationError, match="Unable to get authority configuration"):
        _secret_credential(sandbox, tenant=str(uuid.uuid4()), secret=sp_secret).get_token(ACS_SCOPE)


@pytest.mark.parametrize(
    "scope, code",
    [
        ("https://unknown.example.com/.default", "AADSTS500011"),
        ("User.Read", "AADSTS1002012"),
        ("https://management.azure.com/user_impersonation", "AADSTS1002012"),
        ("https:///.default", "AADSTS70011"),
    ],
)
def test_bad_scopes_are_refused_by_entra(sandbox, persona, sp_secret, scope, code):
    persona("service-principal")
    with pytest.raises(ClientAuthenticationError, match=code):
        _secret_credential(sandbox, secret=sp_secret).get_token(scope)


def test_scope_errors_over_http(sandbox, sp_secret):
    def ask(scope):
        return post_form(
            sandbox,
            token_path(),
            grant_type="client_credentials",
            client_id=SP,
            client_secret=sp_secret,
            scope=scope,
        )

    status, body = ask("https://nosuch.example/.default")
    assert status == 400 and body["error"] == "invalid_resource"
    assert_entra_error(body, 500011, "invalid_resource")
    status, body = ask("-- not a scope")
    assert status == 400
    assert_entra_error(body, 70011, "invalid_scope")
    status, body = ask("https://management.azure.com/.default https://graph.microsoft.com/.default")
    assert status == 400 and body["error_codes"] == [28000]
    status, body = ask("https://management.core.windows.net//.default")
    assert status == 200
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["aud"] == (
        "https://management.core.windows.net/"
    )


def test_v1_endpoint_takes_a_resource(sandbox, sp_secret, verify):
    status, body = post_form(
        sandbox,
        f"/{TENANT}/oauth2/token",
        grant_type="client_credentials",
        client_id=SP,
        client_secret=sp_secret,
        resource="https://communication.azure.com/",
    )
    assert status == 200
    assert body["resource"] == "https://communication.azure.com/"
    assert int(body["expires_on"]) > time.time() + 3000 and body["token_type"] == "Bearer"
    assert verify(body["access_token"], "https://communication.azure.com/")["idtyp"] == "app"


def test_client_secret_basic_is_accepted(sandbox, sp_secret):
    auth = base64.b64encode(f"{SP}:{sp_secret}".encode()).decode()
    status, body = https_json(
        sandbox,
        "POST",
        token_path(),
        data=urlencode({"grant_type": "client_credentials", "scope": ACS_SCOPE}).encode(),
        headers={**FORM, "Authorization": f"Basic {auth}"},
    )
    assert status == 200 and body["access_token"]


@pytest.mark.parametrize(
    "fields, status, code, error",
    [
        ({}, 400, 900144, "invalid_request"),
        ({"grant_type": "implicit", "client_id": CLI}, 400, 70003, "unsupported_grant_type"),
        ({"grant_type": "password", "client_id": CLI, "scope": ARM_SCOPE},
         400, 900144, "invalid_request"),
        ({"grant_type": "password", "client_id": CLI, "scope": ARM_SCOPE,
          "username": world.DEVELOPER_UPN, "password": "wrong"}, 400, 50126, "invalid_grant"),
        ({"grant_type": "client_credentials"}, 400, 900144, "invalid_request"),
        ({"grant_type": "client_credentials", "client_id": SP, "scope": ACS_SCOPE},
         401, 7000218, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": CLI, "scope": ACS_SCOPE},
         401, 7000218, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": CLI, "client_secret": "x",
          "scope": ACS_SCOPE}, 400, 700025, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": SP, "client_secret": "x"},
         401, 7000215, "invalid_client"),
        ({"grant_type": "refresh_token", "client_id": CLI}, 400, 900144, "invalid_request"),
        ({"grant_type": GRANT_DC, "client_id": CLI}, 400, 900144, "invalid_request"),
        ({"grant_type": GRANT_DC, "client_id": CLI, "device_code": "made-up"},
         400, 70000, "invalid_grant"),
    ],
)  # fmt: skip
def test_token_endpoint_refusals_are_entra_shaped(sandbox, fields, status, code, error):
    got_status, body = post_form(sandbox, token_path(), **fields)
    assert got_status == status
    assert_entra_error(body, code, error)


def test_confidential_client_cannot_use_the_multi_tenant_alias(sandbox, sp_secret):
    status, body = post_form(
        sandbox,
        token_path("organizations"),
        grant_type="client_credentials",
        client_id=SP,
        client_secret=sp_secret,
        scope=ACS_SCOPE,
    )
    assert status == 400
    assert_entra_error(body, 50194, "invalid_request")


@pytest.mark.parametrize(
    "data, content_type",
    [
        (b"", "application/x-www-form-urlencoded"),
        (b'{"grant_type": "client_credentials"}', "application/json"),
        (b"grant_type=\xff\xfe&client_id=%zz", "application/x-www-form-urlencoded"),
        (b"&&&===&", "application/x-www-form-urlencoded"),
        (b"\x00\x01garbage", "application/octet-stream"),
    ],
)
def test_malformed_bodies_get_400_not_500(sandbox, data, content_type):
    status, body = https_json(
        sandbox, "POST", token_path(), data=data, headers={"Content-Type": content_type}
    )
    assert status == 400 and body["error"] == "invalid_request"
    status, body = https_json(
        sandbox, "POST", f"/{TENANT}/oauth2/v2.0/devicecode", data=data,
        headers={"Content-Type": content_type},
    )  # fmt: skip
    assert status == 400 and body["error"] == "invalid_request"


def test_get_on_the_token_endpoint_is_refused(sandbox):
    status, body = https_json(sandbox, "GET", token_path())
    assert status == 400
    assert_entra_error(body, 900561, "invalid_request")


def test_error_uri_explains_the_code(sandbox):
    ctx = ssl.create_default_context(cafile=sandbox["ca_file"])
    with urllib.request.urlopen(f"{sandbox['https_url']}/error?code=7000215", context=ctx) as r:
        assert "client secret" in r.read().decode()


# -- apps: workload identity ---------------------------------------------------------------------


@pytest.fixture
def federated_token_file(control, tmp_path) -> Path:
    """What Kubernetes projects into the pod: a service-account token Entra trusts."""
    minted = control("POST", "/_sandbox/federated-token", {"client_id": SP})
    assert minted["audience"] == "api://AzureADTokenExchange"
    path = tmp_path / "azure-identity-token"
    path.write_text(minted["token"])
    return path


def test_workload_identity_credential(sandbox, control, persona, federated_token_file, verify):
    persona("developer")
    before = control.last_log_id()
    cred = WorkloadIdentityCredential(
        tenant_id=TENANT,
        client_id=SP,
        token_file_path=str(federated_token_file),
        authority=sandbox["https_url"],
    )
    claims = verify(cred.get_token(ACS_SCOPE).token, "https://communication.azure.com/")
    assert (claims["oid"], claims["idtyp"], claims["appidacr"]) == (world.SP_OID, "app", "2")
    entry = last_token_entry(control, before)
    assert (entry["credential"], entry["decision"]) == ("client-assertion", "issued")


def test_default_credential_with_workload_identity_variables(
    sandbox, persona, monkeypatch, federated_token_file, verify
):
    persona("developer")
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", sandbox["https_url"])
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", SP)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(federated_token_file))
    cred = DefaultAzureCredential()
    claims = verify(cred.get_token(ACS_SCOPE).token, "https://communication.azure.com/")
    assert claims["oid"] == world.SP_OID
    assert type(cred._successful_credential).__name__ == "WorkloadIdentityCredential"


def _assertion(sandbox, key, **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": f"{sandbox['https_url']}/{TENANT}/v2.0",
        "sub": f"system:serviceaccount:default:{world.SP_NAME}",
        "aud": ["api://AzureADTokenExchange"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        **overrides,
    }
    kid = https_json(sandbox, "GET", f"/{TENANT}/discovery/v2.0/keys")[1]["keys"][0]["kid"]
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture(scope="module")
def sandbox_key(sandbox):
    from cryptography.hazmat.primitives import serialization

    pem = (Path(sandbox["state_dir"]) / "signing-key.pem").read_bytes()
    return serialization.load_pem_private_key(pem, None)


@pytest.mark.parametrize(
    "forge, status, code",
    [
        ("other-key", 401, 700027),
        ("wrong-subject", 400, 70021),
        ("wrong-audience", 400, 70021),
        ("wrong-issuer", 400, 70021),
        ("expired", 400, 700024),
        ("exp-not-a-number", 400, 700024),
        ("garbage", 400, 50027),
        ("wrong-type", 400, 50027),
    ],
)
def test_forged_or_stale_assertions_are_refused(sandbox, control, sandbox_key, forge, status, code):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assertion = {
        "other-key": lambda: _assertion(sandbox, other),
        "wrong-subject": lambda: _assertion(sandbox, sandbox_key, sub="system:serviceaccount:x:y"),
        "wrong-audience": lambda: _assertion(sandbox, sandbox_key, aud="api://other"),
        "wrong-issuer": lambda: _assertion(sandbox, sandbox_key, iss="https://evil.example/"),
        "expired": lambda: _assertion(
            sandbox, sandbox_key, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600
        ),
        "exp-not-a-number": lambda: _assertion(sandbox, sandbox_key, exp="soon"),
        "garbage": lambda: "not.a.jwt",
        "wrong-type": lambda: _assertion(sandbox, sandbox_key),
    }[forge]()
    if forge == "wrong-type":
        assertion_type = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
    before = control.last_log_id()
    got, body = post_form(
        sandbox,
        token_path(),
        grant_type="client_credentials",
        client_id=SP,
        client_assertion=assertion,
        client_assertion_type=assertion_type,
        scope=ACS_SCOPE,
    )
    assert got == status
    assert body["error_codes"] == [code]
    entry = last_token_entry(control, before)
    assert (entry["credential"], entry["decision"]) == ("client-assertion", "denied")


def test_federated_token_control_route(sandbox, control):
    with pytest.raises(client.SandboxError, match="no federated credential"):
        control("POST", "/_sandbox/federated-token", {"client_id": CLI})
    with pytest.raises(client.SandboxError):
        control("POST", "/_sandbox/federated-token", {"wrong": 1})
    status, body = https_json(
        sandbox, "POST", "/_sandbox/federated-token", data=json.dumps({"client_id": SP}).encode()
    )
    assert status == 401  # needs the control secret


# -- users: device code and refresh tokens (protocol level) --------------------------------------


def start_device_code(sandbox, scope=f"{ARM_SCOPE} offline_access openid profile", tenant=TENANT):
    status, flow = post_form(
        sandbox, f"/{tenant}/oauth2/v2.0/devicecode", client_id=CLI, scope=scope
    )
    assert status == 200, flow
    return flow


def poll(sandbox, flow, tenant=TENANT):
    return post_form(
        sandbox,
        token_path(tenant),
        grant_type=GRANT_DC,
        client_id=CLI,
        device_code=flow["device_code"],
        client_info="1",
    )


def test_device_code_flow_pending_approved_redeemed(sandbox, fresh, verify):
    flow = start_device_code(sandbox, tenant="organizations")
    assert len(flow["user_code"]) == 9 and flow["user_code"].isalnum()
    assert flow["verification_uri"] == f"{sandbox['https_url']}/devicelogin"
    assert (flow["expires_in"], flow["interval"]) == (900, 1)
    assert flow["message"] == (
        f"To sign in, use a web browser to open the page {flow['verification_uri']} "
        f"and enter the code {flow['user_code']} to authenticate."
    )
    before = fresh.last_log_id()
    status, body = poll(sandbox, flow, "organizations")
    assert status == 400
    assert_entra_error(body, 70016, "authorization_pending")
    entry = last_token_entry(fresh, before)
    assert (entry["credential"], entry["decision"]) == ("device-code", "pending")

    pending = fresh("GET", "/_sandbox/device-codes")["value"]
    assert [p["user_code"] for p in pending] == [flow["user_code"]]
    approved = fresh("POST", f"/_sandbox/device-codes/{flow['user_code'].lower()}/approve")
    assert approved["user"] == world.DEVELOPER_UPN

    status, body = poll(sandbox, flow, "organizations")
    assert status == 200
    claims = verify(body["access_token"], "https://management.azure.com")
    assert claims["oid"] == world.DEVELOPER_OID
    assert claims["upn"] == world.DEVELOPER_UPN and claims["scp"] == "user_impersonation"
    assert claims["appid"] == CLI and 3600 <= claims["exp"] - claims["iat"] <= 5400
    # A user token as Entra shapes one: no idtyp (only app-only tokens carry it), a pairwise
    # sub that is not the oid, a public client's appidacr 0, and the v1.0 claims.
    assert "idtyp" not in claims and claims["sub"] != claims["oid"]
    assert (claims["ver"], claims["appidacr"], claims["acr"]) == ("1.0", "0", "1")
    assert claims["amr"] == ["pwd"] and claims["wids"] and claims["ipaddr"] == "127.0.0.1"
    assert not {"azp", "azpacr"} & set(claims)
    id_claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert id_claims["aud"] == CLI
    assert id_claims["oid"] == world.DEVELOPER_OID and id_claims["tid"] == TENANT
    assert id_claims["preferred_username"] == world.DEVELOPER_UPN
    assert id_claims["iss"] == f"{sandbox['https_url']}/{TENANT}/v2.0"
    info = json.loads(base64.urlsafe_b64decode(body["client_info"] + "=="))
    assert info == {"uid": world.DEVELOPER_OID, "utid": TENANT}
    assert body["refresh_token"] and body["token_type"] == "Bearer"
    assert ARM_SCOPE in body["scope"].split()
    entry = last_token_entry(fresh, before)
    assert (entry["decision"], entry["caller"]) == ("issued", world.DEVELOPER_UPN)

    status, body = poll(sandbox, flow, "organizations")  # a device code works once
    assert status == 400 and body["error"] == "invalid_grant"


def test_waiting_for_a_device_code_answer_ends_at_the_answer(sandbox, fresh):
    """The sandbox's az waits here between polls: as long as asked while nobody answers, and
    no longer once someone does, so an approved sign-in does not sit out the interval."""
    code = start_device_code(sandbox)["user_code"]
    started = time.monotonic()
    assert fresh("GET", f"/_sandbox/device-codes/{code}/wait?seconds=0.3")["answered"] is False
    assert time.monotonic() - started >= 0.3

    answer: dict = {}
    waiter = threading.Thread(
        target=lambda: answer.update(fresh("GET", f"/_sandbox/device-codes/{code}/wait?seconds=5"))
    )
    started = time.monotonic()
    waiter.start()
    fresh("POST", f"/_sandbox/device-codes/{code}/approve")
    waiter.join(10)
    assert answer["answered"] is True and time.monotonic() - started < 4

    for seconds in ("6", "-1", "soon"):
        with pytest.raises(client.SandboxError, match="seconds must be from 0 to 5"):
            fresh("GET", f"/_sandbox/device-codes/{code}/wait?seconds={seconds}")


def test_device_code_expiry_and_denial(sandbox, fresh):
    flow = start_device_code(sandbox)
    fresh("POST", f"/_sandbox/device-codes/{flow['user_code']}/expire")
    status, body = poll(sandbox, flow)
    assert status == 400
    assert_entra_error(body, 70020, "expired_token")
    with pytest.raises(client.SandboxError, match="expired"):
        fresh("POST", f"/_sandbox/device-codes/{flow['user_code']}/approve")

    flow = start_device_code(sandbox)
    fresh("POST", f"/_sandbox/device-codes/{flow['user_code']}/deny")
    status, body = poll(sandbox, flow)
    assert status == 400 and body["error"] == "access_denied"
    with pytest.raises(client.SandboxError, match="already used"):
        fresh("POST", f"/_sandbox/device-codes/{flow['user_code']}/approve")
    with pytest.raises(client.SandboxError, match="No sign-in"):
        fresh("POST", "/_sandbox/device-codes/NOSUCHCODE/approve")


def test_device_code_needs_a_known_client_and_resource(sandbox):
    status, body = post_form(
        sandbox, f"/{TENANT}/oauth2/v2.0/devicecode", client_id=str(uuid.uuid4()), scope=ACS_SCOPE
    )
    assert status == 400 and body["error_codes"] == [700016]
    status, body = post_form(sandbox, f"/{TENANT}/oauth2/v2.0/devicecode", client_id=SP,
                             scope=ACS_SCOPE)  # fmt: skip
    assert status == 401 and body["error_codes"] == [7000218]  # confidential: must prove itself
    status, body = post_form(
        sandbox, f"/{TENANT}/oauth2/v2.0/devicecode", client_id=CLI, scope="https://x.test/.default"
    )
    assert status == 400 and body["error_codes"] == [500011]


def signed_in(sandbox, control) -> dict:
    flow = start_device_code(sandbox)
    control("POST", f"/_sandbox/device-codes/{flow['user_code']}/approve")
    status, body = poll(sandbox, flow)
    assert status == 200
    return body


def refresh(sandbox, token, scope, client_id=CLI, **extra):
    return post_form(
        sandbox,
        token_path(),
        grant_type="refresh_token",
        client_id=client_id,
        refresh_token=token,
        scope=f"{scope} offline_access openid profile",
        client_info="1",
        **extra,
    )


def test_refresh_token_gets_other_resources_and_dies_on_reset(sandbox, fresh, sp_secret, verify):
    first = signed_in(sandbox, fresh)
    before = fresh.last_log_id()
    status, body = refresh(sandbox, first["refresh_token"], "https://management.azure.com/.default")
    assert status == 200
    claims = verify(body["access_token"], "https://management.azure.com")
    assert claims["oid"] == world.DEVELOPER_OID and "idtyp" not in claims
    assert body["refresh_token"] != first["refresh_token"] and body["client_info"]
    entry = last_token_entry(fresh, before)
    assert (entry["credential"], entry["decision"]) == ("refresh-token", "issued")
    assert first["refresh_token"] not in json.dumps(fresh.log_after(before))

    status, again = refresh(sandbox, first["refresh_token"], ARM_SCOPE)
    assert status == 200  # as in Entra, an earlier refresh token stays usable

    status, body = refresh(sandbox, "0.Anot-a-real-token", ARM_SCOPE)
    assert status == 400
    assert_entra_error(body, 70000, "invalid_grant")
    status, body = refresh(sandbox, first["refresh_token"], ARM_SCOPE, client_id=SP,
                           client_secret=sp_secret)  # fmt: skip
    assert status == 400 and body["error_codes"] == [70000]  # issued to another client
    status, body = refresh(sandbox, first["refresh_token"], "https://nope.test/.default")
    assert status == 400 and body["error_codes"] == [500011]

    fresh.reset()
    status, body = refresh(sandbox, again["refresh_token"], ARM_SCOPE)
    assert status == 400 and body["error"] == "invalid_grant"


# -- the model without HTTP: time-dependent rules, with the in-process clock moved -----------------


@pytest.fixture
def model(tmp_path):
    from sandbox import clock
    from sandbox.entra.models import Entra
    from sandbox.entra.tokens import TokenService
    from sandbox.store import Store

    store = Store(tmp_path / "entra.sqlite3")
    world.seed(store)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    yield Entra(store, TokenService(key, "https://127.0.0.1:1"), "https://127.0.0.1:1")
    clock.set_skew(0)
    store.close()


def test_model_device_code_expires_after_fifteen_minutes(model):
    from sandbox import clock
    from sandbox.entra.models import EntraError

    flow = model.start_device_flow(TENANT, {"client_id": CLI, "scope": ACS_SCOPE}, {})
    clock.set_skew(899)
    poll_form = {"grant_type": GRANT_DC, "client_id": CLI, "device_code": flow["device_code"]}
    with pytest.raises(EntraError) as pending:
        model.token(TENANT, poll_form, {})
    assert pending.value.error == "authorization_pending"
    clock.set_skew(901)
    with pytest.raises(EntraError) as expired:
        model.token(TENANT, poll_form, {})
    assert (expired.value.error, expired.value.code) == ("expired_token", 70020)
    developer = model.store.get("principal", world.DEVELOPER_OID)
    with pytest.raises(ValueError, match="expired"):
        model.decide_device_code(flow["user_code"], developer, approve=True)


def test_model_refresh_tokens_rotate_and_expire(model):
    from sandbox import clock
    from sandbox.entra.models import REFRESH_TOKENS_KEPT, EntraError

    scope = f"{ARM_SCOPE} offline_access openid"
    flow = model.start_device_flow(TENANT, {"client_id": CLI, "scope": scope}, {})
    developer = model.store.get("principal", world.DEVELOPER_OID)
    model.decide_device_code(flow["user_code"], developer, approve=True)
    form = {"grant_type": GRANT_DC, "client_id": CLI, "device_code": flow["device_code"]}
    issued = [model.token(TENANT, form, {})["refresh_token"]]
    for _ in range(REFRESH_TOKENS_KEPT):
        form = {"grant_type": "refresh_token", "client_id": CLI, "scope": scope,
                "refresh_token": issued[-1]}  # fmt: skip
        issued.append(model.token(TENANT, form, {})["refresh_token"])
    stale = {"grant_type": "refresh_token", "client_id": CLI, "scope": scope,
             "refresh_token": issued[0]}  # fmt: skip
    with pytest.raises(EntraError) as rotated_out:
        model.token(TENANT, stale, {})
    assert rotated_out.value.code == 70000
    assert model.store.count("refresh_token") == REFRESH_TOKENS_KEPT
    assert issued[-1] not in json.dumps(model.store.list("refresh_token"))  # only hashes kept

    clock.set_skew(91 * 24 * 3600)
    latest = dict(stale, refresh_token=issued[-1])
    with pytest.raises(EntraError) as expired:
        model.token(TENANT, latest, {})
    assert expired.value.code == 700082


# -- fidelity: what Entra sends, and what it refuses (sandbox/FIDELITY.md, Entra section) --------


def raw_post(sandbox, path: str, **fields: str):
    """(status, headers, body) of a form POST: the headers matter here."""
    ctx = ssl.create_default_context(cafile=sandbox["ca_file"])
    req = urllib.request.Request(sandbox["https_url"] + path, data=urlencode(fields).encode(),
                                 headers=FORM, method="POST")  # fmt: skip
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def test_client_credentials_answer_has_entra_fields_and_request_id(sandbox, sp_secret):
    status, headers, body = raw_post(
        sandbox, token_path(), grant_type="client_credentials", client_id=SP,
        client_secret=sp_secret, scope=ACS_SCOPE,
    )  # fmt: skip
    assert status == 200
    # Entra's client-credentials answer has no "scope" (fidelity review, Low 6).
    assert sorted(body) == ["access_token", "expires_in", "ext_expires_in", "token_type"]
    assert isinstance(body["expires_in"], int) and 3600 <= body["expires_in"] <= 5400
    uuid.UUID(headers["x-ms-request-id"])


def test_v1_device_code_answer_has_v1_field_names_and_strings(sandbox):
    status, body = post_form(
        sandbox, f"/{TENANT}/oauth2/devicecode", client_id=CLI,
        resource="https://management.core.windows.net/",
    )  # fmt: skip
    assert status == 200
    assert body["verification_url"] == f"{sandbox['https_url']}/devicelogin"
    assert "verification_uri" not in body
    assert (body["expires_in"], body["interval"]) == ("900", "1")


PUBLIC_FIRST_PARTY = [
    ("04b07795-8ddb-461a-bbee-02f9e1bf7b46", "Azure CLI and azure-identity's developer sign-in"),
    ("1950a258-227b-4e31-a9cf-717495945fc2", "Azure PowerShell"),
    ("aebc6443-996d-45c2-90f0-388ff96faa56", "azure-identity's VS Code credential"),
]


@pytest.mark.parametrize("client_id", [c for c, _ in PUBLIC_FIRST_PARTY])
def test_microsoft_public_clients_get_no_acs_token_aadsts65002(sandbox, fresh, client_id):
    """Azure/azure-cli#23485: Entra refuses the CLI's client for the ACS resource with
    invalid_request AADSTS65002; Resource Manager tokens for the same sign-in are unaffected."""
    scope = f"{ARM_SCOPE} offline_access openid profile"
    status, flow = post_form(sandbox, f"/{TENANT}/oauth2/v2.0/devicecode", client_id=client_id,
                             scope=scope)  # fmt: skip
    assert status == 200
    fresh("POST", f"/_sandbox/device-codes/{flow['user_code']}/approve")
    status, body = post_form(sandbox, token_path(), grant_type=GRANT_DC, client_id=client_id,
                             device_code=flow["device_code"])  # fmt: skip
    assert status == 200  # Resource Manager: a token
    before = fresh.last_log_id()
    status, refused = refresh(sandbox, body["refresh_token"], ACS_SCOPE, client_id=client_id)
    assert status == 400
    assert_entra_error(refused, 65002, "invalid_request")
    assert refused["error_description"].startswith(
        f"AADSTS65002: Consent between first party application '{client_id}' and first party "
        "resource '632ec9eb-fad7-4cbd-993a-e72973ba2acc' must be configured via "
        "preauthorization - applications owned and operated by Microsoft must get approval "
        "from the API owner before requesting tokens for that API.\r\n"
    )
    entry = last_token_entry(fresh, before)
    assert entry["decision"] == "denied" and entry["reason"].startswith("AADSTS65002")

    fresh("POST", "/_sandbox/faults/cli_preauthorized", {})  # the day Microsoft allows it
    status, body = refresh(sandbox, body["refresh_token"], ACS_SCOPE, client_id=client_id)
    assert status == 200 and body["access_token"]


def test_service_principal_still_gets_acs_tokens(sandbox, sp_secret, verify):
    status, body = post_form(sandbox, token_path(), grant_type="client_credentials",
                             client_id=SP, client_secret=sp_secret, scope=ACS_SCOPE)  # fmt: skip
    assert status == 200
    assert verify(body["access_token"], "https://communication.azure.com/")["appid"] == SP


def _arm_get(sandbox, token: str) -> int:
    ctx = ssl.create_default_context(cafile=sandbox["ca_file"])
    req = urllib.request.Request(
        f"{sandbox['https_url']}/subscriptions?api-version=2022-12-01",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def test_clock_skew_fault_judges_fresh_tokens_on_the_skewed_clock(
    sandbox, fresh, persona, sp_secret
):
    """Security review D4: tokens are stamped with the sandbox's clock, so they must be judged
    on it; a token from the future is reported as not yet valid, not as a bad signature."""
    persona("service-principal")

    def fresh_token() -> str:
        return _secret_credential(sandbox, secret=sp_secret).get_token(ARM_SCOPE).token

    try:
        fresh("POST", "/_sandbox/faults/clock_skew", {"seconds": 60})
        assert _arm_get(sandbox, fresh_token()) == 200
        fresh("POST", "/_sandbox/faults/clock_skew", {"seconds": 3600})
        ahead = fresh_token()
        assert _arm_get(sandbox, ahead) == 200
    finally:
        fresh("DELETE", "/_sandbox/faults/clock_skew")
    before = fresh.last_log_id()
    assert _arm_get(sandbox, ahead) == 401  # issued an hour "later" than now
    (entry,) = [e for e in fresh.log_after(before) if e["path"].startswith("/subscriptions")]
    assert "not yet valid" in entry["reason"] and "signature" not in entry["reason"]
