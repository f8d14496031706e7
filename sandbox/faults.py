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
    run_command_time_limit {"seconds": s}                   a VM's Run Command stops after s
                                                            (sandbox/arm/run_command.py)
    unlimited         {}                                    ACS rate limits are not enforced
                                                            (load tests and benchmarks)
    cli_preauthorized {}                                    Entra gives Microsoft's public
                                                            clients (Azure CLI, PowerShell, VS
                                                            Code) Communication Services tokens
                                                            (lifts AADSTS65002; sandbox/entra)

``validate`` checks a name and its parameters before they are set from the control API or CLI.
"""

from __future__ import annotations

from typing import Any

from sandbox import clock

# name -> {parameter: (type, required)}; the types a control call may send.
KNOWN: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "throttle": {"count": (int, False), "retry_after": (int, False)},
    "unavailable": {"count": (int, False)},
    "mi_unreachable": {"hosts": (list, False)},
    "mi_slow": {"seconds": ((int, float), True), "hosts": (list, False)},
    "clock_skew": {"seconds": ((int, float), True)},
    "role_propagation": {"seconds": ((int, float), True)},
    "run_command_time_limit": {"seconds": ((int, float), True)},
    "unlimited": {},
    "cli_preauthorized": {},
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "throttle": {"count": 1, "retry_after": 1},
    "unavailable": {"count": 1},
}


class FaultError(ValueError):
    """A fault name or parameter the sandbox does not know; the message lists what it does."""


def validate(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters to store for ``name`` (defaults filled in), or FaultError."""
    if name not in KNOWN:
        raise FaultError(f"Unknown fault '{name}'; known faults: {', '.join(KNOWN)}.")
    if not isinstance(params, dict):
        raise FaultError("Fault parameters must be a JSON object.")
    spec = KNOWN[name]
    for key, value in params.items():
        if key not in spec:
            allowed = ", ".join(spec) or "none"
            raise FaultError(f"Fault '{name}' has no parameter '{key}' (parameters: {allowed}).")
        kind = spec[key][0]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise FaultError(f"Fault parameter '{key}' has the wrong type: {value!r}.")
        if key == "count" and value < 1:
            raise FaultError("'count' must be at least 1.")
    for key, (_, required) in spec.items():
        if required and key not in params:
            raise FaultError(f"Fault '{name}' needs the parameter '{key}'.")
    return {**DEFAULTS.get(name, {}), **params}


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
