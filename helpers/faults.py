"""Switching the sandbox's failures on and off for the troubleshooting lab.

Real outages cannot be ordered on demand, so the sandbox has named faults (throttling, an
unavailable service, an unreachable identity endpoint, a skewed clock, slow role propagation).
These two functions are the notebook side of its control API ``/_sandbox/faults``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from helpers import target
from helpers.confirm import sandbox_only
from helpers.display import note, show
from helpers.sandbox_api import SandboxUnavailable

# What each fault makes happen, in the words the lab uses; parameters fill the braces.
DESCRIPTIONS = {
    "throttle": "the next {count} ACS call(s) answer 429 Too Many Requests "
    "(Retry-After: {retry_after} s)",
    "unavailable": "the next {count} ACS call(s) answer 503 Service Unavailable",
    "mi_unreachable": "the managed-identity endpoint of {hosts} does not answer",
    "mi_slow": "the managed-identity endpoint of {hosts} answers {seconds} s late",
    "clock_skew": "the sandbox's clock runs {seconds} s off",
    "role_propagation": "new role assignments take {seconds} s to apply",
    "unlimited": "rate limits are switched off",
}


def describe(name: str, params: dict[str, Any]) -> str:
    values = {"hosts": "every host", **params}
    if isinstance(values.get("hosts"), list):
        values["hosts"] = ", ".join(values["hosts"]) or "every host"
    try:
        return DESCRIPTIONS[name].format(**values)
    except (KeyError, IndexError):
        return f"fault '{name}' with {params}"


def _control(step: str):  # noqa: ANN202 - a Control or None
    why = "faults are the sandbox's way to break a machine on purpose; nothing was changed"
    return target.current().sandbox if sandbox_only(step, why) else None


def fault(name: str, **params: Any) -> dict[str, Any]:
    """Switch on a sandbox fault, e.g. ``fault("throttle", count=2, retry_after=1)``.

    Returns the parameters the sandbox stored (defaults filled in). An unknown name or
    parameter is refused with the list of known ones.
    """
    control = _control(f"the fault '{name}'")
    if control is None:
        return {}
    try:
        answer = control.call("POST", f"/_sandbox/faults/{quote(name, safe='')}", params)
    except SandboxUnavailable as e:
        raise ValueError(str(e)) from None
    stored = answer.get("params", params)
    show(note(f"fault '{name}' on: {describe(name, stored)}.", ok=None))
    return stored


def clear_faults(name: str | None = None) -> None:
    """Switch off one fault, or all of them: the sandbox behaves normally again."""
    control = _control("clearing faults")
    if control is None:
        return
    path = "/_sandbox/faults" + (f"/{quote(name, safe='')}" if name else "")
    try:
        control.call("DELETE", path)
    except SandboxUnavailable as e:
        raise ValueError(str(e)) from None
    show(note(f"fault '{name}' cleared." if name else "all faults cleared."))
