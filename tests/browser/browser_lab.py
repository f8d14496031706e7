"""The kit as a learner meets it: ``make tutorial`` (the README's first command), headless, and
Debian's Chromium driven by Playwright.

Nothing touches the user's real set-up: the sandbox, JupyterLab's settings, runtime files,
IPython's profile and the browser profile all live in a temporary folder, under a temporary
``HOME``. The notebooks are a copy, in a temporary kit folder whose other entries (the
Makefile, ``pyproject.toml``, ``.venv``) are links to the repository's, so ``make tutorial``
runs exactly as written without "Run All" (or autosave) ever writing into the repository.

No browser is downloaded: Chromium comes from the system (``.ci/run`` installs the Debian
package), and the flags below keep it from calling home. Its resolver maps every name but
the loopback address to nothing, so a stray request fails instead of leaving the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from sandbox.config import Settings
from sandbox.personas import CREDENTIAL_VARIABLES
from tools.notebook_env import GUARD

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("KIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
LAB_START_TIMEOUT = 120.0
SCRATCH = "widgets-scratch.ipynb"
# The notebooks show neither the token inspector nor the role switch, so a learner's own
# scratch notebook creates them, as the helpers' docs say: the VM's identity on, no role yet.
SCRATCH_CELLS = [
    """import helpers
from azure.identity import AzureCliCredential, ManagedIdentityCredential
from helpers import progress, widgets

kit = helpers.setup()
kit.sandbox.call("POST", "/_sandbox/reset")
helpers.catch_up(through=1)
helpers.act_as("developer")
principals = progress.enable_identities(kit, AzureCliCredential())
helpers.act_as("vm-tutorial")
print("VM principal:", principals["vm"])""",
    "widgets.token_inspector(ManagedIdentityCredential())",
    """widgets.role_switch(principals["vm"], credential=ManagedIdentityCredential())""",
]
# Settings for a test run, in both front ends: every cell in the DOM (no windowing), no autosave.
# News and update checks are left to the kit's own settings (jupyter-config/), which the tests
# check: no news toast, and no request from the server beyond the machine.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}
# The front ends ``make tutorial`` opens: JupyterLab (its default) and Notebook 7.
APPS = ("lab", "notebook")


def lab_env(root: Path) -> dict[str, str]:
    """The environment for ``make tutorial``: this process's, minus anything that steers a
    credential, the target or the sandbox, with every per-user folder inside ``root``; every
    Python process it starts (the Jupyter server, kernels, the sandbox) carries the loopback
    guard, which records in ``root``/non-loopback.log any connection it refused."""
    drop = set(CREDENTIAL_VARIABLES) | {"REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("SANDBOX_", "JUPYTER", "KIT_", "PYTEST", "MAKE"))
    }
    home = root / "home"
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        SANDBOX_STATE_DIR=str(root / "sandbox-state"),
        SANDBOX_HTTPS_PORT="0",
        SANDBOX_MI_PORT="0",
        KIT_TARGET="sandbox",
        JUPYTER_CONFIG_DIR=str(root / "jupyter" / "config"),
        JUPYTER_DATA_DIR=str(root / "jupyter" / "data"),
        JUPYTER_RUNTIME_DIR=str(root / "jupyter" / "runtime"),
        IPYTHONDIR=str(root / "ipython"),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(GUARD), os.environ.get("PYTHONPATH")])),
        KIT_LOOPBACK_GUARD_LOG=str(root / "non-loopback.log"),
    )
    return env


def scratch_notebook() -> dict[str, Any]:
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"scratch-{i}", "metadata": {},
         "outputs": [], "source": source}
        for i, source in enumerate(SCRATCH_CELLS)
    ]  # fmt: skip
    kernel = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    return {
        "cells": cells,
        "metadata": {"kernelspec": kernel, "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


class Lab:
    """A running ``make tutorial`` (``app``: ``lab``, its default, or ``notebook`` for Notebook
    7): the server's URL and token, the kit folder it serves, and the sandbox the notebooks use."""

    def __init__(self, root: Path, app: str = "lab") -> None:
        assert app in APPS, app
        self.app = app
        self.root = root
        self.kit = root / "kit"
        self.env = lab_env(root)
        self.token = secrets.token_hex(24)
        self.settings = Settings(
            state_dir=Path(self.env["SANDBOX_STATE_DIR"]), https_port=0, mi_port=0
        )
        self.log = root / "make-tutorial.log"
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    # -- set-up ----------------------------------------------------------------------------

    def prepare(self) -> None:
        self.kit.mkdir(parents=True)
        for name in ("Makefile", "pyproject.toml", ".venv"):
            (self.kit / name).symlink_to(REPO / name)
        shutil.copytree(REPO / "notebooks", self.kit / "notebooks")
        (self.kit / "notebooks" / SCRATCH).write_text(json.dumps(scratch_notebook(), indent=1))
        for name in ("home", "ipython", "jupyter/config", "jupyter/data", "jupyter/runtime"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        for rel, doc in LAB_SETTINGS.items():
            self.user_setting(rel, doc)

    def user_setting(self, rel: str, doc: dict[str, Any]) -> None:
        """A setting as the learner would save it (both front ends read the same folder)."""
        path = Path(self.env["JUPYTER_CONFIG_DIR"]) / "lab" / "user-settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))

    def start(self) -> None:
        jupyter_args = " ".join(
            [
                "--no-browser",
                "--ip=127.0.0.1",
                "--port=0",
                f"--IdentityProvider.token={self.token}",
            ]
        )
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                # -o: never reinstall from inside a test; `make test` has just done that.
                [
                    "make",
                    "--no-print-directory",
                    "-o",
                    ".venv/.installed-stamp",
                    "tutorial",
                    f"JUPYTER_APP={self.app}",
                    f"JUPYTER_ARGS={jupyter_args}",
                ],  # fmt: skip
                cwd=self.kit,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        runtime = Path(self.env["JUPYTER_RUNTIME_DIR"])
        deadline = time.monotonic() + LAB_START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"make tutorial ended early:\n{self.log_tail()}"
            for info in runtime.glob("jpserver-*.json"):
                with contextlib.suppress(ValueError, OSError):
                    doc = json.loads(info.read_text())
                    url = f"http://127.0.0.1:{doc['port']}"
                    if self._answers(url):
                        self.url = url
                        return
            time.sleep(0.1)
        raise AssertionError(f"JupyterLab did not answer in time:\n{self.log_tail()}")

    def _answers(self, url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={self.token}", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    # -- use -------------------------------------------------------------------------------

    def api(self, method: str, path: str) -> Any:
        """A call to the Jupyter server's REST API (for clean-up only, never to run cells)."""
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    def page_url(self, path: str = "lab") -> str:
        return f"{self.url}/{path}?token={self.token}"

    def refused(self) -> list[str]:
        """What the loopback guard refused so far: connections beyond 127.0.0.1 that the server,
        a kernel or the sandbox tried to open."""
        with contextlib.suppress(FileNotFoundError):
            return (self.root / "non-loopback.log").read_text().splitlines()
        return []

    def sandbox_status(self) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "sandbox", "status", "--json"],
            env=self.env,
            cwd=self.kit,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    # -- tear-down -------------------------------------------------------------------------

    def _our_processes(self) -> list[int]:
        """Kernels and helpers that mention this run's private folder (and nothing else)."""
        mine = []
        marker = str(self.root).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes()
                environ = (entry / "environ").read_bytes()
                if marker in cmdline or marker in environ:
                    mine.append(int(entry.name))
        return mine

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        subprocess.run(
            [sys.executable, "-m", "sandbox", "stop"],
            env=self.env,
            cwd=self.kit,
            capture_output=True,
            timeout=60,
        )
        # Kernels run in sessions of their own; any left behind (after a SIGKILL above) go too.
        for pid in self._our_processes():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


OUTCOME = pytest.StashKey[pytest.TestReport]()


def screenshot_on_failure(request: pytest.FixtureRequest, page: Any) -> None:
    """Keep what the browser showed when a test failed, as a CI artifact."""
    report = request.node.stash.get(OUTCOME, None)
    if report is None or not report.failed:
        return
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)[-150:]
    with contextlib.suppress(Exception):  # a crashed page must not hide the test's own error
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
