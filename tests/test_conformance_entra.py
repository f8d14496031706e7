"""The sandbox's Entra ID and managed-identity endpoints against recorded facts of Azure's
answers (tests/conformance/entra/ and managed_identity/; format in tests/conformance/README.md).

Two fixture keys go beyond the shared comparer, and are checked here: ``prefix`` (fields whose
recorded text the sandbox's answer must start with, for Entra's error_description, which
ends with a per-request trace id and timestamp) and ``absent`` (fields Azure does not send).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

import pytest

from sandbox import world
from tests.conformance.compare import assert_conforms, fill, load
from tests.conftest import https_json
from tests.test_arm import FUNC_ID, VM_ID, set_identity
from tests.test_managed_identity import sp_credential  # noqa: F401 - fixture

ENTRA = dict(load("entra"))
MANAGED_IDENTITY = dict(load("managed_identity"))
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _extra_checks(name: str, fixture: dict[str, Any], body: Any, values: dict[str, str]) -> None:
    recorded = fixture["response"]["body"]
    for field in fixture.get("prefix", []):
        assert str(body.get(field, "")).startswith(fill(recorded[field], values)), (name, field)
    for field in fixture.get("absent", []):
        assert field not in body, f"{name}: Azure sends no '{field}'"


def _entra(sandbox, name: str, form: dict[str, str] | None = None) -> tuple[int, Any]:
    fixture = ENTRA[name]
    path = fixture["request"]["path"].replace("{tenant}", world.TENANT_ID)
    if fixture["request"]["method"] == "GET":
        return https_json(sandbox, "GET", path)
    fields = dict(fixture["request"]["body"], **(form or {}))
    return https_json(sandbox, "POST", path, data=urlencode(fields).encode(), headers=FORM)


def _conforms(name: str, fixture: dict, status: int, body: Any, values: dict[str, str]) -> None:
    assert_conforms(name, fixture, status, body, values)
    _extra_checks(name, fixture, body, values)


@pytest.mark.parametrize("name", ["openid-configuration-v2-common.json", "jwks-v2-common.json"])
def test_published_metadata_conforms(sandbox, name):
    status, body = _entra(sandbox, name)
    _conforms(name, ENTRA[name], status, body, {"authority": sandbox["https_url"]})


def test_client_credentials_success_conforms(sandbox, control):
    secret = control("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]
    name = "client-credentials-success.json"
    status, body = _entra(sandbox, name, {"client_id": world.SP_CLIENT_ID, "client_secret": secret})
    _conforms(name, ENTRA[name], status, body, {})


def test_aadsts65002_for_the_cli_conforms(sandbox, fresh):
    scope = "https://management.azure.com/.default offline_access openid profile"
    status, flow = https_json(
        sandbox, "POST", f"/{world.TENANT_ID}/oauth2/v2.0/devicecode", headers=FORM,
        data=urlencode({"client_id": world.AZURE_CLI_CLIENT_ID, "scope": scope}).encode(),
    )  # fmt: skip
    fresh("POST", f"/_sandbox/device-codes/{flow['user_code']}/approve")
    status, signed_in = https_json(
        sandbox, "POST", f"/{world.TENANT_ID}/oauth2/v2.0/token", headers=FORM,
        data=urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                        "client_id": world.AZURE_CLI_CLIENT_ID,
                        "device_code": flow["device_code"]}).encode(),
    )  # fmt: skip
    assert status == 200
    name = "aadsts65002-cli-to-acs.json"
    status, body = _entra(sandbox, name, {"refresh_token": signed_in["refresh_token"]})
    _conforms(name, ENTRA[name], status, body, {})


def _mi(sandbox, fixture: dict[str, Any], host: str, values: dict[str, str]) -> tuple[int, Any]:
    request = fixture["request"]
    query = urlencode(dict(request.get("query", {}), **{"api-version": request["api_version"]}))
    headers = {k: fill(v, values) for k, v in request.get("headers", {}).items()}
    url = f"{sandbox['mi_url']}/hosts/{host}{request['path']}?{query}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("name", sorted(MANAGED_IDENTITY))
def test_managed_identity_answers_conform(sandbox, fresh, control, sp_credential, name):  # noqa: F811
    fixture = MANAGED_IDENTITY[name]
    app_service = fixture["request"]["path"] == "/msi/token"
    host_id, host = (FUNC_ID, "func-tutorial") if app_service else (VM_ID, "vm-tutorial")
    set_identity(sandbox, sp_credential, host_id, {"type": "SystemAssigned"})
    header = control("GET", "/_sandbox/personas/func-tutorial")["set"]["IDENTITY_HEADER"]
    values = {"identity_header": header}
    status, body = _mi(sandbox, fixture, host, values)
    _conforms(name, fixture, status, body, values)
