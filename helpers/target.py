"""Choosing where the notebook's SDK calls go: the local sandbox or real Azure.

The same cells run against both. On the sandbox, ``setup()`` starts it, trusts its CA without
dropping trust in real hosts, and switches the kernel to a persona; on Azure, it only reads the
learner's settings (from ``.env`` or the environment) and changes no variable.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import cloud, sandbox_api

SANDBOX, AZURE = "sandbox", "azure"
ARM_SCOPE = cloud.scope_for(cloud.PUBLIC_ARM_AUDIENCE)  # the sandbox's Resource Manager takes it

# Settings the azure target needs, with the check each must pass. Documented in .env.example.
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_AZURE_SETTINGS: dict[str, tuple[re.Pattern[str], str]] = {
    "AZURE_SUBSCRIPTION_ID": (
        _GUID,
        "a subscription GUID such as 00000000-0000-0000-0000-000000000000",
    ),
    "ACS_RESOURCE_GROUP": (re.compile(r"^[-\w._()]{1,90}$"), "a resource group name"),
    "ACS_RESOURCE_NAME": (
        re.compile(r"^[a-zA-Z0-9-]{1,63}$"),
        "a Communication Services resource name",
    ),
    # A port is allowed: a private cloud's endpoint may name one (the sandbox's does).
    "ACS_ENDPOINT": (
        re.compile(r"^https://[a-z0-9-]+\.[a-z0-9.-]+(:[0-9]{1,5})?/?$"),
        "an https URL such as https://<resource>.communication.azure.com",
    ),
    "SMS_FROM_NUMBER": (_E164, "a phone number your resource leases, in E.164 form (+18005550100)"),
    "SMS_TO_NUMBER": (
        re.compile(r"^[^,]+(,[^,]+)*$"),  # each number is checked on its own: _phones()
        "one or more mobile numbers in E.164 form, comma-separated (+14255550123,+14255550124)",
    ),
}
# The tutorial's hosts: optional, the sandbox's names by default. Azure's naming rules: a VM
# name up to 64 characters (letters, digits, '-', '_', '.'); a Function app's 2-60 of
# letters, digits and '-' (it becomes a host name).
_HOST_SETTINGS: dict[str, tuple[str, re.Pattern[str], str]] = {
    "VM_NAME": (
        "vm-tutorial",
        re.compile(r"^[a-zA-Z0-9][-\w.]{0,62}[\w]$|^[a-zA-Z0-9]$"),
        "the name of your virtual machine (letters, digits, '-', '_', '.')",
    ),
    "FUNC_APP_NAME": (
        "func-tutorial",
        re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]{0,58}[a-zA-Z0-9]$"),
        "the name of your Function app (2-60 letters, digits and '-')",
    ),
}
# The developer's service principal (notebook 3). Deliberately not AZURE_CLIENT_ID/SECRET:
# with those in the environment, EnvironmentCredential answers first in every later
# DefaultAzureCredential of every notebook (and AZURE_CLIENT_ID also picks a user-assigned
# managed identity), so the kit's own names keep the service principal to the cell that uses it.
SP_SETTINGS: dict[str, tuple[re.Pattern[str], str]] = {
    "KIT_SP_TENANT_ID": (_GUID, "your Microsoft Entra tenant id (a GUID)"),
    "KIT_SP_CLIENT_ID": (_GUID, "the service principal's application (client) id, a GUID"),
    "KIT_SP_CLIENT_SECRET": (
        re.compile(r"^\S{8,}$"),
        "the service principal's client secret (in your shell, or in .env: git ignores it)",
    ),
}


class KitConfigError(ValueError):
    """A missing or malformed setting, explained in one sentence that names the variable."""


class RunsOnHost(RuntimeError):
    """On Azure, a step meant for a host (the VM, the Function app) was asked of this kernel."""


def _setting(name: str, pattern: re.Pattern[str], meaning: str, default: str | None = None) -> str:
    """One setting from the environment (which .env fills), checked: missing or malformed is
    refused with one sentence naming the variable and what it should hold."""
    value = os.environ.get(name, "").strip()
    if not value:
        if default is not None:
            return default
        raise KitConfigError(f"{name} is not set: add it to .env as {meaning} (see .env.example).")
    if not pattern.match(value):
        raise KitConfigError(f"{name} is malformed: it should be {meaning}.")
    return value


@dataclass(frozen=True)
class ServicePrincipal:
    """The developer's service principal: what ``ClientSecretCredential`` needs."""

    tenant_id: str
    client_id: str
    secret: str = field(repr=False)

    @contextmanager
    def environment(self) -> Iterator[None]:
        """The three ``AZURE_*`` variables ``EnvironmentCredential`` reads, set for a block
        only: left set, they would make every later ``DefaultAzureCredential`` sign in as this
        service principal (the chain's first link wins)."""
        names = {
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": self.client_id,
            "AZURE_CLIENT_SECRET": self.secret,
        }
        saved = {name: os.environ.get(name) for name in names}
        os.environ.update(names)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@dataclass
class Kit:
    """Where calls go and the names of things there; what every notebook's set-up cell shows."""

    target: str
    acs_endpoint: str
    subscription_id: str
    resource_group: str
    acs_name: str
    sender: str
    phones: list[str]
    tenant_id: str | None = None
    authority_host: str | None = None
    arm_url: str | None = None
    # On Azure, the cloud .env names (helpers/cloud.py); the public cloud when it names none.
    cloud: cloud.Cloud = field(default_factory=cloud.Cloud, repr=False)
    status: dict[str, Any] = field(default_factory=dict, repr=False)
    persona: str | None = None
    # The tutorial's hosts; on Azure, .env may name them differently.
    vm_name: str = "vm-tutorial"
    func_app_name: str = "func-tutorial"
    # You, signed in, shared by the helpers that act as you (progress.developer_credential).
    signed_in: Any = field(default=None, repr=False, compare=False)

    @property
    def acs_resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Communication/communicationServices/{self.acs_name}"
        )

    @property
    def arm_scope(self) -> str:
        """The scope of a Resource Manager token in this kit's cloud."""
        return ARM_SCOPE if self.target == SANDBOX else self.cloud.arm_scope

    @property
    def private_authority(self) -> bool:
        """Whether credentials must skip MSAL's instance discovery (``disable_instance_discovery``):
        the sandbox's authority and a private cloud's are not Microsoft clouds."""
        return self.target == SANDBOX or self.cloud.private_authority

    @property
    def phone(self) -> str:
        """The learner's phone: where the tutorial's messages go."""
        return self.phones[0]

    def service_principal(self) -> ServicePrincipal:
        """The developer's service principal, read when a step needs it (notebook 3).

        On the sandbox: the ``service-principal`` persona's variables (``act_as`` sets them).
        On Azure: ``KIT_SP_TENANT_ID`` (else ``AZURE_TENANT_ID``), ``KIT_SP_CLIENT_ID`` and
        ``KIT_SP_CLIENT_SECRET``, each checked with one sentence when missing or malformed.
        """
        if self.target == SANDBOX:
            names = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")
            if not all(os.environ.get(n) for n in names):
                raise KitConfigError(
                    "The service principal's variables are not set: run "
                    '`helpers.act_as("service-principal")` first.'
                )
            return ServicePrincipal(*(os.environ[n] for n in names))
        return ServicePrincipal(
            tenant_id=_setting(
                "KIT_SP_TENANT_ID", *SP_SETTINGS["KIT_SP_TENANT_ID"], self.tenant_id
            ),
            client_id=_setting("KIT_SP_CLIENT_ID", *SP_SETTINGS["KIT_SP_CLIENT_ID"]),
            secret=_setting("KIT_SP_CLIENT_SECRET", *SP_SETTINGS["KIT_SP_CLIENT_SECRET"]),
        )

    @property
    def sandbox(self) -> sandbox_api.Control:
        if self.target != SANDBOX:
            raise RuntimeError("This step only exists on the sandbox target.")
        return sandbox_api.Control(self.status)

    def summary(self) -> dict[str, str]:
        rows = {
            "target": self.target,
            "ACS endpoint": self.acs_endpoint,
            "subscription": self.subscription_id,
            "resource group": self.resource_group,
            "ACS resource": self.acs_name,
            "SMS sender": self.sender,
            "learner phone": ", ".join(self.phones),
            "VM": self.vm_name,
            "Function app": self.func_app_name,
        }
        if self.persona:
            rows["running as"] = self.persona
        if self.target != SANDBOX and self.cloud.custom:
            rows["Entra ID"] = self.cloud.authority_host
            rows["Resource Manager"] = self.cloud.arm_url
        return rows

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>"
            for k, v in self.summary().items()
        )
        return f"<table>{cells}</table>"


_current: Kit | None = None


def _load_dotenv() -> None:
    """Read ``.env`` from the kit's root (or the working folder) without overriding the shell."""
    from dotenv import load_dotenv

    for folder in (Path.cwd(), *Path.cwd().parents[:2]):
        candidate = folder / ".env"
        if candidate.is_file():
            load_dotenv(candidate, override=False)
            return


def _phones(value: str) -> list[str]:
    """SMS_TO_NUMBER's numbers, each checked to be E.164 (one sentence names the bad one)."""
    phones = [p.strip() for p in value.split(",")]
    for phone in phones:
        if not _E164.match(phone):
            raise KitConfigError(
                f"SMS_TO_NUMBER is malformed: it should be {_AZURE_SETTINGS['SMS_TO_NUMBER'][1]}, "
                f"and '{phone}' is not (a +, the country code, then digits only)."
            )
    return phones


def _azure_kit() -> Kit:
    values = {name: _setting(name, *check) for name, check in _AZURE_SETTINGS.items()}
    hosts = {
        name: _setting(name, p, m, default) for name, (default, p, m) in _HOST_SETTINGS.items()
    }
    try:
        chosen = cloud.from_env()
    except cloud.CloudConfigError as e:
        raise KitConfigError(str(e)) from None
    return Kit(
        target=AZURE,
        acs_endpoint=values["ACS_ENDPOINT"].rstrip("/") + "/",
        subscription_id=values["AZURE_SUBSCRIPTION_ID"],
        resource_group=values["ACS_RESOURCE_GROUP"],
        acs_name=values["ACS_RESOURCE_NAME"],
        sender=values["SMS_FROM_NUMBER"],
        phones=_phones(values["SMS_TO_NUMBER"]),
        tenant_id=os.environ.get("AZURE_TENANT_ID") or None,
        vm_name=hosts["VM_NAME"],
        func_app_name=hosts["FUNC_APP_NAME"],
        authority_host=chosen.authority_host,
        arm_url=chosen.arm_url,
        cloud=chosen,
    )


def _sandbox_kit(status: dict[str, Any]) -> Kit:
    return Kit(
        target=SANDBOX,
        acs_endpoint=status["acs_endpoint"],
        subscription_id=status["subscription_id"],
        resource_group=status["resource_group"],
        acs_name=status["acs_resource_id"].rsplit("/", 1)[-1],
        sender=status["sender_numbers"][0],
        phones=list(status["learner_phones"]),
        tenant_id=status["tenant_id"],
        authority_host=status["authority_host"],
        arm_url=status["arm_url"],
        status=status,
    )


def setup(target: str | None = None, persona: str = "developer") -> Kit:
    """Pick the target (argument, else ``KIT_TARGET`` from the environment or ``.env``, else
    the sandbox) and prepare the kernel for it. Returns the Kit every later cell uses."""
    global _current
    from helpers import hosts  # here: hosts imports this module

    hosts.register_magic()
    _load_dotenv()
    chosen = (target or os.environ.get("KIT_TARGET") or SANDBOX).strip().lower()
    if chosen not in (SANDBOX, AZURE):
        raise KitConfigError(f"KIT_TARGET must be 'sandbox' or 'azure', not '{chosen}'.")
    if chosen == AZURE:
        _current = _azure_kit()
        return _current
    starting = sandbox_api.Starting()
    for name in _SDKS:  # while the sandbox starts, on the other core
        importlib.import_module(name)
    _current = _sandbox_kit(starting.result())
    act_as(persona)
    return _current


# What a set-up cell's catch-up imports next, and Run Command's client (every "on the VM" cell).
# Importing them and starting the sandbox each take about a third of a second; done side by
# side, the learner waits for one of them, not both.
_SDKS = (
    "azure.identity",
    "azure.mgmt.resource.resources",
    "azure.mgmt.msi",
    "azure.mgmt.authorization",
    "azure.mgmt.compute",
)


def current() -> Kit:
    if _current is None:
        raise RuntimeError("Run the set-up cell first: `kit = helpers.setup()`.")
    return _current


_HOST_PERSONAS = {"vm-tutorial": "vm", "func-tutorial": "func"}  # the sandbox's persona names


def _refuse_host(kit: Kit, persona: str) -> None:
    """On Azure, raise (one sentence) when ``persona`` is a host: this kernel is not on it, and
    carrying on would run the host's code as the learner's own sign-in."""
    kind = {kit.vm_name: "vm", kit.func_app_name: "func", **_HOST_PERSONAS}.get(persona)
    if kind == "vm":
        raise RunsOnHost(
            f"On Azure this step runs on the VM {kit.vm_name}, not in this notebook (here it would "
            f"run as you): send it there with helpers.on_host(kit.vm_name, code)."
        )
    if kind == "func":
        raise RunsOnHost(
            f"On Azure this step runs in the Function app {kit.func_app_name}, not in this "
            "notebook (here it would run as you): call the function with "
            "helpers.call_function(...)."
        )


def act_as(persona: str) -> str:
    """Make this kernel act as a sandbox persona: the developer's laptop or a simulated host.

    Every credential variable is replaced together, and the IMDS address always points at the
    sandbox, so no credential made before or after the switch can reach 169.254.169.254 or a
    Microsoft host. On the azure target this kernel is your machine: "developer" (and
    "service-principal", whose cell builds its credential from KIT_SP_*) change nothing, and a
    host's name raises ``RunsOnHost``, saying where that code must run instead.
    """
    kit = current()
    if kit.target != SANDBOX:
        _refuse_host(kit, persona)
        return persona
    sandbox_api.apply_env(os.environ, kit.sandbox.persona(persona))
    kit.persona = persona
    return persona


@contextmanager
def acting_as(persona: str | None) -> Iterator[None]:
    """Act as a sandbox persona for the duration of a block, then restore the environment.

    Credentials read the environment when they are built (and ``AzureCliCredential`` finds
    ``az`` on PATH when it runs), so both must happen inside the block. On Azure, as
    ``act_as``: a host's name raises ``RunsOnHost``, anything else runs as you.
    """
    kit = current()
    if persona is None or kit.target != SANDBOX:
        if persona is not None:
            _refuse_host(kit, persona)
        yield
        return
    saved_env, saved_persona = dict(os.environ), kit.persona
    sandbox_api.apply_env(os.environ, kit.sandbox.persona(persona))
    kit.persona = persona
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        kit.persona = saved_persona


def mgmt_client_kwargs() -> dict[str, Any]:
    """Keywords for a management client (``ResourceManagementClient(cred, sub, **kwargs)``).

    On the sandbox, Resource Manager lives at the sandbox's URL; ``credential_scopes`` is what
    a private (sovereign) cloud passes too. On Azure, the cloud ``.env`` names: empty for the
    public cloud, where the SDKs' defaults are right.
    """
    kit = current()
    if kit.target != SANDBOX:
        return kit.cloud.mgmt_kwargs()
    return {"base_url": kit.arm_url, "credential_scopes": [ARM_SCOPE]}


def helper_client_kwargs() -> dict[str, Any]:
    """``mgmt_client_kwargs()`` for the management clients the helpers make for themselves
    (catching up, Run Command, checks), not the ones a cell teaches: on the sandbox they also
    trust only the sandbox's CA. The bundle a kernel trusts holds the public roots as well, and
    reading it takes about 25 ms for every new connection."""
    return {**mgmt_client_kwargs(), "connection_verify": helper_verify()}


def helper_verify() -> str | bool:
    """What the helpers' own HTTPS calls trust: the sandbox's CA alone on the sandbox (see
    ``helper_client_kwargs``), the usual roots (True) on Azure."""
    kit = current()
    return kit.status["ca_file"] if kit.target == SANDBOX else True


def credential_kwargs() -> dict[str, Any]:
    """Keywords for an azure-identity credential the helpers build: the authority, and instance
    discovery off where the authority is not a Microsoft cloud. (Credentials a cell builds with
    no keywords read ``AZURE_AUTHORITY_HOST`` themselves.)"""
    kit = current()
    if kit.target == SANDBOX:
        return {"authority": kit.authority_host, "disable_instance_discovery": True}
    return kit.cloud.credential_kwargs()
