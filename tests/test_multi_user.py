"""Many learners, one machine (a JupyterHub on one VM): two OS users' sandboxes never collide,
and neither learner gets into the other's sandbox.

Both learners start their sandbox the way every hosted set-up does, through ``binder/start``
with their own ``HOME``: root, and ``nobody`` (a real second user, so the test needs root;
CI runs as root). Like a hub image, the kit is installed where every user can read it: a
temporary world-readable folder holding the system Python's view of the project's packages
(hard links to the venv's files, so it costs well under a second) and a copy of ``sandbox/``
and ``binder/start``. The venv itself may not be usable by another user: its interpreter is a
link into root's home.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from shared_install import SYSTEM_PYTHON, check_system_python
from shared_install import share_tree as _share_tree

from sandbox import world

REPO = Path(__file__).resolve().parent.parent
NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="becoming another OS user needs root")
pytestmark = needs_root


@dataclass
class Learner:
    name: str
    uid: int
    home: Path
    env: dict[str, str]

    def run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args,
            user=self.uid,
            group=self.uid,
            extra_groups=[],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def python(self, code: str, *args: str) -> Any:
        """Run a script as this learner; its last line of output, as JSON."""
        out = self.run([SYSTEM_PYTHON, "-c", textwrap.dedent(code), *args])
        assert out.returncode == 0, f"as {self.name}: {out.stderr[-3000:]}"
        return json.loads(out.stdout.strip().splitlines()[-1])

    def status(self) -> dict[str, Any]:
        out = self.run([SYSTEM_PYTHON, "-m", "sandbox", "status", "--json"])
        assert out.returncode == 0, f"as {self.name}: {out.stderr}"
        return json.loads(out.stdout)


@pytest.fixture(scope="module")
def machine() -> Iterator[dict[str, Learner]]:
    """The kit installed for everyone, and two learners who each ran ``binder/start``."""
    check_system_python()
    shared = Path(tempfile.mkdtemp(prefix="kit-for-all-", dir="/tmp"))
    learners: dict[str, Learner] = {}
    try:
        os.chmod(shared, 0o755)
        site = shared / "site-packages"
        _share_tree(Path(sysconfig.get_paths()["purelib"]), site)
        for editable in site.glob("__editable__*"):  # the repo's packages come as copies
            editable.unlink()
        _share_tree(REPO / "sandbox", site / "sandbox")
        _share_tree(REPO / "binder", shared / "kit" / "binder")
        for name, uid in (("root", 0), ("nobody", NOBODY)):
            home = shared / f"home-{name}"
            home.mkdir(mode=0o700)
            os.chown(home, uid, uid)
            env = {
                "HOME": str(home),
                "PATH": "/usr/bin:/bin",
                "PYTHONPATH": str(site),
                "PYTHONDONTWRITEBYTECODE": "1",
                "KIT_PYTHON": SYSTEM_PYTHON,
            }
            learner = Learner(name, uid, home, env)
            out = learner.run(["bash", str(shared / "kit" / "binder" / "start")], timeout=120)
            assert out.returncode == 0 and "sandbox ready" in out.stderr, out.stderr[-3000:]
            learners[name] = learner
        yield learners
    finally:
        for learner in learners.values():
            learner.run([SYSTEM_PYTHON, "-m", "sandbox", "stop"])
        shutil.rmtree(shared, ignore_errors=True)


def test_each_learner_has_a_private_state_folder_and_free_ports(machine):
    root, nobody = machine["root"].status(), machine["nobody"].status()
    for learner, doc in ((machine["root"], root), (machine["nobody"], nobody)):
        folder = Path(doc["state_dir"])
        assert folder == learner.home / ".local" / "state" / "acs-mi-sandbox"
        info = os.stat(folder)
        assert (info.st_uid, info.st_mode & 0o077) == (learner.uid, 0), oct(info.st_mode)
        assert os.stat(f"/proc/{doc['pid']}").st_uid == learner.uid  # runs as its learner
    ports = {root["https_url"], root["mi_url"], nobody["https_url"], nobody["mi_url"]}
    assert len(ports) == 4, ports
    assert root["pid"] != nobody["pid"]


SEND_AND_READ = """
    import json, os, sys
    from urllib.parse import quote
    from sandbox import client
    from sandbox.config import Settings

    settings = Settings.from_env()
    doc = client.running_instance(settings)
    os.environ["REQUESTS_CA_BUNDLE"] = doc["ca_bundle"]
    from azure.communication.sms import SmsClient

    conn = client.control(settings, "GET", "/_sandbox/acs/connection-string")
    sms = SmsClient.from_connection_string(conn["connection_string"], retry_total=0)
    [result] = sms.send(from_=sys.argv[1], to=sys.argv[2], message=sys.argv[3])
    inbox = client.control(settings, "GET", "/_sandbox/inbox/" + quote(sys.argv[2]))
    texts = [m["message"] for m in inbox["messages"]]
    print(json.dumps({"sent": result.successful, "inbox": texts}))
"""


def test_the_same_phone_number_has_a_separate_inbox_in_each_sandbox(machine):
    phone = world.LEARNER_PHONES[0]
    seen = {}
    for name, learner in machine.items():
        seen[name] = learner.python(SEND_AND_READ, world.SENDER_NUMBERS[0], phone, f"for {name}")
        assert seen[name]["sent"] is True
    assert seen["root"]["inbox"] == ["for root"]
    assert seen["nobody"]["inbox"] == ["for nobody"]


ATTACK = """
    import json, ssl, sys, urllib.error, urllib.parse, urllib.request
    from sandbox import world
    from sandbox.config import Settings
    from sandbox.state import open_store

    other_url, other_state, code, phone, other_mi_port = sys.argv[1:6]
    settings = Settings.from_env()
    own_secret = settings.secret_file.read_text().strip()
    store = open_store(settings)
    own_password = world.installation_secrets(store)["developer_password"]
    store.close()
    found = {}
    for name in ("control-secret", "sandbox.sqlite3", "ca.pem"):
        try:
            open(other_state + "/" + name, "rb").read()
            found["read " + name] = "read"
        except OSError as e:
            found["read " + name] = type(e).__name__
    ctx = ssl._create_unverified_context()

    def call(method, path, data=None, headers=None):
        req = urllib.request.Request(other_url + path, method=method, data=data,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    mine = {"X-Sandbox-Secret": own_secret}
    for method, path in (("GET", "/_sandbox/info"), ("GET", "/_sandbox/inbox/" + phone),
                         ("GET", "/_sandbox/inbox"), ("GET", "/_sandbox/device-codes"),
                         ("POST", "/_sandbox/device-codes/" + code + "/approve"),
                         ("GET", "/_sandbox/acs/connection-string"),
                         ("GET", "/_sandbox/personas/service-principal")):
        found[method + " " + path] = call(method, path, b"" if method == "POST" else None,
                                          mine)[0]
    for action in ("approve", "deny"):
        form = urllib.parse.urlencode({"otc": code, "username": world.DEVELOPER_UPN,
                                       "password": own_password, "action": action}).encode()
        status, page = call("POST", "/devicelogin", form,
                            {"Content-Type": "application/x-www-form-urlencoded"})
        found["sign-in " + action] = [status, "password is incorrect" in page]
    # The identity listener's port is visible to all; its paths carry the owner's secret segment.
    mi_req = urllib.request.Request(
        "http://127.0.0.1:" + other_mi_port + "/hosts/vm-tutorial/metadata/identity/oauth2/token"
        "?api-version=2018-02-01&resource=https://communication.azure.com/",
        headers={"Metadata": "true"})
    try:
        with urllib.request.urlopen(mi_req, timeout=10) as resp:
            found["identity endpoint"] = resp.status
    except urllib.error.HTTPError as e:
        found["identity endpoint"] = e.code
    print(json.dumps(found))
"""


def _device_code(doc: dict[str, Any]) -> str:
    """Start ``az login``'s device-code flow at a sandbox; the code its user would type."""
    import ssl
    import urllib.parse
    import urllib.request

    form = urllib.parse.urlencode(
        {"client_id": world.AZURE_CLI_CLIENT_ID, "scope": "https://management.azure.com/.default"}
    ).encode()
    req = urllib.request.Request(
        f"{doc['https_url']}/{world.TENANT_ID}/oauth2/v2.0/devicecode", data=form, method="POST"
    )
    ctx = ssl.create_default_context(cafile=doc["ca_file"])
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        return json.loads(resp.read())["user_code"]


def _pending(learner: Learner) -> list[str]:
    codes = learner.python(
        """
        import json
        from sandbox import client
        from sandbox.config import Settings
        found = client.control(Settings.from_env(), "GET", "/_sandbox/device-codes")["value"]
        print(json.dumps([c["user_code"] for c in found]))
        """
    )
    return codes


def test_a_learner_cannot_drive_read_or_approve_sign_ins_of_another_learners_sandbox(machine):
    victim, intruder = machine["root"], machine["nobody"]
    doc = victim.status()
    code = _device_code(doc)
    assert code in _pending(victim)

    found = intruder.python(
        ATTACK,
        doc["https_url"],
        doc["state_dir"],
        code,
        world.LEARNER_PHONES[0],
        str(urlsplit(doc["mi_url"]).port),
    )
    assert found.pop("identity endpoint") == 400

    for name in ("control-secret", "sandbox.sqlite3", "ca.pem"):
        assert found.pop(f"read {name}") == "PermissionError", name
    # The intruder's own, valid secret opens nothing but the intruder's own sandbox.
    for action in ("approve", "deny"):
        assert found.pop(f"sign-in {action}") == [401, True], action
    assert found and all(status == 401 for status in found.values()), found
    assert code in _pending(victim)  # the sign-in still waits for its owner


def test_the_owners_password_is_what_the_sign_in_page_wants(machine):
    """The refusal above is about whose password it is: the owner's own succeeds."""
    owner = machine["root"]
    doc = owner.status()
    code = _device_code(doc)
    result = owner.python(
        """
        import json, ssl, sys, urllib.parse, urllib.request
        from sandbox import world
        from sandbox.config import Settings
        from sandbox.state import open_store
        settings = Settings.from_env()
        store = open_store(settings)
        password = world.installation_secrets(store)["developer_password"]
        store.close()
        form = urllib.parse.urlencode({"otc": sys.argv[2], "username": world.DEVELOPER_UPN,
                                       "password": password}).encode()
        ctx = ssl.create_default_context(cafile=str(settings.ca_file))
        with urllib.request.urlopen(sys.argv[1] + "/devicelogin", data=form, context=ctx) as r:
            print(json.dumps(r.status))
        """,
        doc["https_url"],
        code,
    )
    assert result == 200
    assert code not in _pending(owner)
