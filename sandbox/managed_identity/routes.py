"""The identity endpoints of the simulated hosts, on the plain-HTTP listener.

Each host lives under ``/{secret}/hosts/{host}``: a VM serves IMDS
(``/metadata/identity/oauth2/token``), a Function app serves the App Service endpoint
(``/msi/token``). Personas point the SDKs there with ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` or
``IDENTITY_ENDPOINT`` (sandbox/personas.py), which the SDKs use as given, path and all.

``{secret}`` is a random segment made once per installation (``mi_path`` in world.py). A real
IMDS answers only the machine it runs on; here the listener's port is open to every user of the
machine, so the segment, known only to the owner, stands in for "on this machine": a request
without it learns nothing and gets the same 400 as any unknown path.

Every refusal is a 4xx: the SDKs retry 404, 410, 429 and 5xx for up to 75 s, while a 400 makes
``ManagedIdentityCredential`` unavailable at once so ``DefaultAzureCredential`` moves on, which is
what the real endpoints' "Identity not found" answer does.
"""

from __future__ import annotations

import asyncio
import hmac
import uuid
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox import audit, faults
from sandbox.managed_identity.models import (
    APP_SERVICE,
    IMDS,
    IdentityRequestError,
    ManagedIdentityEndpoints,
    NoIdentityEndpoint,
)
from sandbox.runtime import sandbox_of


def _query(request: Request) -> dict[str, str]:
    """First value of each parameter; tolerant of the unencoded ``resource`` the SDKs send."""
    raw = request.scope.get("query_string", b"").decode("latin-1")
    found: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        found.setdefault(key.lower(), value)
    return found


def _error(style: str, exc: IdentityRequestError) -> JSONResponse:
    if isinstance(exc, NoIdentityEndpoint):  # what the SDK reads as "no response"
        return JSONResponse({}, status_code=exc.status)
    if style == APP_SERVICE:
        # The App Service shape, which the sync SDK reads ("statusCode", "message").
        body = {
            "statusCode": exc.status,
            "message": exc.description,
            "correlationId": str(uuid.uuid4()),
        }
    else:
        body = {"error": exc.error, "error_description": exc.description}
    return JSONResponse(body, status_code=exc.status)


def _fault_for(request: Request, name: str, host: str) -> dict | None:
    fault = faults.active(sandbox_of(request).faults, name)
    if fault and (not fault.get("hosts") or host in fault["hosts"]):
        return fault
    return None


def unknown_path_error(request: Request, status: int = 404) -> JSONResponse:
    """What any path that is no identity endpoint of this installation gets (a wrong or missing
    secret segment included): 400 in the endpoint's own shape, never a 404 the SDKs retry."""
    style = APP_SERVICE if "/msi/" in request.url.path else IMDS
    reason = f"no identity endpoint at this path (HTTP {status} answered as 400)"
    audit.note(request, credential="managed-identity", decision="refused", reason=reason)
    return _error(
        style,
        IdentityRequestError(400, "invalid_request", "No identity endpoint at this path."),
    )


async def _token(request: Request, style: str) -> Response:
    given = request.path_params["secret"]
    if not hmac.compare_digest(given.encode(), sandbox_of(request).mi_secret.encode()):
        return unknown_path_error(request)
    host_name = request.path_params["host"]
    audit.note(request, credential="managed-identity", host=host_name)
    if _fault_for(request, "mi_unreachable", host_name):
        # Emulated as an immediate 400: the SDKs report the endpoint as unavailable (sync IMDS:
        # "no response from the IMDS endpoint") and DefaultAzureCredential moves on, instead of
        # waiting out a dead socket (300 s per attempt) or retrying a 5xx.
        audit.note(request, decision="refused", reason="fault mi_unreachable")
        return _error(
            style,
            IdentityRequestError(
                400,
                "invalid_request",
                f"No response from the identity endpoint of '{host_name}' "
                "(sandbox fault mi_unreachable).",
            ),
        )
    slow = _fault_for(request, "mi_slow", host_name)
    if slow:
        await asyncio.sleep(float(slow.get("seconds", 0)))

    sb = sandbox_of(request)
    endpoints = ManagedIdentityEndpoints(sb.store, sb.tokens, sb.mi_token_cache)
    query = _query(request)
    try:
        host = endpoints.check_style(host_name, style)
        if style == IMDS:
            if request.headers.get("metadata", "").lower() != "true":
                raise IdentityRequestError(
                    400, "bad_request_102", "Required metadata header not specified"
                )
        else:
            given = request.headers.get("x-identity-header")
            if not given:
                raise IdentityRequestError(
                    400, "invalid_request", "Required header X-IDENTITY-HEADER not specified."
                )
            if not hmac.compare_digest(given.encode(), host["identity_header"].encode()):
                raise IdentityRequestError(
                    401,
                    "unauthorized_client",
                    "The X-IDENTITY-HEADER value does not match this app's IDENTITY_HEADER.",
                )
        if not query.get("api-version"):
            raise IdentityRequestError(
                400, "invalid_request", "Required api-version parameter not specified"
            )
        chosen, body = endpoints.issue(
            host, query.get("resource", ""), endpoints.selector(style, query)
        )
    except IdentityRequestError as exc:
        audit.note(request, decision="refused", reason=exc.description)
        return _error(style, exc)
    audit.note(
        request,
        caller=chosen.name,
        principal_id=chosen.object_id,
        identity_kind=chosen.kind,
        audience=body["resource"],
        decision="issued",
        reason=f"{chosen.kind} identity of {host_name}",
    )
    return JSONResponse(body)


async def imds_token(request: Request) -> Response:
    return await _token(request, IMDS)


async def app_service_token(request: Request) -> Response:
    return await _token(request, APP_SERVICE)


async def bare_imds(request: Request) -> Response:
    """The JavaScript SDKs probe the listener's root IMDS path: any quick answer will do."""
    audit.note(request, credential="managed-identity", decision="refused", reason="no host in path")
    return JSONResponse(
        {
            "error": "invalid_request",
            "error_description": "This listener serves many hosts: use the endpoint that "
            "`python -m sandbox env --as <persona>` prints.",
        },
        status_code=400,
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/{secret}/hosts/{host}/metadata/identity/oauth2/token", imds_token, methods=["GET"]),
        # MSAL for Node appends a "/" to an AZURE_POD_IDENTITY_AUTHORITY_HOST endpoint; the
        # pod-identity endpoint that variable names serves the path with and without it.
        Route(
            "/{secret}/hosts/{host}/metadata/identity/oauth2/token/", imds_token, methods=["GET"]
        ),
        Route("/{secret}/hosts/{host}/msi/token", app_service_token, methods=["GET"]),
        Route("/metadata/identity/oauth2/token", bare_imds, methods=["GET", "POST"]),
    ]
