"""Run Command on the sandbox's VMs: ``POST …/virtualMachines/{vm}/runCommand``, as Azure runs it.

Azure's "action" Run Command hands a script to the VM agent, which runs it and reports the last
4,096 bytes of its output (MicrosoftDocs/azure-compute-docs articles/virtual-machines/linux/
run-command.md, "Restrictions"). Resource Manager answers the POST with 202 and two polling
addresses under ``/subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/operations/
{id}``: ``Azure-AsyncOperation`` (the operation status resource) and ``Location`` (the same with
``monitor=true``, which gives the result once done). Captures in Azure/azure-powershell#8848 and
Azure/azure-cli#32286 show both, and the result's one instance-view status, ``Enable succeeded:``
followed by ``[stdout]`` and ``[stderr]``, whatever the script's exit code (Azure/azure-cli#14425,
#25948). Everything here is listed in sandbox/FIDELITY.md ("Run Command").

The sandbox runs the script with bash in a child process whose environment is only the VM's:
its IMDS address (the same one its persona uses, sandbox/personas.py), the sandbox's CA as its
trust store, a home folder of its own under the state folder with ``python3`` (the kit's
interpreter, so the SDKs are there) and the kit's prepared venv, and nothing of the caller's
environment. When the sandbox itself runs under the tests' loopback guard
(tests/loopback_guard), the child runs under it too.

Our choices where Azure shows nothing public: the time limit (Azure's is 90 minutes) is
``SANDBOX_RUN_COMMAND_TIME_LIMIT`` seconds (default 120) or the ``run_command_time_limit``
fault, and a script that passes it ends the operation ``Failed`` with Compute's extension time-out
code; the status address holds its answer up to ``HOLD_SECONDS`` while the script runs, and
``Retry-After`` is 1 second, so a short program costs one poll, not Azure's tens of seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox import audit, faults, personas, world
from sandbox.arm import providers, vm_python
from sandbox.arm.models import VM_TYPE, ArmError, ResourceManager, Scope
from sandbox.runtime import Sandbox, sandbox_of

ACTION = "Microsoft.Compute/virtualMachines/runCommand/action"
READ_OPERATION = "Microsoft.Compute/locations/operations/read"
COMMAND_IDS = ("RunShellScript",)  # the sandbox's VMs are Linux VMs
OUTPUT_LIMIT = 4096  # bytes of each stream Azure reports (the last ones)
TIME_LIMIT = float(os.environ.get("SANDBOX_RUN_COMMAND_TIME_LIMIT", "120"))
HOLD_SECONDS = 5.0
RETRY_AFTER = "1"
# Where the kit's helpers (helpers/hosts.py) keep the VM's Python packages; the sandbox's VMs
# come with it prepared (and marked so), as a VM image with the kit's packages would.
KIT_VENV = ".acs-kit/venv"

_RUN_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.Compute/virtualMachines/(?P<vm>[^/]+)/runCommand/?$",
    re.I,
)
_OP_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Compute/locations/(?P<loc>[^/]+)/"
    r"operations/(?P<op>[^/]+)/?$",
    re.I,
)
BUSY_MESSAGE = (
    "Run command extension execution is in progress. Please wait for completion before "
    "invoking a run command."
)


@dataclass
class Operation:
    """One Run Command: the polling state Resource Manager keeps for it."""

    id: str
    vm: str
    subscription: str
    location: str
    started: float
    status: str = "InProgress"
    ended: float | None = None
    output: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def status_body(self) -> dict[str, Any]:
        """The operation status resource, as the Azure-AsyncOperation address answers."""
        body: dict[str, Any] = {"startTime": _iso(self.started), "status": self.status}
        if self.ended is not None:
            body["endTime"] = _iso(self.ended)
        if self.output is not None:
            body["properties"] = {"output": self.output}
        if self.error is not None:
            body["error"] = self.error
        body["name"] = self.id
        return body

    def to_doc(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in ("id", "vm", "subscription", "location", "started", "status", "ended")
        } | {"output": self.output, "error": self.error}


class RunCommands:
    """The sandbox's Run Command operations and which VMs are busy (one script at a time)."""

    def __init__(self) -> None:
        self.operations: dict[str, Operation] = {}
        self.busy: dict[str, str] = {}  # vm name (lower) -> operation id
        self.running: dict[str, asyncio.subprocess.Process] = {}  # operation id -> its script
        self.warm: dict[str, asyncio.subprocess.Process] = {}  # vm name (lower) -> vm_python
        self.stopping = False

    async def stop_all(self) -> None:
        """End every script still running (its whole process group) and wait for each: a VM's
        programs end with the sandbox. Their operations stay in progress in the store, so a
        restarted sandbox answers them as ended by the restart (see ``_stored``)."""
        self.stopping = True
        procs = [*self.running.values(), *self.warm.values()]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):  # it ended just now
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in procs:
            await proc.wait()


def registry(sb: Sandbox) -> RunCommands:
    if sb.run_commands is None:
        sb.run_commands = RunCommands()
    return sb.run_commands


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


def message(stdout: bytes, stderr: bytes) -> str:
    """The instance view's message: the last 4,096 bytes of each stream, as the agent reports."""
    out = stdout[-OUTPUT_LIMIT:].decode("utf-8", "replace")
    err = stderr[-OUTPUT_LIMIT:].decode("utf-8", "replace")
    return f"Enable succeeded: \n[stdout]\n{out}\n[stderr]\n{err}"


def result(stdout: bytes, stderr: bytes) -> dict[str, Any]:
    """The RunCommandResult of a finished script (its exit code is not reported, as on Azure)."""
    return {
        "value": [
            {
                "code": "ProvisioningState/succeeded",
                "level": "Info",
                "displayStatus": "Provisioning succeeded",
                "message": message(stdout, stderr),
            }
        ]
    }


def parse_input(body: Any) -> tuple[str, list[str], list[str]]:
    """(commandId, script lines, positional arguments) from a RunCommandInput, or ARM's 400/404."""
    if not isinstance(body, dict):
        raise ArmError(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: the body must be "
            "a RunCommandInput object.",
        )
    command = body.get("commandId")
    if command is None or command == "":
        raise ArmError(400, "InvalidParameter", "Required parameter 'commandId' is missing (null).")
    if not isinstance(command, str):
        raise _undeserializable("commandId", "a string")
    if command.lower() not in (c.lower() for c in COMMAND_IDS):
        raise ArmError(404, "NotFound", "The entity was not found in this Azure location.")
    script = body.get("script") or []
    if not isinstance(script, list) or not all(isinstance(line, str) for line in script):
        raise _undeserializable("script", "a list of strings")
    params = body.get("parameters") or []
    if not isinstance(params, list) or not all(
        isinstance(p, dict) and isinstance(p.get("value", ""), str) for p in params
    ):
        raise _undeserializable("parameters", "a list of {name, value} objects")
    return command, script, [p.get("value", "") for p in params]


def _undeserializable(name: str, wanted: str) -> ArmError:
    return ArmError(
        400,
        "InvalidRequestContent",
        f"The request content was invalid and could not be deserialized: '{name}' must be "
        f"{wanted}.",
    )


# -- the VM's machine: home folder and environment -----------------------------------------


def vm_home(sb: Sandbox, vm: str) -> Path:
    """The VM's own folder, with ``python3`` and the kit's venv ready (made on first use); the
    venv's ``python`` hands ``python -`` programs to the VM's warm interpreter (vm_python.py)."""
    home = sb.settings.state_dir / "hosts" / vm.lower() / "home"
    cold = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n'
    warm = vm_python.launcher(str(warm_socket(sb, vm)), sys.executable)
    for folder, name, text in (
        (home / "bin", "python3", cold),
        (home / KIT_VENV / "bin", "python", warm),
    ):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = folder / name
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            target.chmod(0o700)
    (home / KIT_VENV / ".acs-kit-ready").touch()
    return home


def warm_socket(sb: Sandbox, vm: str) -> Path:
    return sb.settings.state_dir / "hosts" / vm.lower() / "py.sock"


async def warm_up(sb: Sandbox, vm: str, home: Path | None = None) -> None:
    """Start the VM's warm interpreter once: when the VM is first read or sent a program
    (one sent while it starts runs cold)."""
    rc = registry(sb)
    found = rc.warm.get(vm.lower())
    if rc.stopping or (found is not None and found.returncode is None):
        return  # a request answered while the sandbox stops starts nothing that would outlive it
    home = home or vm_home(sb, vm)
    log = (home.parent / "warm-python.log").open("ab")
    with log:
        rc.warm[vm.lower()] = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sandbox.arm.vm_python",
            str(warm_socket(sb, vm)),
            str(os.getpid()),
            cwd=home,
            env=vm_environment(sb, vm, home),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )


def vm_environment(sb: Sandbox, vm: str, home: Path) -> dict[str, str]:
    """Everything the script's process sees: the VM's, never the caller's or the sandbox's."""
    return {
        "HOME": str(home),
        "PATH": f"{home / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        **personas.host_environment(str(sb.settings.ca_file), sb.mi_url, vm),
        **personas.harness_variables(),
    }


def time_limit(sb: Sandbox) -> float:
    found = faults.active(sb.faults, "run_command_time_limit")
    return float(found["seconds"]) if found else TIME_LIMIT


async def _execute(sb: Sandbox, op: Operation, script: list[str], args: list[str]) -> None:
    """Run the script as the VM agent does (a script file, its output in files), then record."""
    rc = registry(sb)
    home = vm_home(sb, op.vm)
    folder = home / "run-command" / "download" / op.id
    folder.mkdir(parents=True, mode=0o700)
    path = folder / "script.sh"
    path.write_text("\n".join(script) + "\n")
    out_file, err_file = folder / "stdout", folder / "stderr"
    try:
        await warm_up(sb, op.vm, home)
        with out_file.open("wb") as out, err_file.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                "/bin/bash",
                str(path),
                *args,
                cwd=folder,
                env=vm_environment(sb, op.vm, home),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
            rc.running[op.id] = proc
            try:
                await asyncio.wait_for(proc.wait(), time_limit(sb))
                if rc.stopping:  # ended by the sandbox's stop, not by itself
                    return
                op.status = "Succeeded"
                op.output = result(out_file.read_bytes(), err_file.read_bytes())
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):  # it ended just now
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
                op.status = "Failed"
                op.error = {
                    "code": "VMExtensionProvisioningTimeout",
                    "message": f"Provisioning of VM extension 'RunCommandLinux' has timed out "
                    f"after {time_limit(sb):g} seconds (the sandbox's Run Command time limit).",
                }
    except OSError as e:  # the VM's disk or the shell: the operation fails, the server does not
        op.status = "Failed"
        op.error = {"code": "InternalExecutionError", "message": f"The script did not start: {e}"}
    finally:
        rc.running.pop(op.id, None)
        op.ended = time.time()
        rc.busy.pop(op.vm.lower(), None)
        sb.store.put("run_command_operation", op.id, op.to_doc())
        op.done.set()


# -- HTTP ------------------------------------------------------------------------------------


def matches(path: str) -> bool:
    return bool(_RUN_RE.match(path) or _OP_RE.match(path))


def _operation_urls(sb: Sandbox, op: Operation, api_version: str) -> tuple[str, str]:
    base = (
        f"{sb.https_url}/subscriptions/{op.subscription}/providers/Microsoft.Compute/locations/"
        f"{op.location}/operations/{op.id}"
    )
    return (
        f"{base}?api-version={api_version}",
        f"{base}?monitor=true&api-version={api_version}",
    )


async def serve(rm: ResourceManager, request: Request, path: str, body) -> Response | None:
    """The answer for a Run Command or its operation address, or None for any other path.

    ``body`` is the coroutine function that reads the request body as ARM does.
    """
    m = _RUN_RE.match(path)
    if m:
        return await _start(rm, request, m, body)
    m = _OP_RE.match(path)
    if m:
        return await _poll(rm, request, m)
    return None


def _check_version(request: Request, location: str) -> str:
    version = request.query_params["api-version"]
    refusal = providers.api_version_refusal(VM_TYPE, version, location)
    if refusal:
        raise ArmError(*refusal)
    return version


def _method(request: Request, wanted: str) -> None:
    if request.method != wanted:
        raise ArmError(
            405,
            "MethodNotAllowed",
            f"The requested resource does not support http method '{request.method}'.",
        )


async def _start(rm: ResourceManager, request: Request, m: re.Match, body) -> Response:
    sb = sandbox_of(request)
    scope = Scope(m.group("sub"), m.group("rg"), VM_TYPE, m.group("vm"))
    group = sb.store.get("resource_group", scope.group.lower()) if scope.group else None
    version = _check_version(request, group["location"] if group else "")
    _method(request, "POST")
    rm.authorize(scope.id, ACTION)
    _, host = rm._find(scope)
    if host is None:
        raise rm._not_found(scope)
    _, script, args = parse_input(await body(request))
    rc = registry(sb)
    vm = host["name"]
    if vm.lower() in rc.busy:
        audit.note(request, reason=f"{vm} is running operation {rc.busy[vm.lower()]}")
        raise ArmError(409, "Conflict", BUSY_MESSAGE)
    op = Operation(
        id=str(uuid.uuid4()),
        vm=vm,
        subscription=world.SUBSCRIPTION_ID,
        location=host.get("location") or world.LOCATION,
        started=time.time(),
    )
    rc.operations[op.id] = op
    rc.busy[vm.lower()] = op.id
    sb.store.put("run_command_operation", op.id, op.to_doc())
    audit.note(request, host=vm, run_command=op.id, lines=len(script))
    asyncio.get_running_loop().create_task(_execute(sb, op, script, args))
    status_url, location_url = _operation_urls(sb, op, version)
    return Response(
        status_code=202,
        headers={"Azure-AsyncOperation": status_url, "Location": location_url},
    )


def _stored(sb: Sandbox, op_id: str) -> Operation | None:
    """An operation from the store (a restart ended any script that was still running)."""
    doc = sb.store.get("run_command_operation", op_id.lower())
    if doc is None:
        return None
    op = Operation(**{k: v for k, v in doc.items()})
    if op.status == "InProgress":
        op.status, op.ended = "Failed", op.ended or time.time()
        op.error = {
            "code": "InternalExecutionError",
            "message": "The sandbox restarted while the script ran; run it again.",
        }
    op.done.set()
    return op


async def _poll(rm: ResourceManager, request: Request, m: re.Match) -> Response:
    sb = sandbox_of(request)
    _check_version(request, m.group("loc"))
    _method(request, "GET")
    # No role check: Azure signs its polling addresses (the ``p``/``t``/``c`` query parameters
    # of Azure/azure-cli#32286), so one who may start an operation may follow it; here the
    # operation id is a random UUID only its caller learns. The log still names the operation.
    rm.operation = READ_OPERATION
    op_id = m.group("op").lower()
    op = registry(sb).operations.get(op_id) or _stored(sb, op_id)
    if op is None or op.subscription.lower() != m.group("sub").lower():
        raise ArmError(404, "NotFound", "The entity was not found in this Azure location.")
    if not op.done.is_set():
        try:
            await asyncio.wait_for(op.done.wait(), HOLD_SECONDS)
        except TimeoutError:
            pass
    monitor = request.query_params.get("monitor", "").lower() == "true"
    if not op.done.is_set():
        headers = {"Retry-After": RETRY_AFTER}
        if monitor:
            return Response(status_code=202, headers=headers)
        return JSONResponse(op.status_body(), headers=headers)
    if monitor and op.output is not None:
        return JSONResponse(op.output)
    return JSONResponse(op.status_body())
