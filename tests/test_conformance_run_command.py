"""Run Command compared with recorded Azure answers (tests/conformance/arm_run_command/).

A fixture's ``follow`` says which polling address answered the recorded body: ``location`` (the
RunCommandResult, ``monitor=true``) or ``azure-asyncoperation`` (the operation status resource).
``while_running`` starts another command first, for the answer to a second one.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from acs_support import ARM_AUDIENCE, forge

from sandbox import world
from tests.conformance.compare import assert_conforms, load
from tests.test_conformance_arm import _fill_all, _values

FIXTURES = load("arm_run_command")


def _request(doc: dict[str, Any], token: str, method: str, url: str, body: Any = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data,
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method=method,
    )
    ctx = ssl.create_default_context(cafile=doc["ca_file"])
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, resp.headers, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"null")


def _start(doc, token, request):
    url = f"{doc['https_url']}{request['path']}?api-version={request['api_version']}"
    return _request(doc, token, "POST", url, request["body"])


def _until_done(doc, token, status_url):
    """Follow the Azure-AsyncOperation address as an SDK does, honouring Retry-After."""
    deadline = time.monotonic() + 30
    while True:
        status, headers, body = _request(doc, token, "GET", status_url)
        if body.get("status") != "InProgress" or time.monotonic() > deadline:
            return status, body
        time.sleep(float(headers.get("Retry-After", "1")))


@pytest.mark.parametrize(("name", "fixture"), FIXTURES, ids=[n for n, _ in FIXTURES])
def test_run_command_answers_as_recorded(sandbox, fresh, name, fixture):
    token = forge(fresh.settings, fresh.doc, oid=world.DEVELOPER_OID, audience=ARM_AUDIENCE)
    values = _values()
    request = _fill_all(fixture["request"], values)
    if fixture.get("while_running"):
        first = _start(sandbox, token, {**request, "body": fixture["while_running"]})
        assert first[0] == 202
    status, headers, body = _start(sandbox, token, request)
    if fixture.get("follow"):
        assert (status, body) == (202, None)
        # Both addresses, as the captures show: the operation under the VM's location, and the
        # same address with monitor=true for the result.
        operation, location = headers["Azure-AsyncOperation"], headers["Location"]
        assert f"/providers/Microsoft.Compute/locations/{world.LOCATION}/operations/" in operation
        assert "monitor=true" in location and "monitor=true" not in operation
        status, body = _until_done(sandbox, token, operation)
        assert body["status"] == "Succeeded"
        if fixture["follow"] == "location":
            status, _, body = _request(sandbox, token, "GET", location)
    elif fixture.get("while_running"):
        _until_done(sandbox, token, first[1]["Azure-AsyncOperation"])
    assert_conforms(name, fixture, status, body, values)
