"""Scenario switches: failures on purpose, for the troubleshooting lab and the tests.

A fault is a named entry in ``Sandbox.faults`` (in memory; ``reset`` and a restart clear it).
Counted faults (``throttle``, ``unavailable``) are consumed one request at a time with ``take``;
standing faults (``mi_unreachable``, ``mi_slow``, ``clock_skew``, ``role_propagation``) stay
until cleared and are read with ``active``.

Known names and their parameters:
    throttle          {"count": N, "retry_after": seconds}  next N ACS calls answer 429
    unavailable       {"count": N}                          next N ACS calls answer 503
    mi_unreachable    {"hosts": [names] or absent for all}  identity endpoints do not answer
    mi_slow           {"seconds": s}                        identity endpoints answer late
    clock_skew        {"seconds": s}                        the sandbox's clock runs off by s
    role_propagation  {"seconds": s}                        new role assignments wait s to apply
"""

from __future__ import annotations

from typing import Any

from sandbox import clock


def active(faults: dict[str, Any], name: str) -> dict[str, Any] | None:
    return faults.get(name)


def take(faults: dict[str, Any], name: str) -> dict[str, Any] | None:
    """Consume one occurrence of a counted fault; None when it is not (or no longer) set."""
    fault = faults.get(name)
    if not fault:
        return None
    fault["count"] = fault.get("count", 1) - 1
    if fault["count"] <= 0:
        del faults[name]
    return fault


def set_fault(faults: dict[str, Any], name: str, params: dict[str, Any]) -> None:
    faults[name] = dict(params)
    if name == "clock_skew":
        clock.set_skew(params.get("seconds", 0))


def clear(faults: dict[str, Any], name: str | None = None) -> None:
    if name is None:
        faults.clear()
    else:
        faults.pop(name, None)
    if name in (None, "clock_skew"):
        clock.set_skew(0)
