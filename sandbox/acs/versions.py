"""Which ``api-version`` values each API accepts and announces, and what each version added.

``api-supported-versions`` is the header ACS sends on every answer; the lists are the ones in the
newest Azure SDK recordings (identity 2023, SMS Dec 2023; sandbox/FIDELITY.md). The sandbox
accepts those versions, except the retired 2020-07-20-preview2 whose paths and bodies differ (the
Identity API it describes is not served here), plus the stable versions the REST specs published
after the recordings. Features are gated by version exactly as the specs introduced them, so an old
SDK sees the old API.
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox.acs.errors import AcsError

IDENTITY_ANNOUNCED = (
    "2020-07-20-preview2",
    "2021-02-22-preview1",
    "2021-03-07",
    "2021-10-31-preview",
    "2021-11-01",
    "2022-06-01",
    "2022-10-01",
    "2023-10-01",
)
SMS_ANNOUNCED = (
    "2020-07-20-preview1",
    "2020-08-20-preview",
    "2021-03-07",
    "2023-06-30-privatepreview",
)

IDENTITY_VERSIONS = (
    *(v for v in IDENTITY_ANNOUNCED if v != "2020-07-20-preview2"),
    "2023-08-01",
    "2025-06-30",
)
SMS_VERSIONS = (*SMS_ANNOUNCED, "2024-01-02", "2024-02-05", "2025-09-17", "2026-01-23")

TEAMS_EXCHANGE_SINCE = "2022-06-01"
EXPIRES_IN_MINUTES_SINCE = "2022-10-01"
JOIN_SCOPES_SINCE = "2023-10-01"


def announced(accepted: tuple[str, ...]) -> str:
    """The ``api-supported-versions`` header value for an API, as ACS writes it."""
    return ", ".join(SMS_ANNOUNCED if accepted is SMS_VERSIONS else IDENTITY_ANNOUNCED)


def check(version: str | None, accepted: tuple[str, ...], url: Callable[[], str]) -> str:
    """The api-version to serve, or the 400 the service answers for a missing or unknown one."""
    if not version:
        raise AcsError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if version not in accepted:
        raise AcsError(
            400,
            "UnsupportedApiVersion",
            f"The HTTP resource that matches the request URI '{url()}' does not support the API "
            f"version '{version}'.",
        )
    return version


def at_least(version: str, since: str) -> bool:
    """Versions are ISO dates, so they order as strings."""
    return version[:10] >= since
