"""Small helpers for the notebooks: pick the target, point the SDKs at it, show results safely.

They never wrap the SDK calls being taught; those are written out in the notebook cells.
Everything here talks to the sandbox over HTTP(S) or through its command line, never by import.
"""

from helpers import widgets
from helpers.display import events, inbox, show_token
from helpers.doctor import doctor
from helpers.faults import clear_faults, fault
from helpers.flow import flow, watch
from helpers.hosts import on_host
from helpers.progress import catch_up
from helpers.redact import redact_key, redact_secret, redact_tokens, token_claims
from helpers.signin import az_login
from helpers.target import Kit, act_as, acting_as, mgmt_client_kwargs, setup

__all__ = [
    "Kit",
    "act_as",
    "acting_as",
    "az_login",
    "catch_up",
    "clear_faults",
    "doctor",
    "events",
    "fault",
    "flow",
    "inbox",
    "mgmt_client_kwargs",
    "on_host",
    "redact_key",
    "redact_secret",
    "redact_tokens",
    "setup",
    "show_token",
    "token_claims",
    "watch",
    "widgets",
]
