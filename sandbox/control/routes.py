"""HTTP routes of the control API, under ``/_sandbox/``.

Every route but ``health`` is guarded by the instance's secret (see guard.py).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import faults, personas, world
from sandbox.control.guard import control_error, requires_secret
from sandbox.runtime import sandbox_of
from sandbox.server import reset_world, status_document


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@requires_secret
async def info(request: Request) -> Response:
    sb = sandbox_of(request)
    return JSONResponse(status_document(sb))


@requires_secret
async def reset(request: Request) -> Response:
    sb = sandbox_of(request)
    empty = request.query_params.get("empty", "").lower() in ("1", "true")
    reset_world(sb.settings, sb.store, empty=empty)
    faults.clear(sb.faults)
    sb.mi_token_cache.clear()
    return JSONResponse({"status": "reset"})


@requires_secret
async def request_log(request: Request) -> Response:
    sb = sandbox_of(request)
    try:
        after = int(request.query_params.get("after", "0"))
        limit = min(int(request.query_params.get("limit", "500")), 5000)
    except ValueError:
        return control_error(400, "BadRequest", "'after' and 'limit' must be integers.")
    entries = sb.store.log_since(after, limit)
    return JSONResponse({"entries": entries, "last_id": sb.store.log_last_id()})


@requires_secret
async def persona(request: Request) -> Response:
    sb = sandbox_of(request)
    name = request.path_params["name"]
    status = status_document(sb)
    try:
        env = personas.persona_env(name, status, world.installation_secrets(sb.store))
    except KeyError:
        return control_error(
            404,
            "NotFound",
            f"Unknown persona '{name}'; choose one of {', '.join(personas.PERSONAS)}.",
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
