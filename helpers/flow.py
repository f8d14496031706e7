"""Drawing what a cell caused: a sequence diagram of the requests the sandbox logged.

A learner sees one line of Python; underneath, the SDK may have asked an identity endpoint for a
token, Entra ID for metadata, and only then called ACS. The picture shows each exchange as an
arrow from your code to the service that answered, with what was asked, with which credential,
and what was decided and why, so "it worked" and "403" both have a visible cause.

``flow_svg`` is a pure function of log entries (see ``sandbox/app.py`` RequestLog and
``sandbox/audit.py`` for their shape) and draws the same picture for the same exchanges: no
times, ports or generated ids appear in it, so the notebook tests can compare it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from xml.sax.saxutils import escape

from helpers import target
from helpers.confirm import sandbox_only

MAX_STEPS = 40  # more than this is no longer a picture anyone reads

# Lane keys in left-to-right order; Function apps ("site:<name>") and identity endpoints
# ("mi:<host>") sit after the browser.
_FIXED_ORDER = ("code", "browser", "site", "mi", "entra", "arm", "acs", "other")
_SITE_PATH = re.compile(r"^/sites/(?P<name>[^/]+)/api/(?P<route>.*)$")
_LANE_NAMES = {
    "browser": "you (browser)",
    "entra": "Entra ID",
    "arm": "Resource Manager",
    "acs": "Communication Services",
    "other": "sandbox",
}
CREDENTIAL_NAMES = {
    "client-secret": "client secret",
    "client-assertion": "federated token",
    "device-code": "device code",
    "refresh-token": "refresh token",
    "managed-identity": "managed identity",
    "bearer": "Entra token",
    "hmac": "access key",
    "password": "password",
}
ACS_OPERATIONS = {
    "Identity.Create": "create user",
    "Identity.IssueToken": "issue user token",
    "Identity.RevokeTokens": "revoke user tokens",
    "Identity.Delete": "delete user",
    "Identity.ExchangeTeamsToken": "exchange Teams token",
    "Sms.Send": "send SMS",
}
_ALLOWED = {"issued", "allowed", "approved"}
_REFUSED = {"denied", "refused", "declined", "failed"}

_GUID = re.compile(r"\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")
_RESOURCE_ID = re.compile(r"/subscriptions/[^\s'\"]+")
_LOCAL_URL = re.compile(r"https?://(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?")
_DURATION = re.compile(r"\b\d+(?:\.\d+)? ?(ms|s|sec|seconds?|min|minutes?)\b")


@dataclass(frozen=True)
class Step:
    """One arrow pair: a request from ``source`` to ``target`` and its answer."""

    source: str
    target: str
    request: str
    response: str
    tone: str  # "ok", "refused", "waiting" or "neutral"
    repeat: int = 1


def tidy(text: str, limit: int = 90) -> str:
    """Shorten log text for a picture: resource ids to their name; no GUIDs, ports or
    durations ("retry in about 12 seconds" depends on timing, so it becomes "n seconds")."""
    text = _RESOURCE_ID.sub(lambda m: m.group(0).rstrip(".,;:)").rsplit("/", 1)[-1], text)
    text = _GUID.sub("…", text)
    text = _LOCAL_URL.sub("sandbox", text)
    text = _DURATION.sub(lambda m: f"n {m.group(1)}", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _audience(entry: dict[str, Any]) -> str | None:
    aud = entry.get("audience")
    if not isinstance(aud, str) or not aud:
        return None
    return re.sub(r"^https?://", "", aud).rstrip("/")


def _site_call(entry: dict[str, Any]) -> str | None:
    """The Function app an entry called (``/sites/{name}/api/...``), if it is such a call."""
    m = _SITE_PATH.match(str(entry.get("path") or ""))
    return m.group("name") if m and entry.get("listener") != "mi" else None


def _nested(entries: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The entries in drawing order, and which of them a Function app made (index -> site).

    A call to a Function app is logged when it ends, after the requests the app made while
    serving it (its token, its ACS calls); those ran inside the call's time window. They are
    drawn from the app's lane, after the arrow into the app, not from "your code"."""
    order = list(entries)
    made_by: dict[int, str] = {}
    for call in [e for e in entries if _site_call(e) and "time" in e]:
        start, end = call["time"], call["time"] + float(call.get("ms") or 0) / 1000
        inside = [e for e in order if e is not call and "time" in e and start <= e["time"] <= end]
        if not inside:
            continue
        order.remove(call)
        order.insert(min(order.index(e) for e in inside), call)
        for e in inside:
            made_by.setdefault(id(e), _site_call(call) or "")
    return order, made_by


def _lanes_of(entry: dict[str, Any]) -> tuple[str, str]:
    path = str(entry.get("path") or "")
    if entry.get("listener") == "mi":
        host = entry.get("host")
        if not host and path.startswith("/hosts/"):
            host = path.split("/")[2]
        return "code", f"mi:{host or 'unknown host'}"
    site = _site_call(entry)
    if site:
        return "code", f"site:{site}"
    if path.startswith("/devicelogin"):
        return "browser", "entra"
    if path == "/subscriptions" or path.startswith(("/subscriptions/", "/providers/")):
        return "code", "arm"
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[1] in ("oauth2", "v2.0", "discovery", ".well-known"):
        return "code", "entra"
    if parts[0] in ("identities", "sms", "teamsUser"):
        return "code", "acs"
    return "code", "other"


def _request_label(entry: dict[str, Any], dest: str) -> str:
    path = str(entry.get("path") or "")
    credential = CREDENTIAL_NAMES.get(entry.get("credential", ""), entry.get("credential"))
    aud = _audience(entry)
    if dest.startswith("mi:"):
        return f"token for {aud} (managed identity)" if aud else "token request (managed identity)"
    if dest.startswith("site:"):
        route = _SITE_PATH.match(path)
        return f"{entry.get('method', '')} /api/{route.group('route') if route else ''}".strip()
    if dest == "entra":
        if path.startswith("/devicelogin"):
            return "sign in and decide" if entry.get("method") == "POST" else "open sign-in page"
        if path.endswith("/devicecode"):
            return "start device-code sign-in"
        if path.endswith("/token"):
            what = f"token for {aud}" if aud else "token request"
            return f"{what} ({credential})" if credential else what
        if ".well-known" in path:
            return "read tenant metadata (OpenID)"
        if "/discovery/" in path:
            return "read signing keys (JWKS)"
    if dest == "arm":
        op = entry.get("operation")
        if isinstance(op, str) and op:
            return "/".join(op.split("/")[-2:])
        return f"{entry.get('method', '')} {path.rsplit('/', 1)[-1]}".strip()
    if dest == "acs":
        op = entry.get("operation")
        what = ACS_OPERATIONS.get(op, op) if op else f"{entry.get('method', '')} {path}"
        return f"{what} ({credential})" if credential else str(what)
    return tidy(f"{entry.get('method', '')} {path}", 60)


def _response(entry: dict[str, Any]) -> tuple[str, str]:
    status = entry.get("status", "?")
    decision = entry.get("decision")
    reason = entry.get("reason")
    caller = entry.get("caller")
    if isinstance(caller, str) and _GUID.fullmatch(caller):
        caller = None  # an id means nothing in a picture; the reason usually names the role
    if entry.get("fault"):
        return f"{status} · sandbox fault '{entry['fault']}'", "waiting"
    if decision:
        text = str(decision)
        if caller and not reason and decision in _ALLOWED:
            text += f" to {caller}" if decision == "issued" else f" for {caller}"
        if reason:
            text += f": {reason}"
        if entry.get("outcome"):
            text += f", then: {entry['outcome']}"
    else:
        text = "ok" if isinstance(status, int) and status < 400 else "error"
    if decision == "pending" or status in (429, 503):
        tone = "waiting"
    elif decision in _REFUSED or (isinstance(status, int) and status >= 400):
        tone = "refused"
    elif decision in _ALLOWED or (isinstance(status, int) and status < 400):
        tone = "ok"
    else:
        tone = "neutral"
    return tidy(f"{status} · {text}"), tone


def steps_of(entries: Sequence[dict[str, Any]]) -> list[Step]:
    """The arrows to draw, in log order.

    Token polls still waiting for a person's sign-in are left out: how many happen depends on
    how fast someone signs in, and the device-code request's own answer already says "waiting".
    Identical consecutive exchanges (an SDK's retries) become one arrow marked ×N.
    """
    found: list[Step] = []
    ordered, made_by = _nested(entries)
    for entry in ordered:
        path = str(entry.get("path") or "")
        if entry.get("decision") == "pending" and path.endswith("/token"):
            continue
        source, dest = _lanes_of(entry)
        if id(entry) in made_by:
            source = f"site:{made_by[id(entry)]}"
        response, tone = _response(entry)
        step = Step(source, dest, _request_label(entry, dest), response, tone)
        if found and replace(found[-1], repeat=1) == step:
            found[-1] = replace(found[-1], repeat=found[-1].repeat + 1)
        else:
            found.append(step)
    return found


def _lane_order(steps: Sequence[Step]) -> list[str]:
    used: list[str] = ["code"]
    for s in steps:
        for lane in (s.source, s.target):
            if lane not in used:
                used.append(lane)

    def rank(lane: str) -> tuple[int, int]:
        kind = lane.split(":", 1)[0]
        return _FIXED_ORDER.index(kind), used.index(lane)

    return sorted(used, key=rank)


def _lane_label(lane: str, actor: str | None) -> tuple[str, str]:
    if lane == "code":
        return "your code", f"({actor})" if actor else ""
    if lane.startswith("mi:"):
        return "identity endpoint", f"({lane[3:]})"
    if lane.startswith("site:"):
        return "Function app", f"({lane[5:]})"
    return _LANE_NAMES.get(lane, lane), ""


# -- drawing --------------------------------------------------------------------------------------

FONT = "-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
CHAR_W = 6.8  # generous average width of a 12px sans-serif character, for sizing only
LANE_GAP, BOX_W, BOX_H, MARGIN = 200, 176, 40, 16
ROW_H = 50
LINE_H = 14  # a wrapped label's next line
LABEL_PAD = 8  # between a label and the lifelines either side of it
WRAP_CHARS = 48  # a label wider than this wraps
COLORS = {"ok": "#1a7f37", "refused": "#cf222e", "waiting": "#9a6700", "neutral": "#57606a"}
INK, LIFELINE, BOX_FILL = "#1f2328", "#8c959f", "#f6f8fa"
# Each answer carries a mark as well as a colour, so the picture reads without colour vision.
MARKS = {"ok": "✓", "refused": "✗", "waiting": "⧗", "neutral": "·"}
LEGEND = "✓ green: allowed or issued · ✗ red: refused · ⧗ amber: waiting, throttled or unavailable"
HALO = 'paint-order="stroke" stroke="#ffffff" stroke-width="4" stroke-linejoin="round"'


def _text(x: float, y: float, content: str, *, size: int = 12, color: str = INK,
          anchor: str = "start", weight: str = "normal", halo: bool = False) -> str:  # fmt: skip
    extra = f" {HALO}" if halo else ""
    return (
        f'<text x="{x:g}" y="{y:g}" font-family="{FONT}" font-size="{size}" fill="{color}" '
        f'text-anchor="{anchor}" font-weight="{weight}"{extra}>{escape(content)}</text>'
    )


def _arrow(x1: float, x2: float, y: float, color: str, dashed: bool) -> str:
    direction = 1 if x2 > x1 else -1
    tip = x2 - direction * 2
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    line = (
        f'<line x1="{x1:g}" y1="{y:g}" x2="{tip - direction * 7:g}" y2="{y:g}" '
        f'stroke="{color}" stroke-width="1.6"{dash}/>'
    )
    head = (
        f'<polygon points="{tip:g},{y:g} {tip - direction * 9:g},{y - 4.5:g} '
        f'{tip - direction * 9:g},{y + 4.5:g}" fill="{color}"/>'
    )
    return line + head


def wrap(text: str, width: int = WRAP_CHARS) -> list[str]:
    """Break a label into lines of at most ``width`` characters at spaces (a word longer than
    the width stays whole), so long answers grow downwards rather than across other lanes."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def _label_width(lines: Sequence[str]) -> float:
    return max(CHAR_W * len(line) for line in lines)


def _lane_positions(
    lanes: Sequence[str], steps: Sequence[Step], labels: Sequence[tuple[list[str], list[str]]]
) -> dict[str, float]:
    """x of each lifeline. A step's labels sit in the gap just right of its leftmost lane, so
    that gap is widened until they fit: no label crosses a lifeline it does not belong to."""
    index = {lane: i for i, lane in enumerate(lanes)}
    gaps = [float(LANE_GAP)] * max(len(lanes) - 1, 0)
    for s, (req, resp) in zip(steps, labels, strict=True):
        k = min(index[s.source], index[s.target])
        gaps[k] = max(gaps[k], _label_width(req + resp) + 2 * LABEL_PAD)
    x_of, x = {}, MARGIN + BOX_W / 2
    for i, lane in enumerate(lanes):
        x_of[lane] = x
        if i < len(gaps):
            x += gaps[i]
    return x_of


def _asked(step: Step) -> str:
    return step.request + (f" ×{step.repeat}" if step.repeat > 1 else "")


def describe(
    steps: Sequence[Step], lanes: Sequence[str], actor: str | None = None, hidden: int = 0
) -> str:
    """The picture as sentences: its text alternative (the SVG's ``desc``), for screen readers
    and for anyone who prefers to read the exchanges one by one."""
    names = {lane: " ".join(p for p in _lane_label(lane, actor) if p) for lane in lanes}
    if not steps:
        return "No request reached the sandbox since the mark."
    lines = [
        f"{i}. {names[s.source]} to {names[s.target]}: {_asked(s)}. Answer: {s.response}."
        for i, s in enumerate(steps, 1)
    ]
    if hidden:
        lines.append(f"… and {hidden} more exchanges not drawn.")
    return " ".join(lines)


def _lines(x: float, y: float, lines: Sequence[str], **style: Any) -> str:
    """One text element per label; extra lines are tspans, so the label stays one piece of text
    for a screen reader and for the tests."""
    if len(lines) == 1:
        return _text(x, y, lines[0], **style)
    first = _text(x, y, lines[0], **style)
    rest = "".join(f'<tspan x="{x:g}" dy="{LINE_H}">{escape(line)}</tspan>' for line in lines[1:])
    return first.replace("</text>", rest + "</text>")


def flow_svg(
    entries: Sequence[dict[str, Any]], title: str | None = None, actor: str | None = None
) -> str:
    """A sequence diagram (SVG text) of request-log entries: one arrow pair per exchange.

    ``actor`` names who "your code" was running as (a persona such as ``vm-tutorial``).
    White background and dark ink, so it reads the same in light and dark Jupyter themes.
    """
    steps = steps_of(entries)
    hidden = max(0, len(steps) - MAX_STEPS)
    steps = steps[:MAX_STEPS]
    lanes = _lane_order(steps)
    labels = [
        (wrap(_asked(s)), wrap(f"{MARKS.get(s.tone, MARKS['neutral'])} {s.response}"))
        for s in steps
    ]
    x_of = _lane_positions(lanes, steps, labels)

    top = MARGIN + (26 if title else 0)
    first_row = top + BOX_H + 14
    row_heights = [ROW_H + LINE_H * (len(req) + len(resp) - 2) for req, resp in labels]
    body_end = first_row + (sum(row_heights) if steps else ROW_H)
    footer_lines = [f"… and {hidden} more exchanges not drawn"] if hidden else []
    footer_lines.append(LEGEND)
    height = body_end + 10 + 16 * len(footer_lines) + MARGIN
    width = max(
        [x_of[lanes[-1]] + BOX_W / 2 + MARGIN, 560.0]
        + [MARGIN + CHAR_W * len(line) + MARGIN for line in footer_lines]
    )
    width, height = int(width + 0.5), int(height)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title or "request flow", {chr(34): "&quot;"})}">',
        f"<title>{escape(title or 'request flow')}</title>",
        f"<desc>{escape(describe(steps, lanes, actor, hidden))}</desc>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    if title:
        out.append(_text(MARGIN, MARGIN + 14, title, size=14, weight="bold"))
    for lane in lanes:
        x = x_of[lane]
        out.append(
            f'<line x1="{x:g}" y1="{top + BOX_H:g}" x2="{x:g}" y2="{body_end:g}" '
            f'stroke="{LIFELINE}" stroke-width="1" stroke-dasharray="3 3"/>'
        )
        out.append(
            f'<rect x="{x - BOX_W / 2:g}" y="{top:g}" width="{BOX_W}" height="{BOX_H}" rx="6" '
            f'fill="{BOX_FILL}" stroke="{LIFELINE}"/>'
        )
        line1, line2 = _lane_label(lane, actor)
        if line2:
            out.append(_text(x, top + 17, line1, anchor="middle", weight="bold"))
            out.append(_text(x, top + 32, line2, anchor="middle"))
        else:
            out.append(_text(x, top + 25, line1, anchor="middle", weight="bold"))
    if not steps:
        out.append(_text(MARGIN, first_row + 24, "No request reached the sandbox since the mark."))
    y = first_row
    for s, (req, resp), row_h in zip(steps, labels, row_heights, strict=True):
        xs, xt = x_of[s.source], x_of[s.target]
        left = min(xs, xt) + LABEL_PAD
        color = COLORS.get(s.tone, COLORS["neutral"])
        out.append(_lines(left, y + 12, req, halo=True))
        ask = y + 18 + LINE_H * (len(req) - 1)
        out.append(_arrow(xs, xt, ask, INK, dashed=False))
        out.append(_lines(left, ask + 17, resp, color=color, halo=True))
        out.append(_arrow(xt, xs, ask + 23 + LINE_H * (len(resp) - 1), color, dashed=True))
        y += row_h
    for j, line in enumerate(footer_lines):
        out.append(_text(MARGIN, body_end + 22 + 16 * j, line, size=11, color=COLORS["neutral"]))
    out.append("</svg>")
    return "\n".join(out)


def flow(since_mark: int | None, title: str | None = None) -> None:
    """Display the exchanges the sandbox logged since ``since_mark`` (from ``kit.sandbox.mark()``).

    On Azure there is no log of your requests to draw, so a short note says so instead.
    """
    kit = target.current()
    if not sandbox_only("the request-flow picture", "it is drawn from the sandbox's request log"):
        return
    if since_mark is None:
        raise ValueError("Pass the mark taken before the cell: `mark = kit.sandbox.mark()`.")
    from IPython.display import SVG, display

    entries = kit.sandbox.requests_since(since_mark)
    display(SVG(data=flow_svg(entries, title=title, actor=calling_host(entries, kit.persona))))


@contextmanager
def watch(title: str | None = None) -> Iterator[None]:
    """Draw what the ``with`` block caused on the sandbox, so a cell holds only the code taught.

    The picture is drawn on the way out even when the block raises (an expected refusal is
    the lesson), and then the exception goes on. On Azure there is no request log, so this
    does nothing at all: the cell reads the same as it would in your own app.
    """
    kit = target.current()
    if kit.target != target.SANDBOX:
        yield
        return
    mark = kit.sandbox.mark()
    try:
        yield
    finally:
        flow(mark, title)


def calling_host(entries: Sequence[dict[str, Any]], persona: str | None = None) -> str | None:
    """Where "your code" ran: the hosts whose identity endpoints it asked, in order, then the
    kernel's persona. A cell may switch persona half-way, and the picture is drawn after it.
    A Function app's own token requests are the app's, not your code's."""
    _, made_by = _nested(entries)
    names = [
        "developer" if e["host"] == "developer-laptop" else e["host"]
        for e in entries
        if e.get("listener") == "mi" and e.get("host") and id(e) not in made_by
    ]
    names.append(persona)
    return ", ".join(dict.fromkeys(n for n in names if n)) or None
