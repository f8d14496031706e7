"""Running Python on the tutorial's VM, the way Azure does it: Resource Manager's Run Command.

``on_host(kit.vm_name, code)`` (or a ``%%on`` cell) sends ``code`` to the VM as a
``RunShellScript`` through ``azure-mgmt-compute``, signed in as you, and prints what it printed.
The code runs *there*, as a program of its own: it gets the app's settings as environment
variables (``ACS_ENDPOINT``, ``SMS_FROM_NUMBER``, ``SMS_TO_NUMBER``, and whatever ``settings``
adds, such as ``AZURE_CLIENT_ID`` for a user-assigned identity), its credential finds the VM's
managed identity, and nothing of this kernel (variables, sign-in, imports) goes with it.

On Azure, the first run prepares a Python virtual environment on the VM with the kit's pinned
SDK versions (from requirements-lock.txt; it needs outbound internet from the VM, and takes a
minute); later runs find it. A Run Command takes tens of seconds on Azure. The sandbox's VMs come
with the environment prepared, so the same script skips that step and a run takes about a second.
"""

from __future__ import annotations

import logging
import re
import shlex
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from helpers import target
from helpers.confirm import confirm
from helpers.redact import redact_tokens

# Where the kit keeps the VM's Python packages, and the file that says they are installed (the
# sandbox prepares the same: sandbox/arm/run_command.py KIT_VENV).
VENV = '"${HOME:-/root}/.acs-kit/venv"'
PACKAGES = (
    "azure-core",
    "azure-identity",
    "azure-communication-identity",
    "azure-communication-sms",
)
_LOCK = Path(__file__).resolve().parents[1] / "requirements-lock.txt"
_END = "ACS_KIT_PROGRAM"
_EXIT = re.compile(r"\[on_host\] the program exited with status (\d+)\n?$")
_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


_CLIENTS: dict[tuple[Any, ...], Any] = {}


class HostError(RuntimeError):
    """Run Command refused or failed, or the program on the host failed: one sentence."""


def pinned_packages() -> list[str]:
    """``name==version`` for the SDKs the VM needs, as the kit's lock file pins them."""
    pins = dict(
        line.split("==", 1)
        for line in _LOCK.read_text().splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    )
    return [f"{name}=={pins[name].strip()}" for name in PACKAGES]


def app_settings(kit: target.Kit, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The app's settings as the host's environment: where ACS is, who sends, who receives."""
    values = {
        "ACS_ENDPOINT": kit.acs_endpoint,
        "SMS_FROM_NUMBER": kit.sender,
        "SMS_TO_NUMBER": kit.phone,
        **(extra or {}),
    }
    for name, value in values.items():
        if not _NAME.match(name) or not isinstance(value, str):
            raise HostError(f"Setting {name!r} must be an UPPER_CASE name with a text value.")
    return values


def shell_script(code: str, settings: dict[str, str]) -> list[str]:
    """The RunShellScript lines: prepare Python once, export the settings, run ``code``."""
    if any(line.strip() == _END for line in code.splitlines()):
        raise HostError(f"The code may not contain a line reading {_END}.")
    install = " ".join(shlex.quote(p) for p in pinned_packages())
    lines = [
        f"VENV={VENV}",
        'if [ ! -f "$VENV/.acs-kit-ready" ]; then',
        # Ubuntu images ship python3 without its venv module: install it first (as root).
        '  { python3 -m venv "$VENV" || { apt-get -qq update && apt-get -qq install -y '
        'python3-venv && python3 -m venv "$VENV"; }; } >&2 &&',
        '  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check '
        f'{install} >&2 && touch "$VENV/.acs-kit-ready" || '
        '{ echo "[on_host] preparing Python on this VM failed" >&2; exit 1; }',
        "fi",
        *(f"export {k}={shlex.quote(v)}" for k, v in settings.items()),
        f"\"$VENV/bin/python\" - <<'{_END}'",
        *code.splitlines(),
        _END,
        "rc=$?",
        '[ "$rc" -eq 0 ] || echo "[on_host] the program exited with status $rc" >&2',
    ]
    return lines


def split_message(message: str) -> tuple[str, str]:
    """(stdout, stderr) from the instance view's message (``[stdout]`` … ``[stderr]`` …)."""
    _, _, rest = message.partition("\n[stdout]\n")
    out, _, err = rest.partition("\n[stderr]\n")
    return out, err


def _explain(name: str, error: Any) -> HostError:
    code = getattr(getattr(error, "error", None), "code", None) or ""
    status = getattr(error, "status_code", None)
    if status == 403 or code == "AuthorizationFailed":
        return HostError(
            f"You may not run commands on {name}: your sign-in needs a role with "
            "Microsoft.Compute/virtualMachines/runCommand/action on it (Virtual Machine "
            "Contributor, Contributor or Owner)."
        )
    if status == 409:
        return HostError(f"{name} is still running another command; run this cell again soon.")
    if status == 404:
        return HostError(f"There is no VM named {name} in the resource group (check VM_NAME).")
    if "Timeout" in str(error):
        return HostError(f"The command on {name} ran past Run Command's time limit and stopped.")
    text = str(getattr(getattr(error, "error", None), "message", "") or error).splitlines()[0]
    return HostError(f"Run Command on {name} failed: {text}")


def _compute_client(kit: target.Kit) -> Any:
    """One Compute client per target, signed in as you (the developer)."""
    from azure.core.exceptions import ClientAuthenticationError
    from azure.mgmt.compute import ComputeManagementClient

    from helpers.progress import developer_credential

    key = (kit.target, kit.subscription_id, kit.arm_url)
    if key not in _CLIENTS:
        kwargs = target.helper_client_kwargs()
        # asked once before the cell's picture starts (so it shows the run, not your sign-in)
        credential = developer_credential(kit)
        scope = (kwargs.get("credential_scopes") or [target.ARM_SCOPE])[0]
        quiet = logging.getLogger("azure.identity")
        level = quiet.level
        quiet.setLevel(logging.WARNING)  # how your laptop signs in is not this cell's lesson
        try:
            credential.get_token(scope)
        except ClientAuthenticationError:
            raise HostError(
                "Sign in first (notebook 0, `az login`): Run Command is asked for as you."
            ) from None
        finally:
            quiet.setLevel(level)
        _CLIENTS[key] = ComputeManagementClient(credential, kit.subscription_id, **kwargs)
    return _CLIENTS[key]


def on_host(
    name: str, code: str, *, settings: dict[str, str] | None = None, title: str | None = None
) -> str:
    """Run the Python program ``code`` on VM ``name`` through Run Command; print its output.

    Returns what the program printed (redacted). Raises HostError, in one sentence, when Run
    Command refuses or fails or the program exits with an error (its output is printed first).
    ``title`` draws the exchanges on the sandbox (``helpers.watch``).
    """
    from azure.core.exceptions import HttpResponseError

    from helpers.flow import watch

    kit = target.current()
    script = shell_script(code, app_settings(kit, settings))
    with target.acting_as("developer"):
        compute = _compute_client(kit)
    with target.acting_as("developer"), watch(title) if title else nullcontext():
        body = {"commandId": "RunShellScript", "script": script}
        try:
            poller = compute.virtual_machines.begin_run_command(kit.resource_group, name, body)
            result = poller.result()
        except HttpResponseError as e:
            raise _explain(name, e) from None
        out, err = split_message(result.value[0].message or "")
        out, err = redact_tokens(out), redact_tokens(err)
        failed = _EXIT.search(err)
        err = _EXIT.sub("", err)
        if out:
            print(out, end="" if out.endswith("\n") else "\n")
        if err.strip():
            print(err, end="" if err.endswith("\n") else "\n", file=sys.stderr)
    if failed:
        raise HostError(
            f"The program on {name} exited with status {failed.group(1)} (its output is above)."
        )
    return out


def on_magic(line: str, cell: str) -> None:
    """``%%on HOST [--watch TITLE] [--set NAME=VALUE ...] [--out NAME] [--confirm QUESTION]``.

    Runs the cell on HOST. ``--out NAME`` keeps what the program printed (redacted, stripped) in
    this kernel's variable NAME, for a later cell to pass on with ``--set``. ``--confirm`` asks
    first (helpers.confirm: on Azure "no" unless answered), for programs that bill or change.
    """
    words = shlex.split(line)
    if not words:
        raise HostError("Name the host: %%on vm-tutorial")
    name, settings, title, out_name, question = words[0], {}, None, None, None
    rest = iter(words[1:])
    for word in rest:
        if word == "--watch":
            title = next(rest, "")
        elif word == "--confirm":
            question = next(rest, "")
        elif word == "--set":
            key, _, value = next(rest, "").partition("=")
            settings[key] = value
        elif word == "--out" and (out_name := next(rest, "")).isidentifier():
            continue
        else:
            raise HostError(
                f"%%on takes a host, --watch TITLE, --set NAME=VALUE, --out NAME and "
                f"--confirm QUESTION, not {word}."
            )
    if question and not confirm(question):
        return
    printed = on_host(name, cell, settings=settings, title=title)
    if out_name:
        from IPython import get_ipython

        get_ipython().user_ns[out_name] = printed.strip()


def register_magic() -> None:
    """Make ``%%on`` available when running under IPython (a no-op elsewhere)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.register_magic_function(on_magic, magic_kind="cell", magic_name="on")
