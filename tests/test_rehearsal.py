"""The rehearsal: every notebook, in order, on the azure target, with the sandbox as the cloud.

Nobody here has a subscription, so the Azure path is rehearsed against the sandbox playing a
private Azure cloud (docs/custom-cloud.md). The kernel is configured the way a learner's is: only
through a ``.env`` file (``KIT_TARGET=azure``, the cloud's three endpoints, the resource names,
the phones, the developer's service principal, the CA bundle, ``KIT_ASSUME_YES=1``). It gets no
persona, no ``SANDBOX_*`` variable and no control API: whatever a cell does, it does through the
SDKs and the ``az`` on PATH, as on Azure.

The harness plays the learner and nothing else. It starts the sandbox with its resource group
empty (``sandbox reset --empty``: the learner's subscription before the tutorial); registers and
selects the sandbox's cloud with the kit's ``az`` (sandbox/azcli.py, on PATH as the learner's
``az``); runs ``az login --use-device-code`` and completes it at the sign-in page with the
developer's password, as a person would in a browser; writes ``.env`` and runs ``python -m
helpers.provision``, which creates the tutorial's world through Resource Manager. Then it adds
what provisioning printed (the ACS endpoint) and the phone number bought in the portal (the
learner's manual step, see ``after_provisioning``) to ``.env``, runs provisioning again (it
creates nothing and puts the number in the Function app's settings), and runs
notebooks/NN-*.ipynb in order, each in a kernel of its own (a learner opening the next
notebook), in the folder that holds that ``.env``.

Every cell must run without error, except those tagged ``raises-exception`` (expected refusals);
the first cell that errors fails the test, naming the notebook, the cell and the error. So does a
cell that says something went wrong without raising (a ✗, a declined confirmation), a
notebook that does not show what it is there to show (``SHOWN``), and an ACS user still there
after notebook 7 (the tutorial leaves nothing behind in a subscription).

Every process (the sandbox, the kernels, ``az``, the programs Run Command starts, the Function
app) runs under tests/loopback_guard. The only refusals allowed in its log are the kernel's
``DefaultAzureCredential`` probing the instance metadata service at 169.254.169.254, which a
developer's laptop does on Azure too and where nothing answers: ``ManagedIdentityCredential``
probes once per credential (no retries), and the refusal is the "nothing there" a laptop gets.
Anything else in the log (another address, a DNS lookup, a process that is not a kernel) fails
the test. See docs/custom-cloud.md, "The rehearsal".
"""

from __future__ import annotations

import json
import os
import queue
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from sandbox import personas, world
from tools.notebook_env import notebook_env

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))
CELL_TIMEOUT = 300
KERNEL_START_TIMEOUT = 180  # seconds; about 2 s alone, far more on a machine the suite loads
CLOUD = "KitSandboxCloud"
AUDIENCE = "https://management.core.windows.net/"  # the audience Azure Stack Hub's ARM uses too
# A refused lookup of the address (the guard refuses getaddrinfo first) or connect to it.
IMDS_PROBES = {"DNS lookup of '169.254.169.254'", "connect to ('169.254.169.254', 80)"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PROMPT = re.compile(r"open the page (?P<url>\S+) and enter the code (?P<code>\S+?)\.? ")


@dataclass
class Learner:
    """The learner's machine: a working folder with .env, a shell environment, an ``az``."""

    folder: Path
    env: dict[str, str]
    sandbox: dict[str, Any]
    guard_log: Path
    timings: dict[str, float] = field(default_factory=dict)
    kernel_pids: set[str] = field(default_factory=set)
    refusals: dict[str, dict[int, list[str]]] = field(default_factory=dict)  # notebook -> cell

    def az(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["az", *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        if check:
            assert result.returncode == 0, f"az {' '.join(args)} failed: {result.stderr}"
        return result


def _sandbox_env(state: Path, guard_log: Path) -> dict[str, str]:
    return notebook_env(state, guard_log)


def start_sandbox(state: Path, guard_log: Path) -> dict[str, Any]:
    """The harness starts a fresh sandbox (its own state folder, free ports, under the guard)."""
    env = _sandbox_env(state, guard_log)
    run = [sys.executable, "-m", "sandbox"]
    subprocess.run([*run, "start"], env=env, check=True, capture_output=True, timeout=60)
    status = subprocess.run(
        [*run, "status", "--json"], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(status.stdout)


def empty_resource_group(state: Path, guard_log: Path) -> None:
    """The learner's subscription before provisioning: the resource group holds nothing."""
    subprocess.run(
        [sys.executable, "-m", "sandbox", "reset", "--empty"],
        env=_sandbox_env(state, guard_log),
        check=True,
        capture_output=True,
        timeout=60,
    )


def stop_sandbox(state: Path, guard_log: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "sandbox", "stop"],
        env=_sandbox_env(state, guard_log),
        capture_output=True,
        timeout=60,
    )


def learner_env(home: Path, state: Path, guard_log: Path) -> dict[str, str]:
    """A shell with nothing of the sandbox or of anyone's credentials, the learner's ``az`` on
    PATH, a home of its own, and the loopback guard in every Python process."""
    drop = {*personas.CREDENTIAL_VARIABLES, "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("SANDBOX_", "KIT_", "AZURE_", "ACS_", "SMS_"))
    }
    bin_dir = home / "bin"
    bin_dir.mkdir(parents=True)
    # The learner's Azure CLI: the kit's stand-in, which keeps its profile (as the real CLI keeps
    # ~/.azure) in the sandbox's state folder: that variable is for az alone, not the kernel.
    az = bin_dir / "az"
    az.write_text(
        f"#!/bin/sh\nSANDBOX_STATE_DIR='{state}' exec '{personas.bin_dir(state) / 'az'}' \"$@\"\n"
    )
    az.chmod(0o700)
    env.update(
        HOME=str(home),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        PATH=os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable), env.get("PATH", "")]),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(REPO / "tests" / "loopback_guard"), os.environ.get("PYTHONPATH")])
        ),
        KIT_LOOPBACK_GUARD_LOG=str(guard_log),
    )
    return env


def developer_password(state: Path, guard_log: Path) -> tuple[str, str]:
    """What the learner knows: the developer's name and password (``sandbox password``)."""
    out = subprocess.run(
        [sys.executable, "-m", "sandbox", "password"],
        env=_sandbox_env(state, guard_log),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    found = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return found["user"].strip(), found["password"].strip()


def sign_in_at_the_page(url: str, code: str, user: str, password: str, ca_file: str) -> None:
    """The learner's browser: the device-code page, the code, the developer's name and password."""
    form = urllib.parse.urlencode(
        {"otc": code, "username": user, "password": password, "action": "approve"}
    ).encode()
    context = ssl.create_default_context(cafile=ca_file)
    with urllib.request.urlopen(url, data=form, context=context, timeout=30) as page:
        text = page.read().decode()
    assert "You have signed in" in text, text


def az_login(learner: Learner, user: str, password: str) -> None:
    """``az cloud register/set`` for the sandbox's cloud, then ``az login --use-device-code``,
    approved at the sign-in page as the learner would."""
    sandbox = learner.sandbox
    learner.az(
        "cloud", "register", "--name", CLOUD,
        "--endpoint-resource-manager", sandbox["arm_url"] + "/",
        "--endpoint-active-directory", sandbox["authority_host"],
        "--endpoint-active-directory-resource-id", AUDIENCE,
    )  # fmt: skip
    learner.az("cloud", "set", "--name", CLOUD)
    login = subprocess.Popen(
        ["az", "login", "--use-device-code"],
        env=learner.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    said: queue.Queue[str] = queue.Queue()  # az's stderr, line by line, never blocking us
    threading.Thread(target=lambda: [said.put(x) for x in login.stderr], daemon=True).start()
    try:
        message = said.get(timeout=30)
        found = _PROMPT.search(message)
        assert found, f"az login showed no code: {message!r}"
        sign_in_at_the_page(found["url"], found["code"], user, password, sandbox["ca_bundle"])
        login.wait(timeout=60)
        out = login.stdout.read()
    finally:
        if login.poll() is None:
            login.kill()
    assert login.returncode == 0, f"az login failed: {''.join(said.queue)}"
    assert json.loads(out)[0]["user"]["name"] == user


def service_principal_secret(state: Path) -> str:
    """The developer's service principal's secret, as ``az ad sp create-for-rbac`` would have
    printed it to the learner once: read from the sandbox's own store, not its control API."""
    from sandbox.config import Settings
    from sandbox.state import open_store

    store = open_store(Settings.from_env(state))
    try:
        return world.installation_secrets(store)["sp_secret"]
    finally:
        store.close()


def dotenv(sandbox: dict[str, Any], sp_secret: str) -> dict[str, str]:
    """The learner's first .env for the sandbox as a private cloud (docs/custom-cloud.md): the
    cloud, the subscription and the names of what provisioning is to create; ACS_ENDPOINT and
    the phone numbers come after it (``after_provisioning``)."""
    return {
        "KIT_TARGET": "azure",
        "AZURE_AUTHORITY_HOST": sandbox["authority_host"],
        "AZURE_ARM_ENDPOINT": sandbox["arm_url"],
        "AZURE_ARM_AUDIENCE": AUDIENCE,
        "REQUESTS_CA_BUNDLE": sandbox["ca_bundle"],
        "SSL_CERT_FILE": sandbox["ca_bundle"],
        "AZURE_SUBSCRIPTION_ID": sandbox["subscription_id"],
        "ACS_RESOURCE_GROUP": sandbox["resource_group"],
        "ACS_RESOURCE_NAME": sandbox["acs_resource_id"].rsplit("/", 1)[-1],
        "VM_NAME": "vm-tutorial",
        "FUNC_APP_NAME": "func-tutorial",
        "KIT_SP_TENANT_ID": sandbox["tenant_id"],
        "KIT_SP_CLIENT_ID": world.SP_CLIENT_ID,
        "KIT_SP_CLIENT_SECRET": sp_secret,
        "KIT_ASSUME_YES": "1",
    }


def write_dotenv(learner: Learner, settings: dict[str, str]) -> None:
    with (learner.folder / ".env").open("a") as env:
        env.writelines(f"{name}={value}\n" for name, value in settings.items())


def provision(learner: Learner) -> str:
    """``python -m helpers.provision`` in the learner's folder (it reads .env there); what it
    printed. It must succeed and say what it created."""
    done = subprocess.run(
        [sys.executable, "-m", "helpers.provision"],
        cwd=learner.folder,
        env=learner.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"provisioning failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def after_provisioning(
    printed: str, dotenv_now: dict[str, str], sandbox: dict[str, Any]
) -> dict[str, str]:
    """What the learner adds to .env after provisioning: the lines it printed ("Add these lines
    to .env"), which must agree with what .env already says, filled in where it leaves a
    placeholder: the number bought in the portal and the learner's own phones.

    The portal purchase is the learner's manual step (Azure sells no number through Resource
    Manager). Here the sandbox holds the numbers such a purchase gives: ``sandbox reset
    --empty`` (the harness, through the control API) puts them in the resource group's
    inventory, and the ACS resource provisioning creates under that name leases them; the
    learner reads the number off the portal, the harness off the sandbox's status."""
    _, _, block = printed.partition("Add these lines to .env")
    lines = dict(re.findall(r"^  ([A-Z][A-Z0-9_]*)=(.*)$", block, re.MULTILINE))
    assert {"ACS_ENDPOINT", "SMS_FROM_NUMBER", "SMS_TO_NUMBER"} <= set(lines), printed
    for name, value in lines.items():
        assert dotenv_now.get(name, value) == value, f"provisioning printed {name}={value}"
    portal = {"SMS_FROM_NUMBER": sandbox["sender_numbers"][0],
              "SMS_TO_NUMBER": ",".join(sandbox["learner_phones"][:2])}  # fmt: skip
    added = {name: portal.get(name, value) for name, value in lines.items()}
    assert not [v for v in added.values() if v.startswith("<")], added
    return {name: value for name, value in added.items() if name not in dotenv_now}


@dataclass
class CellFailure:
    notebook: str
    index: int | None  # None: the notebook as a whole
    source: str
    error: str

    def __str__(self) -> str:
        if self.index is None:
            return f"{self.notebook}: {self.error}"
        first = self.source.strip().splitlines()[0] if self.source.strip() else ""
        return f"{self.notebook}, cell {self.index} ({first!r}):\n{self.error}"


def run_notebook(path: Path, learner: Learner) -> CellFailure | None:
    """Run one notebook in a kernel of its own in the learner's folder; the first cell that
    failed, or None. Records the kernel's pid and, per cell, the guard refusals it caused."""
    nb = nbformat.read(path, as_version=4)
    refusals = learner.refusals.setdefault(path.stem, {})
    current = {"index": -1, "seen": len(_guard_lines(learner.guard_log))}

    def started(cell: Any, cell_index: int, **_: Any) -> None:
        current["index"] = cell_index
        learner.kernel_pids.add(str(client.km.provisioner.pid))

    def executed(cell: Any, cell_index: int, **_: Any) -> None:
        lines = _guard_lines(learner.guard_log)
        if lines[current["seen"] :]:
            refusals[cell_index] = lines[current["seen"] :]
        current["seen"] = len(lines)

    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        startup_timeout=KERNEL_START_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(learner.folder)}},
        on_cell_execute=started,
        on_cell_executed=executed,
    )
    try:
        client.execute(env=learner.env)
    except CellExecutionError as e:
        index = current["index"]
        executed(None, index)
        trace = _ANSI.sub("", str(e)).strip().splitlines()
        return CellFailure(path.name, index, nb.cells[index].source, "\n".join(trace[-25:]))
    finally:
        if os.environ.get("KIT_REHEARSAL_KEEP"):  # a folder, for a person reading the outputs
            nbformat.write(nb, Path(os.environ["KIT_REHEARSAL_KEEP"]) / path.name)
    for index, cell in enumerate(nb.cells):
        said = [line for line in _text_lines(cell) if line.lstrip().startswith(_WRONG)]
        if said:
            return CellFailure(path.name, index, cell.source, "\n".join(said))
    shown = "\n".join(line for cell in nb.cells for line in _text_lines(cell))
    missing = [fact for fact in SHOWN.get(path.stem[:2], []) if fact not in shown]
    if missing:
        return CellFailure(path.name, None, "", f"it never showed {missing}")
    return None


# What each notebook is there to show, as it prints it on the Azure path: code meant for the VM
# or the Function app ran there, as that host's identity (its principal id, a token whose
# xms_mirid names it), never as the learner; the self-checks grade from what Azure shows. A
# notebook that printed something else (False, the learner's own sign-in) fails the rehearsal
# even though no cell raised.
SHOWN = {
    "00": ["Set-up: all correct"],
    "01": ["oid is the VM's principalId: True", "Managed identities: all correct"],
    "02": [
        "created an ACS user: True",
        "allowed: func-tutorial created 8:acs:",
        "Role assignments on acs-tutorial: all correct",
    ],
    "03": [
        "DefaultAzureCredential acquired a token from AzureCliCredential",
        "DefaultAzureCredential acquired a token from EnvironmentCredential",
        "/providers/Microsoft.Compute/virtualMachines/vm-tutorial>",
        "xms_mirid ends with func-tutorial",
        "called ACS as id-acs-tutorial",
        "DefaultAzureCredential acquired a token from ManagedIdentityCredential",
    ],
    "04": ["tokens revoked", "the managed identity still works", "async: created and deleted"],
    "05": ["successful: True status: 202", "accepted: True"],
    "06": ["fixed", "Identity not found", "sent: True"],
    "07": ["Clean-up: all correct"],
}


# What a cell prints when something it did went wrong without raising: a self-check or the
# doctor grading ✗, a confirmation declined (KIT_ASSUME_YES=1 must answer it), a helper that
# could not reach or read something.
_WRONG = ("✗", "Skipped: ", "Could not ")


def _text_lines(cell: Any) -> list[str]:
    """The text a code cell showed: its streams and the plain-text form of its results."""
    lines: list[str] = []
    for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
        text = output.get("text") if output.output_type == "stream" else None
        text = text or output.get("data", {}).get("text/plain", "")
        lines += _ANSI.sub("", text).splitlines()
    return lines


def _guard_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def not_a_laptops_imds_probe(lines: list[str], kernel_pids: set[str]) -> list[str]:
    """The refusals that are not a notebook kernel's probe of the instance metadata service."""
    return [
        line
        for line in lines
        if line.split(" ", 1)[0] not in kernel_pids or line.split(" ", 1)[-1] not in IMDS_PROBES
    ]


def rehearse(tmp: Path) -> Learner:
    """Set up the learner and run every notebook in order. Raises AssertionError, naming the
    notebook, the cell and the error, at the first cell that fails."""
    state, guard_log = tmp / "sandbox-state", tmp / "non-loopback.log"
    started = time.monotonic()
    sandbox = start_sandbox(state, guard_log)
    empty_resource_group(state, guard_log)
    learner = Learner(tmp / "kit", learner_env(tmp / "home", state, guard_log), sandbox, guard_log)
    learner.folder.mkdir()
    try:
        user, password = developer_password(state, guard_log)
        az_login(learner, user, password)
        learner.timings["sign-in"] = time.monotonic() - started
        began = time.monotonic()
        first = dotenv(sandbox, service_principal_secret(state))
        write_dotenv(learner, first)
        created = provision(learner)
        assert "Created 9:" in created, created
        write_dotenv(learner, after_provisioning(created, first, sandbox))
        again = provision(learner)  # idempotent; puts SMS_FROM_NUMBER in the app's settings
        assert "Everything exists already: nothing to create." in again, again
        assert "The Function app's SMS_FROM_NUMBER is set." in again, again
        learner.timings["provisioning"] = time.monotonic() - began
        for notebook in NOTEBOOKS:
            began = time.monotonic()
            failure = run_notebook(notebook, learner)
            learner.timings[notebook.stem] = time.monotonic() - began
            if failure is not None:
                raise AssertionError(f"the Azure path fails in {failure}")
        return learner
    finally:
        stop_sandbox(state, guard_log)


def test_every_notebook_runs_on_the_azure_path(tmp_path: Path):
    started = time.monotonic()
    learner = rehearse(tmp_path)
    took = ", ".join(f"{step} {t:.1f} s" for step, t in learner.timings.items())
    print(f"\nrehearsal: {time.monotonic() - started:.1f} s ({took})")
    lines = _guard_lines(learner.guard_log)
    assert not_a_laptops_imds_probe(lines, learner.kernel_pids) == [], (
        "a request tried to leave 127.0.0.1:\n" + "\n".join(lines)
    )
    probed = [f"{nb} cell {cell}" for nb, cells in learner.refusals.items() for cell in cells]
    print("IMDS probes refused (a laptop has none):", ", ".join(probed))
    # Nothing left behind: every ACS user a notebook made is deleted where it was made, or by
    # notebook 7 (the sandbox is stopped now; its store is read directly).
    from sandbox.acs.identity_models import IDENTITY_KIND
    from sandbox.config import Settings
    from sandbox.store import Store

    store = Store(Settings(state_dir=tmp_path / "sandbox-state").db_file)
    try:
        left = [doc.get("id") for doc in store.list(IDENTITY_KIND)]
    finally:
        store.close()
    assert left == [], f"the Azure path left {len(left)} ACS users behind: {left}"


def test_only_a_kernels_imds_probe_is_let_through():
    lines = [
        "101 DNS lookup of '169.254.169.254'",
        "101 connect to ('169.254.169.254', 80)",
        "101 DNS lookup of 'login.microsoftonline.com'",
        "202 DNS lookup of '169.254.169.254'",  # not a kernel: the sandbox or a host's program
    ]
    assert not_a_laptops_imds_probe(lines, {"101"}) == lines[2:]


def test_a_cell_that_says_something_went_wrong_fails():
    cell = nbformat.v4.new_code_cell("checks.ready(kit)")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="Set-up: 1 to fix\n"),
        nbformat.v4.new_output("display_data", data={"text/plain": "  ✗ not signed in"}),
    ]
    assert [line for line in _text_lines(cell) if line.lstrip().startswith(_WRONG)] == [
        "  ✗ not signed in"
    ]


def test_notebook_credentials_skip_instance_discovery_where_the_kit_says():
    """A credential a notebook builds skips MSAL's instance discovery for the sandbox's and a
    private cloud's authority (``kit.private_authority``), not for "the sandbox" only: on a
    private cloud, discovery asks login.microsoftonline.com about an authority it cannot know.
    (Notebook 7's recorded-user step is not reached by the rehearsal: only the sandbox's
    widgets record users.)"""
    import jupytext

    sources = sorted((REPO / "tools" / "notebooks").glob("[0-9][0-9]-*.md"))
    code = {
        (path.name, cell.source)
        for path in sources
        for cell in jupytext.read(path).cells
        if cell.cell_type == "code"
    }
    found = {
        (name, value.strip())
        for name, source in code
        for value in re.findall(r"disable_instance_discovery=([^,)\n]+)", source)
    }
    assert found, "no notebook builds a credential with disable_instance_discovery"
    assert {v for _, v in found} <= {"private_authority", "kit.private_authority"}, found


def test_a_failing_cell_is_named_and_an_expected_refusal_is_not(tmp_path: Path):
    """The harness itself: a cell tagged raises-exception may fail; the next failing cell stops
    the notebook, named by its index, with its error."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("1 / 0", metadata={"tags": ["raises-exception"]}),
        nbformat.v4.new_code_cell("print('fine')"),
        nbformat.v4.new_code_cell("{}['ACS_ENDPOINT']"),
        nbformat.v4.new_code_cell("print('never run')"),
    ]
    path = tmp_path / "99-harness.ipynb"
    nbformat.write(nb, path)
    guard_log = tmp_path / "guard.log"
    learner = Learner(tmp_path, learner_env(tmp_path / "home", tmp_path, guard_log), {}, guard_log)
    failure = run_notebook(path, learner)
    assert failure is not None and (failure.notebook, failure.index) == ("99-harness.ipynb", 3)
    assert "KeyError: 'ACS_ENDPOINT'" in failure.error
    assert str(failure).startswith("99-harness.ipynb, cell 3 (\"{}['ACS_ENDPOINT']\"):")
    assert learner.kernel_pids and not guard_log.exists()


def test_notebook_3s_prod_chain_gives_back_your_own_choice(tmp_path: Path):
    """Notebook 3 shows the `prod` chain failing on a laptop by setting AZURE_TOKEN_CREDENTIALS
    for one cell. A learner who set it in .env (Microsoft suggests `dev` for development) must
    get their own value back, not have it deleted for every later cell."""
    import jupytext

    source = REPO / "tools" / "notebooks" / "03-authenticate.md"
    (prod_cell,) = [
        cell.source
        for cell in jupytext.read(source).cells
        if 'os.environ["AZURE_TOKEN_CREDENTIALS"] = "prod"' in cell.source
    ]
    example = (REPO / ".env.example").read_text()
    (tmp_path / ".env").write_text(example + "\nAZURE_TOKEN_CREDENTIALS=dev\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import os\n\nimport helpers\n"
            "from azure.core.exceptions import ClientAuthenticationError\n"
            "from azure.identity import DefaultAzureCredential\n\n"
            "kit = helpers.setup()\n"
            'ACS_SCOPE = "https://communication.azure.com//.default"'
        ),
        nbformat.v4.new_code_cell(prod_cell),
        nbformat.v4.new_code_cell('assert os.environ["AZURE_TOKEN_CREDENTIALS"] == "dev"'),
    ]
    path = tmp_path / "98-prod-chain.ipynb"
    nbformat.write(nb, path)
    guard_log = tmp_path / "guard.log"
    learner = Learner(tmp_path, learner_env(tmp_path / "home", tmp_path, guard_log), {}, guard_log)
    assert run_notebook(path, learner) is None
    assert list(learner.refusals[path.stem]) == [1]  # prod's managed identity: the IMDS probe
    assert not_a_laptops_imds_probe(_guard_lines(guard_log), learner.kernel_pids) == []
