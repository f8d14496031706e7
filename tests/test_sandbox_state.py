"""The sandbox's own life cycle and state folder under faults: it fails closed with one sentence
and its remedy, ``reset`` repairs, ``stop`` signals only its own server and returns at once.

Each test has its own state folder and its own sandbox on free ports (review D2, D5, D10-D13,
D16 of reviews/security-review-2026-12.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sandbox import client
from sandbox.config import Settings
from tests.conftest import https_json, sandbox_cli

REMEDY = "python -m sandbox reset"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")


@pytest.fixture
def own(own_settings: Settings) -> Settings:
    return own_settings


def _started_once(settings: Settings) -> dict:
    doc = client.start(settings)
    client.stop(settings)
    return doc


def _refused(settings: Settings, *words: str) -> str:
    """Start must fail with one sentence (no traceback) holding these words."""
    out = sandbox_cli(settings, "start")
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr, out.stderr
    message = out.stderr.strip()
    assert len(message.splitlines()) == 1, message
    for word in words:
        assert word in message, message
    assert client.server_pid(settings) is None  # nothing was left serving
    return message


# -- D2: the control secret fails closed -------------------------------------------------------


@pytest.mark.parametrize("content", ["", "   \n", "short", "é" * 40])
def test_a_damaged_control_secret_opens_nothing_and_reset_repairs_it(own, content):
    _started_once(own)
    own.secret_file.write_text(content)
    _refused(own, "control secret", REMEDY)
    assert sandbox_cli(own, "reset").returncode == 0
    doc = client.start(own)
    assert len(own.secret_file.read_text()) >= 32
    status, _ = https_json(doc, "GET", "/_sandbox/info")
    assert status == 401  # no header, no entry
    assert client.control(own, "GET", "/_sandbox/info")["pid"] == doc["pid"]


# -- D11: damaged keys, store, instance.json ---------------------------------------------------


@pytest.mark.parametrize(
    "name, damage, words",
    [
        ("sandbox.sqlite3", b"this is not a database" * 100, ("store", "damaged")),
        ("signing-key.pem", b"garbage", ("signing key",)),
        ("signing-key.pem", b"", ("signing key",)),
        ("server-key.pem", b"garbage", ("server certificate",)),
        ("ca-key.pem", b"garbage", ()),
    ],
)
def test_damaged_state_is_one_sentence_and_reset_recovers(own, name, damage, words):
    _started_once(own)
    if name == "ca-key.pem":  # only read when the server certificate is made anew
        (own.state_dir / "server.pem").unlink()
        words = ("CA",)
    if name == "sandbox.sqlite3":
        for suffix in ("-wal", "-shm"):
            Path(f"{own.db_file}{suffix}").unlink(missing_ok=True)
    (own.state_dir / name).write_bytes(damage)
    _refused(own, *words, REMEDY)
    out = sandbox_cli(own, "reset")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "set aside" in out.stdout
    doc = client.start(own)
    assert client.control(own, "GET", "/_sandbox/info")["pid"] == doc["pid"]


def test_a_document_that_is_not_json_is_reported_not_served(own):
    import sqlite3

    _started_once(own)
    db = sqlite3.connect(own.db_file)
    db.execute("UPDATE docs SET body = '{not json' WHERE kind = 'tenant'")
    db.commit()
    db.close()
    _refused(own, "tenant", REMEDY)
    assert sandbox_cli(own, "reset").returncode == 0
    client.start(own)


def test_password_and_reset_say_what_is_wrong_instead_of_a_traceback(own):
    _started_once(own)
    for suffix in ("-wal", "-shm"):
        Path(f"{own.db_file}{suffix}").unlink(missing_ok=True)
    own.db_file.write_bytes(b"garbage" * 500)
    out = sandbox_cli(own, "password")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert REMEDY in out.stderr


def test_start_shows_only_this_attempts_log(own):
    _started_once(own)  # leaves "sandbox ready" in the log
    own.secret_file.write_text("")
    message = _refused(own)
    assert "ready" not in message


# -- D10: a read-only store --------------------------------------------------------------------


@needs_root
def test_a_read_only_store_fails_at_start_with_one_sentence(own):
    """Root ignores file modes, so the start runs without capabilities (still as its owner)."""
    _started_once(own)
    for path in own.state_dir.glob("sandbox.sqlite3*"):
        path.chmod(0o400)
    nocaps = ("setpriv", "--bounding-set=-all", "--inh-caps=-all")
    out = sandbox_cli(own, "start", prefix=nocaps)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert "read-only" in out.stderr and "chmod" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


# -- D12, D13: who owns the folder, who may read the files --------------------------------------


@needs_root
def test_a_state_folder_owned_by_another_user_is_refused(own):
    own.state_dir.mkdir(mode=0o700)
    os.chown(own.state_dir, 65534, 65534)
    message = _refused(own, "another user")
    assert "SANDBOX_STATE_DIR" in message
    assert not (own.state_dir / "bin").exists()  # nothing was written into it


def test_a_state_folder_others_can_write_is_refused(own):
    own.state_dir.mkdir()
    own.state_dir.chmod(0o777)
    _refused(own, "writable by other users", "chmod 700")


def test_a_symlinked_state_file_is_not_followed(own, tmp_path):
    own.state_dir.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    os.symlink(elsewhere, own.secret_file)
    _refused(own, "control secret")
    assert not elsewhere.exists()


def test_every_state_file_is_owner_only(own):
    doc = client.start(own)
    https_json(doc, "GET", "/_sandbox/health")  # the store and its WAL exist by now
    found = sorted(p.name for p in own.state_dir.iterdir())
    assert {"sandbox.sqlite3", "sandbox.sqlite3-wal", "control-secret"} <= set(found)
    for path in own.state_dir.iterdir():
        assert path.stat().st_mode & 0o077 == 0, (path.name, oct(path.stat().st_mode))


def _gone(pid: int) -> bool:
    """Ended: no such process, or a zombie waiting for its parent (this test process)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


# -- D5, D16: stop signals only its own server; one server per folder --------------------------


def test_stop_never_signals_a_process_that_reused_the_pid(own):
    _started_once(own)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        own.instance_file.write_text(
            json.dumps({"pid": bystander.pid, "https_url": "https://127.0.0.1:1"})
        )
        out = sandbox_cli(own, "stop")
        assert out.returncode == 0 and "not running" in out.stdout
        assert bystander.poll() is None, "stop killed an unrelated process"
    finally:
        bystander.kill()
        bystander.wait()


def test_stop_returns_within_a_fifth_of_a_second_and_the_ports_are_free(own):
    doc = client.start(own)
    https_json(doc, "GET", "/_sandbox/health")  # an idle keep-alive client must not delay it
    t0 = time.perf_counter()
    assert client.stop(own) is True
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.2, f"stop took {elapsed:.3f} s"
    assert client.server_pid(own) is None
    with pytest.raises(OSError):
        https_json(doc, "GET", "/_sandbox/health")


def test_state_survives_a_stop(own):
    doc = client.start(own)
    before = client.control(own, "GET", "/_sandbox/log?after=0")["last_id"]
    https_json(doc, "GET", "/no/such/thing")  # logged
    client.stop(own)
    client.start(own)
    assert client.control(own, "GET", "/_sandbox/log?after=0")["last_id"] > before


def test_two_starts_at_once_end_with_one_sandbox(own):
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: sandbox_cli(own, "start", "--json"), range(2)))
    pids = {json.loads(r.stdout)["pid"] for r in results}
    assert len(pids) == 1, [r.stderr for r in results]
    assert client.server_pid(own) == pids.pop()


def test_a_second_serve_on_the_same_folder_refuses(own):
    doc = client.start(own)
    out = sandbox_cli(own, "serve")
    assert out.returncode != 0
    assert "already serves" in out.stderr and str(doc["pid"]) in out.stderr, out.stderr
    assert json.loads(own.instance_file.read_text())["pid"] == doc["pid"]


def test_a_damaged_instance_file_does_not_orphan_the_server(own):
    first = client.start(own)
    own.instance_file.write_text("{garbage")
    second = client.start(own)  # the unreachable server is stopped, not left running
    assert client.server_pid(own) == second["pid"]
    assert _gone(first["pid"])
    own.instance_file.write_text("{garbage")
    assert sandbox_cli(own, "stop").returncode == 0
    assert client.server_pid(own) is None
