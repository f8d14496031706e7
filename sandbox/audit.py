"""What the request log says about a request beyond its method and path.

Handlers call ``note()`` as they decide; the logging middleware reads it when the response is
sent. Only descriptions go in: never a secret, a token or an Authorization value.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request


def note(request: Request, **facts: Any) -> None:
    """Record facts such as caller, credential, decision and reason for this request's log."""
    state = request.scope.setdefault("state", {})
    state.setdefault("audit", {}).update({k: v for k, v in facts.items() if v is not None})
