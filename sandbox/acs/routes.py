"""HTTP skin of the data plane: ``/identities...``, ``/teamsUser/...`` and ``/sms`` at the root of
the HTTPS listener (the resource endpoint), plus the ACS control routes.

Every data-plane request goes through the same steps, in this order, and the request log
records who called, with which credential, and the decision with its reason (ACS's answer to a
refusal is only "Denied by the resource provider."; the log says why):
    1. authenticate (HMAC access key or Entra ID bearer token)           → 401 Denied
    2. authorize a bearer caller from its role assignments (RBAC)         → 401 Denied
    3. api-version                                                        → 400
    4. fault switches ``unavailable`` / ``throttle``                      → 503 / 429
    5. the published rate limits                                          → 429 + Retry-After
    6. the operation itself (models)                                      → its status
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sandbox import audit, clock, faults, world
from sandbox.acs import auth, limits, versions
from sandbox.acs.errors import AcsError, add_service_headers, denied, json_response
from sandbox.acs.identity_models import IdentityService
from sandbox.acs.sms_models import SmsService
from sandbox.runtime import Sandbox, sandbox_of

log = logging.getLogger("sandbox.acs")


class AcsRuntime:
    """In-memory state of the data plane (rate windows). A reset of the world clears it: the
    store's ``acs_state`` marker disappears with every other document."""

    def __init__(self) -> None:
        self.windows = limits.SlidingWindows()
        self.epoch: str | None = None

    def sync_with(self, sb: Sandbox) -> None:
        marker = sb.store.get("acs_state", "epoch")
        if marker is None or marker["id"] != self.epoch:
            self.epoch = marker["id"] if marker else str(uuid.uuid4())
            if marker is None:
                sb.store.put("acs_state", "epoch", {"id": self.epoch})
            self.windows.clear()


def runtime(request: Request) -> AcsRuntime:
    state = request.app.state
    found = getattr(state, "acs_runtime", None)
    if found is None:
        found = AcsRuntime()
        state.acs_runtime = found
    return found


@dataclass
class Call:
    """One authenticated data-plane request, as the operations see it."""

    request: Request
    sb: Sandbox
    caller: auth.Caller
    version: str
    raw: bytes
    resource: dict[str, Any]
    runtime: AcsRuntime

    def json(self, required: bool = False) -> dict[str, Any]:
        if not self.raw.strip():
            if required:
                raise AcsError(
                    400, "InvalidRequestBody", "This operation needs a JSON request body."
                )
            return {}
        try:
            body = json.loads(self.raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise AcsError(
                400, "InvalidRequestBody", "The request body is not valid JSON."
            ) from None
        if not isinstance(body, dict):
            raise AcsError(400, "InvalidRequestBody", "The request body must be a JSON object.")
        return body

    def identities(self) -> IdentityService:
        return IdentityService(self.sb.store, self.sb.tokens, self.resource)

    def limit(self, key: str, limit: int, window: float, units: int = 1, what: str = "") -> None:
        if faults.active(self.sb.faults, "unlimited") is not None:
            return
        wait = self.runtime.windows.take(key, limit, window, units)
        if wait:
            raise limits.too_many(wait, what or f"{limit} per {window:.0f} s")


Operation = Callable[[Call], Awaitable[Response]]


def _authenticate(
    request: Request, sb: Sandbox, raw: bytes, resource: dict[str, Any]
) -> auth.Caller:
    header = request.headers.get("authorization", "")
    if header.startswith("HMAC-SHA256"):
        audit.note(request, credential="hmac")
        auth.refuse_if_local_auth_disabled(resource)
        path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string", b"")
        path_and_query = path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        name = auth.verify_hmac(
            method=request.method,
            path_and_query=path_and_query,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=raw,
            keys=resource.get("keys", {}),
            now=clock.now(),
            hosts=auth.served_hosts(_listener_port(request), urlsplit(sb.https_url).netloc),
        )
        key = resource["keys"][name]
        return auth.Caller(
            credential="hmac",
            principal_id="access-key",
            display=f"access key ({name})",
            key_name=name,
            key_fingerprint=auth.key_fingerprint(key),
        )
    if header[:7].lower() == "bearer ":
        audit.note(request, credential="bearer")
        claims = auth.verify_bearer(sb.tokens, header[7:].strip())
        oid = claims.get("oid")
        if not oid:
            raise denied("bearer token has no 'oid' claim, so no principal to authorize.")
        display = auth.describe_principal(sb.store, oid, claims)
        return auth.Caller(credential="bearer", principal_id=oid, display=display, claims=claims)
    raise denied(
        "the request has no usable Authorization header: sign it with an access key "
        "(HMAC-SHA256, e.g. a connection string) or send a Microsoft Entra ID bearer token."
    )


def _listener_port(request: Request) -> int:
    server = request.scope.get("server") or ("", 0)
    return int(server[1] or 0)


def endpoint(operation: str, accepted: tuple[str, ...]) -> Callable[[Operation], Callable]:
    """Wrap an operation in the shared steps listed in the module docstring."""

    def wrap(func: Operation) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            response = await answer(request)
            add_service_headers(request, response, versions.announced(accepted))
            return response

        async def answer(request: Request) -> Response:
            sb = sandbox_of(request)
            audit.note(request, operation=operation)
            authorized = False
            try:
                raw = await request.body()
                rt = runtime(request)
                rt.sync_with(sb)
                resource = sb.store.get("acs_resource", world.ACS_NAME)
                if resource is None:
                    raise AcsError(
                        404,
                        "ResourceNotFound",
                        "The Communication Services resource does not exist.",
                    )
                try:
                    caller = _authenticate(request, sb, raw, resource)
                    audit.note(request, caller=caller.display, principal_id=caller.principal_id)
                    reason = f"signed with {caller.key_name}"
                    if caller.credential == "bearer":
                        role = auth.authorize(
                            sb.store, sb.faults, caller.principal_id, caller.display
                        )
                        reason = f"role '{role}' applies at {world.ACS_RESOURCE_ID}"
                except AcsError as e:
                    audit.note(request, decision="denied", reason=e.diagnosis or e.message)
                    raise
                audit.note(request, decision="allowed", reason=reason)
                authorized = True
                version = versions.check(
                    request.query_params.get("api-version"),
                    accepted,
                    lambda: f"{sb.https_url}{request.url.path}",
                )
                if faults.take(sb.faults, "unavailable"):
                    audit.note(request, fault="unavailable")
                    raise AcsError(
                        503,
                        "ServiceUnavailable",
                        "The service is temporarily unavailable (fault 'unavailable').",
                    )
                fault = faults.take(sb.faults, "throttle")
                if fault:
                    audit.note(request, fault="throttle")
                    seconds = str(fault.get("retry_after", 1))
                    raise AcsError(
                        429,
                        "TooManyRequests",
                        f"Too many requests (fault 'throttle'). Retry after {seconds} seconds.",
                        headers={"Retry-After": seconds},
                    )
                call = Call(request, sb, caller, version, raw, resource, rt)
                return await func(call)
            except AcsError as e:
                if authorized or e.status not in (401, 403):
                    audit.note(request, outcome=e.diagnosis or e.message)
                return e.response()

        return handler

    return wrap


def _identity_limit(call: Call, operation: str) -> None:
    call.limit(
        f"identity:{operation}",
        limits.IDENTITY_LIMITS[operation],
        limits.IDENTITY_WINDOW,
        what=f"{operation} allows {limits.IDENTITY_LIMITS[operation]} calls per "
        f"{limits.IDENTITY_WINDOW:.0f} seconds",
    )


def _user_id(call: Call) -> str:
    return call.request.path_params["id"]


@endpoint("Identity.Create", versions.IDENTITY_VERSIONS)
async def create_identity(call: Call) -> Response:
    body = call.json()
    _identity_limit(call, "Identity.Create")
    return json_response(call.identities().create(call.caller, body, call.version), 201)


@endpoint("Identity.IssueToken", versions.IDENTITY_VERSIONS)
async def issue_token(call: Call) -> Response:
    body = call.json(required=True)
    _identity_limit(call, "Identity.IssueToken")
    return json_response(call.identities().issue(call.caller, _user_id(call), body, call.version))


@endpoint("Identity.RevokeTokens", versions.IDENTITY_VERSIONS)
async def revoke_tokens(call: Call) -> Response:
    _identity_limit(call, "Identity.RevokeTokens")
    call.identities().revoke(_user_id(call))
    return Response(status_code=204)


@endpoint("Identity.Delete", versions.IDENTITY_VERSIONS)
async def delete_identity(call: Call) -> Response:
    _identity_limit(call, "Identity.Delete")
    call.identities().delete(_user_id(call))
    return Response(status_code=204)


@endpoint("Identity.ExchangeTeamsToken", versions.IDENTITY_VERSIONS)
async def exchange_teams_token(call: Call) -> Response:
    if not versions.at_least(call.version, versions.TEAMS_EXCHANGE_SINCE):
        url = f"{call.sb.https_url}{call.request.url.path}"
        raise AcsError(
            400,
            "UnsupportedApiVersion",
            f"The HTTP resource that matches the request URI '{url}' does not support the API "
            f"version '{call.version}'; the Teams token exchange needs "
            f"{versions.TEAMS_EXCHANGE_SINCE} or later.",
        )
    body = call.json(required=True)
    _identity_limit(call, "Identity.ExchangeTeamsToken")
    return json_response(call.identities().exchange_teams(call.caller, body))


@endpoint("Sms.Send", versions.SMS_VERSIONS)
async def send_sms(call: Call) -> Response:
    body = call.json(required=True)
    service = SmsService(call.sb.store, call.resource)
    sender, recipients, _, _ = service.validate(body)
    key, per_minute = limits.sms_limit(sender)
    call.limit(
        key,
        per_minute,
        limits.SMS_WINDOW,
        units=len(recipients),
        what=f"number {sender} may send {per_minute} message units per minute",
    )
    items = service.send(body, call.caller.principal_id)
    audit.note(
        call.request, recipients=len(items), accepted=sum(1 for i in items if i["successful"])
    )
    return json_response({"value": items}, 202)


def routes() -> list[BaseRoute]:
    from sandbox.acs import control_routes

    return [
        Route("/identities", create_identity, methods=["POST"]),
        Route("/identities/{id}", delete_identity, methods=["DELETE"]),
        Route("/identities/{id}/:issueAccessToken", issue_token, methods=["POST"]),
        Route("/identities/{id}/:revokeAccessTokens", revoke_tokens, methods=["POST"]),
        Route("/teamsUser/:exchangeAccessToken", exchange_teams_token, methods=["POST"]),
        Route("/sms", send_sms, methods=["POST"]),
        *control_routes.routes(),
    ]
