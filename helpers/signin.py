"""Signing in as the developer with ``az login --use-device-code``, from inside a notebook.

The management steps (enabling identities, assigning roles) run as a person, through
``AzureCliCredential``; that needs an ``az login`` first. A device code is the sign-in that works
from a kernel with no browser: ``az`` prints a code and a page, a person enters it there (in a
workshop the facilitator may approve it), and ``az`` finishes on its own. On the sandbox we run
the sandbox's own ``az`` in the background with the developer persona's environment; on Azure a
notebook must not start an interactive sign-in for you, so it only tells you what to run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from typing import Any

from helpers import sandbox_api, target
from helpers.display import Rich, esc, note, show

_PROMPT = re.compile(r"open the page (?P<url>\S+) and enter the code (?P<code>\S+)")
MESSAGE_TIMEOUT = 30.0


class _Reader(threading.Thread):
    """Collects one pipe of the child into a list, so neither pipe can fill up and block it."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[str] = []
        self.changed = threading.Condition()

    def run(self) -> None:
        for line in self.stream:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    @property
    def text(self) -> str:
        return "".join(self.lines)


class AzLogin:
    """A sign-in in progress: ``.code`` and ``.url`` to give a person, ``.wait()`` to finish."""

    def __init__(self) -> None:
        self.code: str | None = None
        self.url: str | None = None
        self.message: str = ""
        self.user: str | None = None
        self.subscription: str | None = None
        self._process: subprocess.Popen[str] | None = None
        self._out: _Reader | None = None
        self._err: _Reader | None = None

    # -- sandbox --------------------------------------------------------------------------------

    def start(self, env: dict[str, str]) -> None:
        """Run the sandbox's ``az login --use-device-code`` with ``env`` until it shows a code."""
        az = shutil.which("az", path=env.get("PATH", ""))
        if az is None:
            raise RuntimeError(
                "The sandbox's `az` is missing: run `python -m sandbox start` and re-run this cell."
            )
        self._process = subprocess.Popen(
            [az, "login", "--use-device-code"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._out, self._err = _Reader(self._process.stdout), _Reader(self._process.stderr)
        self._out.start()
        self._err.start()
        deadline = time.monotonic() + MESSAGE_TIMEOUT
        with self._err.changed:
            while True:
                found = _PROMPT.search(self._err.text)
                if found:
                    break
                if self._process.poll() is not None and not self._err.is_alive():
                    raise RuntimeError(
                        f"az login stopped before showing a code: {self._last_error()}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    self._process.kill()
                    raise RuntimeError(
                        "az login showed no code within 30 s: check `python -m sandbox status`."
                    )
                self._err.changed.wait(min(left, 0.5))
        self.url, self.code = found["url"], found["code"].rstrip(".")
        self.message = next(
            line.strip() for line in self._err.text.splitlines() if "enter the code" in line
        )

    def _last_error(self) -> str:
        """The CLI's ``ERROR:`` line (Entra's message follows it on more lines: trace ids)."""
        lines = [x for x in (self._err.text if self._err else "").splitlines() if x.strip()]
        errors = [x for x in lines if x.startswith("ERROR:")]
        return (errors or lines or ["no message"])[-1].strip()

    # -- both targets -----------------------------------------------------------------------------

    def wait(self, timeout: float = 60, show_result: bool = True) -> None:
        """Block until the sign-in finishes, then display who is signed in (``show_result``).

        Raises TimeoutError if nobody signed in within ``timeout`` seconds (you can call
        ``wait()`` again), RuntimeError if the sign-in was declined or expired.
        """
        if self._process is None:
            self._check_azure_cli()
            return
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                f"Nobody signed in within {timeout:g} s: enter the code {self.code} at "
                f"{self.url} (or approve it), then call wait() again."
            ) from None
        self._out.join(5)
        self._err.join(5)
        if self._process.returncode != 0:
            raise RuntimeError(f"az login failed: {self._last_error()}")
        self._signed_in(json.loads(self._out.text or "[]"), show_result)

    def _signed_in(self, subscriptions: list[dict[str, Any]], show_result: bool = True) -> None:
        current = next((s for s in subscriptions if s.get("isDefault")), None) or (
            subscriptions[0] if subscriptions else {}
        )
        self.user = (current.get("user") or {}).get("name")
        self.subscription = current.get("name")
        where = f" (subscription '{self.subscription}')" if self.subscription else ""
        if show_result:
            show(note(f"Signed in as {self.user}{where}.", ok=True))

    def _check_azure_cli(self) -> None:
        """On Azure: report whether the Azure CLI already has a signed-in account."""
        az = shutil.which("az")
        if az is None:
            show(
                note(
                    "The Azure CLI is not installed: install it, run `az login`, then re-run.",
                    False,
                )
            )
            return
        result = subprocess.run(
            [az, "account", "show", "--output", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            show(
                note(
                    "Not signed in yet: run `az login` in a terminal, then re-run this cell.", False
                )
            )
            return
        self._signed_in([json.loads(result.stdout)])

    def __repr__(self) -> str:
        state = f"signed in as {self.user}" if self.user else "waiting for sign-in"
        return f"<az login: {state}>"


def az_login() -> AzLogin:
    """Start ``az login --use-device-code`` as the developer and show its sign-in message.

    The returned object has ``.code`` and ``.url`` (what a person enters, and where) and
    ``.wait()``. On Azure, nothing is started: sign in with ``az login`` in a terminal.
    """
    kit = target.current()
    login = AzLogin()
    if kit.target != target.SANDBOX:
        login.message = (
            "On Azure, sign in from a terminal: run `az login` (add --use-device-code on a "
            "machine without a browser), then run login.wait() to check."
        )
        show(Rich(f"<p>{esc(login.message)}</p>", login.message))
        return login
    env = dict(os.environ)
    sandbox_api.apply_env(env, kit.sandbox.persona("developer"))
    login.start(env)
    show(Rich(f"<p>{esc(login.message)}</p>", login.message))
    return login
