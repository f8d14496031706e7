"""A real JupyterHub room on this machine, for tests/test_room.py.

The parts are the ones a facilitator runs on one VM: JupyterHub from PyPI (the project's test
extras pin it), configurable-http-proxy from npm, local OS users, the local-process spawner and
``deploy/jupyterhub/local_hub_config.py``. Everything listens on 127.0.0.1. Learners' notebooks
run the way JupyterLab runs them: a session through the hub's proxy, then the kernel's
messages over its websocket.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

CHP_VERSION = "5.3.0"
CHP_CACHE = Path.home() / ".cache" / "acs-mi-kit" / f"configurable-http-proxy-{CHP_VERSION}"


def configurable_http_proxy() -> Path:
    """The hub's proxy, installed from npm once into a cache outside the repository."""
    exe = CHP_CACHE / "node_modules" / ".bin" / "configurable-http-proxy"
    if not exe.exists():
        npm = shutil.which("npm")
        assert npm, "the room test needs Node.js and npm (Debian: apt-get install nodejs npm)"
        subprocess.run(
            [npm, "install", "--prefix", str(CHP_CACHE), "--no-save", "--no-audit", "--no-fund",
             "--no-update-notifier", "--loglevel=error", f"configurable-http-proxy@{CHP_VERSION}"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Any, timeout: float) -> Any:
    """Poll ``check()`` until it returns something true; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


# -- local users ----------------------------------------------------------------------------


@dataclass
class OsUser:
    name: str
    uid: int
    home: Path
    created: bool  # by this test: it removes what it made, and only that

    def pids(self) -> list[int]:
        """Processes running as this user (the room's servers, kernels and sandboxes)."""
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and entry.stat().st_uid == self.uid:
                    found.append(int(entry.name))
            except OSError:  # it ended meanwhile
                pass
        return found


def ensure_user(name: str, homes: Path) -> OsUser:
    """The local user ``name``, made (home under ``homes``) if missing. One left by an
    interrupted room (its home was a room's temporary folder, now gone) is made anew."""
    created = False
    try:
        entry = pwd.getpwnam(name)
        if (
            entry.pw_dir.startswith(str(homes.parent.parent / "kit-room-"))
            and not Path(entry.pw_dir).exists()
        ):
            remove_user(OsUser(name, entry.pw_uid, Path(entry.pw_dir), created=True))
            raise KeyError(name)
    except KeyError:
        home = homes / name
        subprocess.run(
            ["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash",
             "--user-group", name],
            check=True, capture_output=True,
        )  # fmt: skip
        # World-readable homes, as on many machines: only the sandbox's own modes protect it.
        os.chmod(home, 0o755)
        created = True
    entry = pwd.getpwnam(name)
    return OsUser(name, entry.pw_uid, Path(entry.pw_dir), created)


def remove_user(user: OsUser) -> None:
    """If this test made ``user``: end what the room left running as them (each process by
    its id), then remove the user."""
    if not user.created:
        return
    for pid in user.pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(f"{user.name}'s processes to end", lambda: not user.pids(), 10)
    subprocess.run(["userdel", "--remove", user.name], capture_output=True)


# -- the hub --------------------------------------------------------------------------------


HUB_CONFIG = """
c = get_config()  # noqa: F821
load_subconfig({kit_config!r})  # noqa: F821 - the kit's part, as a facilitator uses it

# The room's part: everything on 127.0.0.1, state in the test's folder.
c.JupyterHub.bind_url = "http://127.0.0.1:{proxy_port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.JupyterHub.db_url = "sqlite:///{folder}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {cookie!r}
c.JupyterHub.log_level = "WARN"
c.Authenticator.allowed_users = {users!r}
c.Spawner.environment = {{**c.Spawner.environment, **{extra_env!r}}}
# The test drives the hub as a service: it starts servers and hands each learner a token.
c.JupyterHub.services = [{{"name": "room-test", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{
    "name": "room-test",
    "scopes": ["admin:users", "admin:servers", "tokens"],
    "services": ["room-test"],
}}]
"""


@dataclass
class Hub:
    """One JupyterHub process (it starts and stops its proxy and the learners' servers)."""

    kit: Path
    folder: Path
    users: list[str]
    extra_env: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_hex(32))
    proxy_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def start(self, env: dict[str, str], timeout: float = 60) -> None:
        config = self.folder / "jupyterhub_config.py"
        config.write_text(
            HUB_CONFIG.format(
                kit_config=str(self.kit / "deploy" / "jupyterhub" / "local_hub_config.py"),
                proxy_port=self.proxy_port,
                hub_port=free_port(),
                api_port=free_port(),
                proxy=str(configurable_http_proxy()),
                folder=self.folder,
                cookie=str(self.folder / "cookie-secret"),
                users=set(self.users),
                extra_env=self.extra_env,
                token=self.token,
            )
        )
        self.log = open(self.folder / "hub.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(Path(sys.prefix) / "bin" / "jupyterhub"), "-f", str(config)],
            cwd=self.folder, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for("the hub to answer", lambda: self._answers(), timeout)

    def _answers(self) -> bool:
        assert self.process.poll() is None, f"the hub exited: {self.log_tail()}"
        try:
            return self.api("GET", "/hub/api/") is not None
        except OSError:
            return False

    def log_text(self) -> str:
        """The hub's output, and the learners' servers' (the spawner passes its own on)."""
        return (self.folder / "hub.log").read_text(errors="replace")

    def log_tail(self) -> str:
        return self.log_text()[-4000:]

    def stop(self) -> None:
        """The hub stops the learners' servers and its proxy when it is interrupted."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self.log.close()

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """A call to the hub (or, under /user/, a learner's server) through the proxy."""
        req = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {token or self.token}"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else {}

    def start_server(self, name: str) -> None:
        self.api("POST", f"/hub/api/users/{name}/server", {})

    def server_ready(self, name: str) -> bool:
        server = self.api("GET", f"/hub/api/users/{name}")["servers"].get("")
        if server is None:  # it stopped: the spawner gave up
            raise AssertionError(f"{name}'s server did not start: {self.log_tail()}")
        return bool(server["ready"])

    def user_token(self, name: str) -> str:
        """A token of the learner's own (what their browser's sign-in amounts to)."""
        body = {"note": "room test", "expires_in": 3600}
        return self.api("POST", f"/hub/api/users/{name}/tokens", body)["token"]


# -- a notebook, run through the hub ----------------------------------------------------------


@dataclass
class Cell:
    status: str
    outputs: list[dict[str, Any]]

    @property
    def text(self) -> str:
        """Everything the cell showed as text: streams, results, displays, tracebacks."""
        parts = []
        for out in self.outputs:
            content = out["content"]
            if out["msg_type"] == "stream":
                parts.append(content["text"])
            elif out["msg_type"] == "error":
                parts.append("\n".join(content["traceback"]))
            else:
                parts.append(content.get("data", {}).get("text/plain", ""))
        return "".join(parts)

    def json(self) -> Any:
        """The last line the cell printed, as JSON (the room's probes print one)."""
        assert self.status == "ok", self.text
        return json.loads(self.text.strip().splitlines()[-1])


class Kernel:
    """A learner's kernel, as JupyterLab drives it: a session for a notebook, then
    ``execute_request`` messages over the kernel's websocket, all through the hub's proxy."""

    def __init__(self, hub: Hub, user: str, token: str, notebook: str) -> None:
        self.base = f"/user/{user}/api"
        self.hub, self.token = hub, token
        body = {"path": notebook, "type": "notebook", "name": notebook.rsplit("/", 1)[-1],
                "kernel": {"name": "python3"}}  # fmt: skip
        self.session_id = hub.api("POST", f"{self.base}/sessions", body, token)["id"]
        kernel_id = hub.api("GET", f"{self.base}/sessions/{self.session_id}", token=token)[
            "kernel"
        ]["id"]
        self.client_session = uuid.uuid4().hex
        url = hub.url.replace("http://", "ws://") + f"{self.base}/kernels/{kernel_id}/channels"
        self.ws = websocket.create_connection(
            f"{url}?session_id={self.client_session}",
            header=[f"Authorization: token {token}"],
            timeout=120,
        )

    def run(self, code: str, timeout: float = 120) -> Cell:
        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {"msg_id": msg_id, "msg_type": "execute_request",
                               "session": self.client_session, "username": "learner",
                               "version": "5.3", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ")},
                    "parent_header": {}, "metadata": {}, "buffers": [], "channel": "shell",
                    "content": {"code": code, "silent": False, "store_history": True,
                                "user_expressions": {}, "allow_stdin": False,
                                "stop_on_error": True},
                }
            )
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        outputs: list[dict[str, Any]] = []
        status, idle = None, False
        while status is None or not idle:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "execute_reply":
                status = msg["content"]["status"]
            elif kind == "status":
                idle = msg["content"]["execution_state"] == "idle"
            elif kind in ("stream", "display_data", "execute_result", "error"):
                outputs.append(msg)
        return Cell(status, outputs)

    def run_notebook(self, path: str) -> list[Cell]:
        """Every code cell of the learner's copy of a notebook, in order, until one fails."""
        notebook = self.hub.api("GET", f"{self.base}/contents/{path}", token=self.token)
        cells = []
        for cell in notebook["content"]["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = cell["source"]
            cells.append(self.run(source if isinstance(source, str) else "".join(source)))
            if cells[-1].status != "ok":
                break
        return cells

    def close(self) -> None:
        """The websocket only: the kernel ends with its server, when the hub stops."""
        self.ws.close()
