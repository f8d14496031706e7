"""Small helpers for the notebooks: pick the target, point the SDKs at it, show results safely.

They never wrap the SDK calls being taught; those are written out in the notebook cells.
Everything here talks to the sandbox over HTTP(S) or through its command line, never by import.
"""

from helpers.progress import catch_up
from helpers.redact import redact_key, redact_secret, token_claims
from helpers.target import Kit, act_as, mgmt_client_kwargs, setup

__all__ = [
    "Kit",
    "act_as",
    "catch_up",
    "mgmt_client_kwargs",
    "redact_key",
    "redact_secret",
    "setup",
    "token_claims",
]
