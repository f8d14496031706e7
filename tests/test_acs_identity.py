"""The Identity API through the real SDK, sync and async: identities, user access tokens,
revocation, deletion, Teams token exchange, api-version gating and exact status codes."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta

import jwt
import pytest
from azure.communication.identity import (
    CommunicationIdentityClient,
    CommunicationUserIdentifier,
)
from azure.communication.identity.aio import (
    CommunicationIdentityClient as AsyncIdentityClient,
)
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from sandbox import world
from sandbox.acs.errors import DENIED
from tests.acs_support import (
    EXPIRES_ON,
    connection_string,
    forge,
    key_of,
    signed,
)

ALL_SCOPES = ["chat", "voip", "chat.join", "chat.join.limited", "voip.join"]
TEAMS_AUDIENCE = "https://auth.msft.communication.azure.com"
TEAMS_APP = "1fd5118e-2576-4263-8130-9503064c837a"


pytestmark = pytest.mark.usefixtures("trust_sandbox_ca")


@pytest.fixture
def identity(fresh) -> CommunicationIdentityClient:
    return CommunicationIdentityClient.from_connection_string(connection_string(fresh))


def _check(control, token: str) -> dict:
    return control("POST", "/_sandbox/acs/check-user-token", {"token": token})


def _expires(text: str) -> float:
    return datetime.fromisoformat(text[:26] + text[27:]).timestamp()


def test_create_user_returns_an_id_of_this_resource(identity):
    user = identity.create_user()
    prefix = f"8:acs:{world.ACS_IMMUTABLE_ID}_"
    assert user.properties["id"].startswith(prefix)
    assert len(user.properties["id"]) == len(prefix) + 36


def test_create_user_and_token_with_every_scope_and_a_one_hour_lifetime(identity, fresh):
    before = time.time()
    user, token = identity.create_user_and_token(ALL_SCOPES, token_expires_in=timedelta(hours=1))
    assert EXPIRES_ON.match(token.expires_on), token.expires_on
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert set(claims) >= {
        "skypeid",
        "scp",
        "csi",
        "acsScope",
        "resourceId",
        "resourceLocation",
        "iat",
        "exp",
        "jti",
    }
    assert claims["skypeid"] == user.properties["id"].removeprefix("8:")
    assert claims["acsScope"] == ",".join(ALL_SCOPES)
    assert claims["resourceId"] == world.ACS_IMMUTABLE_ID
    assert claims["resourceLocation"] == "unitedstates"
    assert claims["exp"] - claims["iat"] == 3600
    assert _expires(token.expires_on) == claims["exp"]
    assert before - 2 <= claims["iat"] <= time.time() + 1
    header = jwt.get_unverified_header(token.token)
    assert header["alg"] == "RS256" and header["kid"]
    assert _check(fresh, token.token) == {"valid": True, "reason": "valid"}


def test_get_token_defaults_to_24_hours(identity):
    user = identity.create_user()
    token = identity.get_token(user, ["voip"])
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 1440 * 60
    assert claims["scp"] == 1792  # a voip token, as in the service's published sample


@pytest.mark.parametrize("minutes", [59, 1441])
def test_lifetime_outside_60_to_1440_minutes_is_400(identity, minutes):
    user = identity.create_user()
    with pytest.raises(HttpResponseError) as e:
        identity.get_token(user, ["chat"], token_expires_in=timedelta(minutes=minutes))
    recorded = (
        400,
        "ValidationError",
        f"ExpiresInMinutes value {minutes} is invalid. Value must be within the [60, 1440] "
        "interval.",
        "ExpiresInMinutes",
    )
    assert _error(e.value) == recorded
    with pytest.raises(HttpResponseError) as e:
        identity.create_user_and_token(["chat"], token_expires_in=timedelta(minutes=minutes))
    assert _error(e.value) == recorded


def _error(e: HttpResponseError) -> tuple:
    """(status, code, message, target) of an SDK error, the facts a learner reads."""
    return (e.status_code, e.error.code, e.error.message, e.error.target)


def test_issuing_without_scopes_names_the_missing_field(fresh):
    key = key_of(connection_string(fresh))
    user = CommunicationIdentityClient.from_connection_string(
        connection_string(fresh)
    ).create_user()
    path = f"/identities/{user.properties['id']}/:issueAccessToken?api-version=2023-10-01"
    status, err, _ = signed(fresh.doc, key, "POST", path, {})
    assert status == 400
    assert err == {
        "error": {
            "code": "ValidationError",
            "message": "Scopes: The Scopes field is required.",
            "target": "Scopes",
        }
    }


@pytest.mark.parametrize(
    "scopes, message",
    [
        ([], "Invalid scopes - Scopes field is required."),
        (["chat", "calls"], "Invalid scopes - 'calls' is not a valid scope"),
    ],
)
def test_invalid_scopes_are_400(identity, scopes, message):
    user = identity.create_user()
    with pytest.raises(HttpResponseError) as e:
        identity.get_token(user, scopes)
    assert e.value.status_code == 400
    assert e.value.error.code == "ValidationError"
    assert e.value.error.message.startswith(message)


def test_revoke_invalidates_earlier_tokens_only(identity, fresh):
    user = identity.create_user()
    first = identity.get_token(user, ["chat"])
    second = identity.get_token(user, ["voip"])  # an identity may hold several tokens
    assert _check(fresh, first.token)["valid"] and _check(fresh, second.token)["valid"]
    identity.revoke_tokens(user)
    for old in (first, second):
        result = _check(fresh, old.token)
        assert not result["valid"] and "revoked" in result["reason"]
    after = identity.get_token(user, ["chat"])
    assert _check(fresh, after.token)["valid"]


def test_delete_invalidates_tokens_and_later_calls_are_401(identity, fresh):
    user, token = identity.create_user_and_token(["chat"])
    identity.delete_user(user)
    result = _check(fresh, token.token)
    assert not result["valid"] and "deleted" in result["reason"]
    for call in (
        lambda: identity.get_token(user, ["chat"]),
        lambda: identity.revoke_tokens(user),
        lambda: identity.delete_user(user),
    ):
        with pytest.raises(ClientAuthenticationError) as e:
            call()
        assert (e.value.status_code, e.value.error.code) == (401, "Denied")


def test_unknown_or_other_resource_identity_is_401_and_the_log_says_which(identity, fresh):
    other = CommunicationUserIdentifier(
        "8:acs:00000000-0000-0000-0000-000000000000_00000000-0000-0000-0000-000000000000"
    )
    unknown = CommunicationUserIdentifier(f"8:acs:{world.ACS_IMMUTABLE_ID}_{uuid.uuid4()}")
    for user in (other, unknown):
        before = fresh.last_log_id()
        with pytest.raises(ClientAuthenticationError) as e:
            identity.get_token(user, ["chat"])
        assert (e.value.status_code, e.value.error.code, e.value.error.message) == (
            401,
            "Denied",
            DENIED,
        )
        [entry] = [x for x in fresh.log_after(before) if x["status"] == 401]
        assert user.properties["id"] in entry["outcome"]


def test_tokens_issued_under_clock_skew_are_judged_on_the_skewed_clock(identity, fresh):
    """Security review D4: a token stamped by the skewed clock is valid on that clock (PyJWT's
    own iat check, on the machine's clock, called it a bad signature)."""
    fresh("POST", "/_sandbox/faults/clock_skew", {"seconds": 120})
    try:
        _, token = identity.create_user_and_token(scopes=["chat"])
        assert _check(fresh, token.token) == {"valid": True, "reason": "valid"}
    finally:
        fresh("DELETE", "/_sandbox/faults/clock_skew")


def test_check_user_token_refuses_garbage_and_foreign_tokens(fresh):
    assert _check(fresh, "not-a-jwt")["valid"] is False
    entra = forge(fresh.settings, fresh.doc, oid=world.DEVELOPER_OID)
    result = _check(fresh, entra)
    assert result == {"valid": False, "reason": "not a Communication Services user access token"}


def test_async_client_covers_every_operation(fresh):
    conn = connection_string(fresh)

    async def main():
        async with AsyncIdentityClient.from_connection_string(conn) as client:
            user = await client.create_user()
            user2, token = await client.create_user_and_token(
                ["chat.join"], token_expires_in=timedelta(minutes=90)
            )
            issued = await client.get_token(user, ["voip.join"])
            await client.revoke_tokens(user)
            await client.delete_user(user2)
            with pytest.raises(ClientAuthenticationError) as e:
                await client.get_token(user2, ["chat"])
            with pytest.raises(HttpResponseError) as bad:
                await client.get_token(user, [])
            return token, issued, e.value, bad.value

    token, issued, gone, bad = asyncio.run(main())
    assert EXPIRES_ON.match(token.expires_on) and EXPIRES_ON.match(issued.expires_on)
    assert _check(fresh, token.token)["reason"].endswith("was deleted")
    assert "revoked" in _check(fresh, issued.token)["reason"]
    assert gone.status_code == 401 and gone.error.code == "Denied"
    assert (
        bad.status_code == 400 and bad.error.message == "Invalid scopes - Scopes field is required."
    )


# -- api-version --------------------------------------------------------------------------------


def test_old_api_version_knows_only_chat_and_voip_and_no_lifetime(fresh):
    client = CommunicationIdentityClient.from_connection_string(
        connection_string(fresh), api_version="2021-03-07"
    )
    user, token = client.create_user_and_token(
        ["chat", "voip"], token_expires_in=timedelta(hours=1)
    )
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 1440 * 60  # expiresInMinutes did not exist yet
    with pytest.raises(HttpResponseError) as e:
        client.get_token(user, ["chat.join"])
    assert e.value.status_code == 400 and "api-version 2021-03-07" in e.value.error.message


@pytest.mark.parametrize("version", ["2020-07-20-preview2", "2024-01-01"])
def test_unsupported_api_version_is_400(fresh, version):
    client = CommunicationIdentityClient.from_connection_string(
        connection_string(fresh), api_version=version
    )
    with pytest.raises(HttpResponseError) as e:
        client.create_user()
    assert e.value.status_code == 400
    assert e.value.error.code == "UnsupportedApiVersion"
    assert f"does not support the API version '{version}'" in e.value.error.message


@pytest.mark.parametrize(
    "version",
    [
        "2021-02-22-preview1",
        "2021-10-31-preview",
        "2021-11-01",
        "2022-06-01",
        "2023-08-01",
        "2025-06-30",
    ],
)
def test_every_announced_and_stable_identity_version_is_served(fresh, version):
    """ACS announces (and serves) more than the specs' stable list (review Low 12)."""
    client = CommunicationIdentityClient.from_connection_string(
        connection_string(fresh), api_version=version
    )
    assert client.create_user().properties["id"]


def test_missing_api_version_and_malformed_json_are_400(fresh):
    key = key_of(connection_string(fresh))
    status, err, _ = signed(fresh.doc, key, "POST", "/identities")
    assert status == 400 and err["error"]["code"] == "MissingApiVersionParameter"
    status, err, _ = signed(fresh.doc, key, "POST", "/identities?api-version=2023-10-01", b"{nope")
    assert status == 400 and err["error"]["code"] == "InvalidRequestBody"
    status, err, _ = signed(fresh.doc, key, "POST", "/identities?api-version=2023-10-01", b"[1]")
    assert status == 400 and err["error"]["code"] == "InvalidRequestBody"
    status, err, _ = signed(
        fresh.doc, key, "POST", "/identities?api-version=2023-10-01", {"expiresInMinutes": "60"}
    )
    assert status == 400 and err["error"]["target"] == "ExpiresInMinutes"
    deep = b"[" * 100_000 + b"]" * 100_000  # security review D7: a RecursionError was a 500
    status, err, _ = signed(fresh.doc, key, "POST", "/identities?api-version=2023-10-01", deep)
    assert status == 400 and err["error"]["code"] == "InvalidRequestBody"


# -- Teams users ---------------------------------------------------------------------------------


def _teams_token(control, **kwargs) -> str:
    claims = {"oid": world.DEVELOPER_OID, "appid": TEAMS_APP, "audience": TEAMS_AUDIENCE}
    claims.update(kwargs)
    extra = {"scp": "Teams.ManageCalls Teams.ManageChats"}
    return forge(control.settings, control.doc, extra=extra, **claims)


def test_teams_token_exchange_matches_the_entra_token_expiry(identity, fresh):
    entra = _teams_token(fresh, lifetime=4000)
    token = identity.get_token_for_teams_user(entra, TEAMS_APP, world.DEVELOPER_OID)
    claims = jwt.decode(token.token, options={"verify_signature": False})
    entra_exp = jwt.decode(entra, options={"verify_signature": False})["exp"]
    assert claims["exp"] == entra_exp == _expires(token.expires_on)
    assert claims["skypeid"] == f"orgid:{world.DEVELOPER_OID}"
    assert _check(fresh, token.token)["valid"]


OTHER_GUID = "00000000-0000-0000-0000-000000000001"
INVALID_TOKEN = (401, "InvalidAccessToken", "Provided access token is not valid.", None)


@pytest.mark.parametrize(
    "token_kwargs, needle",
    [
        ({"lifetime": -3600}, "ExpiredAuthenticationToken"),
        ({"audience": "https://communication.azure.com/"}, "audience"),
        ({"idtyp": "app"}, "application"),
    ],
)
def test_teams_exchange_with_a_bad_token_is_401_invalid_access_token(
    identity, fresh, token_kwargs, needle
):
    entra = _teams_token(fresh, **token_kwargs)
    before = fresh.last_log_id()
    with pytest.raises(ClientAuthenticationError) as e:
        identity.get_token_for_teams_user(entra, TEAMS_APP, world.DEVELOPER_OID)
    assert _error(e.value) == INVALID_TOKEN
    [entry] = [x for x in fresh.log_after(before) if x["status"] == 401]
    assert needle in entry["outcome"]


@pytest.mark.parametrize(
    "token, user",
    [("garbage", world.DEVELOPER_OID), ("invalid", ""), ("", "")],
)
def test_the_token_is_judged_before_missing_fields(fresh, token, user):
    """Azure's order (recordings): a bad token is 401 even when userId is missing too."""
    key = key_of(connection_string(fresh))
    body = {"token": token, "appId": TEAMS_APP, "userId": user}
    status, err, _ = signed(
        fresh.doc, key, "POST", "/teamsUser/:exchangeAccessToken?api-version=2023-10-01", body
    )
    assert (status, err["error"]["code"], err["error"]["message"]) == INVALID_TOKEN[:3]


@pytest.mark.parametrize(
    "app, user, message, target",
    [
        ("", world.DEVELOPER_OID, "AppId: The AppId field is required.", "AppId"),
        (TEAMS_APP, "", "UserId: The UserId field is required.", "UserId"),
        ("invalid", world.DEVELOPER_OID, "Provided AppId has invalid format.", "appId"),
        (OTHER_GUID, world.DEVELOPER_OID, "AAD application is not the expected one.", "appId"),
        (TEAMS_APP, "invalid", "Provided UserId has invalid format.", "userId"),
        (TEAMS_APP, OTHER_GUID, "Provided AAD token issued for unexpected user.", "userId"),
    ],
)
def test_teams_exchange_field_errors_are_400_with_a_target(
    identity, fresh, app, user, message, target
):
    entra = _teams_token(fresh)
    with pytest.raises(HttpResponseError) as e:
        identity.get_token_for_teams_user(entra, app, user)
    assert not isinstance(e.value, ClientAuthenticationError)
    assert _error(e.value) == (400, "ValidationError", message, target)


def test_teams_exchange_refusals_are_the_same_from_the_async_client(fresh):
    conn = connection_string(fresh)
    entra = _teams_token(fresh)

    async def main():
        async with AsyncIdentityClient.from_connection_string(conn) as client:
            with pytest.raises(HttpResponseError) as mismatch:
                await client.get_token_for_teams_user(entra, OTHER_GUID, world.DEVELOPER_OID)
            with pytest.raises(ClientAuthenticationError) as bad:
                await client.get_token_for_teams_user("garbage", TEAMS_APP, world.DEVELOPER_OID)
        return mismatch.value, bad.value

    mismatch, bad = asyncio.run(main())
    assert _error(mismatch) == (
        400,
        "ValidationError",
        "AAD application is not the expected one.",
        "appId",
    )
    assert _error(bad) == INVALID_TOKEN


def test_teams_exchange_needs_api_version_2022_06_01(fresh):
    client = CommunicationIdentityClient.from_connection_string(
        connection_string(fresh), api_version="2021-03-07"
    )
    with pytest.raises(HttpResponseError) as e:
        client.get_token_for_teams_user(_teams_token(fresh), TEAMS_APP, world.DEVELOPER_OID)
    assert e.value.status_code == 400 and e.value.error.code == "UnsupportedApiVersion"


# -- limits (plain model tests: 1,000 HTTP calls would only slow the suite) --------------------


def test_identity_limits_are_per_30_seconds_and_say_when_to_retry():
    from sandbox.acs import limits

    now = [1000.0]
    windows = limits.SlidingWindows(now=lambda: now[0])
    create = limits.IDENTITY_LIMITS["Identity.Create"]
    assert create == 1000 and limits.IDENTITY_LIMITS["Identity.RevokeTokens"] == 500
    for _ in range(create):
        now[0] += 0.01
        assert windows.take("create", create, limits.IDENTITY_WINDOW) == 0.0
    wait = windows.take("create", create, limits.IDENTITY_WINDOW)
    assert wait == pytest.approx(30 - (create - 1) * 0.01, abs=1e-6)  # until the first ages out
    error = limits.too_many(wait, "Identity.Create allows 1000 calls per 30 seconds")
    assert (error.status, error.code, error.headers["Retry-After"]) == (
        429,
        "TooManyRequests",
        "21",
    )
    now[0] += wait
    assert windows.take("create", create, limits.IDENTITY_WINDOW) == 0.0
    assert windows.take("other", 500, 30) == 0.0  # windows are per key
    assert windows.take("big", 100, 60, units=101) == 60  # can never fit
