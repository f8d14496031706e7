"""The sandbox as a process: start, reuse, stop, restart with state, control-API secret."""

from __future__ import annotations

import json
import os
import signal

from sandbox import client
from tests.conftest import https_json, sandbox_cli


def test_start_reuses_and_stop_ends(own_settings):
    first = json.loads(sandbox_cli(own_settings, "start", "--json").stdout)
    for key in (
        "https_url",
        "mi_url",
        "arm_url",
        "tenant_id",
        "authority_host",
        "ca_file",
        "state_dir",
        "pid",
    ):
        assert key in first
    second = json.loads(sandbox_cli(own_settings, "start", "--json").stdout)
    assert second["pid"] == first["pid"]
    assert json.loads(sandbox_cli(own_settings, "status", "--json").stdout)["pid"] == first["pid"]
    assert sandbox_cli(own_settings, "stop").returncode == 0
    assert sandbox_cli(own_settings, "status").returncode == 1


def test_state_files_are_private_and_keys_survive_a_kill(own_settings):
    doc = client.start(own_settings)
    folder = own_settings.state_dir
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    for name in ("control-secret", "ca-key.pem", "server-key.pem", "signing-key.pem"):
        assert (folder / name).stat().st_mode & 0o077 == 0, name
    ca_before = (folder / "ca.pem").read_bytes()
    key_before = (folder / "signing-key.pem").read_bytes()
    os.kill(doc["pid"], signal.SIGKILL)
    again = client.start(own_settings)
    assert again["pid"] != doc["pid"]
    assert (folder / "ca.pem").read_bytes() == ca_before
    assert (folder / "signing-key.pem").read_bytes() == key_before


def test_control_api_needs_the_secret(sandbox):
    status, body = https_json(sandbox, "GET", "/_sandbox/log")
    assert status == 401
    assert body["error"]["code"] == "Unauthorized"
    status, body = https_json(
        sandbox, "POST", "/_sandbox/reset", headers={"X-Sandbox-Secret": "guess"}
    )
    assert status == 401


def test_unknown_paths_answer_json_not_tracebacks(sandbox):
    status, body = https_json(sandbox, "GET", "/no/such/thing")
    assert status == 404
    assert body["error"]["code"] == "NotFound"
