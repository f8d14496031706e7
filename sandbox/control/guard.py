"""Who may call the control API: the owner of the instance, proven by its secret.

Loopback ports are shared by every user of a machine, so every control route but ``health``
needs the secret (header ``X-Sandbox-Secret``) from a file only the owner can read. Services that
add control routes of their own (device-code approval, inbox, faults) wrap them with
``requires_secret`` too.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.runtime import sandbox_of
from sandbox.state import SECRET_MIN_LENGTH

SECRET_HEADER = "X-Sandbox-Secret"

Handler = Callable[[Request], Awaitable[Response]]


def control_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def requires_secret(handler: Handler) -> Handler:
    """Refuse a control call that does not carry this instance's secret."""

    async def guarded(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        expected = sandbox_of(request).secret
        # A configured secret too short to be one of ours opens nothing (start refuses it too):
        # an empty file once matched a request that sent no header at all.
        if len(expected) < SECRET_MIN_LENGTH or not hmac.compare_digest(
            given.encode(), expected.encode()
        ):
            return control_error(
                401,
                "Unauthorized",
                "Control calls need this sandbox's secret in the X-Sandbox-Secret header "
                "(the file control-secret in its state folder, readable only by its owner).",
            )
        return await handler(request)

    return guarded
