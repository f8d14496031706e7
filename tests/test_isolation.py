"""Another user on the same machine cannot drive, read or sign in to someone else's sandbox.

Loopback ports are shared by every user of a host (a JupyterHub on one VM, a lab PC), so the
sandbox relies on two things: its state folder is private to its owner, and every control call
needs the secret kept there. The "other user" is a real second OS user (``nobody``), so the test
needs root to become it; CI runs as root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import urllib.request
from urllib.parse import urlsplit

import pytest

from tests.test_arm import VM_ID, set_identity, sp_credential_for

OTHER_UID = 65534  # nobody
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="becoming another OS user needs root")

ATTACK = textwrap.dedent(
    """
    import json, ssl, sys, urllib.request, urllib.error
    state_dir, https_url, phone = sys.argv[1], sys.argv[2], sys.argv[3]
    found = {}
    for name in ("control-secret", "sandbox.sqlite3", "signing-key.pem", "ca-key.pem"):
        try:
            open(state_dir + "/" + name, "rb").read()
            found[name] = "read"
        except OSError as e:
            found[name] = type(e).__name__
    ctx = ssl._create_unverified_context()
    for method, path in (("GET", "/_sandbox/log"), ("POST", "/_sandbox/reset"),
                         ("GET", "/_sandbox/personas/service-principal"),
                         ("GET", "/_sandbox/inbox/" + phone), ("GET", "/_sandbox/info")):
        body = b"" if method == "POST" else None
        req = urllib.request.Request(https_url + path, method=method, data=body,
                                     headers={"X-Sandbox-Secret": "guessed"})
        try:
            found[method + " " + path] = urllib.request.urlopen(req, context=ctx, timeout=5).status
        except urllib.error.HTTPError as e:
            found[method + " " + path] = e.code
    print(json.dumps(found))
    """
)


def _as_other_user(args: list[str], script: str = ATTACK) -> dict:
    python = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
    out = subprocess.run(
        [python, "-I", "-c", script, *args],
        user=OTHER_UID,
        group=OTHER_UID,
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@needs_root
def test_other_user_can_neither_read_the_state_nor_drive_the_control_api(sandbox):
    found = _as_other_user(
        [sandbox["state_dir"], sandbox["https_url"], sandbox["learner_phones"][0]]
    )
    for name in ("control-secret", "sandbox.sqlite3", "signing-key.pem", "ca-key.pem"):
        assert found[name] == "PermissionError", (name, found[name])
    for key, status in found.items():
        if key.startswith(("GET ", "POST ")):
            assert status == 401, (key, status)


def test_state_folder_and_secret_are_owner_only(sandbox):
    folder = sandbox["state_dir"]
    assert os.stat(folder).st_mode & 0o077 == 0
    assert os.stat(os.path.join(folder, "control-secret")).st_mode & 0o077 == 0


MI_ATTACK = textwrap.dedent(
    """
    import json, sys, urllib.request, urllib.error
    port, secret_len = sys.argv[1], int(sys.argv[2])
    token = "/metadata/identity/oauth2/token?api-version=2018-02-01"
    token += "&resource=https://communication.azure.com/"
    found = {}
    for name, prefix in (("no segment", ""), ("guessed segment", "/" + "0" * secret_len),
                         ("root probe", "")):
        path = prefix + ("" if name == "root probe" else "/hosts/vm-tutorial") + token
        req = urllib.request.Request("http://127.0.0.1:" + port + path,
                                     headers={"Metadata": "true"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                found[name] = [resp.status, "access_token" in json.loads(resp.read())]
        except urllib.error.HTTPError as e:
            found[name] = [e.code, "access_token" in json.loads(e.read())]
    print(json.dumps(found))
    """
)


@needs_root
def test_other_user_gets_no_token_from_the_identity_listener(sandbox, fresh, control):
    """The identity listener's port is visible to everyone (``ss -ltn``); without the owner's
    secret path segment another user gets a 400 and no token, even for a VM with an identity."""
    secret = control("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]
    set_identity(sandbox, sp_credential_for(sandbox, secret), VM_ID, {"type": "SystemAssigned"})
    mi = urlsplit(sandbox["mi_url"])
    segment = mi.path.strip("/")
    assert len(segment) >= 32  # the owner's endpoints carry an unguessable segment

    found = _as_other_user([str(mi.port), str(len(segment))], MI_ATTACK)

    for name, (status, got_token) in found.items():
        assert 400 <= status < 500 and status != 404 and not got_token, (name, status)
    # The owner, who knows the segment, does get the VM's token (the refusal is about the path).
    env = control("GET", "/_sandbox/personas/vm-tutorial")["set"]
    assert env["AZURE_POD_IDENTITY_AUTHORITY_HOST"].startswith(sandbox["mi_url"] + "/hosts/")
    req = urllib.request.Request(
        env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] + "/metadata/identity/oauth2/token"
        "?api-version=2018-02-01&resource=https://communication.azure.com/",
        headers={"Metadata": "true"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert "access_token" in json.loads(resp.read())
