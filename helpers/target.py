"""Choosing where the notebook's SDK calls go: the local sandbox or real Azure.

The same cells run against both. On the sandbox, ``setup()`` starts it, trusts its CA without
dropping trust in real hosts, and switches the kernel to a persona; on Azure, it only reads the
learner's settings (from ``.env`` or the environment) and changes no variable.
"""

from __future__ import annotations

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
    "ACS_ENDPOINT": (
        re.compile(r"^https://[a-z0-9-]+\.[a-z0-9.-]+/?$"),
        "an https URL such as https://<resource>.communication.azure.com",
    ),
    "SMS_FROM_NUMBER": (_E164, "a phone number your resource leases, in E.164 form (+18005550100)"),
    "SMS_TO_NUMBER": (_E164, "your own mobile number in E.164 form (+14255550123)"),
}


class KitConfigError(ValueError):
    """A missing or malformed setting, explained in one sentence that names the variable."""


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
            "learner phone": self.phone,
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


def _azure_kit() -> Kit:
    values = {}
    for name, (pattern, meaning) in _AZURE_SETTINGS.items():
        value = os.environ.get(name, "").strip()
        if not value:
            raise KitConfigError(
                f"{name} is not set: add it to .env as {meaning} (see .env.example)."
            )
        if not pattern.match(value):
            raise KitConfigError(f"{name} is malformed: it should be {meaning}.")
        values[name] = value
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
        phones=[values["SMS_TO_NUMBER"]],
        tenant_id=os.environ.get("AZURE_TENANT_ID") or None,
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
    _load_dotenv()
    chosen = (target or os.environ.get("KIT_TARGET") or SANDBOX).strip().lower()
    if chosen not in (SANDBOX, AZURE):
        raise KitConfigError(f"KIT_TARGET must be 'sandbox' or 'azure', not '{chosen}'.")
    if chosen == AZURE:
        _current = _azure_kit()
        return _current
    _current = _sandbox_kit(sandbox_api.start())
    act_as(persona)
    return _current


def current() -> Kit:
    if _current is None:
        raise RuntimeError("Run the set-up cell first: `kit = helpers.setup()`.")
    return _current


def act_as(persona: str) -> str:
    """Make this kernel act as a sandbox persona: the developer's laptop or a simulated host.

    Every credential variable is replaced together, and the IMDS address always points at the
    sandbox, so no credential made before or after the switch can reach 169.254.169.254 or a
    Microsoft host. On the azure target nothing changes: your code runs as whoever runs it.
    """
    kit = current()
    if kit.target != SANDBOX:
        return "azure target: no persona switch (your code runs as whoever runs it)"
    sandbox_api.apply_env(os.environ, kit.sandbox.persona(persona))
    kit.persona = persona
    return persona


@contextmanager
def acting_as(persona: str | None) -> Iterator[None]:
    """Act as a sandbox persona for the duration of a block, then restore the environment.

    Credentials read the environment when they are built (and ``AzureCliCredential`` finds
    ``az`` on PATH when it runs), so both must happen inside the block.
    """
    kit = current()
    if persona is None or kit.target != SANDBOX:
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


def credential_kwargs() -> dict[str, Any]:
    """Keywords for an azure-identity credential the helpers build: the authority, and instance
    discovery off where the authority is not a Microsoft cloud. (Credentials a cell builds with
    no keywords read ``AZURE_AUTHORITY_HOST`` themselves.)"""
    kit = current()
    if kit.target == SANDBOX:
        return {"authority": kit.authority_host, "disable_instance_discovery": True}
    return kit.cloud.credential_kwargs()
