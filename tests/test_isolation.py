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

import pytest

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


def _as_other_user(args: list[str]) -> dict:
    python = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
    out = subprocess.run(
        [python, "-I", "-c", ATTACK, *args],
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
