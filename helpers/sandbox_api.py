"""The notebooks' side of the sandbox: start it, and call its control API over HTTPS.

The sandbox is a separate process; we start it through its command line and read its public
status document, then prove we are its owner with the secret it keeps in its state folder.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote


class SandboxUnavailable(RuntimeError):
    """Raised with one sentence telling the learner what to do next."""


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args], capture_output=True, text=True, timeout=60
    )


def running() -> dict[str, Any] | None:
    """The status document of the sandbox this process would use, without starting one."""
    result = _cli("status", "--json")
    try:
        return json.loads(result.stdout) if result.returncode == 0 else None
    except ValueError:
        return None


class Starting:
    """A start of the sandbox under way (``python -m sandbox start``, a process of its own), so
    the caller can do other work meanwhile; ``result()`` waits for its status document."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "start", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def result(self) -> dict[str, Any]:
        try:
            out, err = self._process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            out, err = self._process.communicate()
        if self._process.returncode != 0:
            reason = (err.strip().splitlines() or ["no output"])[-1].removeprefix("error: ")
            raise SandboxUnavailable(
                f"The sandbox did not start ({reason.rstrip('.')}); run `python -m sandbox "
                "start` in a terminal to see the full message."
            )
        return json.loads(out)


def start() -> dict[str, Any]:
    """Start the sandbox if needed (about a second) and return its status document."""
    return Starting().result()


class Control:
    """Calls to one running sandbox's control API."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status
        self._context = ssl.create_default_context(cafile=status["ca_file"])
        self._secret = (Path(status["state_dir"]) / "control-secret").read_text().strip()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.status["https_url"] + path, data=data, method=method)
        req.add_header("X-Sandbox-Secret", self._secret)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30, context=self._context) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {e.code}"
            raise SandboxUnavailable(message) from None
        except OSError as e:
            raise SandboxUnavailable(
                f"The sandbox did not answer ({e}); "
                "run `python -m sandbox start` and re-run this cell."
            ) from None
        return json.loads(raw) if raw else None

    # -- what the notebooks use ------------------------------------------------------------

    def persona(self, name: str) -> dict[str, Any]:
        return self.call("GET", f"/_sandbox/personas/{quote(name)}")

    def mark(self) -> int:
        """An id in the request log: pass it to ``requests_since`` to see what a cell caused."""
        return self.call("GET", "/_sandbox/log?after=999999999&limit=1")["last_id"]

    def requests_since(self, mark: int) -> list[dict[str, Any]]:
        return self.call("GET", f"/_sandbox/log?after={mark}&limit=5000")["entries"]

    def reset(self) -> None:
        self.call("POST", "/_sandbox/reset")

    def developer_sign_in(self) -> dict[str, str]:
        """The developer's ``username`` and ``password`` (``python -m sandbox password``)."""
        return self.call("GET", "/_sandbox/developer")

    def approve(self, user_code: str) -> dict[str, Any]:
        return self.call("POST", f"/_sandbox/device-codes/{quote(user_code)}/approve")


def apply_env(environ: os._Environ | dict, env: dict[str, Any]) -> None:
    """Apply a persona (``{"set", "unset", "path_prepend"}``) to a process environment."""
    for name in env["unset"]:
        environ.pop(name, None)
    environ.update(env["set"])
    drop = {env.get("path_remove"), env.get("path_prepend")}
    parts = [p for p in environ.get("PATH", "").split(os.pathsep) if p and p not in drop]
    if env.get("path_prepend"):
        parts.insert(0, env["path_prepend"])
    environ["PATH"] = os.pathsep.join(parts)
