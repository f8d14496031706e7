"""HTTP skin of Entra ID: metadata, token and device-code endpoints, the sign-in page, and the
control routes that approve sign-ins and mint workload-identity assertions for tests.

Request bodies are parsed here, leniently, so that anything malformed reaches the model as a
missing parameter and is answered the way Entra answers it, never with a 500.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox import audit, world
from sandbox.control.guard import control_error, requires_secret
from sandbox.entra import pages
from sandbox.entra.models import Entra, EntraError
from sandbox.runtime import sandbox_of

_GUID = re.compile(r"^[0-9a-fA-F-]{36}$")
_NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def entra_of(request: Request) -> Entra:
    state = request.app.state
    found = getattr(state, "entra", None)
    if found is None:
        sb = sandbox_of(request)
        found = state.entra = Entra(sb.store, sb.tokens, sb.https_url, sb.faults)
    return found


async def read_form(request: Request) -> dict[str, str]:
    """Form fields (first value wins); a body that is not a form counts as empty."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    form: dict[str, str] = {}
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
        except (UnicodeDecodeError, ValueError):
            pairs = []
        for key, value in pairs:
            form.setdefault(key, value)
    basic = request.headers.get("authorization", "")
    if basic[:6].lower() == "basic " and "client_secret" not in form:  # client_secret_basic
        try:
            user, _, password = base64.b64decode(basic[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        if user:
            form.setdefault("client_id", unquote(user))
            form["client_secret"] = unquote(password)
    return form


def _correlation_id(request: Request) -> str:
    given = request.headers.get("client-request-id", "")
    return given if _GUID.match(given) else str(uuid.uuid4())


def _error(request: Request, e: EntraError) -> JSONResponse:
    body = e.body(sandbox_of(request).https_url, _correlation_id(request))
    headers = dict(_NO_STORE, **{"x-ms-request-id": body["trace_id"]})
    headers["client-request-id"] = body["correlation_id"]
    return JSONResponse(body, status_code=e.status, headers=headers)


def _ok(request: Request, body: dict[str, Any]) -> JSONResponse:
    """A success, with the headers Entra sends on one (``x-ms-request-id`` is the trace id)."""
    headers = dict(_NO_STORE, **{"client-request-id": _correlation_id(request)})
    headers["x-ms-request-id"] = str(uuid.uuid4())
    return JSONResponse(body, headers=headers)


# -- metadata ----------------------------------------------------------------------------------


async def openid_configuration_v2(request: Request) -> Response:
    try:
        return JSONResponse(entra_of(request).openid_configuration(request.path_params["tenant"]))
    except EntraError as e:
        return _error(request, e)


async def openid_configuration_v1(request: Request) -> Response:
    try:
        doc = entra_of(request).openid_configuration(request.path_params["tenant"], "1.0")
        return JSONResponse(doc)
    except EntraError as e:
        return _error(request, e)


async def _keys(request: Request, version: str) -> Response:
    try:
        return JSONResponse(entra_of(request).keys(request.path_params["tenant"], version))
    except EntraError as e:
        return _error(request, e)


async def keys_v2(request: Request) -> Response:
    return await _keys(request, "2.0")


async def keys_v1(request: Request) -> Response:
    return await _keys(request, "1.0")


# -- token and device-code endpoints -------------------------------------------------------------


def _decision(e: EntraError) -> str:
    return "pending" if e.error == "authorization_pending" else "denied"


async def _token(request: Request, v1: bool) -> Response:
    if request.method != "POST":
        return _error(
            request,
            EntraError(
                400,
                "invalid_request",
                900561,
                f"The endpoint only accepts POST, OPTIONS requests. Received a {request.method} "
                "request.",
            ),
        )
    facts: dict[str, Any] = {}
    form = await read_form(request)
    try:
        body = entra_of(request).token(request.path_params["tenant"], form, facts, v1=v1)
    except EntraError as e:
        audit.note(request, decision=_decision(e), reason=e.reason, **facts)
        return _error(request, e)
    audit.note(request, decision="issued", **facts)
    return _ok(request, body)


async def token_v2(request: Request) -> Response:
    return await _token(request, v1=False)


async def token_v1(request: Request) -> Response:
    return await _token(request, v1=True)


async def _devicecode(request: Request, v1: bool) -> Response:
    facts: dict[str, Any] = {}
    form = await read_form(request)
    try:
        flow = entra_of(request).start_device_flow(
            request.path_params["tenant"], form, facts, v1=v1
        )
    except EntraError as e:
        audit.note(request, decision="denied", reason=e.reason, **facts)
        return _error(request, e)
    audit.note(request, decision="pending", reason="device code issued; awaiting sign-in", **facts)
    return _ok(request, flow)


async def devicecode_v2(request: Request) -> Response:
    return await _devicecode(request, v1=False)


async def devicecode_v1(request: Request) -> Response:
    return await _devicecode(request, v1=True)


async def authorize(request: Request) -> Response:
    return HTMLResponse(pages.browser_sign_in_unavailable(), status_code=400)


# -- the person's side of the device-code flow --------------------------------------------------


async def devicelogin_page(request: Request) -> Response:
    code = request.query_params.get("otc", "")
    return HTMLResponse(pages.device_login_form(code=code, hint=world.DEVELOPER_UPN))


async def devicelogin_submit(request: Request) -> Response:
    entra = entra_of(request)
    form = await read_form(request)
    code, user_name = form.get("otc", "").strip(), form.get("username", "").strip()
    approve = form.get("action", "approve") != "deny"
    facts = {"caller": user_name or None, "credential": "password"}

    def again(status: int, message: str) -> Response:
        audit.note(request, decision="denied", reason=message, **facts)
        html = pages.device_login_form(
            code=code, username=user_name, error=message, hint=world.DEVELOPER_UPN
        )
        return HTMLResponse(html, status_code=status)

    found = entra.find_user_code(code) if code else None
    if found is None:
        return again(400, "That code didn't work. Check the code and try again.")
    try:
        user = entra.check_password(user_name, form.get("password", ""))
    except EntraError as e:
        return again(401, f"Your account or password is incorrect. ({e.reason})")
    facts["principal_id"] = user["object_id"]
    try:
        doc = entra.decide_device_code(code, user, approve)
    except (LookupError, ValueError) as e:
        return again(400, str(e) if isinstance(e, ValueError) else "Unknown code.")
    audit.note(
        request,
        decision="approved" if approve else "declined",
        reason=f"device code {'approved' if approve else 'declined'} for {doc['client_name']}",
        audience=doc["resource"],
        **facts,
    )
    html = pages.device_login_done(
        approved=approve, client_name=doc["client_name"], resource=doc["resource"]
    )
    return HTMLResponse(html)


async def error_page(request: Request) -> Response:
    status, html = pages.error_help(request.query_params.get("code", ""))
    return HTMLResponse(html, status_code=status)


# -- control routes ------------------------------------------------------------------------------


async def _decide(request: Request, approve: bool) -> Response:
    entra = entra_of(request)
    code = request.path_params["user_code"]
    user = entra.store.get("principal", world.DEVELOPER_OID)
    if user is None:
        return control_error(409, "Conflict", "The developer user is missing; reset the sandbox.")
    try:
        doc = entra.decide_device_code(code, user, approve)
    except LookupError:
        return control_error(404, "NotFound", f"No sign-in is waiting for code '{code}'.")
    except ValueError as e:
        return control_error(400, "BadRequest", str(e))
    return JSONResponse(
        {"user": user["upn"], "user_code": doc["user_code"], "status": doc["status"]}
    )


@requires_secret
async def approve_code(request: Request) -> Response:
    return await _decide(request, approve=True)


@requires_secret
async def deny_code(request: Request) -> Response:
    return await _decide(request, approve=False)


@requires_secret
async def expire_code(request: Request) -> Response:
    code = request.path_params["user_code"]
    try:
        doc = entra_of(request).expire_device_code(code)
    except LookupError:
        return control_error(404, "NotFound", f"No sign-in is waiting for code '{code}'.")
    return JSONResponse({"user_code": doc["user_code"], "status": "expired"})


WAIT_LIMIT = 5.0  # seconds: Entra's own polling interval, the longest a poller sleeps


@requires_secret
async def wait_for_code(request: Request) -> Response:
    """Answer once a person has answered the code (or it ran out), at the latest after
    ``seconds``. The sandbox's ``az`` waits here instead of sleeping out its polling interval,
    so a sign-in approved from a notebook completes at once; Entra has no such call, and the
    control API is not in the request log, so what the log and diagrams show is unchanged."""
    entra = entra_of(request)
    try:
        seconds = float(request.query_params.get("seconds", "1"))
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= WAIT_LIMIT:
        return control_error(400, "BadRequest", f"seconds must be from 0 to {WAIT_LIMIT:g}.")
    code = request.path_params["user_code"]
    deadline = time.monotonic() + seconds
    while not (answered := entra.device_code_answered(code)) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return JSONResponse({"user_code": code, "answered": answered})


@requires_secret
async def list_codes(request: Request) -> Response:
    return JSONResponse({"value": entra_of(request).pending_device_codes()})


@requires_secret
async def developer_sign_in(request: Request) -> Response:
    """The developer's user name and password, as ``python -m sandbox password`` prints them:
    what the kit's catch-up signs in with (``az login -u -p``, no prompt to wait for)."""
    secrets = world.installation_secrets(entra_of(request).store)
    return JSONResponse(
        {"username": world.DEVELOPER_UPN, "password": secrets["developer_password"]}
    )


@requires_secret
async def federated_token(request: Request) -> Response:
    try:
        body = json.loads(await request.body() or b"{}")
        client_id = body["client_id"]
        if not isinstance(client_id, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return control_error(400, "BadRequest", 'Send JSON: {"client_id": "<app id>"}.')
    try:
        return JSONResponse(entra_of(request).mint_federated_token(client_id))
    except LookupError:
        return control_error(
            404, "NotFound", f"The app '{client_id}' has no federated credential in the sandbox."
        )


def routes() -> list[BaseRoute]:
    return [
        Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration_v2),
        Route("/{tenant}/.well-known/openid-configuration", openid_configuration_v1),
        Route("/{tenant}/discovery/v2.0/keys", keys_v2),
        Route("/{tenant}/discovery/keys", keys_v1),
        Route("/{tenant}/oauth2/v2.0/token", token_v2, methods=["GET", "POST"]),
        Route("/{tenant}/oauth2/token", token_v1, methods=["GET", "POST"]),
        Route("/{tenant}/oauth2/v2.0/devicecode", devicecode_v2, methods=["POST"]),
        Route("/{tenant}/oauth2/devicecode", devicecode_v1, methods=["POST"]),
        Route("/{tenant}/oauth2/v2.0/authorize", authorize),
        Route("/{tenant}/oauth2/authorize", authorize),
        Route("/devicelogin", devicelogin_page, methods=["GET"]),
        Route("/devicelogin", devicelogin_submit, methods=["POST"]),
        Route("/error", error_page),
        Route("/_sandbox/federated-token", federated_token, methods=["POST"]),
        Route("/_sandbox/developer", developer_sign_in),
        Route("/_sandbox/device-codes", list_codes),
        Route("/_sandbox/device-codes/{user_code}/wait", wait_for_code),
        Route("/_sandbox/device-codes/{user_code}/approve", approve_code, methods=["POST"]),
        Route("/_sandbox/device-codes/{user_code}/deny", deny_code, methods=["POST"]),
        Route("/_sandbox/device-codes/{user_code}/expire", expire_code, methods=["POST"]),
    ]
