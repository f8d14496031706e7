"""Fixtures for the notebook helpers' tests: a kit set up on the session's sandbox, what the
helpers displayed, and a signed-in developer.

``helpers.setup()`` changes the process environment (it makes the kernel a persona) and a
module global; these fixtures put both back after each test so no other test inherits them.
The fixtures are registered for every test by tests/conftest.py; the functions are imported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import helpers
from helpers import target

REPO_ROOT = Path(__file__).resolve().parent.parent
VM_ID_SUFFIX = "/providers/Microsoft.Compute/virtualMachines/vm-tutorial"
VM_API = "2024-07-01"


@pytest.fixture
def kit(sandbox: dict[str, Any], control: Any):
    """``helpers.setup()`` on the session's sandbox, reset to the seeded world (which also signs
    the developer out of ``az``)."""
    saved = dict(os.environ)
    os.environ["SANDBOX_STATE_DIR"] = sandbox["state_dir"]
    os.environ["KIT_TARGET"] = "sandbox"
    control.reset()
    with set_up_kit(saved) as made:
        yield made


@contextmanager
def set_up_kit(saved: dict[str, str]) -> Iterator[helpers.Kit]:
    """``helpers.setup()``, then the environment as ``saved`` and no current kit afterwards."""
    try:
        yield helpers.setup()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        target._current = None


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Everything the helpers passed to IPython's ``display`` during the test."""
    import IPython.display

    seen: list[Any] = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: seen.extend(objs))
    return seen


def html_of(obj: Any) -> str:
    if hasattr(obj, "_repr_html_"):
        return obj._repr_html_()
    return getattr(obj, "data", None) or repr(obj)


def sign_in(kit: target.Kit) -> helpers.signin.AzLogin:
    """Sign the developer in to the sandbox's ``az`` (device code approved as a facilitator)."""
    login = helpers.az_login()
    kit.sandbox.approve(login.code)
    login.wait(timeout=30)
    return login


def sp_credential() -> Any:
    """The service principal's credential, as the service-principal persona sets it up."""
    from azure.identity import ClientSecretCredential

    return ClientSecretCredential(
        os.environ["AZURE_TENANT_ID"],
        os.environ["AZURE_CLIENT_ID"],
        os.environ["AZURE_CLIENT_SECRET"],
        authority=os.environ["AZURE_AUTHORITY_HOST"],
        disable_instance_discovery=True,
    )


def enable_vm_identity(kit: target.Kit) -> str:
    """Turn on vm-tutorial's system-assigned identity as the service principal (Contributor on
    the group); returns its principal id."""
    from azure.mgmt.resource.resources import ResourceManagementClient

    saved, persona = dict(os.environ), kit.persona
    helpers.act_as("service-principal")
    try:
        client = ResourceManagementClient(
            sp_credential(), kit.subscription_id, **helpers.mgmt_client_kwargs()
        )
        vm_id = f"/subscriptions/{kit.subscription_id}/resourceGroups/{kit.resource_group}"
        vm = client.resources.begin_update_by_id(
            vm_id + VM_ID_SUFFIX, {"identity": {"type": "SystemAssigned"}}, api_version=VM_API
        ).result()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        kit.persona = persona
    return vm.identity.principal_id


def connection_string(kit: target.Kit) -> str:
    return kit.sandbox.call("GET", "/_sandbox/acs/connection-string")["connection_string"]
