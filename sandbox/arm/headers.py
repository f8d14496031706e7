"""The response headers Resource Manager adds to every answer, errors included.

Azure sends ``x-ms-request-id``, ``x-ms-correlation-request-id`` (the caller's own when it sent
one), ``x-ms-routing-request-id`` (``REGION:yyyymmddThhmmssZ:<correlation id>``, as in
Azure/azure-powershell#3079 and a 2023 ``az --debug`` capture) and the remaining request count of
the throttling bucket the call drew from: ``x-ms-ratelimit-remaining-subscription-reads`` for
GET, ``-writes`` for PUT/PATCH/POST, ``-deletes`` for DELETE.

Since 2024 Resource Manager throttles with token buckets per subscription, principal and
operation kind: reads 250 tokens refilled at 25 a second, writes and deletes 200 at 10 a second
(MicrosoftDocs/azure-docs articles/azure-resource-manager/management/request-limits-and-
throttling.md). The sandbox keeps those buckets in memory to report the count; it never throttles
(our choice: a lab must not stall on a limit it cannot reach on Azure either).
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone

from sandbox import world

# kind -> (bucket size, refill per second)
BUCKETS = {"reads": (250, 25.0), "writes": (200, 10.0), "deletes": (200, 10.0)}


class RateBuckets:
    """Token buckets keyed by (subscription, principal, kind); ``take`` spends one token."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[tuple[str, str, str], tuple[float, float]] = {}

    def take(self, subscription: str, principal: str, kind: str, now: float | None = None) -> int:
        size, refill = BUCKETS[kind]
        now = time.monotonic() if now is None else now
        key = (subscription.lower(), principal, kind)
        with self._lock:
            tokens, since = self._state.get(key, (float(size), now))
            tokens = min(float(size), tokens + (now - since) * refill)
            tokens = max(0.0, tokens - 1)
            self._state[key] = (tokens, now)
        return int(tokens)


def kind_of(method: str) -> str:
    if method in ("GET", "HEAD"):
        return "reads"
    return "deletes" if method == "DELETE" else "writes"


def arm_headers(
    buckets: RateBuckets,
    method: str,
    client_correlation: str | None,
    subscription: str | None,
    principal: str | None,
) -> dict[str, str]:
    """The headers for one answer. Without a subscription or a known caller (an anonymous or
    tenant-level call) there is no subscription bucket, so no rate-limit header."""
    correlation = client_correlation or str(uuid.uuid4())
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = {
        "x-ms-request-id": str(uuid.uuid4()),
        "x-ms-correlation-request-id": correlation,
        "x-ms-routing-request-id": f"{world.LOCATION.upper()}:{stamp}:{correlation}",
        "Cache-Control": "no-cache",
        "Pragma": "no-cache",
    }
    if subscription and principal:
        kind = kind_of(method)
        out[f"x-ms-ratelimit-remaining-subscription-{kind}"] = str(
            buckets.take(subscription, principal, kind)
        )
    return out
