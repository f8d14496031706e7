"""Every data-plane response validates against the published API descriptions (tests/specs/).

Each SDK client gets a ``raw_response_hook`` that validates what it receives: success bodies
against the operation's response schema, errors against ``CommunicationErrorResponse``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier
from azure.communication.identity.aio import CommunicationIdentityClient as AsyncIdentityClient
from azure.communication.sms import SmsClient
from azure.communication.sms.aio import SmsClient as AsyncSmsClient
from azure.core.exceptions import HttpResponseError

from sandbox import world
from tests.acs_support import (
    PHONE,
    SENDER,
    Specs,
    StaticCredential,
    connection_string,
    forge,
    key_of,
    signed,
    sms_body,
)

pytestmark = pytest.mark.usefixtures("trust_sandbox_ca")


def test_the_spec_validator_catches_a_wrong_body():
    specs = Specs()
    with pytest.raises(Exception, match="'expiresOn' is a required property"):
        specs.validate("POST", "/identities/8:acs:x/:issueAccessToken", 200, {"token": "t"})
    with pytest.raises(Exception, match="'successful' is a required property"):
        specs.validate("POST", "/sms", 202, {"value": [{"to": 1, "httpStatusCode": 202}]})
    with pytest.raises(AssertionError, match="not in the spec"):
        specs.validate("POST", "/identities", 200, {"identity": {"id": "x"}})
    with pytest.raises(Exception, match="'message' is a required property"):
        specs.validate("POST", "/identities", 401, {"error": {"code": "Denied"}})


def test_sync_sdk_responses_validate(fresh):
    specs = Specs()
    hook = {"raw_response_hook": specs.hook(), "retry_total": 0}
    conn = connection_string(fresh)
    identity = CommunicationIdentityClient.from_connection_string(conn, **hook)
    sms = SmsClient.from_connection_string(conn, **hook)

    user = identity.create_user()
    identity.create_user_and_token(["chat", "voip.join"], token_expires_in=timedelta(hours=2))
    identity.get_token(user, ["chat"])
    identity.revoke_tokens(user)
    teams = forge(
        fresh.settings,
        fresh.doc,
        oid=world.DEVELOPER_OID,
        audience="https://auth.msft.communication.azure.com",
    )
    identity.get_token_for_teams_user(teams, world.AZURE_CLI_CLIENT_ID, world.DEVELOPER_OID)
    identity.delete_user(user)
    sms.send(SENDER, [PHONE, "+1425", "+14255550102"], "hi", enable_delivery_report=True, tag="s")

    failures = [
        lambda: identity.get_token(user, ["chat"]),  # 401 deleted
        lambda: identity.get_token(CommunicationUserIdentifier("8:acs:x_y"), ["chat"]),  # 401
        lambda: identity.create_user_and_token([]),  # 400 scopes
        lambda: sms.send("+18005550199", PHONE, "x"),  # 401 from
        lambda: sms.send(SENDER, PHONE, "x" * 2049),  # 400
        lambda: CommunicationIdentityClient.from_connection_string(
            conn, api_version="2019-01-01", **hook
        ).create_user(),  # 400 api-version
        lambda: CommunicationIdentityClient(
            fresh.doc["acs_endpoint"], StaticCredential("not-a-jwt"), **hook
        ).create_user(),  # 401 bearer
    ]
    for fail in failures:
        with pytest.raises(HttpResponseError):
            fail()
    for name, params in (("throttle", {"count": 1}), ("unavailable", {"count": 1})):
        fresh("POST", f"/_sandbox/faults/{name}", params)
        with pytest.raises(HttpResponseError):
            sms.send(SENDER, PHONE, "x")

    statuses = sorted({status for _, _, status in specs.checked})
    assert statuses == [200, 201, 202, 204, 400, 401, 429, 503]
    assert len(specs.checked) == 7 + len(failures) + 2


def test_async_sdk_responses_validate(fresh):
    specs = Specs()
    hook = {"raw_response_hook": specs.hook()}
    conn = connection_string(fresh)

    async def main():
        async with AsyncIdentityClient.from_connection_string(conn, **hook) as identity:
            user, _ = await identity.create_user_and_token(["chat"])
            await identity.get_token(user, ["voip"], token_expires_in=timedelta(minutes=60))
            await identity.revoke_tokens(user)
            await identity.delete_user(user)
            with pytest.raises(HttpResponseError):
                await identity.delete_user(user)
        async with AsyncSmsClient.from_connection_string(conn, **hook) as sms:
            await sms.send(SENDER, [PHONE, "+1425"], "hello")

    asyncio.run(main())
    assert [s for _, _, s in specs.checked] == [201, 200, 204, 204, 401, 202]


def test_raw_edge_responses_validate(fresh):
    specs = Specs()
    key = key_of(connection_string(fresh))
    body = sms_body([PHONE])
    body["smsRecipients"][0]["repeatabilityFirstSent"] = "yesterday"
    cases = [
        ("POST", "/sms", body),
        ("POST", "/sms", b"{"),
        ("POST", "/identities", b"[]"),
        ("POST", "/identities", {"createTokenWithScopes": ["chat"], "expiresInMinutes": 30}),
    ]
    for method, path, payload in cases:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        status, got, _ = signed(
            fresh.doc,
            key,
            method,
            path + "?api-version=2023-10-01"
            if path != "/sms"
            else path + "?api-version=2021-03-07",
            data,
        )
        specs.validate(method, path, status, got)
    assert [s for _, _, s in specs.checked] == [202, 400, 400, 400]


WEIRD_BODIES = [
    b"",
    b"null",
    b"[]",
    b"{}",
    b'"text"',
    b"\xff\xfe",
    b'{"scopes": "chat"}',
    b'{"scopes": [1, 2]}',
    b'{"scopes": [["chat"]]}',
    b'{"scopes": ["chat"], "expiresInMinutes": true}',
    b'{"scopes": ["chat"], "expiresInMinutes": 1e400}',
    b'{"createTokenWithScopes": {}}',
    b'{"token": 5, "appId": null, "userId": []}',
    b'{"from": null, "smsRecipients": null, "message": null}',
    b'{"from": "+18005550100", "smsRecipients": [null], "message": "x"}',
    b'{"from": "+18005550100", "smsRecipients": [{"to": {}}], "message": "x"}',
    b'{"from": "+18005550100", "smsRecipients": [{"to": "+14255550101",'
    b' "repeatabilityRequestId": {}, "repeatabilityFirstSent": 7}], "message": "x"}',
    b'{"from": "+18005550100", "smsRecipients": [{"to": "+14255550101"}], "message": "x",'
    b' "smsSendOptions": []}',
]
WEIRD_BODIES.append(b"[" * 100_000 + b"]" * 100_000)  # security review D7: was a 500
PATHS = [
    ("POST", "/identities"),
    ("POST", "/identities/{user}/:issueAccessToken"),
    ("POST", "/teamsUser/:exchangeAccessToken"),
    ("POST", "/sms"),
]


def test_malformed_input_is_never_a_500_and_always_the_error_shape(fresh):
    """Every odd body on every operation: a 2xx or 4xx that validates, never a crash."""
    specs = Specs()
    key = key_of(connection_string(fresh))
    user = CommunicationIdentityClient.from_connection_string(
        connection_string(fresh)
    ).create_user()
    for method, template in PATHS:
        path = template.format(user=user.properties["id"])
        version = "2021-03-07" if path == "/sms" else "2023-10-01"
        for body in WEIRD_BODIES:
            status, got, _ = signed(fresh.doc, key, method, f"{path}?api-version={version}", body)
            assert status < 500, (path, body, got)
            # reached the operation's own checks (the Teams exchange judges its token first)
            assert status != 401 or got["error"]["code"] == "InvalidAccessToken", (path, body, got)
            specs.validate(method, path, status, got)
    assert len(specs.checked) == len(PATHS) * len(WEIRD_BODIES)
    crashes = [e for e in fresh.log_after(0) if e.get("status", 0) >= 500]
    assert crashes == []
