"""Who is calling the data plane, and may they: HMAC access keys, Entra ID bearer tokens, RBAC.

Two credentials reach ACS. An access key proves possession of the resource's key and is allowed
everything (it is the resource's "root password"), unless the resource has local authentication
turned off (``disableLocalAuth``). A Microsoft Entra ID token proves who the caller is; it is then
authorized from role assignments, read on every request so that a role granted or removed through
Resource Manager takes effect on the very next call.

ACS answers every one of these refusals alike: 401 ``Denied`` "Denied by the resource provider."
(sandbox/FIDELITY.md). Each refusal here carries the sandbox's diagnosis for the request log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote

from sandbox import clock, faults, world
from sandbox.acs.errors import AcsError, denied
from sandbox.arm import rbac
from sandbox.entra.tokens import CLOCK_SKEW_LEEWAY, InvalidToken, TokenService
from sandbox.store import Store

HMAC_DATE_WINDOW = (
    5 * 60
)  # seconds either side of the service's clock ("allowed margin of 5 minutes")
CONTENT_HASH_MISMATCH = "Request 'x-ms-content-sha256' differs from generated content hash."
CLOCK_SKEW = (
    "The time difference between the originating client and the server is greater than the "
    "allowed margin of 5 minutes."
)
EMPTY_BODY_HASH = base64.b64encode(hashlib.sha256(b"").digest()).decode()

AUDIENCES = ["https://communication.azure.com/", "https://communication.azure.com"]
# Roles that reach the data plane. ACS documents no data-plane role; Contributor is what its
# quickstarts assign, and the Communication and Email Service Owner role also works. A custom role
# that may write the resource is accepted too (that is what the built-in ones have in common).
DATA_PLANE_ROLES = ("Owner", "Contributor", "Communication and Email Service Owner")
DATA_PLANE_ACTION = "Microsoft.Communication/CommunicationServices/write"


@dataclass
class Caller:
    """An authenticated caller: what the request log says about it (never the secret itself)."""

    credential: str  # "hmac" or "bearer"
    principal_id: str  # the Entra object id, or "access-key"
    display: str
    key_name: str | None = None  # which access key signed (HMAC)
    key_fingerprint: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)


def key_fingerprint(key_b64: str) -> str:
    """A short, one-way name for a key, so tokens can remember which key issued them."""
    return hashlib.sha256(key_b64.encode()).hexdigest()[:16]


def _denied(diagnosis: str) -> AcsError:
    return denied(diagnosis)


def served_hosts(port: int, own: str) -> set[str]:
    """The ``Host`` values a signature may cover: the loopback names of this listener and the
    authority of the endpoint it publishes, ``own`` (Azure routes a host name to its resource, so
    a foreign host never reaches it)."""
    return {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", own}


# -- HMAC-SHA256 ----------------------------------------------------------------------------


def _parse_hmac_header(value: str) -> tuple[list[str], str]:
    scheme, _, rest = value.partition(" ")
    params = dict(p.partition("=")[::2] for p in rest.strip().split("&") if p)
    signed = params.get("SignedHeaders", "")
    signature = params.get("Signature", "")
    if scheme != "HMAC-SHA256" or not signed or not signature:
        raise _denied(
            "Malformed Authorization header: expected "
            "'HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=<base64>'."
        )
    return [h.strip().lower() for h in signed.split(";")], signature


def verify_hmac(
    *,
    method: str,
    path_and_query: str,
    headers: dict[str, str],
    body: bytes,
    keys: dict[str, str],
    now: float,
    hosts: set[str],
) -> str:
    """Check a request signed with an access key; return the name of the key that signed it.

    ``headers`` has lower-case names. The signed path is the path and query as sent; the async
    Identity client signs the percent-decoded path, which is accepted too (same resource).
    """
    signed_headers, signature = _parse_hmac_header(headers.get("authorization", ""))
    if signed_headers != ["x-ms-date", "host", "x-ms-content-sha256"]:
        raise _denied(
            f"SignedHeaders '{';'.join(signed_headers)}' is not supported; "
            "sign exactly 'x-ms-date;host;x-ms-content-sha256'."
        )
    date_value = headers.get("x-ms-date") or headers.get("date")
    content_hash = headers.get("x-ms-content-sha256")
    host = headers.get("host", "")
    if not date_value:
        raise _denied("Request is missing the 'x-ms-date' header that the signature covers.")
    if not content_hash:
        raise _denied("Request is missing the 'x-ms-content-sha256' header.")
    actual_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
    # Header values arrive as latin-1 text; compare bytes so a non-ASCII value is a refusal too.
    if not hmac.compare_digest(content_hash.encode("latin-1"), actual_hash.encode()):
        raise AcsError(
            401,
            "Denied",
            CONTENT_HASH_MISMATCH,
            diagnosis=f"x-ms-content-sha256 is not the SHA-256 of the {len(body)}-byte body.",
        )
    try:
        sent_at = parsedate_to_datetime(date_value).timestamp()
    except (TypeError, ValueError, IndexError):
        raise _denied(
            f"Request 'x-ms-date' value '{date_value}' is not an RFC 1123 date "
            "(e.g. 'Tue, 26 Mar 2019 16:06:51 GMT')."
        ) from None
    if abs(sent_at - now) > HMAC_DATE_WINDOW:
        server = datetime.fromtimestamp(now, timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
        raise AcsError(
            401,
            "Denied",
            CLOCK_SKEW,
            diagnosis=f"HMAC x-ms-date ({date_value}) is outside the allowed window of "
            f"{HMAC_DATE_WINDOW // 60} minutes around the service's time ({server}); "
            "check the clock of the calling machine.",
        )
    if host not in hosts:
        raise _denied(
            f"HMAC signature covers host '{host}', which is not this endpoint "
            f"({', '.join(sorted(hosts))})."
        )
    try:
        given = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise _denied("The request signature is not valid base64.") from None
    candidates = {path_and_query, unquote(path_and_query)}
    for name, key in keys.items():
        try:
            secret = base64.b64decode(key)
        except (binascii.Error, ValueError):
            continue
        for path in candidates:
            to_sign = f"{method.upper()}\n{path}\n{date_value};{host};{content_hash}"
            expected = hmac.new(secret, to_sign.encode(), hashlib.sha256).digest()
            if hmac.compare_digest(expected, given):
                return name
    raise _denied(
        "HMAC-SHA256 signature mismatch: the signature was not made with a current access key of "
        "this resource (keys may have been regenerated) or over a different host, path or date."
    )


def refuse_if_local_auth_disabled(resource: dict[str, Any]) -> None:
    """Keys turned off (``disableLocalAuth``): every access-key call is refused, signed or not."""
    if resource.get("disable_local_auth"):
        raise _denied(
            "access keys are disabled on this resource (disableLocalAuth is true); "
            "call with a Microsoft Entra ID token instead."
        )


# -- bearer tokens and roles ----------------------------------------------------------------


# Tokens already verified (signature, issuer, audience), as a resource server caches them: an
# app sends the same token for an hour. Only the lifetime is re-checked on a hit.
_VERIFIED: dict[str, tuple[TokenService, dict[str, Any]]] = {}
_VERIFIED_MAX = 1024


def verify_bearer(tokens: TokenService, token: str) -> dict[str, Any]:
    """Claims of a valid Entra ID token for Communication Services, or 401 ``Denied`` (the reason,
    with the code Resource Manager would have used, goes to the log)."""
    verifier, claims = _VERIFIED.get(token, (None, {}))
    now = clock.now()
    if verifier is tokens:
        if (
            claims.get("exp", 0) + CLOCK_SKEW_LEEWAY >= now
            and claims.get("nbf", 0) - CLOCK_SKEW_LEEWAY <= now
        ):
            return claims
        _VERIFIED.pop(token, None)  # the full check below says why it is refused now
    try:
        claims = tokens.verify(token, audiences=AUDIENCES, tenant_id=world.TENANT_ID)
    except InvalidToken as e:
        reason = f"bearer token refused ({e.code}): {e.reason}"
        if _looks_like_user_token(token):
            reason = (
                "bearer token is a Communication Services user access token (for Chat and "
                "Calling); the Identity and SMS APIs need a Microsoft Entra ID token or an "
                "access key."
            )
        raise _denied(reason) from None
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.pop(next(iter(_VERIFIED)))
    _VERIFIED[token] = (tokens, claims)
    return claims


def _looks_like_user_token(token: str) -> bool:
    import jwt

    try:
        return "skypeid" in jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False


def describe_principal(store: Store, oid: str, claims: dict[str, Any]) -> str:
    """A readable name for an object id: a known principal, a host's managed identity, or the
    token's own name claims."""
    principal = store.get("principal", oid)
    if principal and principal.get("kind") == "ManagedIdentity":
        kind = {"SystemAssigned": "system-assigned", "UserAssigned": "user-assigned"}.get(
            principal.get("mi_type", ""), ""
        )
        return f"{principal.get('display_name', oid)} ({kind} managed identity)".replace("( ", "(")
    if principal:
        return principal.get("upn") or principal.get("display_name") or oid
    for host in store.list("host"):
        identity = host.get("identity") or {}
        if oid in (identity.get("principal_id"), identity.get("principalId")):
            return f"{host['name']} (system-assigned managed identity)"
    for uami in store.list("user_assigned_identity"):
        if oid in (uami.get("principal_id"), uami.get("principalId")):
            return f"{uami.get('name', oid)} (user-assigned managed identity)"
    return str(claims.get("upn") or claims.get("name") or claims.get("appid") or oid)


def _created_on(assignment: dict[str, Any]) -> float:
    value = assignment.get("created_on") or assignment.get("createdOn") or ""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _permits(patterns: list[str], action: str) -> bool:
    return any(fnmatchcase(action.lower(), p.lower()) for p in patterns)


def _qualifies(role: dict[str, Any]) -> bool:
    return role["roleName"] in DATA_PLANE_ROLES or (
        _permits(role.get("actions", []), DATA_PLANE_ACTION)
        and not _permits(role.get("notActions", []), DATA_PLANE_ACTION)
    )


def authorize(store: Store, active_faults: dict[str, Any], oid: str, display: str) -> str:
    """The role that lets ``oid`` use the data plane (checked now), or 401 ``Denied`` as ACS
    answers, with a diagnosis for the log that names the principal, what it holds, and what to
    assign.

    With the ``role_propagation`` fault, an assignment younger than its ``seconds`` does not count
    yet, like Azure's propagation delay.
    """
    scope = world.ACS_RESOURCE_ID
    delay = float((faults.active(active_faults, "role_propagation") or {}).get("seconds", 0))
    now = clock.now()
    pending: list[tuple[str, float]] = []
    for assignment in rbac.assignments_applying(store, oid, scope):
        role = store.get("role_definition", assignment["role_definition_guid"])
        if not role:
            continue
        if not _qualifies(role):
            continue
        ready_at = _created_on(assignment) + delay
        if delay and ready_at > now:
            pending.append((role["roleName"], ready_at - now))
            continue
        return role["roleName"]
    if pending:
        name, wait = min(pending, key=lambda p: p[1])
        raise _denied(
            f"role '{name}' on scope '{scope}' has not propagated yet for principal "
            f"'{display}' ({oid}); retry in about {max(1, round(wait))} seconds."
        )
    others = rbac.role_names_at(store, oid, scope)
    held = f" (it holds only: {', '.join(sorted(set(others)))})" if others else ""
    raise _denied(
        f"no role on scope '{scope}' allows the data plane to principal '{display}' ({oid})"
        f"{held}; assign 'Contributor' or 'Communication and Email Service Owner' on the "
        "Communication Services resource, then retry."
    )
