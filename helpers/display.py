"""Showing what the SDKs and the sandbox return, safely and the same way every time.

Notebook outputs are committed, compared by the notebook tests and shared, so everything shown
here is (1) never a secret: a token appears as its claims, never its signature or whole string;
(2) readable as plain text too, for static exports and terminals; (3) stable: volatile values
(times, ports, generated ids) are printed in the forms ``tests/nbval_sanitize.cfg`` recognises.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from helpers import target
from helpers.redact import token_claims, token_header


class Rich:
    """Something to display: HTML for Jupyter, plain text everywhere else (``repr``)."""

    def __init__(self, html_text: str, plain: str) -> None:
        self.html = html_text
        self.plain = plain

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.plain


def show(rich: Rich) -> None:
    """Display in a notebook; print as text when there is no notebook (scripts, terminals)."""
    from IPython.display import display

    display(rich)


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> Rich:
    """A small table, as HTML and as aligned text."""
    rows = [[str(c) for c in row] for row in rows]
    head = "".join(f"<th style='text-align:left'>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{esc(c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    cap = f"<caption style='text-align:left'>{esc(caption)}</caption>" if caption else ""
    html_text = f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = [caption] if caption else []
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return Rich(html_text, "\n".join(lines))


def note(text: str, ok: bool | None = None) -> Rich:
    """One line: a ✓ (ok), a ✗ (not ok) or plain information (None)."""
    mark = {True: "✓ ", False: "✗ ", None: ""}[ok]
    color = {True: "#1a7f37", False: "#cf222e", None: "inherit"}[ok]
    return Rich(f"<p style='color:{color}'>{esc(mark + text)}</p>", mark + text)


def utc(epoch: float) -> str:
    """A moment as UTC text (``2026-01-31 12:00:00 UTC``): the form the sanitizer knows."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def countdown(epoch: float, now: float | None = None) -> str:
    """``expires in N min`` / ``expired N min ago``, measured on this machine's clock."""
    delta = epoch - (time.time() if now is None else now)
    minutes = round(abs(delta) / 60)
    return f"expires in {minutes} min" if delta >= 0 else f"expired {minutes} min ago"


# -- tokens -----------------------------------------------------------------------------------

# The claims a learner should look at, in reading order, with what each one tells them.
CLAIM_MEANINGS: dict[str, str] = {
    "aud": "audience: the API this token is for",
    "iss": "issuer: the Entra ID tenant that signed it",
    "tid": "tenant id",
    "oid": "object id of the caller (the identity role assignments name)",
    "sub": "subject",
    "appid": "application (client) id of the caller",
    "idtyp": "app: an app-only token (user tokens have no idtyp)",
    "ver": "token version (1.0 for Resource Manager and Communication Services)",
    "xms_mirid": "resource id of the managed identity",
    "upn": "user's sign-in name",
    "preferred_username": "user's sign-in name",
    "scp": "scopes granted to the app (delegated)",
    "roles": "app roles",
    "skypeid": "the Communication Services user",
    "acsScope": "what the user may do (chat, voip, ...)",
    "resourceId": "immutable id of the Communication Services resource",
    "resourceLocation": "data location of the resource",
    "iat": "issued at",
    "nbf": "not valid before",
    "exp": "expires",
}
TIME_CLAIMS = ("iat", "nbf", "exp")

# A Communication Services user token (it names an ACS user in ``skypeid``) is not an Entra ID
# token: the claims it shares with one mean something else there.
ACS_USER_MEANINGS: dict[str, str] = {
    "scp": "a number that encodes the scopes (internal; acsScope is the readable form)",
}


def claim_meanings(claims: dict[str, Any]) -> dict[str, str]:
    """What each claim means for this kind of token (Entra ID, or an ACS user token)."""
    if "skypeid" in claims:
        return {**CLAIM_MEANINGS, **ACS_USER_MEANINGS}
    return CLAIM_MEANINGS


def token_text(token: Any) -> str:
    """The JWT inside a string, an azure.core ``AccessToken`` or ``AccessTokenInfo``."""
    value = getattr(token, "token", token)
    if not isinstance(value, str):
        raise TypeError(
            "show_token() needs a token string or the AccessToken that get_token() returned, "
            f"not {type(token).__name__}."
        )
    return value


def token_rows(claims: dict[str, Any], now: float | None = None) -> list[tuple[str, str, str]]:
    """(claim, value, meaning) rows: the known claims in reading order, times as UTC."""
    rows = []
    for name, meaning in claim_meanings(claims).items():
        if name not in claims:
            continue
        value = claims[name]
        if name in TIME_CLAIMS and isinstance(value, (int, float)):
            shown = utc(value)
            if name == "exp":
                shown += f" ({countdown(value, now)})"
        elif isinstance(value, (list, tuple)):
            shown = ", ".join(str(v) for v in value)
        else:
            shown = str(value)
        rows.append((name, shown, meaning))
    return rows


def header_text(token: str) -> str:
    try:
        header = token_header(token)
    except ValueError:
        return "header: unreadable"
    parts = [f"{k}={header[k]}" for k in ("alg", "kid", "typ") if k in header]
    return "header: " + ", ".join(parts)


def token_view(token: Any, now: float | None = None) -> tuple[dict[str, Any], Rich]:
    """The claims of a token and their table, without displaying it (widgets use this)."""
    jwt = token_text(token)
    claims = token_claims(jwt)
    others = sorted(k for k in claims if k not in CLAIM_MEANINGS)
    caption = f"{header_text(jwt)}; signature not shown"
    view = table(("claim", "value", "meaning"), token_rows(claims, now), caption)
    if others:
        extra = "other claims (not shown): " + ", ".join(others)
        view = Rich(view.html + f"<p>{esc(extra)}</p>", view.plain + "\n" + extra)
    return claims, view


def show_token(token: Any) -> dict[str, Any]:
    """Display a token's claims (never its signature) and return them as a dict.

    The claims say who the token is for (``aud``), who holds it (``oid``, ``appid``, and for a
    managed identity ``xms_mirid``) and until when it is valid: exactly what a service checks
    before it looks at role assignments. Assign the result (``claims = show_token(t)``) so the
    notebook does not also print the raw dict.
    """
    claims, view = token_view(token)
    show(view)
    return claims


# -- the sandbox's phones and events ------------------------------------------------------------


def _sandbox_or_note(what: str, why: str):  # noqa: ANN202 - a Control or None
    from helpers.confirm import sandbox_only  # it shows its sentence with this module's note

    return target.current().sandbox if sandbox_only(what, why) else None


def inbox_view(control: Any, phone: str) -> tuple[list[dict[str, Any]], Rich]:
    """A sandbox phone's messages and their table, without displaying it (widgets use this)."""
    messages = control.call("GET", f"/_sandbox/inbox/{quote(phone, safe='')}")["messages"]
    rows = [
        (m.get("from", ""), m.get("message", ""), m.get("segments", ""), m.get("tag") or "")
        for m in messages
    ]
    caption = f"inbox of {phone}: {len(messages)} message{'s' * (len(messages) != 1)}"
    return messages, table(("from", "message", "segments", "tag"), rows, caption)


def inbox(phone: str | None = None) -> list[dict[str, Any]]:
    """Display the SMS a sandbox phone has received (oldest first) and return them.

    The sandbox delivers every accepted message at once, so this is where a learner sees that
    a send worked without a real phone. Default: the learner's phone (``kit.phone``).
    Assign the result (``messages = inbox()``) so the notebook does not also print the list.
    """
    control = _sandbox_or_note(
        "the phone's inbox", "only the sandbox's phones have one; on Azure, look at your phone"
    )
    if control is None:
        return []
    messages, view = inbox_view(control, phone or target.current().phone)
    show(view)
    return messages


def _event_summary(event: dict[str, Any]) -> str:
    data = event.get("data", {})
    if "DeliveryStatus" in data:
        return (
            f"to {data.get('To')}: {data['DeliveryStatus']} ({data.get('DeliveryStatusDetails')})"
        )
    if "Message" in data:
        return f"from {data.get('From')}: {data['Message']!r}"
    return ", ".join(f"{k}={v}" for k, v in sorted(data.items()) if isinstance(v, (str, int)))


def events(event_type: str | None = None) -> list[dict[str, Any]]:
    """Display the Event Grid events the sandbox recorded (delivery reports, incoming SMS).

    In Azure these go to an Event Grid subscription you create; the sandbox keeps them so a
    notebook can show that ``enable_delivery_report=True`` really produces a report.
    """
    control = _sandbox_or_note(
        "the recorded Event Grid events",
        "on Azure only an Event Grid subscription on the ACS resource receives them (notebook 5)",
    )
    if control is None:
        return []
    path = "/_sandbox/events" + (f"?type={quote(event_type, safe='')}" if event_type else "")
    found = control.call("GET", path)["events"]
    rows = [
        (e.get("eventType", "").rsplit(".", 1)[-1], e.get("subject", ""), _event_summary(e))
        for e in found
    ]
    caption = f"{len(found)} event{'s' * (len(found) != 1)}" + (
        f" of type {event_type}" if event_type else ""
    )
    show(table(("event", "subject", "what happened"), rows, caption))
    return found
