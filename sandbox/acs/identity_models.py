"""Communication Services identities and their user access tokens (the Identity API's behaviour).

Plain classes over the store, testable without HTTP. An identity is a document; every token
issued is recorded too (by its ``jti``), because revocation, deletion and key rotation are
decided server-side: a JWT alone cannot say it was revoked.

Token validity rules (``check_token``), which the docs (identity-model.md) describe and the
sandbox applies at once rather than "within 15 minutes":
  * signature by the sandbox's key and ``exp`` in the future;
  * the identity still exists (deleting it revokes all its tokens);
  * issued after the identity's last revocation;
  * if issued through an access key (HMAC), that key is still one of the resource's keys:
    regenerating the key revokes the tokens it issued. Tokens issued to an Entra ID caller are
    not tied to a key.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Any

import jwt

from sandbox import clock, world
from sandbox.acs import versions
from sandbox.acs.auth import Caller, key_fingerprint
from sandbox.acs.errors import AcsError, denied, invalid
from sandbox.entra.tokens import InvalidToken, TokenService
from sandbox.store import Store

IDENTITY_KIND = "acs_identity"
TOKEN_KIND = "acs_user_token"

BASE_SCOPES = ("chat", "voip")
JOIN_SCOPES = ("chat.join", "chat.join.limited", "voip.join")
# The real ``scp`` bit layout is unpublished (a "voip" token carries 1792); this is the sandbox's.
SCOPE_BITS = {
    "chat": 0x7,
    "chat.join": 0x3,
    "chat.join.limited": 0x1,
    "voip": 0x700,
    "voip.join": 0x400,
}
MIN_MINUTES, MAX_MINUTES, DEFAULT_MINUTES = 60, 1440, 1440

TEAMS_AUDIENCES = [
    "https://auth.msft.communication.azure.com",
    "https://auth.msft.communication.azure.com/",
]
TEAMS_SCOPES = ("Teams.ManageCalls", "Teams.ManageChats")
TEAMS_TOKEN_INVALID = "Provided access token is not valid."
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII | re.I)


def _is_guid(value: str) -> bool:
    return _GUID.fullmatch(value) is not None


def expires_on_text(exp: int) -> str:
    """``2023-10-10T21:39:39.0000000+00:00``: the service's format (7 digits, +00:00)."""
    return (
        datetime.fromtimestamp(exp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + ".0000000+00:00"
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def parse_scopes(value: Any, version: str) -> list[str]:
    """Validated token scopes, refused as the service words it: a missing field is the model
    binder's "Scopes: The Scopes field is required." (target ``Scopes``), an empty list the
    service's own "Invalid scopes - Scopes field is required."."""
    if value is None:
        raise invalid("Scopes: The Scopes field is required.", target="Scopes")
    if value == []:
        raise invalid("Invalid scopes - Scopes field is required.")
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise invalid("Invalid scopes - Scopes must be a list of strings.")
    allowed = BASE_SCOPES + (
        JOIN_SCOPES if versions.at_least(version, versions.JOIN_SCOPES_SINCE) else ()
    )
    for scope in value:
        if scope not in allowed:
            raise invalid(
                f"Invalid scopes - '{scope}' is not a valid scope for api-version {version}; "
                f"valid scopes are {', '.join(allowed)}."
            )
    return list(dict.fromkeys(value))


def parse_minutes(value: Any, version: str) -> int:
    if not versions.at_least(version, versions.EXPIRES_IN_MINUTES_SINCE):
        return DEFAULT_MINUTES  # the field does not exist before 2022-10-01
    if value is None:
        return DEFAULT_MINUTES
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not MIN_MINUTES <= value <= MAX_MINUTES
    ):
        raise invalid(
            f"ExpiresInMinutes value {value} is invalid. "
            f"Value must be within the [{MIN_MINUTES}, {MAX_MINUTES}] interval.",
            target="ExpiresInMinutes",
        )
    return value


class IdentityService:
    """Identities of one Communication Services resource and the tokens issued to them."""

    def __init__(self, store: Store, tokens: TokenService, resource: dict[str, Any]) -> None:
        self.store = store
        self.tokens = tokens
        self.resource = resource
        self.immutable_id = resource["immutable_resource_id"]
        location = str(resource.get("data_location", "United States"))
        self.location = location.replace(" ", "").lower()

    # -- identities --------------------------------------------------------------------------

    def new_id(self) -> str:
        h = uuid.uuid4().hex
        return f"8:acs:{self.immutable_id}_00000{h[:3]}-{h[3:7]}-{h[7:11]}-{h[11:15]}-{h[15:27]}"

    def require(self, user_id: str) -> dict[str, Any]:
        """The identity's document, or 401: ACS answers 401, not 404, for an identity that is
        unknown, deleted or belongs to another resource (the code is unpublished; ``Denied``)."""
        doc = None
        if user_id.startswith(f"8:acs:{self.immutable_id}_"):
            doc = self.store.get(IDENTITY_KIND, user_id)
        if doc is None:
            raise denied(
                f"identity '{user_id}' does not exist in this Communication Services resource "
                f"(resource id {self.immutable_id}); it may have been deleted or belong to "
                "another resource."
            )
        return doc

    def create(self, caller: Caller, body: dict[str, Any], version: str) -> dict[str, Any]:
        scopes = body.get("createTokenWithScopes")
        wanted = parse_scopes(scopes, version) if scopes is not None else None
        minutes = parse_minutes(body.get("expiresInMinutes"), version)
        now = clock.now()
        user_id = self.new_id()
        with self.store.transaction():
            self.store.put(
                IDENTITY_KIND,
                user_id,
                {
                    "id": user_id,
                    "created_on": _iso(now),
                    "created_at": now,
                    "created_by": caller.principal_id,
                    "tokens_valid_from": None,
                },
            )
            result: dict[str, Any] = {"identity": {"id": user_id}}
            if wanted is not None:
                result["accessToken"] = self._mint(caller, user_id, wanted, minutes, now)
        return result

    def issue(
        self, caller: Caller, user_id: str, body: dict[str, Any], version: str
    ) -> dict[str, Any]:
        self.require(user_id)
        scopes = parse_scopes(body.get("scopes"), version)
        minutes = parse_minutes(body.get("expiresInMinutes"), version)
        return self._mint(caller, user_id, scopes, minutes, clock.now())

    def revoke(self, user_id: str) -> None:
        with self.store.transaction():
            doc = self.require(user_id)
            doc["tokens_valid_from"] = clock.now()
            self.store.put(IDENTITY_KIND, user_id, doc)

    def delete(self, user_id: str) -> None:
        with self.store.transaction():
            self.require(user_id)
            self.store.delete(IDENTITY_KIND, user_id)

    # -- tokens ------------------------------------------------------------------------------

    def _mint(
        self, caller: Caller, user_id: str, scopes: list[str], minutes: int, now: float
    ) -> dict[str, str]:
        iat = int(now)
        return self._sign(
            caller,
            user_id=user_id,
            skypeid=user_id.removeprefix("8:"),
            scopes=scopes,
            iat=iat,
            exp=iat + minutes * 60,
            now=now,
        )

    def _sign(
        self,
        caller: Caller,
        *,
        user_id: str,
        skypeid: str,
        scopes: list[str],
        iat: int,
        exp: int,
        now: float,
    ) -> dict[str, str]:
        jti = str(uuid.uuid4())
        bits = 0
        for scope in scopes:
            bits |= SCOPE_BITS.get(scope, 0)
        claims = {
            "skypeid": skypeid,
            "scp": bits,
            "csi": str(iat),
            "exp": exp,
            "acsScope": ",".join(scopes),
            "resourceId": self.immutable_id,
            "resourceLocation": self.location,
            "iat": iat,
            "jti": jti,
        }
        token = self.tokens.sign(claims)
        self.store.put(
            TOKEN_KIND,
            jti,
            {
                "jti": jti,
                "user_id": user_id,
                "scopes": scopes,
                "issued_at": now,
                "exp": exp,
                "credential": caller.credential,
                "issued_by": caller.principal_id,
                "key_fingerprint": caller.key_fingerprint,
            },
        )
        return {"token": token, "expiresOn": expires_on_text(exp)}

    def exchange_teams(self, caller: Caller, body: dict[str, Any]) -> dict[str, str]:
        """A Communication Services token for a Teams user, valid exactly as long as the Entra ID
        token presented (audience ``https://auth.msft.communication.azure.com``).

        Judged in the service's order (recordings): the token first (401 ``InvalidAccessToken``),
        then the required fields, then each id's format and its match with the token (400
        ``ValidationError`` with a ``target``)."""
        claims = self._teams_claims(body.get("token"))
        for field, name in (("appId", "AppId"), ("userId", "UserId")):
            if not isinstance(body.get(field), str) or not body[field]:
                raise invalid(f"{name}: The {name} field is required.", target=name)
        app_id, user_id = body["appId"], body["userId"]
        if not _is_guid(app_id):
            raise invalid("Provided AppId has invalid format.", target="appId")
        token_app = str(claims.get("appid") or claims.get("azp") or "")
        if token_app.lower() != app_id.lower():
            raise invalid(
                "AAD application is not the expected one.",
                target="appId",
                diagnosis=f"appId '{app_id}' is not the token's appid claim '{token_app}'.",
            )
        if not _is_guid(user_id):
            raise invalid("Provided UserId has invalid format.", target="userId")
        if str(claims.get("oid", "")).lower() != user_id.lower():
            raise invalid(
                "Provided AAD token issued for unexpected user.",
                target="userId",
                diagnosis=f"userId '{user_id}' is not the token's oid claim '{claims.get('oid')}'.",
            )
        now = clock.now()
        oid = claims["oid"]
        return self._sign(
            caller,
            user_id=f"8:orgid:{oid}",
            skypeid=f"orgid:{oid}",
            scopes=["voip", "chat"],
            iat=int(now),
            exp=int(claims["exp"]),
            now=now,
        )

    def _teams_claims(self, token: Any) -> dict[str, Any]:
        """The claims of a Teams user's Entra ID token, or ACS's one 401 for any bad token."""

        def refuse(why: str) -> AcsError:
            return AcsError(401, "InvalidAccessToken", TEAMS_TOKEN_INVALID, diagnosis=why)

        if not isinstance(token, str) or not token:
            raise refuse("the request carries no Teams user token.")
        try:
            claims = self.tokens.verify(token, audiences=TEAMS_AUDIENCES, tenant_id=world.TENANT_ID)
        except InvalidToken as e:
            raise refuse(f"Teams user token refused ({e.code}): {e.reason}") from None
        if claims.get("idtyp") == "app":
            raise refuse("the Entra ID token belongs to an application, not to a Teams user.")
        scp = str(claims.get("scp", ""))
        if scp and not any(s in scp.split() for s in TEAMS_SCOPES):
            raise refuse(
                f"the Entra ID token has scopes '{scp}'; "
                "it needs Teams.ManageCalls or Teams.ManageChats."
            )
        return claims

    def check_token(self, token: str) -> tuple[bool, str]:
        """(valid, reason) for a user access token, applying the rules in the module docstring."""
        try:  # times are judged below, on the sandbox's clock (the clock_skew fault moves it)
            claims = self.tokens.signed_claims(token)
        except jwt.PyJWTError:
            return False, "signature invalid: not signed by this sandbox's key, or not a JWT"
        jti = claims.get("jti")
        if "skypeid" not in claims or not jti:
            return False, "not a Communication Services user access token"
        if claims.get("exp", 0) <= clock.now():
            return False, f"expired at {expires_on_text(int(claims.get('exp', 0)))}"
        record = self.store.get(TOKEN_KIND, jti)
        if record is None:
            return False, "unknown token: not issued by this sandbox since its last reset"
        user_id = record["user_id"]
        if user_id.startswith("8:acs:"):
            identity = self.store.get(IDENTITY_KIND, user_id)
            if identity is None:
                return False, f"identity {user_id} was deleted"
            valid_from = identity.get("tokens_valid_from")
            if valid_from is not None and record["issued_at"] < valid_from:
                return False, f"tokens of {user_id} were revoked at {_iso(valid_from)}"
        fingerprint = record.get("key_fingerprint")
        if fingerprint:
            current = self.store.get("acs_resource", self.resource["name"]) or self.resource
            if fingerprint not in {key_fingerprint(k) for k in current.get("keys", {}).values()}:
                return False, "issued with an access key that has since been regenerated"
        return True, "valid"
