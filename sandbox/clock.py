"""The sandbox's sense of time.

One place so that the clock-skew fault moves every check at once (token expiry, HMAC date window,
device-code expiry) exactly as a wrong clock on a real machine would.
"""

from __future__ import annotations

import time

_offset_seconds = 0.0


def now() -> float:
    return time.time() + _offset_seconds


def set_skew(seconds: float) -> None:
    global _offset_seconds
    _offset_seconds = float(seconds)


def skew() -> float:
    return _offset_seconds
