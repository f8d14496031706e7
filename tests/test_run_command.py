"""Run Command on the sandbox's VM, driven by azure-mgmt-compute (sandbox/arm/run_command.py).

Who may run (``Microsoft.Compute/virtualMachines/runCommand/action``), the long-running operation
and Azure's result shape, the 4,096-byte tails, the time limit, one script at a time, the VM's
own identity and environment, and ARM's answers to bad input.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from acs_support import ARM_AUDIENCE, developer_mgmt, forge
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

import helpers
from helpers import progress
from sandbox import world
from tests.conftest import https_json

VM = "vm-tutorial"
VM_ID = world.host_resource_id(VM)
ACTION = "Microsoft.Compute/virtualMachines/runCommand/action"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
VM_CONTRIBUTOR = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
RUN_PATH = f"{VM_ID}/runCommand?api-version=2024-07-01"


def run(compute: ComputeManagementClient, *lines: str, **extra: Any) -> Any:
    """Run ``lines`` on the VM and wait for the result (the sandbox asks for 1 s polls)."""
    body = {"commandId": "RunShellScript", "script": list(lines), **extra}
    return compute.virtual_machines.begin_run_command(world.RESOURCE_GROUP, VM, body).result()


def stdout_of(result: Any) -> str:
    text = result.value[0].message
    return text.split("\n[stdout]\n", 1)[1].split("\n[stderr]\n", 1)[0]


@pytest.fixture
def developer_compute(fresh) -> ComputeManagementClient:
    return developer_mgmt(ComputeManagementClient, fresh)


def _post_raw(fresh, sandbox, data: bytes) -> tuple[int, Any]:
    """A Run Command POST as raw bytes from the developer, for what the SDK cannot send."""
    token = forge(fresh.settings, fresh.doc, oid=world.DEVELOPER_OID, audience=ARM_AUDIENCE)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return https_json(sandbox, "POST", RUN_PATH, data=data, headers=headers)


def _principal_with_token(fresh) -> tuple[str, ComputeManagementClient]:
    """A user-assigned identity's principal and a Compute client that acts as it."""
    msi = developer_mgmt(ManagedServiceIdentityClient, fresh)
    uai = msi.user_assigned_identities.create_or_update(
        world.RESOURCE_GROUP, "id-runner", {"location": world.LOCATION}
    )
    compute = developer_mgmt(ComputeManagementClient, fresh, uai.principal_id, idtyp="app")
    return uai.principal_id, compute


def _grant(fresh, principal_id: str, role_guid: str) -> None:
    auth = developer_mgmt(AuthorizationManagementClient, fresh)
    auth.role_assignments.create(
        VM_ID,
        str(uuid.uuid4()),
        {
            "role_definition_id": world.role_definition_id(role_guid),
            "principal_id": principal_id,
            "principal_type": "ServicePrincipal",
        },
    )


def test_reader_is_refused_and_vm_contributor_may_run(fresh):
    principal, compute = _principal_with_token(fresh)
    with pytest.raises(HttpResponseError) as none:
        run(compute, "echo hi")
    assert none.value.status_code == 403
    assert none.value.error.code == "AuthorizationFailed"
    assert f"perform action '{ACTION}' over scope '{VM_ID}'" in none.value.error.message

    _grant(fresh, principal, READER)
    with pytest.raises(HttpResponseError) as reader:
        run(compute, "echo hi")
    assert reader.value.status_code == 403 and ACTION in reader.value.error.message

    _grant(fresh, principal, VM_CONTRIBUTOR)
    assert stdout_of(run(compute, "echo hi")) == "hi\n"


def test_the_result_has_azures_shape_whatever_the_exit_code(developer_compute):
    result = run(developer_compute, "echo hello", "echo oops >&2", "exit 3")
    assert [dict(v) for v in result.value] == [
        {
            "code": "ProvisioningState/succeeded",
            "level": "Info",
            "displayStatus": "Provisioning succeeded",
            "message": "Enable succeeded: \n[stdout]\nhello\n\n[stderr]\noops\n",
        }
    ]


def test_the_operation_answers_202_with_both_polling_addresses(fresh, sandbox):
    body = json.dumps({"commandId": "RunShellScript", "script": ["echo raw"]}).encode()
    status, answer = _post_raw(fresh, sandbox, body)
    # https_json reads no headers; the SDK test above follows them. Here: 202 and no body.
    assert (status, answer) == (202, None)


def test_each_stream_keeps_its_last_4096_bytes(developer_compute):
    result = run(
        developer_compute,
        "head -c 5000 /dev/zero | tr '\\0' a; echo END",
        "head -c 6000 /dev/zero | tr '\\0' b >&2",
    )
    message = result.value[0].message
    out = stdout_of(result)
    err = message.split("\n[stderr]\n", 1)[1]
    assert len(out.encode()) == 4096 and out.endswith("aEND\n")
    assert err == "b" * 4096


def test_parameters_are_the_scripts_arguments(developer_compute):
    result = run(
        developer_compute,
        'echo "$1 and $2"',
        parameters=[{"name": "a", "value": "first"}, {"name": "b", "value": "second"}],
    )
    assert stdout_of(result) == "first and second\n"


def test_a_script_past_the_time_limit_fails_the_operation(fresh, developer_compute):
    fresh("POST", "/_sandbox/faults/run_command_time_limit", {"seconds": 1})
    try:
        with pytest.raises(HttpResponseError) as timed_out:
            run(developer_compute, "echo started", "sleep 30")
        assert "VMExtensionProvisioningTimeout" in str(timed_out.value)
        # The VM is free again at once: the next script runs.
        assert stdout_of(run(developer_compute, "echo next")) == "next\n"
    finally:
        fresh("DELETE", "/_sandbox/faults/run_command_time_limit")


def test_one_script_at_a_time_on_a_vm(developer_compute):
    first = developer_compute.virtual_machines.begin_run_command(
        world.RESOURCE_GROUP, VM, {"commandId": "RunShellScript", "script": ["sleep 1"]}
    )
    with pytest.raises(HttpResponseError) as busy:
        run(developer_compute, "echo second")
    assert busy.value.status_code == 409
    assert busy.value.error.code == "Conflict"
    assert busy.value.error.message.startswith("Run command extension execution is in progress.")
    assert first.result().value[0].code == "ProvisioningState/succeeded"


def test_code_on_the_vm_gets_the_vms_own_token(fresh, developer_compute):
    resources = developer_mgmt(ResourceManagementClient, fresh)
    resources.resources.begin_update_by_id(
        VM_ID,
        {"identity": {"type": "SystemAssigned"}},
        api_version=progress.API_VERSIONS[progress.VM_TYPE],
    ).result()
    result = run(
        developer_compute,
        "python3 - <<'EOF'",
        "from azure.identity import ManagedIdentityCredential",
        "print(ManagedIdentityCredential().get_token('https://communication.azure.com/.default')"
        ".token)",
        "EOF",
    )
    claims = jwt.decode(stdout_of(result).strip(), options={"verify_signature": False})
    assert claims["xms_mirid"].lower() == VM_ID.lower()


def test_the_script_sees_only_the_vms_environment(developer_compute, sandbox):
    result = run(
        developer_compute,
        "env | cut -d= -f1 | sort",
        'echo "CA=$REQUESTS_CA_BUNDLE"',
        'echo "HOME=$HOME"',
    )
    lines = stdout_of(result).split()
    home = lines.pop()
    assert lines.pop() == f"CA={sandbox['ca_file']}"  # the sandbox's CA alone
    names = set(lines) - {"PWD", "SHLVL", "_", "OLDPWD"}  # what bash itself sets
    allowed = {
        "HOME",
        "PATH",
        "LANG",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "CURL_CA_BUNDLE",
        "KIT_LOOPBACK_GUARD_LOG",  # only under the tests' loopback guard
        "PYTHONPATH",  # likewise
        "PYTHONPYCACHEPREFIX",  # likewise, where the harness keeps bytecode
    }
    assert names <= allowed, names - allowed
    assert home.startswith(f"HOME={sandbox['state_dir']}/hosts/{VM}/")


def test_unknown_command_ids_are_refused_as_azure_does(developer_compute):
    with pytest.raises(ResourceNotFoundError) as unknown:
        developer_compute.virtual_machines.begin_run_command(
            world.RESOURCE_GROUP, VM, {"commandId": "RunPowerShellScript", "script": ["dir"]}
        )
    assert unknown.value.error.code == "NotFound"
    assert unknown.value.error.message == "The entity was not found in this Azure location."


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"script": ["echo hi"]}', 400, "InvalidParameter"),
        (b'{"commandId": "RunShellScript", "script": "echo hi"}', 400, "InvalidRequestContent"),
        (b'{"commandId": "RunShellScript", "script": [', 400, "InvalidRequestContent"),
        (b'["RunShellScript"]', 400, "InvalidRequestContent"),
        (b"", 400, "InvalidRequestContent"),
    ],
)
def test_bad_input_gets_arms_errors(fresh, sandbox, body, status, code):
    got, answer = _post_raw(fresh, sandbox, body)
    assert got == status
    assert answer["error"]["code"] == code


def test_a_missing_script_runs_nothing(developer_compute):
    result = developer_compute.virtual_machines.begin_run_command(
        world.RESOURCE_GROUP, VM, {"commandId": "RunShellScript"}
    ).result()
    assert result.value[0].message == "Enable succeeded: \n[stdout]\n\n[stderr]\n"


def test_an_unknown_vm_is_not_found(developer_compute):
    with pytest.raises(ResourceNotFoundError) as missing:
        developer_compute.virtual_machines.begin_run_command(
            world.RESOURCE_GROUP, "vm-nowhere", {"commandId": "RunShellScript"}
        )
    assert missing.value.error.code == "ResourceNotFound"


# -- the notebook helper: helpers.on_host and %%on ------------------------------------------


def test_on_host_runs_python_on_the_vm_with_the_apps_settings(kit, capsys):
    from helpers_kit import enable_vm_identity, sign_in

    sign_in(kit)
    enable_vm_identity(kit)
    capsys.readouterr()
    code = "\n".join(
        [
            "import os",
            "from azure.identity import DefaultAzureCredential",
            "token = DefaultAzureCredential().get_token('https://communication.azure.com/.default')",
            "print(os.environ['ACS_ENDPOINT'], os.environ['GREETING'])",
            "print(token.token)",
        ]
    )
    out = helpers.on_host(kit.vm_name, code, settings={"GREETING": "hello"})
    printed = capsys.readouterr().out
    assert printed == out
    first, second = out.splitlines()
    assert first == f"{kit.acs_endpoint} hello"
    # The token is shown as its audience and subject only, never the string itself.
    assert second.startswith("<JWT redacted: aud=https://communication.azure.com, idtyp=app, oid=")
    assert second.lower().endswith("/providers/microsoft.compute/virtualmachines/vm-tutorial>")
    assert "eyJ" not in printed


def test_on_host_raises_one_sentence_when_the_program_fails(kit, capsys):
    from helpers_kit import sign_in

    sign_in(kit)
    capsys.readouterr()
    with pytest.raises(helpers.hosts.HostError) as failed:
        helpers.on_host(kit.vm_name, "print('before')\nraise SystemExit(4)")
    assert str(failed.value) == (
        f"The program on {kit.vm_name} exited with status 4 (its output is above)."
    )
    assert capsys.readouterr().out == "before\n"


def test_on_host_explains_an_unknown_vm_in_one_sentence(kit):
    from helpers_kit import sign_in

    sign_in(kit)
    with pytest.raises(helpers.hosts.HostError) as missing:
        helpers.on_host("vm-nowhere", "print(1)")
    assert str(missing.value).startswith("There is no VM named vm-nowhere")


def test_the_on_cell_magic_passes_settings_and_runs_the_cell(kit, capsys):
    from helpers_kit import sign_in

    sign_in(kit)
    capsys.readouterr()
    helpers.hosts.on_magic(
        f"{kit.vm_name} --set WHO=learner", "import os\nprint('hi', os.environ['WHO'])"
    )
    assert capsys.readouterr().out == "hi learner\n"


def test_on_host_asks_to_sign_in_first(kit):
    # The seeded world has the developer signed out of az: no credential in the chain answers.
    helpers.hosts._CLIENTS.clear()
    with pytest.raises(helpers.hosts.HostError) as signed_out:
        helpers.on_host(kit.vm_name, "print(1)")
    assert str(signed_out.value).startswith("Sign in first")


def test_reading_a_vm_starts_its_warm_python(own_settings):
    """A VM that is read (notebook set-up, a lesson's first look at it) is about to run
    programs: its warm interpreter starts then, not on the first program, which would run cold
    while it starts."""
    from sandbox import client

    doc = client.start(own_settings)
    socket_file = own_settings.state_dir / "hosts" / VM / "py.sock"
    assert not socket_file.exists()
    token = forge(own_settings, doc, oid=world.DEVELOPER_OID, audience=ARM_AUDIENCE)
    status, _ = https_json(
        doc,
        "GET",
        f"{VM_ID}?api-version=2024-07-01",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert status == 200
    deadline = time.monotonic() + 20
    while not socket_file.exists():  # it listens once the SDKs are imported
        assert time.monotonic() < deadline, "reading the VM started no warm interpreter"
        time.sleep(0.05)


def test_a_warm_python_ends_with_a_killed_sandbox(own_settings):
    """A stopped sandbox ends its VMs' interpreters; a killed one cannot, so each ends itself."""
    import signal

    from sandbox import client

    doc = client.start(own_settings)
    token = forge(own_settings, doc, oid=world.DEVELOPER_OID, audience=ARM_AUDIENCE)
    auth = {"Authorization": f"Bearer {token}"}
    assert https_json(doc, "GET", f"{VM_ID}?api-version=2024-07-01", headers=auth)[0] == 200
    socket_file = str(own_settings.state_dir / "hosts" / VM / "py.sock")
    deadline = time.monotonic() + 20
    while not (warm := _processes_with(socket_file)):
        assert time.monotonic() < deadline, "no warm interpreter started"
        time.sleep(0.05)
    os.kill(doc["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _processes_with(socket_file):
        assert time.monotonic() < deadline, f"the warm interpreter {warm} outlived its sandbox"
        time.sleep(0.1)


def _processes_with(argument: str) -> list[int]:
    """Live processes whose command line holds ``argument``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and argument.encode() in (proc / "cmdline").read_bytes():
                if "Z" not in (proc / "stat").read_text().rsplit(")", 1)[1].split()[:1]:
                    found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_a_finished_operation_answers_after_a_restart(own_settings):
    from sandbox import client
    from tests.test_conformance_run_command import _request, _start, _until_done

    first = client.start(own_settings)
    token = forge(own_settings, first, oid=world.DEVELOPER_OID, audience=ARM_AUDIENCE)
    body = {"commandId": "RunShellScript", "script": ["echo kept"]}
    status, headers, _ = _start(
        first, token, {"path": VM_ID + "/runCommand", "api_version": "2024-07-01", "body": body}
    )
    assert status == 202
    operation = headers["Azure-AsyncOperation"]
    assert _until_done(first, token, operation)[1]["status"] == "Succeeded"
    client.stop(own_settings)

    second = client.start(own_settings)
    token = forge(own_settings, second, oid=world.DEVELOPER_OID, audience=ARM_AUDIENCE)
    again = operation.replace(first["https_url"], second["https_url"])
    status, _, answer = _request(second, token, "GET", again)
    assert status == 200 and answer["status"] == "Succeeded"
    assert answer["properties"]["output"]["value"][0]["message"].endswith("kept\n\n[stderr]\n")


def test_a_script_still_running_ends_with_the_sandbox(own_settings):
    """Stopping the sandbox ends a VM's running script (its process group), and the restarted
    sandbox answers that operation as ended by the restart."""
    from sandbox import client
    from tests.test_conformance_run_command import _request, _start

    first = client.start(own_settings)
    token = forge(own_settings, first, oid=world.DEVELOPER_OID, audience=ARM_AUDIENCE)
    body = {"commandId": "RunShellScript", "script": ['echo $$ > "$HOME/pid"', "exec sleep 60"]}
    status, headers, _ = _start(
        first, token, {"path": VM_ID + "/runCommand", "api_version": "2024-07-01", "body": body}
    )
    assert status == 202
    pid_file = own_settings.state_dir / "hosts" / "vm-tutorial" / "home" / "pid"
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text().strip()):  # the script has started
        assert time.monotonic() < deadline, "the script never started"
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    client.stop(own_settings)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

    second = client.start(own_settings)
    token = forge(own_settings, second, oid=world.DEVELOPER_OID, audience=ARM_AUDIENCE)
    again = headers["Azure-AsyncOperation"].replace(first["https_url"], second["https_url"])
    status, _, answer = _request(second, token, "GET", again)
    assert status == 200 and answer["status"] == "Failed"
    assert "restarted" in answer["error"]["message"]
    client.stop(own_settings)


def _python(executable: str, *code: str) -> list[str]:
    """Script lines running ``code`` as ``EXECUTABLE -``, then printing its exit status."""
    return [f"{executable} - <<'EOF'", *code, "EOF", 'echo "status $?"']


WARM = '"$HOME/.acs-kit/venv/bin/python"'  # the venv's python: the VM's warm interpreter
COLD = "python3"  # a plain interpreter started for the program


def _warm_ready(compute: ComputeManagementClient) -> None:
    """Until a program finds the SDKs already imported: the VM's warm interpreter runs it."""
    probe = _python(WARM, "import sys", "print('azure.identity' in sys.modules)")
    for _ in range(50):
        if stdout_of(run(compute, *probe)).startswith("True"):
            return
    raise AssertionError("the VM's warm interpreter never answered")


@pytest.mark.parametrize(
    "code",
    [
        ("import sys", "print('out'); print('err', file=sys.stderr)", "sys.exit(3)"),
        ("def f():", "    raise ValueError('boom')", "f()"),
        ("import os, sys", "print(os.getcwd().split('/')[-2], sys.argv, sorted(os.environ))"),
    ],
    ids=["exit-status", "uncaught-exception", "folder-argv-environment"],
)
def test_a_warm_program_behaves_as_a_cold_one(developer_compute, code):
    """The warm interpreter only saves the imports: output, exit status, traceback, folder,
    arguments and environment are what a freshly started ``python -`` gives."""
    _warm_ready(developer_compute)
    warm = run(developer_compute, *_python(WARM, *code)).value[0].message
    cold = run(developer_compute, *_python(COLD, *code)).value[0].message
    assert warm == cold
    assert "status" in warm


def test_a_warm_program_ends_when_its_script_is_killed(fresh, developer_compute, sandbox):
    _warm_ready(developer_compute)
    pid_file = Path(sandbox["state_dir"]) / "hosts" / VM / "home" / "warm.pid"
    pid_file.unlink(missing_ok=True)
    fresh("POST", "/_sandbox/faults/run_command_time_limit", {"seconds": 1})
    try:
        code = (
            "import os, time",
            "open(os.environ['HOME'] + '/warm.pid', 'w').write(str(os.getpid()))",
            "time.sleep(30)",
        )
        with pytest.raises(HttpResponseError):
            run(developer_compute, *_python(WARM, *code))
    finally:
        fresh("DELETE", "/_sandbox/faults/run_command_time_limit")
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while True:  # the forked program notices its launcher is gone and ends
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the warm program outlived its script"
        time.sleep(0.05)


def test_the_sandboxs_vm_comes_prepared_so_the_helpers_script_installs_nothing(developer_compute):
    # The kit's script prepares Python only where its venv is not marked ready; on the sandbox
    # it is, so nothing is installed (nothing leaves 127.0.0.1) and stderr stays empty.
    script = helpers.hosts.shell_script("print('ran')", {"GREETING": "hi"})
    result = run(developer_compute, *script)
    assert result.value[0].message == "Enable succeeded: \n[stdout]\nran\n\n[stderr]\n"
