"""Talking to a running sandbox from the command line: find it, start it, call its control API.

Used by ``python -m sandbox`` only. The notebook helpers do the same over HTTP on their own,
because they must never import the sandbox's internals.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from sandbox.config import Settings

START_TIMEOUT = 30.0


class SandboxError(Exception):
    """Something a learner can act on; the message says what to do next."""


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(settings.ca_file))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_instance(settings: Settings) -> dict[str, Any] | None:
    """The instance document of a sandbox that is up and answering, else None."""
    try:
        doc = json.loads(settings.instance_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not _pid_alive(doc.get("pid", -1)):
        return None
    try:
        with urllib.request.urlopen(
            doc["https_url"] + "/_sandbox/health", timeout=2, context=_ssl_context(settings)
        ) as resp:
            return doc if resp.status == 200 else None
    except (OSError, ValueError):
        return None


def _log_tail(settings: Settings, lines: int = 15) -> str:
    with contextlib.suppress(FileNotFoundError):
        return "\n".join(settings.log_file.read_text(errors="replace").splitlines()[-lines:])
    return ""


def start(settings: Settings) -> dict[str, Any]:
    """Start in the background and return once it answers; reuse one that already runs."""
    settings.ensure_state_dir()
    with open(settings.state_dir / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = running_instance(settings)
        if found:
            return found
        settings.instance_file.unlink(missing_ok=True)
        env = dict(os.environ)
        env.update(
            SANDBOX_STATE_DIR=str(settings.state_dir),
            SANDBOX_BIND=settings.bind,
            SANDBOX_HTTPS_PORT=str(settings.https_port),
            SANDBOX_MI_PORT=str(settings.mi_port),
        )
        with open(settings.log_file, "ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "sandbox", "serve"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise SandboxError(
                    "The sandbox stopped while starting; the end of its log says why:\n"
                    + _log_tail(settings)
                )
            found = running_instance(settings) if settings.instance_file.exists() else None
            if found and found["pid"] == child.pid:
                return found
            time.sleep(0.02)
        child.kill()
        raise SandboxError(
            f"The sandbox did not answer within {START_TIMEOUT:.0f} s; see {settings.log_file}."
        )


def stop(settings: Settings) -> bool:
    """End a running sandbox cleanly; False if none was running."""
    try:
        doc = json.loads(settings.instance_file.read_text())
    except (FileNotFoundError, ValueError):
        return False
    pid = doc.get("pid", -1)
    if not _pid_alive(pid):
        settings.instance_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _pid_alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    settings.instance_file.unlink(missing_ok=True)
    return True


def control(
    settings: Settings, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Call the control API of the running sandbox with this user's secret."""
    doc = running_instance(settings)
    if doc is None:
        raise SandboxError("The sandbox is not running; start it with: python -m sandbox start")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(doc["https_url"] + path, data=data, method=method)
    req.add_header("X-Sandbox-Secret", settings.secret_file.read_text().strip())
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30, context=_ssl_context(settings)) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {e.code}"
        raise SandboxError(message) from None
