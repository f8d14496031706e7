"""The one error shape the Communication Services data plane answers with.

Every refusal is a ``CommunicationErrorResponse`` (``{"error": {"code", "message"}}``) with the
status the cloud uses, because the SDKs turn exactly that into ``e.error.code`` and choose the
exception type (401 → ClientAuthenticationError, 404 → ResourceNotFoundError) from the status.
"""

from __future__ import annotations

from starlette.responses import JSONResponse


class AcsError(Exception):
    """A request the data plane refuses; ``message`` is written for a learner to act on."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": self.code, "message": self.message}},
            status_code=self.status,
            headers=self.headers,
        )


def invalid(message: str) -> AcsError:
    """A request whose fields break the API's rules (400 ``ValidationError``)."""
    return AcsError(400, "ValidationError", message)
