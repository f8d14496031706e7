"""The one error shape the Communication Services data plane answers with, and the headers it
sends on every answer.

Every refusal is a ``CommunicationErrorResponse`` (``{"error": {"code", "message"[, "target"]}}``)
with the status, code and text the cloud uses (sandbox/FIDELITY.md), because learners read those
and the SDKs choose the exception type from the status (401 → ClientAuthenticationError). ACS's
refusals are terse: a missing role, a wrong key and a stale token all read "Denied by the resource
provider.". The sandbox's own explanation of *why* (``diagnosis``) goes to the request log, never
into the body.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

DENIED = "Denied by the resource provider."
JSON_TYPE = "application/json; charset=utf-8"


class AcsError(Exception):
    """A request the data plane refuses, as ACS words it; ``diagnosis`` is for the request log."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        target: str | None = None,
        diagnosis: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.diagnosis = diagnosis
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            error["target"] = self.target
        return {"error": error}

    def response(self) -> Response:
        return json_response(self.body(), self.status, self.headers)


def denied(diagnosis: str) -> AcsError:
    """ACS's one refusal for a caller it will not serve (bad key or signature, bad or stale token,
    no role): 401 ``Denied`` "Denied by the resource provider.". ``diagnosis`` says why, in the log.
    """
    return AcsError(401, "Denied", DENIED, diagnosis=diagnosis)


def invalid(message: str, target: str | None = None, diagnosis: str | None = None) -> AcsError:
    """A request whose fields break the API's rules (400 ``ValidationError``)."""
    return AcsError(400, "ValidationError", message, target=target, diagnosis=diagnosis)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON as ACS sends it: compact, with ``Content-Type: application/json; charset=utf-8``."""
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(data, status_code=status, headers=headers, media_type=JSON_TYPE)


def ms_cv() -> str:
    """A correlation vector as ACS sends it in ``MS-CV``: 16 random bytes in base64, then ``.0``."""
    return base64.b64encode(os.urandom(16)).decode().rstrip("=") + ".0"


def add_service_headers(request: Request, response: Response, supported_versions: str) -> None:
    """The headers every ACS answer carries (recordings): ``MS-CV``, ``api-supported-versions``,
    ``Strict-Transport-Security``; and ``x-ms-client-request-id`` echoed when the client asks with
    ``x-ms-return-client-request-id: true`` (the SDKs do)."""
    response.headers["MS-CV"] = ms_cv()
    response.headers["Strict-Transport-Security"] = "max-age=2592000"
    response.headers["api-supported-versions"] = supported_versions
    client_id = request.headers.get("x-ms-client-request-id")
    wants = request.headers.get("x-ms-return-client-request-id", "").lower() == "true"
    if client_id and wants:
        response.headers["x-ms-client-request-id"] = client_id
