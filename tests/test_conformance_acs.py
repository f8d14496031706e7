"""The ACS data plane compared with recorded real responses (tests/conformance/acs/).

Each fixture holds the facts of one answer Azure gave (an SDK test recording, a spec example, an
issue quoting a live response). The test makes the same request against the live sandbox, signed
with an access key as the recordings were, and compares status, code, message, target, field
names and types, and the headers the recording shows.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from azure.communication.identity import CommunicationIdentityClient

from sandbox import world
from tests.acs_support import PHONE, SENDER, connection_string, forge, key_of, signed
from tests.conformance.compare import assert_conforms, load

FIXTURES = load("acs")
TEAMS_AUDIENCE = "https://auth.msft.communication.azure.com"
TEAMS_APP = "1fd5118e-2576-4263-8130-9503064c837a"
TEAMS_SCOPES = {"scp": "Teams.ManageCalls Teams.ManageChats"}

pytestmark = pytest.mark.usefixtures("trust_sandbox_ca")


def _values(fresh) -> dict[str, str]:
    """What the fixtures' placeholders stand for in this run."""
    conn = connection_string(fresh)
    user = CommunicationIdentityClient.from_connection_string(conn).create_user()

    def teams(lifetime: int) -> str:
        return forge(
            fresh.settings,
            fresh.doc,
            oid=world.DEVELOPER_OID,
            appid=TEAMS_APP,
            audience=TEAMS_AUDIENCE,
            extra=TEAMS_SCOPES,
            lifetime=lifetime,
        )

    return {
        "id": user.properties["id"],
        "teams_token": teams(3600),
        "expired_teams_token": teams(-3600),
        "teams_app": TEAMS_APP,
        "teams_user": world.DEVELOPER_OID,
        "other_guid": "00000000-0000-0000-0000-000000000001",
        "phone": PHONE,
        "sender": SENDER,
    }


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return values.get(value[1:-1], value)
    return value


def test_every_fixture_names_its_source_and_what_it_compares():
    assert len(FIXTURES) >= 20
    for name, fixture in FIXTURES:
        assert fixture["source"] and fixture["kind"] in ("recording", "spec", "docs", "issue")
        assert fixture["compare"], name


@pytest.mark.parametrize("name, fixture", FIXTURES, ids=[n for n, _ in FIXTURES])
def test_the_sandbox_answers_as_azure_recorded(fresh, name, fixture):
    values = _values(fresh)
    request = fixture["request"]
    path = _fill(request["path"], values).replace("{id}", values["id"])
    url = f"{path}?api-version={request['api_version']}"
    body = json.dumps(_fill(request.get("body"), values)).encode()
    spoil = {}
    if request.get("spoil") == "content_hash":
        spoil["content_hash"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    key = key_of(connection_string(fresh))
    status, answer, headers = signed(fresh.doc, key, request["method"], url, body, **spoil)
    assert_conforms(name, fixture, status, answer, values)
    lower = {k.lower(): v for k, v in headers.items()}
    for header in fixture.get("compare_headers", []):
        assert lower.get(header) == fixture["response"]["headers"][header], (name, header)


def test_every_answer_carries_ms_cv_and_echoes_the_client_request_id(fresh):
    """The SDKs send x-ms-return-client-request-id: true; ACS echoes the id and adds MS-CV."""
    seen = []

    def hook(response: Any) -> None:
        seen.append((response.http_request.headers, response.http_response.headers))

    client = CommunicationIdentityClient.from_connection_string(connection_string(fresh))
    client.create_user(raw_response_hook=hook)
    [(sent, got)] = seen
    assert sent["x-ms-return-client-request-id"] == "true"
    assert got["x-ms-client-request-id"] == sent["x-ms-client-request-id"]
    assert got["MS-CV"].endswith(".0") and len(got["MS-CV"]) == 24
    assert got["Content-Type"] == "application/json; charset=utf-8"
    # refusals carry them too; without the request to return it, the id is not echoed
    wrong = base64.b64encode(b"not the key" * 6).decode()
    status, _, headers = signed(fresh.doc, wrong, "POST", "/identities?api-version=2023-10-01")
    lower = {k.lower() for k in headers}
    assert status == 401 and "ms-cv" in lower and "x-ms-client-request-id" not in lower
