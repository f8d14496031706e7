"""``python -m helpers.provision`` from an empty resource group, as a learner runs it.

The sandbox starts with its resource group empty (``reset --empty``), the developer signs in with
``az``, and the command runs in a folder whose ``.env`` names the resources, answering its
question through ``KIT_ASSUME_YES=1``. Then every resource is read back through the management
SDKs, a second run must create nothing, and the new VM's identity endpoint must hand out a token
that names that VM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest
from helpers_kit import sign_in

import helpers
from helpers import provision
from sandbox import world

ENV_FILE = """\
KIT_TARGET=sandbox
ACS_RESOURCE_GROUP=rg-acs-tutorial
ACS_RESOURCE_NAME=acs-tutorial
AZURE_LOCATION=eastus
VM_NAME=vm-rehearsal
FUNC_APP_NAME=func-rehearsal
UAI_NAME=id-acs-tutorial
SMS_FROM_NUMBER=+18005550100
"""


# What .env names: the shell must not (a value set there wins over .env, as for a learner).
KIT_VARIABLES = (
    "KIT_TARGET",
    "AZURE_SUBSCRIPTION_ID",
    "ACS_ENDPOINT",
    "SMS_TO_NUMBER",
    *provision._NAME_RULES,
)


def _learner_shell() -> dict[str, str]:
    """This process's environment (the developer persona) less the kit's settings, which other
    tests may have left in it."""
    return {k: v for k, v in os.environ.items() if k not in KIT_VARIABLES}


def _provision(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """The command in the learner's folder, on the session's sandbox (named explicitly: with
    HOME moved, a missing SANDBOX_STATE_DIR would start another sandbox there)."""
    state_dir = (folder / "sandbox-state-dir").read_text()
    env = dict(
        _learner_shell(),
        KIT_ASSUME_YES="1",
        HOME=str(folder / "home"),
        SANDBOX_STATE_DIR=state_dir,
    )
    return subprocess.run(
        [sys.executable, "-m", "helpers.provision", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def empty_world(kit: Any, control: Any, sandbox: dict, tmp_path: Path):
    """The seeded tenant with an empty resource group, the developer signed in, a learner's
    folder with .env; the seeded world again afterwards."""
    control("POST", "/_sandbox/reset?empty=1")
    sign_in(kit)
    (tmp_path / "home").mkdir()
    (tmp_path / ".env").write_text(ENV_FILE)
    (tmp_path / "sandbox-state-dir").write_text(sandbox["state_dir"])
    yield tmp_path
    control.reset()


def _clients(kit: Any) -> dict[str, Any]:
    from azure.identity import DefaultAzureCredential
    from azure.mgmt.communication import CommunicationServiceManagementClient
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.msi import ManagedServiceIdentityClient
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient
    from azure.mgmt.storage import StorageManagementClient
    from azure.mgmt.web import WebSiteManagementClient

    cred = DefaultAzureCredential()
    args = (cred, kit.subscription_id)
    kw = helpers.mgmt_client_kwargs()
    return {
        "rm": ResourceManagementClient(*args, **kw),
        "acs": CommunicationServiceManagementClient(*args, **kw),
        "msi": ManagedServiceIdentityClient(*args, **kw),
        "net": NetworkManagementClient(*args, **kw),
        "compute": ComputeManagementClient(*args, **kw),
        "storage": StorageManagementClient(*args, **kw),
        "web": WebSiteManagementClient(*args, **kw),
    }


def test_provision_creates_the_world_once(
    empty_world: Path, kit: Any, sandbox: dict, control: Any
) -> None:
    c = _clients(kit)
    rg = world.RESOURCE_GROUP
    assert [r.name for r in c["rm"].resources.list_by_resource_group(rg)] == []

    first = _provision(empty_world)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "Created 9:" in first.stdout  # all but the group, which exists
    assert "Toll-free number" in first.stdout and "US$2 a month" in first.stdout
    assert "Phone numbers > Get" in first.stdout
    assert f"ACS_ENDPOINT={kit.acs_endpoint}" in first.stdout  # this sandbox, no other

    acs = c["acs"].communication_services.get(rg, "acs-tutorial")
    assert acs.provisioning_state == "Succeeded" and acs.data_location == "United States"
    # The sandbox's stand-in for the number bought in the portal (sandbox/FIDELITY.md).
    assert control("GET", "/_sandbox/info")["sender_numbers"] == world.SENDER_NUMBERS
    uai = c["msi"].user_assigned_identities.get(rg, "id-acs-tutorial")
    assert uai.principal_id and uai.client_id  # made for notebook 1 to attach
    nsg = c["net"].network_security_groups.get(rg, "vm-rehearsal-nsg")
    assert nsg.security_rules == []  # no inbound SSH from the internet
    vnet = c["net"].virtual_networks.get(rg, "vm-rehearsal-vnet")
    assert vnet.address_space.address_prefixes == ["10.0.0.0/16"]
    assert vnet.subnets[0].network_security_group.id == nsg.id
    # New subnets are private since Network API 2025-07-01: outbound (Run Command, pip) asked for.
    assert vnet.subnets[0].default_outbound_access is True
    nic = c["net"].network_interfaces.get(rg, "vm-rehearsal-nic")
    assert nic.ip_configurations[0].subnet.id == vnet.subnets[0].id
    assert nic.ip_configurations[0].public_ip_address is None
    vm = c["compute"].virtual_machines.get(rg, "vm-rehearsal")
    assert vm.provisioning_state == "Succeeded"
    assert vm.hardware_profile.vm_size == "Standard_B1s"
    assert vm.storage_profile.image_reference.offer == "ubuntu-24_04-lts"
    linux = vm.os_profile.linux_configuration
    assert linux.disable_password_authentication is True
    assert linux.ssh.public_keys[0].key_data.startswith("ssh-rsa ")
    assert vm.os_profile.admin_password is None
    assert vm.network_profile.network_interfaces[0].id == nic.id
    assert vm.identity is None  # notebook 1 enables it
    assert (empty_world / "home" / ".ssh" / "vm-rehearsal_rsa").stat().st_mode & 0o077 == 0

    accounts = list(c["storage"].storage_accounts.list_by_resource_group(rg))
    assert [a.kind for a in accounts] == ["StorageV2"] and accounts[0].sku.name == "Standard_LRS"
    plan = c["web"].app_service_plans.get(rg, "func-rehearsal-plan")
    assert plan.sku.name == "Y1" and plan.reserved is True
    site = c["web"].web_apps.get(rg, "func-rehearsal")
    assert site.kind == "functionapp,linux" and site.server_farm_id == plan.id
    assert site.identity is None or site.identity.type == "None"
    settings = c["web"].web_apps.list_application_settings(rg, "func-rehearsal").properties
    assert settings["ACS_ENDPOINT"] == f"https://{acs.host_name}/"
    assert settings["SMS_FROM_NUMBER"] == "+18005550100"
    assert settings["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert f"AccountName={accounts[0].name};" in settings["AzureWebJobsStorage"]

    again = _provision(empty_world)
    assert again.returncode == 0, again.stderr + again.stdout
    assert "nothing to create" in again.stdout and "Creating" not in again.stdout
    assert len(list(c["rm"].resources.list_by_resource_group(rg))) == 9

    # The new VM is a host like the seeded ones: once its identity is on, its endpoint names it.
    from azure.identity import ManagedIdentityCredential

    vm = (
        c["compute"]
        .virtual_machines.begin_update(rg, "vm-rehearsal", {"identity": {"type": "SystemAssigned"}})
        .result()
    )

    with helpers.acting_as("vm-tutorial"):
        host = os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"]
        os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = host.replace(
            "/hosts/vm-tutorial", "/hosts/vm-rehearsal"
        )
        token = ManagedIdentityCredential().get_token("https://communication.azure.com/.default")
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["xms_mirid"].lower() == vm.id.lower()
    assert claims["oid"] == vm.identity.principal_id


def test_provision_refuses_without_yes(empty_world: Path, kit: Any) -> None:
    state_dir = (empty_world / "sandbox-state-dir").read_text()
    env = dict(_learner_shell(), HOME=str(empty_world / "home"), SANDBOX_STATE_DIR=state_dir)
    env.pop("KIT_ASSUME_YES", None)
    done = subprocess.run(
        [sys.executable, "-m", "helpers.provision"],
        cwd=empty_world,
        env=env,
        input="\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Nothing was created." in done.stdout
    c = _clients(kit)
    assert list(c["rm"].resources.list_by_resource_group(world.RESOURCE_GROUP)) == []


def test_provision_names_a_malformed_setting(empty_world: Path) -> None:
    (empty_world / ".env").write_text(ENV_FILE + "VM_SIZE=Standard B1s\n")
    done = _provision(empty_world)
    assert done.returncode == 2
    assert "VM_SIZE is malformed" in done.stderr and "Traceback" not in done.stderr


# -- Resource Manager's checks on the new types (sandbox/arm/resources.py) -------------------


@pytest.fixture
def dev_token(sandbox: dict, control: Any, fresh: Any) -> str:
    from tests.test_arm import MGMT_SCOPE, developer_credential

    return developer_credential(sandbox, control).get_token(MGMT_SCOPE).token


def _arm(sandbox: dict, token: str, method: str, path: str, version: str, body: Any = None):
    from tests.conftest import https_json

    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return https_json(sandbox, method, f"{path}?api-version={version}", data=data, headers=headers)


NIC = f"{world.GROUP_SCOPE}/providers/Microsoft.Network/networkInterfaces/nic-x"


def test_a_type_refuses_an_api_version_its_provider_lacks(sandbox: dict, dev_token: str) -> None:
    status, body = _arm(sandbox, dev_token, "PUT", NIC, "2019-01-01", {"location": "eastus"})
    assert status == 400
    assert body["error"]["code"] == "NoRegisteredProviderFound"
    assert "for type 'networkInterfaces'" in body["error"]["message"]
    assert "2026-03-01" in body["error"]["message"]  # what azure-mgmt-network sends


def test_a_tracked_resource_needs_a_location(sandbox: dict, dev_token: str) -> None:
    status, body = _arm(sandbox, dev_token, "PUT", NIC, "2026-03-01", {"properties": {}})
    assert (status, body["error"]["code"]) == (400, "LocationRequired")


def test_a_nic_needs_a_subnet_and_nothing_is_stored(sandbox: dict, dev_token: str) -> None:
    given = {"location": "eastus", "properties": {"ipConfigurations": [{"name": "ip1"}]}}
    status, body = _arm(sandbox, dev_token, "PUT", NIC, "2026-03-01", given)
    assert status == 400
    assert body["error"]["message"] == (
        f"Subnet reference is required for ipconfiguration {NIC}/ipConfigurations/ip1."
    )
    status, _ = _arm(sandbox, dev_token, "GET", NIC, "2026-03-01")
    assert status == 404


def test_a_vm_created_from_an_image_needs_an_os_profile(sandbox: dict, dev_token: str) -> None:
    vm = f"{world.GROUP_SCOPE}/providers/Microsoft.Compute/virtualMachines/vm-x"
    given = {
        "location": "eastus",
        "properties": {"storageProfile": {"imageReference": {"offer": "ubuntu-24_04-lts"}}},
    }
    status, body = _arm(sandbox, dev_token, "PUT", vm, "2026-04-01", given)
    assert status == 400
    assert body["error"] == {
        "code": "InvalidParameter",
        "message": "Required parameter 'osProfile' is missing (null).",
        "target": "osProfile",
    }


def test_groups_are_created_checked_and_deleted_with_what_they_hold(
    sandbox: dict, dev_token: str
) -> None:
    group = f"{world.SUBSCRIPTION_SCOPE}/resourceGroups/rg-scratch"
    assert _arm(sandbox, dev_token, "HEAD", group, "2025-04-01")[0] == 404
    status, body = _arm(sandbox, dev_token, "PUT", group, "2025-04-01", {"location": "westus"})
    assert status == 201 and body["properties"]["provisioningState"] == "Succeeded"
    assert _arm(sandbox, dev_token, "PUT", group, "2025-04-01", {"location": "westus"})[0] == 200
    assert _arm(sandbox, dev_token, "HEAD", group, "2025-04-01")[0] == 204
    nsg = f"{group}/providers/Microsoft.Network/networkSecurityGroups/nsg-x"
    status, body = _arm(sandbox, dev_token, "PUT", nsg, "2026-03-01", {"location": "westus"})
    assert status == 201 and body["properties"]["provisioningState"] == "Succeeded"
    assert body["properties"]["securityRules"] == [] and body["etag"].startswith('W/"')
    assert _arm(sandbox, dev_token, "DELETE", group, "2025-04-01")[0] == 200
    assert _arm(sandbox, dev_token, "HEAD", group, "2025-04-01")[0] == 404
    assert _arm(sandbox, dev_token, "GET", nsg, "2026-03-01")[0] == 404


def test_provision_with_a_public_ip(empty_world: Path, kit: Any) -> None:
    done = _provision(empty_world, "--public-ip", "--ssh-from", "203.0.113.0/24")
    assert done.returncode == 0, done.stderr + done.stdout
    c = _clients(kit)
    rg = world.RESOURCE_GROUP
    pip = c["net"].public_ip_addresses.get(rg, "vm-rehearsal-ip")
    assert pip.sku.name == "Standard" and pip.public_ip_allocation_method == "Static"
    nic = c["net"].network_interfaces.get(rg, "vm-rehearsal-nic")
    assert nic.ip_configurations[0].public_ip_address.id == pip.id
    vnet = c["net"].virtual_networks.get(rg, "vm-rehearsal-vnet")
    assert vnet.subnets[0].default_outbound_access is False
    rules = c["net"].network_security_groups.get(rg, "vm-rehearsal-nsg").security_rules
    assert [(r.destination_port_range, r.source_address_prefix) for r in rules] == [
        ("22", "203.0.113.0/24")
    ]


VM_BODY = {
    "location": "eastus",
    "identity": {"type": "SystemAssigned"},
    "properties": {
        "hardwareProfile": {"vmSize": "Standard_B1s"},
        "storageProfile": {"imageReference": {"offer": "ubuntu-24_04-lts"}},
        "osProfile": {"computerName": "x", "adminUsername": "a", "adminPassword": "Never-Shown-1"},
        "networkProfile": {"networkInterfaces": []},
    },
}


def test_a_created_vm_is_a_host_until_deleted(sandbox: dict, dev_token: str) -> None:
    vm = f"{world.GROUP_SCOPE}/providers/Microsoft.Compute/virtualMachines/vm-extra"
    status, body = _arm(sandbox, dev_token, "PUT", vm, "2026-04-01", VM_BODY)
    assert status == 201 and body["properties"]["provisioningState"] == "Succeeded"
    assert "adminPassword" not in body["properties"]["osProfile"]
    assert body["identity"]["type"] == "SystemAssigned" and body["identity"]["principalId"]
    # Hosts are keyed by name: a VM cannot take the seeded Function app's name.
    clash = vm.replace("vm-extra", "func-tutorial")
    status, body = _arm(sandbox, dev_token, "PUT", clash, "2026-04-01", VM_BODY)
    assert (status, body["error"]["code"]) == (409, "Conflict")
    assert _arm(sandbox, dev_token, "DELETE", vm, "2026-04-01")[0] == 200
    assert _arm(sandbox, dev_token, "GET", vm, "2026-04-01")[0] == 404
    assert _arm(sandbox, dev_token, "DELETE", vm, "2026-04-01")[0] == 204
