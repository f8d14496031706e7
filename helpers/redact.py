"""Showing credentials without leaking them.

Notebook outputs are committed and shared, so a token is shown as its claims (never its
signature, never the whole string), a key as ``****`` plus its last four characters, and a
connection string with its ``accesskey`` masked.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

_CONNECTION_KEY = re.compile(r"(accesskey=)([^;]+)", re.IGNORECASE)
# Three base64url parts, the first a JSON header ("eyJ" is '{"' encoded): a JWT.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def redact_key(key: str | None) -> str:
    """``****last4``: enough to tell two keys apart, useless to an attacker."""
    if not key:
        return "(none)"
    return "****" + key[-4:]


def redact_secret(text: str) -> str:
    """Mask the access key inside a connection string (or any text carrying one)."""
    return _CONNECTION_KEY.sub(lambda m: m.group(1) + redact_key(m.group(2)), text)


# What a redacted token still shows: whom it is for, who holds it, and (ACS) which user.
_SHOWN_CLAIMS = ("aud", "idtyp", "oid", "xms_mirid", "skypeid", "acsScope")


def redact_tokens(text: str) -> str:
    """Replace every JWT in ``text`` with a few of its claims: output from a host may print a
    token, and notebook outputs are shared."""

    def short(m: re.Match[str]) -> str:
        try:
            claims = token_claims(m.group(0))
        except ValueError:
            return "<JWT redacted>"
        shown = ", ".join(f"{k}={claims[k]}" for k in _SHOWN_CLAIMS if k in claims)
        return f"<JWT redacted: {shown}>"

    return _JWT.sub(short, text)


def _b64url_json(part: str) -> dict[str, Any]:
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded))


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, read without verifying it: what a learner may safely look at.

    Raises ValueError with a plain explanation when the string is not a JWT.
    """
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise ValueError("This is not a JSON Web Token (it should have three dot-separated parts).")
    try:
        return _b64url_json(parts[1])
    except ValueError:
        raise ValueError("The middle part of this token is not base64url-encoded JSON.") from None


def token_header(token: str) -> dict[str, Any]:
    return _b64url_json(token.split(".")[0])
