"""Rate limits of the data plane, at the published values (acs-protocol.md §2.3 and §5).

Sliding windows kept in memory: a restart forgets them, as a real front door would not matter
here. Over the limit the service answers 429 with ``Retry-After`` (seconds until enough of the
window has passed for the request to fit).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from sandbox.acs.errors import AcsError

# Identity API: per resource, 30 s windows (service-limits.md).
IDENTITY_WINDOW = 30.0
IDENTITY_LIMITS = {
    "Identity.Create": 1000,
    "Identity.Delete": 500,
    "Identity.IssueToken": 1000,
    "Identity.RevokeTokens": 500,
    "Identity.ExchangeTeamsToken": 500,
}

# SMS: message units (one message to one recipient) per 60 s.
SMS_WINDOW = 60.0
SMS_TOLL_FREE_PER_NUMBER = 200
SMS_SHORT_CODE_PER_NUMBER = 6000
SMS_ALPHANUMERIC_PER_RESOURCE = 600
TOLL_FREE_AREA_CODES = {"800", "833", "844", "855", "866", "877", "888"}


def sms_limit(sender: str) -> tuple[str, int]:
    """(window key, units per window) for a sender, by its number type."""
    if sender.startswith("+1") and sender[2:5] in TOLL_FREE_AREA_CODES:
        return f"sms:{sender}", SMS_TOLL_FREE_PER_NUMBER
    if sender.isdigit() and 5 <= len(sender) <= 6:
        return f"sms:{sender}", SMS_SHORT_CODE_PER_NUMBER
    if not sender.startswith("+"):
        return "sms:alphanumeric", SMS_ALPHANUMERIC_PER_RESOURCE
    # 10DLC numbers are capped per day by carriers; the sandbox applies the toll-free rate.
    return f"sms:{sender}", SMS_TOLL_FREE_PER_NUMBER


class SlidingWindows:
    """Counts of recent units per key; ``take`` admits a request or says how long to wait."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()

    def take(self, key: str, limit: int, window: float, units: int = 1) -> float:
        """Record ``units`` and return 0, or return the seconds to wait (recording nothing)."""
        now = self._now()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - window:
                hits.popleft()
            if units > limit:
                return window
            if len(hits) + units > limit:
                # The request fits once the oldest (len + units - limit) units have aged out.
                oldest_needed = hits[len(hits) + units - limit - 1]
                return max(oldest_needed + window - now, 0.001)
            hits.extend([now] * units)
            return 0.0


def too_many(wait: float, what: str) -> AcsError:
    seconds = max(1, math.ceil(wait))
    return AcsError(
        429,
        "TooManyRequests",
        f"Rate limit exceeded: {what}. Retry after {seconds} seconds.",
        headers={"Retry-After": str(seconds)},
    )
