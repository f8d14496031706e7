"""Microsoft Graph over HTTPS at ``/graph/v1.0/...``: bearer tokens, Graph's error bodies.

Graph lives at its own host on Azure; the sandbox serves it under ``/graph`` on its one HTTPS
origin, and that URL is also Graph's identifier in the sandbox cloud (as Graph's is in a
sovereign cloud), so a real Azure CLI registered with ``--endpoint-microsoft-graph-resource-id
<sandbox>/graph/`` asks Entra for a token for it and sends it here. Tokens minted for the public
Graph identifier are accepted too. Behaviour lives in sandbox/graph/models.py.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox import audit, world
from sandbox.entra.tokens import InvalidToken
from sandbox.graph.models import Directory, GraphError
from sandbox.runtime import sandbox_of

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
PUBLIC_GRAPH = "https://graph.microsoft.com"

# Graph's 401 texts per failure (the ones learners meet in the CLI's --debug output).
_TOKEN_TEXT = {
    "InvalidAuthenticationTokenAudience": "Access token validation failure. Invalid audience.",
    "ExpiredAuthenticationToken": "Lifetime validation failed, the token is expired.",
}


def graph_audiences(https_url: str) -> list[str]:
    return [PUBLIC_GRAPH, GRAPH_APP_ID, f"{https_url.rstrip('/')}/graph"]


def _error(request: Request, e: GraphError) -> Response:
    client_id = request.headers.get("client-request-id") or str(uuid.uuid4())
    request_id = str(uuid.uuid4())
    body = {
        "error": {
            "code": e.code,
            "message": e.message,
            "innerError": {
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_id,
            },
        }
    }
    headers = {"request-id": request_id, "client-request-id": client_id}
    if e.status == 401:
        headers["WWW-Authenticate"] = (
            f'Bearer realm="", authorization_uri="{sandbox_of(request).https_url}/'
            f'{world.TENANT_ID}/oauth2/authorize", client_id="{GRAPH_APP_ID}"'
        )
    return JSONResponse(body, status_code=e.status, headers=headers)


def _directory(request: Request) -> Directory:
    """The directory as the bearer token's caller sees it, or a GraphError 401."""
    sb = sandbox_of(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        claims = sb.tokens.verify(
            token.strip(), audiences=graph_audiences(sb.https_url), tenant_id=world.TENANT_ID
        )
    except InvalidToken as e:
        audit.note(request, credential="bearer", reason=e.reason)
        text = _TOKEN_TEXT.get(e.code, "Access token validation failure.")
        raise GraphError(401, "InvalidAuthenticationToken", text) from None
    oid = str(claims.get("oid", ""))
    delegated = claims.get("idtyp") == "user" or "scp" in claims
    audit.note(request, principal_id=oid, credential="bearer")
    return Directory(sb.store, oid, delegated)


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        raise GraphError(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type "
            "header is set and payload is of valid JSON format.",
        ) from None


def _collection(request: Request, name: str, items: list[dict[str, Any]]) -> Response:
    base = f"{sandbox_of(request).https_url}/graph/v1.0"
    return JSONResponse({"@odata.context": f"{base}/$metadata#{name}", "value": items})


async def graph(request: Request) -> Response:
    path = request.path_params["rest"].strip("/")
    parts = path.split("/")
    low = [p.lower() for p in parts]
    method = request.method
    try:
        directory = _directory(request)
        filter_text = request.query_params.get("$filter")
        if low == ["directoryobjects", "getbyids"] and method == "POST":
            found = directory.get_by_ids(await _json(request))
            response = _collection(request, "directoryObjects", found)
        elif low == ["me"] and method == "GET":
            response = JSONResponse(directory.me())
        elif low == ["users"] and method == "GET":
            response = _collection(request, "users", directory.list_users(filter_text))
        elif len(low) == 2 and low[0] == "users" and method == "GET":
            response = JSONResponse(directory.get_user(parts[1]))
        elif low == ["serviceprincipals"] and method == "GET":
            found = directory.list_service_principals(filter_text)
            response = _collection(request, "servicePrincipals", found)
        elif len(low) == 2 and low[0] == "serviceprincipals" and method == "GET":
            response = JSONResponse(directory.get_service_principal(parts[1]))
        else:
            # Graph's answer to a path no segment of its model matches.
            raise GraphError(
                400,
                "BadRequest",
                f"Resource not found for the segment '{parts[-1] or parts[0]}'.",
            )
    except GraphError as e:
        decision = "refused" if e.status in (401, 403) else "failed"
        audit.note(request, decision=decision, reason=f"{e.code}: {e.message}")
        return _error(request, e)
    audit.note(request, decision="allowed")
    response.headers["request-id"] = str(uuid.uuid4())
    return response


def routes() -> list[BaseRoute]:
    return [Route("/graph/v1.0/{rest:path}", graph, methods=["GET", "POST", "PATCH", "DELETE"])]
