"""Assembles the two listeners from each service's routes.

Azure serves Entra ID, Resource Manager and Communication Services over HTTPS, and the
managed-identity endpoints over plain HTTP on the host itself; the sandbox does the same with two
Starlette apps. Every request passes through the request log on its way out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.config import Settings
from sandbox.entra.tokens import TokenService
from sandbox.store import Store

log = logging.getLogger("sandbox")


@dataclass
class Sandbox:
    """Everything a route needs at run time; reachable as ``request.app.state.sandbox``."""

    settings: Settings
    store: Store
    tokens: TokenService
    https_url: str
    mi_url: str
    secret: str
    started_at: float = field(default_factory=time.time)
    # Scenario switches for lessons and tests (see sandbox/faults.py); not persisted.
    faults: dict[str, Any] = field(default_factory=dict)
    # Tokens the identity endpoints hand out again (see managed_identity/models.py).
    mi_token_cache: dict[Any, Any] = field(default_factory=dict)


def sandbox_of(request: Request) -> Sandbox:
    return request.app.state.sandbox


class RequestLog:
    """Pure ASGI middleware: records each request after its response has started."""

    def __init__(self, app: ASGIApp, listener: str) -> None:
        self.app = app
        self.listener = listener

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.time()
        status = {"code": 500}

        async def send_and_watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            path = scope.get("path", "")
            if not path.startswith("/_sandbox/"):  # the control API does not log itself
                self._record(scope, started, status["code"])

    def _record(self, scope: Scope, started: float, status: int) -> None:
        audit = scope.get("state", {}).get("audit", {})
        entry = {
            "time": started,
            "listener": self.listener,
            "method": scope.get("method"),
            "path": scope.get("path"),
            "status": status,
            "ms": round((time.time() - started) * 1000, 1),
            **audit,
        }
        sandbox: Sandbox = scope["app"].state.sandbox
        sandbox.store.log_append(entry)


def _json_errors(listener: str):
    """Error handlers so that nothing, not even a bug, answers with a traceback."""

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if listener == "mi":
            body = {"error": "invalid_request", "error_description": exc.detail}
        else:
            code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "BadRequest")
            body = {"error": {"code": code, "message": str(exc.detail)}}
        return JSONResponse(body, status_code=exc.status_code)

    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {
                "error": {
                    "code": "InternalServerError",
                    "message": "The sandbox hit a bug; see its log.",
                }
            },
            status_code=500,
        )

    return {HTTPException: http_error, Exception: crash}


def create_apps(sandbox: Sandbox) -> tuple[Starlette, Starlette]:
    """(HTTPS app for Entra/ARM/ACS/control, HTTP app for managed-identity endpoints)."""
    from sandbox.acs import routes as acs_routes
    from sandbox.arm import routes as arm_routes
    from sandbox.control import routes as control_routes
    from sandbox.entra import routes as entra_routes
    from sandbox.graph import routes as graph_routes
    from sandbox.managed_identity import routes as mi_routes

    https_routes = (
        control_routes.routes() + entra_routes.routes() + arm_routes.routes() + acs_routes.routes()
    ) + graph_routes.routes()
    https = Starlette(routes=https_routes, exception_handlers=_json_errors("https"))
    mi = Starlette(routes=mi_routes.routes(), exception_handlers=_json_errors("mi"))
    for app, name in ((https, "https"), (mi, "mi")):
        app.state.sandbox = sandbox
        app.add_middleware(RequestLog, listener=name)
    return https, mi
