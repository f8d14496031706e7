"""Every numbered notebook runs top to bottom and reproduces its committed outputs (nbval).

Each notebook runs in its own pytest process with its own fresh sandbox (a new state folder,
free ports): the kernel starts it through ``helpers.setup()``, and this test stops it. So the
notebooks are independent of each other and of the test session's sandbox, and pytest-xdist
can run several at once. Outputs are compared strictly, after replacing only the volatile
values listed in ``tests/nbval_sanitize.cfg`` (checked below).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from nbval.plugin import get_sanitize_patterns

from tools.notebook_env import notebook_env

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))
SANITIZE = REPO / "tests" / "nbval_sanitize.cfg"
RUN_TIMEOUT = 900  # seconds for one whole notebook
CELL_TIMEOUT = 300


def test_the_tutorial_has_numbered_notebooks():
    assert NOTEBOOKS, "no notebooks/NN-*.ipynb found: the tutorial is missing"
    assert NOTEBOOKS[0].name == "00-welcome.ipynb"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_reproduces_its_outputs(notebook: Path, tmp_path: Path):
    cells = json.loads(notebook.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert any(c.get("outputs") for c in code), f"{notebook.name} has no committed outputs"
    guard_log = tmp_path / "non-loopback.log"
    env = notebook_env(tmp_path / "sandbox-state", guard_log)
    command = [
        sys.executable, "-m", "pytest", "--nbval", str(notebook),
        "--nbval-sanitize-with", str(SANITIZE), "--nbval-current-env",
        "--nbval-cell-timeout", str(CELL_TIMEOUT),
        "-p", "no:cacheprovider", "-p", "no:xdist", "-q", "-rf", "--color=no",
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
    finally:
        subprocess.run(
            [sys.executable, "-m", "sandbox", "stop"],
            cwd=REPO,
            env=env,
            capture_output=True,
            timeout=60,
        )
    report = result.stdout[-40000:] + "\n" + result.stderr[-5000:]
    assert result.returncode == 0, f"{notebook.name} does not reproduce its outputs:\n{report}"
    attempts = guard_log.read_text() if guard_log.exists() else ""
    assert attempts == "", f"{notebook.name} tried to leave 127.0.0.1:\n{attempts}"


def test_the_loopback_guard_refuses_and_records(tmp_path: Path):
    """The guard the notebook runs rely on: a process with it cannot reach beyond loopback."""
    log = tmp_path / "guard.log"
    probe = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('login.microsoftonline.com', 443), timeout=1)\n"
        "except OSError as e:\n"
        "    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=notebook_env(tmp_path / "unused", log),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "loopback guard" in result.stdout
    assert "login.microsoftonline.com" in log.read_text()


# -- the sanitize file replaces volatile values and nothing else -----------------------------------


def sanitize(text: str) -> str:
    for regex, replacement in get_sanitize_patterns(SANITIZE.read_text()):
        text = re.sub(regex, replacement, text)
    return text


SEEDED_GUIDS = sorted(
    set(
        re.findall(
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            (REPO / "sandbox" / "world.py").read_text(),
        )
    )
)


def test_every_pattern_is_read_and_valid():
    patterns = get_sanitize_patterns(SANITIZE.read_text())
    assert len(patterns) == SANITIZE.read_text().count("\nregex: ") >= 10
    for regex, _ in patterns:
        re.compile(regex)


# Parameters must be the same in every xdist worker: no uuid4() here.
@pytest.mark.parametrize(
    ("volatile", "stable"),
    [
        ("https://127.0.0.1:38573/devicelogin", "https://127.0.0.1:PORT/devicelogin"),
        ("principalId 5390ed0f-5117-4856-ad63-fb992442deaf", "principalId GUID"),
        (
            "8:acs:2dee53b4-368b-45b4-ab52-8493fb117652_00000a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b",
            "8:acs:2dee53b4-368b-45b4-ab52-8493fb117652_ACS-USER",
        ),
        (
            "Outgoing_202611270953047fa7efd5-8feb-49ea-b013-43c07a1a6dc5 sent",
            "Outgoing_MESSAGE-ID sent",
        ),
        ("iat 2026-11-27 09:53:04 UTC", "iat DATETIME"),
        ("'expiresOn': '2026-11-28T09:53:04.1234567+00:00'", "'expiresOn': 'DATETIME'"),
        ("Fri, 27 Nov 2026 09:53:04 GMT", "RFC1123-DATE"),
        ('(Tue, 01 Dec<tspan x="112" dy="14">2026 23:29:48 GMT) is', "(RFC1123-DATE) is"),
        ("{'exp': 1795773182, 'nbf': 1795773182}", "{'exp': EPOCH, 'nbf': EPOCH}"),
        ("(expires in 89 min)", "(expires in N min)"),
        ("in about 12 seconds, took 3.5 s, 120 ms", "in about N seconds, took N s, N ms"),
        ("state in /tmp/pytest-of-root/pytest-7/sandbox-state0/ca.pem.", "state in TMPPATH"),
        ("primary key ****Ab9=", "primary key ****XXXX"),
        ("enter the code SMWSAUF7D to sign in.", "enter the code USER-CODE to sign in."),
        ("alg=RS256, kid=4m9BNY_xY0w6mDKDagJd_lzVx3I, typ=JWT", "alg=RS256, kid=KEY-ID, typ=JWT"),
        ('"model_id": "0123456789abcdef0123456789abcdef"', '"model_id": "MODEL-ID"'),
    ],
)  # fmt: skip
def test_volatile_values_are_replaced(volatile: str, stable: str):
    assert sanitize(volatile) == stable


@pytest.mark.parametrize(
    "text",
    [
        *SEEDED_GUIDS,
        "api-version=2021-03-07 and 2024-07-01",
        "+18005550100 sends to +14255550101",
        "/subscriptions/3f2e1d0c-9b8a-4c7d-8e6f-5a4b3c2d1e0f/resourceGroups/rg-acs-tutorial",
        "role 'Contributor' applies at acs-tutorial",
        "developer@contososandbox.onmicrosoft.com",
        "403 AuthorizationFailed: 3 segments, 160 characters",
        "https://communication.azure.com/.default",
    ],
)
def test_stable_values_are_kept(text: str):
    assert sanitize(text) == text


def test_seeded_ids_are_all_kept():
    """A new fixed id in sandbox/world.py must be added to the GUID pattern's exceptions."""
    assert len(SEEDED_GUIDS) >= 10
    assert sanitize(" ".join(SEEDED_GUIDS)) == " ".join(SEEDED_GUIDS)


def test_flow_pictures_need_no_sanitizing():
    from helpers.flow import flow_svg

    entries = [
        {"listener": "mi", "method": "GET", "status": 200, "host": "vm-tutorial",
         "path": "/hosts/vm-tutorial/metadata/identity/oauth2/token", "decision": "issued",
         "audience": "https://communication.azure.com/", "reason": "system-assigned identity",
         "principal_id": str(uuid.uuid4()), "time": 1795773182.1, "ms": 0.4},
        {"listener": "https", "method": "POST", "status": 403, "path": "/identities",
         "operation": "Identity.Create", "credential": "bearer", "decision": "denied",
         "reason": f"principal {uuid.uuid4()} has no role; retry in about 12 seconds"},
    ]  # fmt: skip
    svg = flow_svg(entries, title="t", actor="vm-tutorial")
    assert sanitize(svg) == svg
