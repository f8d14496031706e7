"""HTTP routes of the control API, under ``/_sandbox/``.

Loopback ports are shared by every user of a machine, so every route but ``health`` needs the
instance's secret (header ``X-Sandbox-Secret``), read from a file only the owner can read.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import personas, world
from sandbox.app import sandbox_of
from sandbox.server import status_document

SECRET_HEADER = "X-Sandbox-Secret"

Handler = Callable[[Request], Awaitable[Response]]


def control_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def requires_secret(handler: Handler) -> Handler:
    """Refuse a control call that does not carry this instance's secret."""

    async def guarded(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), sandbox_of(request).secret.encode()):
            return control_error(
                401,
                "Unauthorized",
                "Control calls need this sandbox's secret in the X-Sandbox-Secret header "
                "(the file control-secret in its state folder, readable only by its owner).",
            )
        return await handler(request)

    return guarded


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@requires_secret
async def info(request: Request) -> Response:
    sb = sandbox_of(request)
    return JSONResponse(status_document(sb))


@requires_secret
async def reset(request: Request) -> Response:
    sb = sandbox_of(request)
    world.reset(sb.store)
    sb.faults.clear()
    return JSONResponse({"status": "reset"})


@requires_secret
async def request_log(request: Request) -> Response:
    sb = sandbox_of(request)
    try:
        after = int(request.query_params.get("after", "0"))
        limit = min(int(request.query_params.get("limit", "500")), 5000)
    except ValueError:
        return control_error(400, "BadRequest", "'after' and 'limit' must be integers.")
    return JSONResponse({"entries": sb.store.log_since(after, limit), "last_id": sb.store.log_last_id()})


@requires_secret
async def persona(request: Request) -> Response:
    sb = sandbox_of(request)
    name = request.path_params["name"]
    status = status_document(sb)
    try:
        env = personas.persona_env(name, status, world.installation_secrets(sb.store))
    except KeyError:
        return control_error(
            404, "NotFound", f"Unknown persona '{name}'; choose one of {', '.join(personas.PERSONAS)}."
        )
    return JSONResponse(env)


def routes() -> list[Route]:
    return [
        Route("/_sandbox/health", health),
        Route("/_sandbox/info", info),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/log", request_log),
        Route("/_sandbox/personas/{name}", persona),
    ]
