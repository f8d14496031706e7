"""HTTP routes (filled in by the service's issue)."""

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    return []
