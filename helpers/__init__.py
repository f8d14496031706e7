"""Small helpers for the notebooks: pick the target, point the SDKs at it, show results safely.

They never wrap the SDK calls being taught; those are written out in the notebook cells.
Everything here talks to the sandbox over HTTP(S) or through its command line, never by import.
"""

from helpers import leftovers
from helpers.confirm import confirm, sandbox_only
from helpers.display import events, inbox, show_token
from helpers.doctor import doctor
from helpers.faults import clear_faults, fault
from helpers.flow import flow, watch
from helpers.function_app import call_function, show_function_source
from helpers.hosts import on_host
from helpers.progress import catch_up
from helpers.redact import redact_key, redact_secret, redact_tokens, token_claims
from helpers.signin import az_login
from helpers.target import (
    Kit,
    KitConfigError,
    RunsOnHost,
    act_as,
    acting_as,
    mgmt_client_kwargs,
    setup,
)

__all__ = [
    "Kit",
    "KitConfigError",
    "RunsOnHost",
    "act_as",
    "acting_as",
    "az_login",
    "call_function",
    "catch_up",
    "clear_faults",
    "confirm",
    "doctor",
    "events",
    "fault",
    "flow",
    "inbox",
    "leftovers",
    "mgmt_client_kwargs",
    "on_host",
    "redact_key",
    "redact_secret",
    "redact_tokens",
    "sandbox_only",
    "setup",
    "show_function_source",
    "show_token",
    "token_claims",
    "watch",
    "widgets",
]


def __getattr__(name: str) -> object:
    """``helpers.widgets`` is imported on first use: ipywidgets takes a fifth of a second to
    import, which only the notebooks that show a widget need to spend."""
    if name == "widgets":
        import importlib

        return importlib.import_module("helpers.widgets")
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "widgets"})  # so that completion offers helpers.widgets too
