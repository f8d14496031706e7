"""func-tutorial: an Azure Functions app (Python, v2 programming model) that calls Azure
Communication Services with the app's managed identity: no connection string, no key, no secret
in its settings.

Two HTTP functions, both at auth level FUNCTION (callers need a function or host key):

* ``GET|POST /api/acs-token``: creates an ACS user and a token for it, then deletes the user
  (``?keep=true`` keeps it). Answers the user id, the token's expiry and its claims, never the
  token itself, and who the app called ACS as.
* ``POST /api/send-sms``: sends one SMS from the ``SMS_FROM_NUMBER`` app setting to the E.164
  number in the body (``{"to": "+14255550101", "message": "..."}``).

App settings it reads: ``ACS_ENDPOINT`` (required), ``SMS_FROM_NUMBER`` (for send-sms), and
``AZURE_CLIENT_ID`` (optional, see :func:`credential`).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import re

import azure.functions as func
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.sms import SmsClient
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import ManagedIdentityCredential

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
SCOPES = {"chat", "voip"}
ACS_SCOPE = "https://communication.azure.com//.default"  # as the ACS clients ask for it


@functools.cache
def credential() -> ManagedIdentityCredential:
    """The app's managed identity. With no ``AZURE_CLIENT_ID`` app setting this is the
    system-assigned identity: it lives and dies with this app, so nothing else can use its
    roles. Set ``AZURE_CLIENT_ID`` to a user-assigned identity's client id when several apps
    must share one identity (and one role assignment), or when the identity must outlive the
    app. Only the managed identity: unlike DefaultAzureCredential, this never falls back to
    some other sign-in that happens to be present. Made once per process and reused: it caches
    its token (about 24 hours), so the identity endpoint is asked once, not on every call."""
    client_id = os.environ.get("AZURE_CLIENT_ID") or None
    return ManagedIdentityCredential(client_id=client_id)


def _json(body: dict, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def _bad_request(message: str) -> func.HttpResponse:
    return _json({"error": message}, 400)


def claims_of(jwt: str) -> dict:
    """A JWT's claims (its middle part), for showing what a token says without showing it."""
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _caller(cred: ManagedIdentityCredential) -> dict:
    """Who this app is to ACS: the identity token's claims that name it (the credential caches
    the token, so the SDK call that follows reuses it)."""
    claims = claims_of(cred.get_token(ACS_SCOPE).token)
    return {k: claims[k] for k in ("oid", "xms_mirid", "aud") if k in claims}


def _refused(e: Exception, caller: dict | None) -> func.HttpResponse:
    """A failure the caller can act on, as JSON: no token from the identity (is it enabled?),
    or ACS refusing the call (does the identity hold a role on the ACS resource?)."""
    if isinstance(e, ClientAuthenticationError) and caller is None:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return _json({"error": f"The managed identity gave no token: {first}"}, 502)
    code = (e.error.code if getattr(e, "error", None) else None) or getattr(e, "reason", "")
    status = getattr(e, "status_code", "")
    message = f"ACS refused the call: {status} {code}."
    return _json({"error": message, "called_as": caller}, 502)


@app.route(route="acs-token", methods=["GET", "POST"])
def acs_token(req: func.HttpRequest) -> func.HttpResponse:
    scopes = [s.strip() for s in req.params.get("scopes", "chat").split(",") if s.strip()]
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        return _bad_request(f"'scopes' must be chat, voip or both, comma-separated; got {unknown}.")
    keep = req.params.get("keep", "false").lower()
    if keep not in ("true", "false"):
        return _bad_request("'keep' must be true or false.")
    cred = credential()
    client = CommunicationIdentityClient(os.environ["ACS_ENDPOINT"], cred)
    caller = None
    try:
        caller = _caller(cred)
        user, token = client.create_user_and_token(scopes=scopes)
    except (ClientAuthenticationError, HttpResponseError) as e:
        logging.exception("acs-token failed")
        return _refused(e, caller)
    user_id = user.properties["id"]
    deleted = keep == "false"
    if deleted:  # leave nothing behind: ACS cannot list its users, so none may go unrecorded
        try:
            client.delete_user(user)
        except (ClientAuthenticationError, HttpResponseError) as e:
            logging.exception("acs-token could not delete %s", user_id)
            message = f"Created ACS user {user_id} but could not delete it ({e.status_code})."
            return _json({"error": message, "user_id": user_id, "called_as": caller}, 502)
    claims = claims_of(token.token)
    expires = token.expires_on  # a datetime, or the service's ISO text, by SDK version
    return _json(
        {
            "user_id": user_id,
            "expires_on": expires.isoformat() if hasattr(expires, "isoformat") else str(expires),
            "token_claims": claims,
            "user_deleted": deleted,
            "called_as": caller,
        }
    )


@app.route(route="send-sms", methods=["POST"])
def send_sms(req: func.HttpRequest) -> func.HttpResponse:
    try:
        body = req.get_json()
    except ValueError:
        return _bad_request('The body must be JSON: {"to": "+14255550101", "message": "..."}.')
    if not isinstance(body, dict):
        return _bad_request('The body must be a JSON object with "to" and "message".')
    to, message = body.get("to"), body.get("message", "Hello from func-tutorial")
    if not isinstance(to, str) or not E164.match(to):
        return _bad_request(f"'to' must be an E.164 phone number (+14255550101); got {to!r}.")
    if not isinstance(message, str) or not message.strip():
        return _bad_request("'message' must be non-empty text.")
    cred = credential()
    client = SmsClient(os.environ["ACS_ENDPOINT"], cred)
    caller = None
    try:
        caller = _caller(cred)
        (result,) = client.send(from_=os.environ["SMS_FROM_NUMBER"], to=[to], message=message)
    except (ClientAuthenticationError, HttpResponseError) as e:
        logging.exception("send-sms failed")
        return _refused(e, caller)
    return _json(
        {
            "to": result.to,
            "message_id": result.message_id,
            "successful": result.successful,
            "http_status_code": result.http_status_code,
            "error_message": result.error_message,
            "called_as": caller,
        },
        200 if result.successful else 502,
    )
