"""Input meant to hurt the sandbox gets the cloud's 4xx in each service's shape, never a 500, a
hang or a swollen process: huge and endless bodies, deep JSON on the control API, non-ASCII
headers, slow clients, mistyped identity endpoints, and secrets put in the wrong place
(review D3, D7, D14, D15 of reviews/security-review-2026-12.md).
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import time
import urllib.parse
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from sandbox import client, world
from sandbox.app import BODY_LIMIT
from sandbox.config import Settings
from tests.conftest import https_json

MiB = 1024 * 1024


def _connect(doc: dict[str, Any], listener: str) -> socket.socket:
    url = urlsplit(doc["https_url"] if listener == "https" else doc["mi_url"])
    raw = socket.create_connection((url.hostname, url.port), timeout=20)
    if listener == "mi":
        return raw
    ctx = ssl.create_default_context(cafile=doc["ca_file"])
    return ctx.wrap_socket(raw, server_hostname=url.hostname)


def _read_response(sock: socket.socket) -> tuple[int, Any]:
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(65536)
        if not part:
            break
        data += part
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
    length = next((int(v) for k, v in fields.items() if k.lower() == b"content-length"), None)
    while length is not None and len(rest) < length:
        part = sock.recv(65536)
        if not part:
            break
        rest += part
    return status, json.loads(rest) if rest else None


def _request(
    doc: dict[str, Any], listener: str, method: str, path: str, headers: dict[str, str]
) -> tuple[int, Any]:
    """Send a request's head only (its body is announced, never sent) and read the answer."""
    with _connect(doc, listener) as sock:
        host = urlsplit(doc["https_url"] if listener == "https" else doc["mi_url"]).netloc
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        return _read_response(sock)


# -- D3: bodies beyond the limit ---------------------------------------------------------------

OVER = {"Content-Length": str(1024 * MiB), "Content-Type": "application/json"}


@pytest.mark.parametrize(
    "listener, method, path, shape",
    [
        ("https", "POST", "/sms?api-version=2021-03-07", "azure"),
        ("https", "POST", "/identities?api-version=2023-10-01", "azure"),
        ("https", "PATCH", world.ACS_RESOURCE_ID + "?api-version=2023-04-01", "azure"),
        ("https", "POST", f"/{world.TENANT_ID}/oauth2/v2.0/token", "oauth"),
        ("https", "POST", "/devicelogin", "oauth"),
        ("https", "POST", "/_sandbox/faults", "azure"),
        ("mi", "GET", "/hosts/vm-tutorial/metadata/identity/oauth2/token", "oauth"),
    ],
)
def test_a_declared_huge_body_is_refused_before_it_is_read(sandbox, listener, method, path, shape):
    if listener == "mi":
        path = urlsplit(sandbox["mi_url"]).path + path
    status, body = _request(sandbox, listener, method, path, OVER)
    assert status == 413
    if shape == "azure":
        assert body["error"]["code"] == "RequestBodyTooLarge", body
        assert str(BODY_LIMIT) in body["error"]["message"]
    else:
        assert body["error"] == "invalid_request" and "too large" in body["error_description"]


def test_a_body_at_the_limit_still_reaches_the_service(sandbox):
    """The limit refuses only what is over it: a body of exactly BODY_LIMIT bytes is read and
    judged by the service itself (no credential here, so ACS answers 401)."""
    body = b" " * (BODY_LIMIT - 2) + b"{}"
    status, answer = https_json(
        sandbox, "POST", "/identities?api-version=2023-10-01", data=body,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 401, answer


@pytest.fixture
def own_sandbox(tmp_path):
    settings = Settings(state_dir=tmp_path / "state", https_port=0, mi_port=0)
    doc = client.start(settings)
    yield doc
    client.stop(settings)


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_memory_stays_flat_under_a_1_gib_streamed_upload(own_sandbox):
    """1 GiB sent chunked (no Content-Length) to the unauthenticated SMS endpoint: the server
    answers 413 once 1 MiB has arrived and reads no further; its peak memory barely moves."""
    doc = own_sandbox
    https_json(doc, "GET", "/_sandbox/health")
    before = _peak_rss_kib(doc["pid"])
    chunk = b"0" * MiB
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent, status = 0, None
    with _connect(doc, "https") as sock:
        head = (
            "POST /sms?api-version=2021-03-07 HTTP/1.1\r\n"
            f"Host: {urlsplit(doc['https_url']).netloc}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode())
        try:
            while sent < 1024 * MiB:
                # (readable earlier may be TLS session tickets, not an answer)
                if sent > 2 * BODY_LIMIT and select.select([sock], [], [], 0)[0]:
                    break  # the server has answered
                sock.sendall(framed)
                sent += len(chunk)
            status, body = _read_response(sock)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the server closed the connection under the rest of the upload
    grown_mib = (_peak_rss_kib(doc["pid"]) - before) / 1024
    assert sent < 64 * MiB, f"the server kept reading: {sent // MiB} MiB accepted"
    assert grown_mib < 40, f"peak memory grew by {grown_mib:.0f} MiB"
    assert status in (None, 413)
    if status == 413:
        assert body["error"]["code"] == "RequestBodyTooLarge"
    # and it still serves
    assert https_json(doc, "GET", "/_sandbox/health")[0] == 200


def test_a_non_numeric_content_length_is_a_400(sandbox):
    status, body = _request(
        sandbox, "https", "POST", "/identities?api-version=2023-10-01",
        {"Content-Length": "12abc"},
    )  # fmt: skip
    assert 400 <= status < 500 and status != 413


# -- D7 (control API): deeply nested JSON ------------------------------------------------------


@pytest.mark.parametrize("path", ["/_sandbox/faults", "/_sandbox/federated-token"])
def test_deeply_nested_json_on_the_control_api_is_a_400(sandbox, sandbox_settings, path):
    secret = sandbox_settings.secret_file.read_text().strip()
    body = b"[" * 100_000 + b"]" * 100_000
    status, answer = https_json(
        sandbox, "POST", path, data=body,
        headers={"X-Sandbox-Secret": secret, "Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 400, answer
    assert answer["error"]["code"]


# -- non-ASCII headers -------------------------------------------------------------------------


def test_non_ascii_header_values_get_4xx_not_500(sandbox):
    for path, header in (
        ("/_sandbox/info", "X-Sandbox-Secret"),
        ("/identities?api-version=2023-10-01", "Authorization"),
        ("/subscriptions?api-version=2022-12-01", "Authorization"),
    ):
        with _connect(sandbox, "https") as sock:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {urlsplit(sandbox['https_url']).netloc}\r\n"
                f"{header}: Bearer \xe9\xff\x80\r\nContent-Length: 2\r\n\r\n{{}}"
            )
            sock.sendall(head.encode("latin-1"))
            status, _ = _read_response(sock)
        assert 400 <= status < 500, (path, status)
    mi = urlsplit(sandbox["mi_url"]).path + "/hosts/vm-tutorial/metadata/identity/oauth2/token"
    status, body = _request(
        sandbox, "mi", "GET", mi + "?api-version=2018-02-01", {"Metadata": "\xe9"}
    )
    assert status == 400 and body["error"]


# -- slow and idle clients ---------------------------------------------------------------------


def test_slow_and_silent_connections_are_closed_without_hurting_others(own_sandbox):
    """A client that connects and says nothing, and one that sends its headers a byte at a
    time, are both cut off after the header deadline; others are served all along."""
    from sandbox import server

    doc = own_sandbox
    silent = _connect(doc, "mi")
    trickle = _connect(doc, "mi")
    trickle.sendall(b"GET /x HTTP/1.1\r\n")
    t0 = time.monotonic()
    served = 0
    closed = {}
    while time.monotonic() - t0 < server.HEADER_TIMEOUT + 5 and len(closed) < 2:
        for name, sock in (("silent", silent), ("trickle", trickle)):
            if name in closed:
                continue
            try:
                if name == "trickle":
                    sock.sendall(b"X")
                if select.select([sock], [], [], 0)[0] and sock.recv(1) == b"":
                    closed[name] = time.monotonic() - t0
            except OSError:
                closed[name] = time.monotonic() - t0
        assert https_json(doc, "GET", "/_sandbox/health")[0] == 200
        served += 1
        select.select([], [], [], 0.5)  # pace the trickle: one byte each half second
    silent.close()
    trickle.close()
    assert set(closed) == {"silent", "trickle"}, closed
    assert all(t < server.HEADER_TIMEOUT + 2 for t in closed.values()), closed
    assert served >= server.HEADER_TIMEOUT  # others were answered throughout


def test_a_stalled_body_gets_408_and_others_are_served_meanwhile(sandbox):
    from sandbox.app import BODY_IDLE_TIMEOUT

    with _connect(sandbox, "https") as sock:
        head = (
            f"POST /identities?api-version=2023-10-01 HTTP/1.1\r\n"
            f"Host: {urlsplit(sandbox['https_url']).netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        sock.sendall(head.encode())
        t0 = time.monotonic()
        assert https_json(sandbox, "GET", "/_sandbox/health")[0] == 200  # not held up
        status, body = _read_response(sock)
        waited = time.monotonic() - t0
    assert status == 408 and body["error"]["code"] == "RequestTimeout", body
    assert BODY_IDLE_TIMEOUT - 1 < waited < BODY_IDLE_TIMEOUT + 3


# -- D15: the identity listener never answers 404 or 307 ---------------------------------------


@pytest.mark.parametrize(
    "suffix, shape",
    [
        ("/hosts/vm-tutorial/metadata/identity/oauth2/tokens", "imds"),
        ("/hosts/vm-tutorial/metadata/identity/oauth2/token/", "imds"),
        ("/hosts/func-tutorial/msi/token/", "appservice"),
        ("/no/such/path", "imds"),
    ],
)
def test_unknown_identity_paths_get_a_400_in_the_endpoints_shape(sandbox, suffix, shape):
    path = urlsplit(sandbox["mi_url"]).path + suffix + "?api-version=2018-02-01"
    status, body = _request(sandbox, "mi", "GET", path, {"Metadata": "true"})
    assert status == 400, (status, body)
    if shape == "imds":
        assert body["error"] == "invalid_request" and body["error_description"]
    else:
        assert body["statusCode"] == 400 and body["message"]


# -- D14: secrets in the wrong place never reach the request log --------------------------------


def test_misplaced_secrets_are_masked_in_the_request_log(sandbox, control):
    sp_secret = control("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]
    key = control("GET", "/_sandbox/acs/connection-string")["connection_string"]
    key = key.split("accesskey=", 1)[1]
    from sandbox.state import open_store  # the owner reads the password, as `password` does

    mark = control.last_log_id()
    form = urllib.parse.urlencode(
        {"client_id": sp_secret, "client_secret": sp_secret,
         "scope": "https://management.azure.com/.default", "grant_type": "client_credentials"}
    ).encode()  # fmt: skip
    https_json(sandbox, "POST", f"/{world.TENANT_ID}/oauth2/v2.0/token", data=form)
    https_json(sandbox, "GET", "/subscriptions/" + urllib.parse.quote(key, safe=""))
    store = open_store(control.settings)
    password = world.installation_secrets(store)["developer_password"]
    store.close()
    form = urllib.parse.urlencode({"otc": "ABCDEFGHI", "username": password, "password": password})
    https_json(sandbox, "POST", "/devicelogin", data=form.encode())

    entries = control.log_after(mark)
    assert len(entries) >= 3
    text = json.dumps(entries)
    for secret in (sp_secret, key, urllib.parse.quote(key, safe=""), password):
        assert secret not in text, "a secret reached the request log"
    assert "****" in text  # masked, with its last four characters to recognise it by
    # while identifiers stay readable: a whole resource id is no secret
    https_json(sandbox, "GET", world.ACS_RESOURCE_ID + "?api-version=2023-04-01")
    assert control.log_after(mark)[-1]["path"] == world.ACS_RESOURCE_ID
