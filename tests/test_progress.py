"""helpers.catch_up: the state each notebook starts from, made with the real management SDKs."""

from __future__ import annotations

import logging
import os
import re
import sys
from contextlib import contextmanager

from azure.identity import AzureCliCredential
from azure.mgmt.authorization import AuthorizationManagementClient

import helpers
from helpers import progress


def _mgmt_log(kit, since):
    return [e for e in kit.sandbox.requests_since(since) if e["path"].startswith("/subscriptions")]


def test_through_0_signs_the_developer_in_without_waiting_for_a_poll(kit):
    mark = kit.sandbox.mark()
    helpers.catch_up(through=0, quiet=True)
    entries = kit.sandbox.requests_since(mark)
    # One password grant (az login -u -p): no device code, so no poll interval to wait out.
    grants = [e for e in entries if e["path"].endswith("/oauth2/v2.0/token")]
    assert [(e.get("credential"), e.get("decision")) for e in grants] == [("password", "issued")]
    assert not [e for e in entries if e["path"].endswith("/devicecode")]
    writes = [e for e in _mgmt_log(kit, mark) if e["method"] != "GET"]
    assert writes == []  # nothing of notebook 1 yet
    # the developer's az now answers
    assert AzureCliCredential().get_token(helpers.target.ARM_SCOPE).token


def test_through_2_enables_identities_and_grants_the_narrow_role(kit):
    helpers.catch_up(through=2, quiet=True)
    with helpers.acting_as("developer"):
        credential = AzureCliCredential()
        principals = progress.enable_identities(kit, credential)
        auth = AuthorizationManagementClient(
            credential, kit.subscription_id, **helpers.mgmt_client_kwargs()
        )
        held = {
            a.principal_id: a.role_definition_id.rsplit("/", 1)[-1]
            for a in auth.role_assignments.list_for_scope(kit.acs_resource_id)
            if a.scope.lower() == kit.acs_resource_id.lower()
        }
    narrow = "09976791-48a7-449e-bb21-39d1a415f350"  # Communication and Email Service Owner
    assert {held.get(principals[k]) for k in ("vm", "func", "uai")} == {narrow}


def test_is_idempotent_and_leaves_the_persona(kit):
    helpers.catch_up(through=2, quiet=True)
    helpers.act_as("vm-tutorial")
    mark = kit.sandbox.mark()
    helpers.catch_up(through=2, quiet=True)
    writes = [e for e in _mgmt_log(kit, mark) if e["method"] in ("PUT", "PATCH", "DELETE")]
    assert writes == []
    assert kit.persona == "vm-tutorial"
    assert "vm-tutorial" in os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"]


def test_signs_in_only_once(kit):
    with helpers.acting_as("developer"):
        progress._az(dict(os.environ), "logout")
    assert progress.sign_in_developer(kit) is True
    assert progress.sign_in_developer(kit) is False


def test_clears_faults(kit):
    kit.sandbox.call("POST", "/_sandbox/faults/throttle", {"count": 3})
    helpers.catch_up(through=0, quiet=True)
    assert kit.sandbox.call("GET", "/_sandbox/faults")["faults"] == {}


def test_azure_target_changes_nothing(kit, monkeypatch):
    monkeypatch.setattr(kit, "target", "azure")
    message = helpers.catch_up(through=2, quiet=True)
    assert "changes nothing" in message and "notebooks 0-2" in message


_AZ = re.compile(r"(^|[\s/])az\s")
_started: list[list[str]] = []


def _record(event: str, args: tuple) -> None:
    if event == "subprocess.Popen" and _started:
        _started[-1].append(" ".join(map(str, args[1] if isinstance(args[1], list) else [args[1]])))


sys.addaudithook(_record)  # hooks stay for the process; it records only inside runs_of_az()


@contextmanager
def runs_of_az():
    """Every ``az`` process this process starts inside the block (Python's audit events)."""
    found: list[str] = []
    _started.append(found)
    try:
        yield found
    finally:
        _started.remove(found)
        found[:] = [cmd for cmd in found if _AZ.search(cmd + " ")]


def test_catch_up_asks_az_once_per_token_not_once_per_client(kit):
    """Each az run is a new process (AzureCliCredential caches nothing); the three management
    clients of a catch-up share the developer's one token, which is also the sign-in check."""
    with runs_of_az() as fresh:
        helpers.catch_up(through=2, quiet=True)  # the kit fixture signed the developer out
    words = [re.search(r"(?:^|[\s/])az\s+(\S+)\s+(\S+)", c).groups() for c in fresh]
    assert words == [
        ("login", "--username"),  # no az profile yet: nothing to check first
        ("account", "get-access-token"),  # the one token every client uses
    ], fresh
    with runs_of_az() as again:
        helpers.catch_up(through=2, quiet=True)
    assert again == []  # the same kit: the token it holds is the check
    helpers.hosts._CLIENTS.clear()
    with runs_of_az() as later:  # Run Command, asked for as you, uses that token too
        helpers.on_host(kit.vm_name, "print('on the VM')")
    assert later == []


def test_catch_up_shows_only_its_message(kit, capsys, caplog):
    """In a notebook a warning is an output (on stderr): "not signed in yet" is no warning."""
    message = helpers.catch_up(through=2)  # the kit fixture signed the developer out
    assert capsys.readouterr().out == message + "\n"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []


def test_a_self_check_asks_az_once_for_its_three_clients(kit):
    """Notebook 2's check, with the notebook's own DefaultAzureCredential (the CLI answers)."""
    from azure.identity import DefaultAzureCredential

    from helpers import checks

    helpers.catch_up(through=2, quiet=True)
    with helpers.acting_as("developer"):
        credential = DefaultAzureCredential()
        credential.get_token(helpers.target.ARM_SCOPE)  # the chain has found the CLI
        with runs_of_az() as ran:
            checks.roles_assigned(kit, credential)
    assert len(ran) == 1, ran


def test_merged_identity_changes_only_what_is_asked():
    from types import SimpleNamespace

    other, ours = (
        "/subscriptions/s/rg/providers/x/id-other",
        "/subscriptions/s/rg/providers/x/id-ours",
    )
    host = SimpleNamespace(identity={"type": "UserAssigned", "userAssignedIdentities": {other: {}}})
    assert progress.merged_identity(host, system_assigned=True) == {
        "type": "SystemAssigned, UserAssigned",
        "userAssignedIdentities": {other: {}},
    }
    both = SimpleNamespace(
        identity={"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {other: {}}}
    )
    assert progress.merged_identity(both, add=(ours,))["userAssignedIdentities"] == {
        other: {},
        ours: {},
    }
    assert progress.merged_identity(both, system_assigned=False, remove=(other.upper(),)) == {
        "type": "None"
    }
    assert progress.merged_identity(SimpleNamespace(identity=None)) == {"type": "None"}


def test_catching_up_keeps_an_identity_the_tutorial_did_not_attach(kit):
    from azure.mgmt.msi import ManagedServiceIdentityClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    helpers.catch_up(through=0, quiet=True)
    with helpers.acting_as("developer"):
        credential = AzureCliCredential()
        kwargs = helpers.mgmt_client_kwargs()
        resources = ResourceManagementClient(credential, kit.subscription_id, **kwargs)
        msi = ManagedServiceIdentityClient(credential, kit.subscription_id, **kwargs)
        location = resources.resource_groups.get(kit.resource_group).location
        other = msi.user_assigned_identities.create_or_update(
            kit.resource_group, "id-someone-else", {"location": location}
        )
        vm_id = progress.vm_id(kit)
        version = progress.API_VERSIONS[progress.VM_TYPE]
        resources.resources.begin_update_by_id(
            vm_id,
            {"identity": {"type": "UserAssigned", "userAssignedIdentities": {other.id: {}}}},
            api_version=version,
        ).result()
        helpers.catch_up(through=1, quiet=True)
        identity = resources.resources.get_by_id(vm_id, api_version=version).identity.as_dict()
    assert "SystemAssigned" in identity["type"] and "UserAssigned" in identity["type"]
    attached = {k.lower() for k in identity["userAssignedIdentities"]}
    assert other.id.lower() in attached
