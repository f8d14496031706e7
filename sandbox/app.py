"""Assembles the two listeners from each service's routes.

Azure serves Entra ID, Resource Manager and Communication Services over HTTPS, and the
managed-identity endpoints over plain HTTP on the host itself; the sandbox does the same with two
Starlette apps. Every request passes through the request log on its way out, and through a body
limit on its way in (no request body is ever held whole beyond :data:`BODY_LIMIT`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.acs import routes as acs_routes
from sandbox.arm import routes as arm_routes
from sandbox.control import routes as control_routes
from sandbox.entra import routes as entra_routes
from sandbox.functions import routes as function_routes
from sandbox.graph import routes as graph_routes
from sandbox.managed_identity import routes as mi_routes
from sandbox.runtime import Sandbox

log = logging.getLogger("sandbox")


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
        if self.listener == "mi":
            entry["path"] = _without_mi_secret(entry["path"] or "", sandbox.mi_secret)
        sandbox.store.log_append(scrub(entry, sandbox))


def _without_mi_secret(path: str, mi_secret: str) -> str:
    """The identity endpoint's path as the learner reads it (``/hosts/vm-tutorial/...``): the
    installation's secret segment never lands in the log."""
    prefix = f"/{mi_secret}/"
    return path[len(prefix) - 1 :] if mi_secret and path.startswith(prefix) else path


# Long runs of the characters generated secrets are made of (base64 keys, client secrets, JWTs).
# Not "/": a path's segments are judged one by one (a whole resource id is no secret).
_SECRET_LIKE = re.compile(r"[A-Za-z0-9+_=.~-]{24,}")
_ID_LIKE = re.compile(r"[0-9a-fA-F_.-]+")  # GUIDs and ACS ids' hex parts: identifiers, not secrets


def _mask(value: str) -> str:
    return "****" + value[-4:] if len(value) > 8 else "****"


def _looks_secret(run: str) -> bool:
    """Generated secrets mix digits with upper- and lower-case letters; names, GUIDs and the
    words of resource ids do not."""
    if _ID_LIKE.fullmatch(run):
        return False
    return (
        any(c.isdigit() for c in run)
        and any(c.islower() for c in run)
        and any(c.isupper() for c in run)
    )


def scrub(entry: dict[str, Any], sandbox: Sandbox) -> dict[str, Any]:
    """The request log never holds a secret, even one a learner put in the wrong place (a client
    secret typed as a client id, a password in the user-name box, a key pasted into a path):
    this installation's own secrets are masked wherever they appear, and so are long
    secret-looking runs in paths and callers. Values are masked as ``****last4``."""
    known = sandbox.known_secrets()

    def clean(text: str, aggressive: bool) -> str:
        for secret in known:
            if len(secret) >= 8 and secret in text:
                text = text.replace(secret, _mask(secret))
        if aggressive:
            text = _SECRET_LIKE.sub(lambda m: _mask(m[0]) if _looks_secret(m[0]) else m[0], text)
        return text

    out = {}
    for key, value in entry.items():
        if isinstance(value, str):
            value = clean(value, aggressive=key in ("path", "caller"))
        out[key] = value
    return out


BODY_LIMIT = 1024 * 1024  # bytes; the SDKs' largest request (100 SMS recipients) is ~20 KB


BODY_IDLE_TIMEOUT = 10.0  # seconds a request body may pause between chunks


class _BodyRefused(Exception):
    """Raised from ``receive`` when a body passes the limit or stalls; BodyLimit answers."""

    def __init__(self, status: int) -> None:
        self.status = status


# status: (Azure-style code, message); the OAuth-style endpoints get the same message
_REFUSALS = {
    413: (
        "RequestBodyTooLarge",
        "The request body is too large and exceeds the maximum permissible limit "
        f"({BODY_LIMIT} bytes).",
    ),
    408: ("RequestTimeout", f"The request body stalled for over {BODY_IDLE_TIMEOUT:.0f} s."),
    400: ("BadRequest", "Invalid Content-Length header."),
}


def _refusal_body(listener: str, path: str, status: int) -> dict[str, Any]:
    """The refusal in the shape of the service the path belongs to, so each SDK reads it."""
    code, message = _REFUSALS[status]
    parts = path.strip("/").split("/")
    oauth = len(parts) >= 2 and parts[1] == "oauth2" or parts[0] == "devicelogin"
    if listener == "mi" or oauth:
        return {"error": "invalid_request", "error_description": message}
    return {"error": {"code": code, "message": message}}


class BodyLimit:
    """Pure ASGI middleware: no body beyond BODY_LIMIT is ever held, and none may stall. A
    declared Content-Length over the limit is refused (413) before a byte is read; a chunked
    body is counted as it streams and refused the moment it passes the limit; a body that
    pauses longer than BODY_IDLE_TIMEOUT is refused (408). The connection then closes, so the
    rest of the upload is never read."""

    def __init__(self, app: ASGIApp, listener: str) -> None:
        self.app = app
        self.listener = listener

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > BODY_LIMIT):
            await self._refuse(scope, send, 413 if declared.isdigit() else 400)
            return
        seen = 0
        body_done = False
        started = False

        async def counted() -> Message:
            nonlocal seen, body_done
            if body_done:  # later receives wait for a disconnect: no deadline on those
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), BODY_IDLE_TIMEOUT)
            except asyncio.TimeoutError:
                raise _BodyRefused(408) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if seen > BODY_LIMIT:
                    raise _BodyRefused(413)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _BodyRefused as refused:
            if not started:
                await self._refuse(scope, send, refused.status)

    async def _refuse(self, scope: Scope, send: Send, status: int) -> None:
        body = _refusal_body(self.listener, scope.get("path", ""), status)
        audit = scope.setdefault("state", {}).setdefault("audit", {})
        audit.update(decision="refused", reason=_REFUSALS[status][1])
        response = JSONResponse(body, status_code=status, headers={"Connection": "close"})
        await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _json_errors(listener: str):
    """Error handlers so that nothing, not even a bug, answers with a traceback."""

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if listener == "mi":
            # Every refusal of the identity listener is a 400 in its own shape: the SDKs retry
            # 404 and 405 for up to 75 s, so a mistyped IDENTITY_ENDPOINT would seem to hang.
            from sandbox.managed_identity.routes import unknown_path_error

            return unknown_path_error(request, exc.status_code)
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

    async def too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        # Python's JSON parser recurses once per nesting level: a body of 100,000 "[" is a
        # RecursionError wherever a handler parses it. The cloud answers such bodies with 400.
        if listener == "mi" or request.url.path.strip("/").split("/")[1:2] == ["oauth2"]:
            body = {
                "error": "invalid_request",
                "error_description": "The request body is nested too deeply.",
            }
        else:
            body = {
                "error": {
                    "code": "InvalidRequestBody",
                    "message": "The request body is nested too deeply.",
                }
            }
        return JSONResponse(body, status_code=400)

    return {HTTPException: http_error, RecursionError: too_deep, Exception: crash}


def create_apps(sandbox: Sandbox) -> tuple[Starlette, Starlette]:
    """(HTTPS app for Entra/ARM/ACS/control, HTTP app for managed-identity endpoints)."""
    https_routes = (
        (
            control_routes.routes()
            + entra_routes.routes()
            + arm_routes.routes()
            + acs_routes.routes()
        )
        + graph_routes.routes()
        + function_routes.routes()
    )
    https = Starlette(routes=https_routes, exception_handlers=_json_errors("https"))
    mi = Starlette(routes=mi_routes.routes(), exception_handlers=_json_errors("mi"))
    mi.router.redirect_slashes = False  # a 307 to another path is no answer an SDK can use
    for app, name in ((https, "https"), (mi, "mi")):
        app.state.sandbox = sandbox
        app.add_middleware(BodyLimit, listener=name)
        app.add_middleware(RequestLog, listener=name)
    return https, mi
