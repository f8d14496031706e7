"""The sandbox's own ACS routes under ``/_sandbox/`` (not Azure's): the phones' inboxes and
replies, recorded Event Grid events, fault switches, the resource's connection string and a
user-token check. All need the control secret (see sandbox/control/guard.py).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import faults, world
from sandbox.acs.errors import AcsError
from sandbox.acs.identity_models import IdentityService
from sandbox.acs.sms_models import SmsService
from sandbox.control.guard import control_error, requires_secret
from sandbox.runtime import sandbox_of

KEY_NAMES = {"primary": "primaryKey", "secondary": "secondaryKey"}


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise AcsError(400, "BadRequest", "The request body is not valid JSON.") from None


def _phone(request: Request) -> str:
    """The phone number from the path; ``14255550101`` is read as ``+14255550101``."""
    phone = request.path_params["phone"].strip()
    return "+" + phone if phone.isdigit() else phone


def _resource(request: Request) -> dict[str, Any]:
    resource = sandbox_of(request).store.get("acs_resource", world.ACS_NAME)
    if resource is None:
        raise AcsError(404, "NotFound", "The Communication Services resource does not exist.")
    return resource


def _handle(func):  # noqa: ANN001, ANN202 - a tiny adapter, typed by its use
    async def run(request: Request) -> Response:
        try:
            return await func(request)
        except AcsError as e:
            return e.response()

    run.__name__ = func.__name__
    return requires_secret(run)


# -- faults ----------------------------------------------------------------------------------


@_handle
async def list_faults(request: Request) -> Response:
    sb = sandbox_of(request)
    known = {name: sorted(spec) for name, spec in faults.KNOWN.items()}
    return JSONResponse({"faults": dict(sb.faults), "known": known})


@_handle
async def set_fault(request: Request) -> Response:
    body = await _json(request)
    name = request.path_params.get("name")
    if name is None:  # POST /_sandbox/faults {"name": ..., "params": {...}}
        if not isinstance(body, dict):
            return control_error(400, "BadRequest", 'Send {"name": ..., "params": {...}}.')
        name, body = body.get("name"), body.get("params", {})
        if not isinstance(name, str):
            return control_error(400, "BadRequest", 'Send {"name": ..., "params": {...}}.')
    try:
        params = faults.validate(name, body)
    except faults.FaultError as e:
        return control_error(400, "BadRequest", str(e))
    sb = sandbox_of(request)
    faults.set_fault(sb.faults, name, params)
    return JSONResponse({"name": name, "params": params, "faults": dict(sb.faults)})


@_handle
async def clear_faults(request: Request) -> Response:
    sb = sandbox_of(request)
    name = request.path_params.get("name")
    if name is not None and name not in faults.KNOWN:
        return control_error(
            404, "NotFound", f"Unknown fault '{name}'; known: {', '.join(faults.KNOWN)}."
        )
    faults.clear(sb.faults, name)
    return JSONResponse({"faults": dict(sb.faults)})


# -- phones and events -----------------------------------------------------------------------


@_handle
async def inbox(request: Request) -> Response:
    phone = _phone(request)
    messages = SmsService(sandbox_of(request).store, _resource(request)).inbox(phone)
    return JSONResponse({"phone": phone, "count": len(messages), "messages": messages})


@_handle
async def all_inboxes(request: Request) -> Response:
    """Every delivered message, oldest first, with a count per phone (one call for many)."""
    messages = SmsService(sandbox_of(request).store, _resource(request)).inbox(None)
    counts: dict[str, int] = {}
    for m in messages:
        counts[m["to"]] = counts.get(m["to"], 0) + 1
    return JSONResponse({"count": len(messages), "phones": counts, "messages": messages})


@_handle
async def reply(request: Request) -> Response:
    body = await _json(request)
    if not isinstance(body, dict):
        return control_error(
            400, "BadRequest", 'Send {"from": <sender number>, "message": "STOP"}.'
        )
    # "from" names the resource's number the phone answers (the sender of what it received).
    sender = body.get("from") or body.get("to")
    service = SmsService(sandbox_of(request).store, _resource(request))
    return JSONResponse(
        service.reply(_phone(request), sender, body.get("message")), status_code=201
    )


@_handle
async def events(request: Request) -> Response:
    service = SmsService(sandbox_of(request).store, _resource(request))
    found = service.events(request.query_params.get("type"))
    return JSONResponse({"count": len(found), "events": found})


# -- credentials -----------------------------------------------------------------------------


@_handle
async def connection_string(request: Request) -> Response:
    """The resource's connection string, read from its current keys (what ``listKeys`` gives)."""
    which = request.query_params.get("key", "primary")
    if which not in KEY_NAMES:
        return control_error(400, "BadRequest", "key must be 'primary' or 'secondary'.")
    sb = sandbox_of(request)
    endpoint = sb.https_url + "/"
    key = _resource(request)["keys"][KEY_NAMES[which]]
    return JSONResponse(
        {
            "endpoint": endpoint,
            "key_name": KEY_NAMES[which],
            "connection_string": f"endpoint={endpoint};accesskey={key}",
        }
    )


@_handle
async def check_user_token(request: Request) -> Response:
    body = await _json(request)
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        return control_error(400, "BadRequest", 'Send {"token": <user access token>}.')
    sb = sandbox_of(request)
    valid, reason = IdentityService(sb.store, sb.tokens, _resource(request)).check_token(token)
    return JSONResponse({"valid": valid, "reason": reason})


def routes() -> list[Route]:
    return [
        Route("/_sandbox/faults", list_faults, methods=["GET"]),
        Route("/_sandbox/faults", set_fault, methods=["POST"]),
        Route("/_sandbox/faults", clear_faults, methods=["DELETE"]),
        Route("/_sandbox/faults/{name}", set_fault, methods=["POST", "PUT"]),
        Route("/_sandbox/faults/{name}", clear_faults, methods=["DELETE"]),
        Route("/_sandbox/inbox", all_inboxes, methods=["GET"]),
        Route("/_sandbox/inbox/{phone}", inbox, methods=["GET"]),
        Route("/_sandbox/phones/{phone}/reply", reply, methods=["POST"]),
        Route("/_sandbox/events", events, methods=["GET"]),
        Route("/_sandbox/acs/connection-string", connection_string, methods=["GET"]),
        Route("/_sandbox/acs/check-user-token", check_user_token, methods=["POST"]),
    ]
