"""Which ``api-version`` values each API accepts, and what each version added.

Lists follow the stable versions in the public REST specs (acs-protocol.md §0). Features are gated
by version exactly as the specs introduced them, so an old SDK sees the old API.
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox.acs.errors import AcsError

IDENTITY_VERSIONS = (
    "2021-03-07",
    "2022-06-01",
    "2022-10-01",
    "2023-08-01",
    "2023-10-01",
    "2025-06-30",
)
SMS_VERSIONS = ("2021-03-07", "2022-07-07", "2024-01-02", "2024-02-05", "2025-09-17", "2026-01-23")

TEAMS_EXCHANGE_SINCE = "2022-06-01"
EXPIRES_IN_MINUTES_SINCE = "2022-10-01"
JOIN_SCOPES_SINCE = "2023-10-01"


def check(version: str | None, accepted: tuple[str, ...], url: Callable[[], str]) -> str:
    """The api-version to serve, or the 400 the service answers for a missing or unknown one."""
    if not version:
        raise AcsError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests. "
            f"Supported versions: {', '.join(accepted)}.",
        )
    if version not in accepted:
        raise AcsError(
            400,
            "UnsupportedApiVersion",
            f"The HTTP resource that matches the request URI '{url()}' does not support the API "
            f"version '{version}'. Supported versions: {', '.join(accepted)}.",
        )
    return version


def at_least(version: str, since: str) -> bool:
    """Versions are ISO dates, so they order as strings."""
    return version[:10] >= since
