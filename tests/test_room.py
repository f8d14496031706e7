"""A real room: a JupyterHub on one machine, three local learners, each with their own sandbox,
and nothing one learner does reaches another's.

The hub is JupyterHub from PyPI with configurable-http-proxy from npm, the local-process
spawner and the kit's ``deploy/jupyterhub/local_hub_config.py``, all on 127.0.0.1. The kit is
installed as a facilitator installs it (a world-readable folder with its own environment), the
learners are real OS users (made here when missing, so the test needs root; CI runs as root),
and each learner's server starts their sandbox through ``binder/start``, the hook Binder and the
dev container use. Each learner then runs the welcome notebook through the hub, and the probes
below run in the learners' own kernels, the way a curious learner would try them: their homes
are world-readable and every port is visible to everyone (``ss -ltn``), so only the sandbox's
own protections stand between neighbours. Every process the room starts loads the loopback
guard (tests/loopback_guard), and its log must stay empty.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hub_room import Cell, Hub, Kernel, OsUser, ensure_user, remove_user, wait_for
from shared_install import REPO, install_kit, share_tree

from sandbox import world

pytestmark = pytest.mark.xdist_group("room")  # one room per run (`make test` groups them)

# Each xdist worker that runs room tests gets its own learners (only one does in `make test`).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
NAMES = [f"kitroom{n}{'' if _WORKER in ('', 'gw0') else _WORKER}" for n in (1, 2, 3)]
WELCOME = "acs-mi-kit/notebooks/00-welcome.ipynb"
WELCOME_CODE_CELLS = [
    cell
    for cell in json.loads((REPO / "notebooks" / "00-welcome.ipynb").read_text())["cells"]
    if cell["cell_type"] == "code"
]
ACS = "https://communication.azure.com"
ARM = "https://management.azure.com"


@dataclass
class Learner:
    user: OsUser
    kernel: Kernel
    welcome: list[Cell]
    seen: dict[str, Any]  # what the learner's kernel reports about itself after the notebook

    @property
    def sandbox(self) -> dict[str, Any]:
        return self.seen["status"]

    def probe(self, code: str, **args: Any) -> Any:
        """Run ``code`` in this learner's kernel with ``ARGS`` set; what it printed last."""
        return self.kernel.run(
            f"import json\nARGS = json.loads({json.dumps(args)!r})\n{code}"
        ).json()


@dataclass
class Room:
    hub: Hub
    learners: list[Learner]
    guard_log: Path
    seconds_to_ready: float

    def pairs(self) -> Iterator[tuple[Learner, Learner]]:
        """Every (intruder, neighbour) pair."""
        for intruder in self.learners:
            for neighbour in self.learners:
                if neighbour is not intruder:
                    yield intruder, neighbour


WHO_AM_I = """
import os, sys, sitecustomize
print(json.dumps({"uid": os.getuid(), "status": kit.sandbox.status,
                  "guard": sitecustomize.__file__, "python": sys.executable}))
"""


def _join(hub: Hub, user: OsUser) -> Learner:
    """A learner signs in (a token of their own), opens the welcome notebook and runs it."""
    kernel = Kernel(hub, user.name, hub.user_token(user.name), WELCOME)
    welcome = kernel.run_notebook(WELCOME)
    seen = kernel.run(f"import json\n{WHO_AM_I}").json() if welcome[-1].status == "ok" else {}
    return Learner(user, kernel, welcome, seen)


def _stop_sandbox(user: OsUser, kit: Path) -> None:
    """The learner's sandbox outlives their server, as designed: they stop it."""
    subprocess.run(
        [str(kit / ".venv" / "bin" / "python"), "-m", "sandbox", "stop"],
        user=user.uid, group=user.uid, extra_groups=[], cwd=user.home,
        env={"HOME": str(user.home), "PATH": "/usr/bin:/bin"}, capture_output=True, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def room() -> Iterator[Room]:
    began = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="kit-room-", dir="/tmp"))
    os.chmod(folder, 0o755)
    users: list[OsUser] = []
    learners: list[Learner] = []
    hub = None
    guard_log = folder / "loopback-guard.log"
    try:
        install_kit(folder / "kit", scripts=("jupyterhub-singleuser",))
        share_tree(REPO / "tests" / "loopback_guard", folder / "guard")
        guard_log.touch()
        os.chmod(guard_log, 0o666)  # every learner's processes append their refusals
        guard = {"PYTHONPATH": str(folder / "guard"), "KIT_LOOPBACK_GUARD_LOG": str(guard_log)}
        (folder / "homes").mkdir(mode=0o755)
        users = [ensure_user(name, folder / "homes") for name in NAMES]
        (folder / "hub").mkdir(mode=0o700)
        hub = Hub(folder / "kit", folder / "hub", NAMES, extra_env=guard)
        node = os.path.dirname(shutil.which("node") or "/usr/bin/node")  # the proxy's runtime
        hub.start(env={"PATH": f"{node}:/usr/bin:/bin", "LANG": "C.UTF-8", **guard})
        with ThreadPoolExecutor(len(users)) as pool:  # a room signs in at once
            list(pool.map(hub.start_server, NAMES))  # each answers when started, or after 10 s
            for name in NAMES:
                wait_for(f"{name}'s server", lambda name=name: hub.server_ready(name), 120)
            learners = list(pool.map(lambda user: _join(hub, user), users))
        yield Room(hub, learners, guard_log, time.monotonic() - began)
    finally:
        for learner in learners:
            learner.kernel.close()
        with ThreadPoolExecutor(len(users) + 1) as pool:  # all at once: they are independent
            stopping = pool.submit(hub.stop) if hub is not None else None
            list(pool.map(lambda user: _stop_sandbox(user, folder / "kit"), users))
            if stopping is not None:
                stopping.result()
            list(pool.map(remove_user, users))  # after the hub: their servers ran as them
        refusals = guard_log.read_text() if guard_log.exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        assert refusals == "", f"a room process tried to leave loopback: {refusals}"


# -- every learner has a working room -----------------------------------------------------------


def test_room_each_learner_ran_the_welcome_notebook_through_the_hub(room):
    print(f"room ready (hub, 3 servers, 3 welcome notebooks) in {room.seconds_to_ready:.1f} s")
    for learner in room.learners:
        cells = learner.welcome
        failed = [cell.text for cell in cells if cell.status != "ok"]
        assert not failed, (learner.user.name, failed)
        assert len(cells) == len(WELCOME_CODE_CELLS), (learner.user.name, len(cells))
        shown = "".join(cell.text for cell in cells)
        assert "✗" not in shown, (learner.user.name, shown)  # doctor and the check: all ✓
        assert "(az login done)" in cells[-1].text, cells[-1].text


def test_room_each_learner_has_their_own_sandbox_started_by_the_hook(room):
    log = room.hub.log_text()
    ports, pids = set(), set()
    for learner in room.learners:
        user, doc = learner.user, learner.sandbox
        assert learner.seen["uid"] == user.uid  # the kernel runs as its learner
        assert learner.seen["python"] == str(room.hub.kit / ".venv" / "bin" / "python")
        assert learner.seen["guard"].startswith(str(room.guard_log.parent / "guard"))
        state = user.home / ".local" / "state" / "acs-mi-sandbox"
        assert Path(doc["state_dir"]) == state
        assert f"acs-mi-kit: sandbox ready (state folder {state})" in log  # binder/start said so
        assert os.stat(f"/proc/{doc['pid']}").st_uid == user.uid  # the sandbox runs as them
        copy = user.home / "acs-mi-kit" / "notebooks" / "00-welcome.ipynb"
        assert os.stat(copy).st_uid == user.uid  # the hook's copy of the notebooks is theirs
        ports |= {doc["https_url"], doc["mi_url"]}
        pids.add(doc["pid"])
    assert len(ports) == 2 * len(room.learners) and len(pids) == len(room.learners), (ports, pids)


# -- nothing reaches a neighbour ----------------------------------------------------------------


def test_room_state_folders_are_private(room):
    for learner in room.learners:
        state = Path(learner.sandbox["state_dir"])
        info = os.stat(state)
        assert (info.st_uid, info.st_mode & 0o777) == (learner.user.uid, 0o700), oct(info.st_mode)
        for name in ("control-secret", "ca-key.pem", "server-key.pem", "signing-key.pem"):
            info = os.stat(state / name)
            assert (info.st_uid, info.st_mode & 0o777) == (learner.user.uid, 0o600), name
    for intruder, neighbour in room.pairs():
        state = neighbour.sandbox["state_dir"]
        found = intruder.probe(READ_FOLDER, state=state, files=sorted(os.listdir(state)))
        assert found and set(found.values()) == {"PermissionError"}, (intruder.user.name, found)


READ_FOLDER = """
found = {}
for name in [None, *ARGS["files"]]:
    try:
        if name is None:
            os.listdir(ARGS["state"])
        else:
            open(os.path.join(ARGS["state"], name), "rb").read()
        found[str(name)] = "read"
    except OSError as e:
        found[str(name)] = type(e).__name__
print(json.dumps(found))
"""


INBOX = """
from urllib.parse import quote
inbox = kit.sandbox.call("GET", "/_sandbox/inbox/" + quote(ARGS["phone"]))["messages"]
"""

SEND_AND_READ = (
    """
from azure.communication.sms import SmsClient

conn = kit.sandbox.call("GET", "/_sandbox/acs/connection-string")["connection_string"]
[sent] = SmsClient.from_connection_string(conn, retry_total=0).send(
    from_=kit.sender, to=ARGS["phone"], message=ARGS["text"])
"""
    + INBOX
    + """
print(json.dumps({"sent": sent.successful, "inbox": [m["message"] for m in inbox]}))
"""
)

CONTROL_ROUTES = [
    ("GET", "/_sandbox/info"),
    ("GET", "/_sandbox/inbox"),
    ("GET", "/_sandbox/log"),
    ("GET", "/_sandbox/acs/connection-string"),
    ("GET", "/_sandbox/personas/service-principal"),
    ("GET", "/_sandbox/device-codes"),
    ("POST", "/_sandbox/reset"),
]

CALL_NEIGHBOUR = """
import ssl, urllib.error, urllib.request
from pathlib import Path
from urllib.parse import quote

own_secret = Path(kit.sandbox.status["state_dir"], "control-secret").read_text().strip()
context = ssl._create_unverified_context()  # the neighbour's CA is in their private folder
found = {}
for method, path in [*ARGS["routes"], ["GET", "/_sandbox/inbox/" + quote(ARGS["phone"])]]:
    for secret in (own_secret, None):
        req = urllib.request.Request(ARGS["url"] + path, method=method,
                                     data=b"" if method == "POST" else None,
                                     headers={"X-Sandbox-Secret": secret} if secret else {})
        try:
            with urllib.request.urlopen(req, context=context, timeout=10) as resp:
                found[f"{method} {path} {bool(secret)}"] = resp.status
        except urllib.error.HTTPError as e:
            found[f"{method} {path} {bool(secret)}"] = e.code
print(json.dumps(found))
"""


def test_room_control_api_and_inbox_are_private(room):
    phone = world.LEARNER_PHONES[0]  # the same number in every sandbox
    for learner in room.learners:
        text = f"for {learner.user.name}"
        result = learner.probe(SEND_AND_READ, phone=phone, text=text)
        assert result == {"sent": True, "inbox": [text]}, (learner.user.name, result)
    for intruder, neighbour in room.pairs():
        found = intruder.probe(
            CALL_NEIGHBOUR, url=neighbour.sandbox["https_url"], routes=CONTROL_ROUTES, phone=phone
        )
        assert len(found) == 2 * (len(CONTROL_ROUTES) + 1), found
        assert set(found.values()) == {401}, (intruder.user.name, neighbour.user.name, found)
    for learner in room.learners:  # nothing was reset or read: each inbox still holds its own
        inbox = learner.probe(
            INBOX + 'print(json.dumps([m["message"] for m in inbox]))', phone=phone
        )
        assert inbox == [f"for {learner.user.name}"], inbox


# -- D1: the managed-identity listener ------------------------------------------------------------

OWN_VM_TOKEN = """
import helpers
from azure.identity import ManagedIdentityCredential
from helpers.redact import token_claims

helpers.catch_up(through=1)  # notebook 1: the VM (and the Function app) get their identity
with helpers.acting_as("vm-tutorial"):
    claims = token_claims(ManagedIdentityCredential().get_token(ARGS["scope"]).token)
print(json.dumps({"aud": claims["aud"], "idtyp": claims["idtyp"]}))
"""

MINT_NEIGHBOURS_TOKENS = """
import urllib.error, urllib.request
from urllib.parse import quote, urlsplit, urlunsplit

def on_neighbours_port(url):  # the learner's own, valid address, aimed at the neighbour's port
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{ARGS['port']}"))

vm = kit.sandbox.persona("vm-tutorial")["set"]
func = kit.sandbox.persona("func-tutorial")["set"]
imds = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
attempts = {}
for resource in ARGS["resources"]:
    attempts["documented IMDS path " + resource] = (
        f"http://127.0.0.1:{ARGS['port']}/hosts/vm-tutorial{imds}{quote(resource)}",
        {"Metadata": "true"})
    attempts["own IMDS address " + resource] = (
        on_neighbours_port(vm["AZURE_POD_IDENTITY_AUTHORITY_HOST"]) + imds + quote(resource),
        {"Metadata": "true"})
    attempts["own App Service address " + resource] = (
        on_neighbours_port(func["IDENTITY_ENDPOINT"])
        + "?api-version=2019-08-01&resource=" + quote(resource),
        {"X-IDENTITY-HEADER": func["IDENTITY_HEADER"]})
found = {}
for name, (url, headers) in attempts.items():
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            body = r.read().decode()
            found[name] = [r.status, "access_token" in body]
    except urllib.error.HTTPError as e:
        found[name] = [e.code, "access_token" in e.read().decode()]
print(json.dumps(found))
"""


def test_room_identity_listener_is_private(room):
    """D1 (security review 2026-12): a learner must not mint a neighbour's managed-identity
    tokens. The neighbours' VMs have an identity (notebook 1's step, and their owners get its
    tokens through the SDK); every other learner, knowing the neighbour's port (``ss -ltn``)
    and the documented path, or reusing their own valid address on that port, gets a 4xx."""
    for learner in room.learners:
        own = learner.probe(OWN_VM_TOKEN, scope=f"{ACS}/.default")
        assert own == {"aud": ACS, "idtyp": "app"}, (learner.user.name, own)
    for intruder, neighbour in room.pairs():
        port = int(neighbour.sandbox["mi_url"].rsplit(":", 1)[1].split("/")[0])
        found = intruder.probe(MINT_NEIGHBOURS_TOKENS, port=port, resources=[ACS, ARM])
        assert len(found) == 6, found
        minted = {k: v for k, v in found.items() if not (400 <= v[0] < 500 and not v[1])}
        assert not minted, (
            f"{intruder.user.name} got tokens from {neighbour.user.name}'s identity listener: "
            f"{minted}"
        )
