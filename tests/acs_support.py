"""Shared helpers of the ACS data-plane tests: credentials, raw signed calls, spec validation.

Tokens are forged with the sandbox's own signing key (read from its state folder, as a resource
server's test suite would use its issuer's key) so that the bearer and RBAC checks can be driven
with exact claims: a wrong audience, an expired token, a principal with no role.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import ssl
import time
import urllib.error
import urllib.request
import uuid
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
from azure.core.credentials import AccessToken

from sandbox import pki, world
from sandbox.config import Settings
from sandbox.entra.tokens import TokenService

SPECS = Path(__file__).resolve().parent / "specs"
ACS_AUDIENCE = "https://communication.azure.com/"
ARM_AUDIENCE = "https://management.azure.com/"
EXPIRES_ON = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}\+00:00$")
MESSAGE_ID = re.compile(
    r"Outgoing_[0-9]{14}[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}_noam",
    re.ASCII,
)
SENDER = "+18005550100"
PHONE = "+14255550101"


def connection_string(control: Any, key: str = "primary") -> str:
    return control("GET", f"/_sandbox/acs/connection-string?key={key}")["connection_string"]


def key_of(conn: str) -> str:
    return conn.split("accesskey=", 1)[1]


# -- tokens ----------------------------------------------------------------------------------


def token_service(settings: Settings, doc: dict[str, Any]) -> TokenService:
    return TokenService(pki.load_signing_key(settings.state_dir), doc["https_url"])


def forge(
    settings: Settings,
    doc: dict[str, Any],
    *,
    oid: str,
    audience: str = ACS_AUDIENCE,
    appid: str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
    idtyp: str = "user",
    lifetime: int = 3600,
    extra: dict[str, Any] | None = None,
) -> str:
    """An Entra-shaped token signed by the sandbox's key, with the claims a test needs."""
    tokens = token_service(settings, doc)
    token, _ = tokens.access_token(
        tenant_id=doc["tenant_id"],
        audience=audience,
        oid=oid,
        appid=appid,
        idtyp=idtyp,
        extra=extra,
        lifetime=lifetime,
    )
    return token


class StaticCredential:
    """A TokenCredential that always returns one token (sync and async in one class)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> StaticCredential:
        return self

    async def __aexit__(self, *args: Any) -> None:
        pass


class AsyncStaticCredential(StaticCredential):
    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:  # type: ignore[override]
        return AccessToken(self.token, int(time.time()) + 3600)


# -- raw signed calls --------------------------------------------------------------------------


def hmac_headers(
    method: str,
    url: str,
    body: bytes,
    key: str,
    *,
    date: str | None = None,
    host: str | None = None,
    content_hash: str | None = None,
) -> dict[str, str]:
    """Headers exactly as the SDK signs them, with parts a test can spoil on purpose."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    date = date or formatdate(usegmt=True)
    real_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
    content_hash = content_hash or real_hash
    to_sign = f"{method}\n{path}\n{date};{host or parts.netloc};{content_hash}"
    sig = base64.b64encode(
        hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()
    ).decode()
    return {
        "x-ms-date": date,
        "x-ms-content-sha256": content_hash,
        "Authorization": "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256"
        f"&Signature={sig}",
        "Content-Type": "application/json",
    }


def raw(
    doc: dict[str, Any],
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """One HTTPS request to the sandbox; (status, parsed JSON or text, headers)."""
    ctx = ssl.create_default_context(cafile=doc["ca_file"])
    req = urllib.request.Request(
        doc["https_url"] + path, data=body if method != "GET" else None, method=method
    )
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            data, status, hdrs = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as e:
        data, status, hdrs = e.read(), e.code, dict(e.headers)
    try:
        return status, json.loads(data) if data else None, hdrs
    except ValueError:
        return status, data.decode(errors="replace"), hdrs


def signed(
    doc: dict[str, Any], key: str, method: str, path: str, body: Any = None, **spoil: Any
) -> tuple[int, Any, dict[str, str]]:
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    headers = hmac_headers(method, doc["https_url"] + path, data, key, **spoil)
    return raw(doc, method, path, data, headers)


def sms_body(to: list[str], message: str = "hi", **options: Any) -> dict[str, Any]:
    return {
        "from": SENDER,
        "smsRecipients": [
            {
                "to": t,
                "repeatabilityRequestId": str(uuid.uuid4()),
                "repeatabilityFirstSent": formatdate(usegmt=True),
            }
            for t in to
        ],
        "message": message,
        "smsSendOptions": {"enableDeliveryReport": False, **options},
    }


# -- specs -------------------------------------------------------------------------------------


class Specs:
    """Validates a response body against the published Swagger for its path, method and status."""

    def __init__(self) -> None:
        self.identity = json.loads((SPECS / "identity-2023-10-01.json").read_text())
        self.sms = json.loads((SPECS / "sms-2021-03-07.json").read_text())
        self.checked: list[tuple[str, str, int]] = []

    def _operation(self, method: str, path: str) -> tuple[dict, dict]:
        spec = self.sms if path == "/sms" else self.identity
        for template, ops in spec["paths"].items():
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            if re.match(pattern, path) and method.lower() in ops:
                return spec, ops[method.lower()]
        raise AssertionError(f"no operation in the specs for {method} {path}")

    def validate(self, method: str, path: str, status: int, body: Any) -> None:
        spec, op = self._operation(method, path)
        response = op["responses"].get(str(status))
        if response is None:
            assert status >= 400, f"{method} {path}: status {status} is not in the spec"
            response = op["responses"].get("default") or {
                "schema": {"$ref": "#/definitions/CommunicationErrorResponse"}
            }
            spec = self.identity  # the SMS spec declares no error schema; ACS uses the common one
        schema = response.get("schema")
        if schema is None:
            assert body in (None, b"", ""), f"{method} {path} {status}: expected no body"
        else:
            full = {**schema, "definitions": spec["definitions"]}
            jsonschema.validate(body, full, format_checker=jsonschema.FormatChecker())
        self.checked.append((method, path, status))

    def hook(self):  # noqa: ANN201 - an azure-core raw_response_hook
        """A ``raw_response_hook`` that validates every response an SDK client receives."""

        def on_response(pipeline_response: Any) -> None:
            req = pipeline_response.http_request
            resp = pipeline_response.http_response
            text = resp.text()
            body = json.loads(text) if text else None
            self.validate(
                req.method, urlsplit(req.url).path.replace("%3A", ":"), resp.status_code, body
            )

        return on_response


def developer_mgmt(
    client_class: type, fixture: Any, oid: str = world.DEVELOPER_OID, **claims: Any
) -> Any:
    """A management SDK client of ``client_class`` acting as the developer (Owner of the
    subscription), or the principal ``oid`` names, with a token forged for Resource Manager;
    ``fixture`` is ``control`` or ``fresh``."""
    token = forge(fixture.settings, fixture.doc, oid=oid, audience=ARM_AUDIENCE, **claims)
    return client_class(
        StaticCredential(token),
        world.SUBSCRIPTION_ID,
        base_url=fixture.doc["arm_url"],
        credential_scopes=["https://management.azure.com/.default"],
    )
