"""Create the tutorial's world in your subscription: ``python -m helpers.provision``.

What it makes, in the resource group ``ACS_RESOURCE_GROUP`` (names from ``.env``, defaults in
brackets): the Communication Services resource ``ACS_RESOURCE_NAME`` [acs-tutorial], the
user-assigned identity ``UAI_NAME`` [id-acs-tutorial], a small Linux VM ``VM_NAME``
[vm-tutorial] with its network (virtual network, subnet, network security group with no inbound
rule, network interface, no public IP), and a Linux Consumption Function app ``FUNC_APP_NAME``
[func-tutorial] (Python, its plan and storage account, app settings ``ACS_ENDPOINT`` and
``SMS_FROM_NUMBER``). The hosts get no managed identity: notebook 1 teaches enabling them (and
attaching the user-assigned one to the Function app), as the sandbox's hosts start. Location:
``AZURE_LOCATION`` [eastus]; VM size: ``VM_SIZE`` [Standard_B1s].

It prints the plan and what it costs, asks first (no by default; ``KIT_ASSUME_YES=1`` answers
yes), creates only what is missing (a second run creates nothing), and prints the ``.env`` lines
to add. It assigns no role: the notebooks teach that. It buys no phone number: it says how.

It signs in as you (``DefaultAzureCredential`` without its managed-identity step: ``az
login``) and takes the management clients' keywords from ``helpers.mgmt_client_kwargs()``, so
the same command runs against the sandbox (``KIT_TARGET=sandbox``) and any cloud the kit is
configured for. See docs/real-azure.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.confirm import _YES, _ask, assume_yes

UBUNTU = {
    "publisher": "Canonical",
    "offer": "ubuntu-24_04-lts",
    "sku": "server",
    "version": "latest",
}
PYTHON_VERSION = "3.11"
ADMIN_USER = "azureuser"

# Prices as published, with their source and the date we read them. Where the kit has no
# published figure it says so instead of guessing.
COSTS = [
    (
        "Communication Services resource",
        "no charge for the resource itself; you pay per use (pay-as-you-go)",
        "learn.microsoft.com/azure/communication-services/concepts/pricing",
    ),
    (
        "Toll-free number (bought in the portal, not by this script)",
        "US$2 a month per number (US and Canada), plus a fee per SMS message segment",
        "MicrosoftDocs/azure-docs concepts/includes/sms-tollfree-pricing.md (2022)",
    ),
    (
        "User-assigned identity, virtual network, subnet, security group, network interface",
        "no charge",
        "Learn: managed identities overview; azure.microsoft.com pricing: Virtual Network",
    ),
    (
        "Virtual machine (size VM_SIZE) and its OS disk",
        "billed per second while it runs; the kit has no checked figure for your region: "
        "see azure.microsoft.com/pricing/details/virtual-machines/linux",
        "stop (deallocate) it between sessions: then only its disk is billed",
    ),
    (
        "Public IP (only with --public-ip)",
        "billed per hour while it exists: see azure.microsoft.com/pricing/details/ip-addresses "
        "(no checked figure here)",
        "",
    ),
    (
        "Function app on the Consumption plan",
        "billed per execution and memory-time, with a monthly free grant: see "
        "azure.microsoft.com/pricing/details/functions (no checked figure here)",
        "",
    ),
    (
        "Storage account (the Function app's files)",
        "billed per GB stored and per operation: see "
        "azure.microsoft.com/pricing/details/storage/blobs (no checked figure here)",
        "",
    ),
]


class ProvisionError(RuntimeError):
    """A setting or an answer from Azure that stops provisioning, in one sentence."""


# -- settings ----------------------------------------------------------------------------------

_NAME_RULES = {
    "ACS_RESOURCE_GROUP": (r"^[-\w._()]{1,90}$", "a resource group name"),
    "ACS_RESOURCE_NAME": (r"^[a-zA-Z0-9-]{1,63}$", "a Communication Services resource name"),
    "UAI_NAME": (r"^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$", "a managed identity name"),
    "VM_NAME": (r"^[a-zA-Z0-9][-\w.]{0,62}\w$", "a VM name (letters, digits, '-', '_', '.')"),
    "FUNC_APP_NAME": (
        r"^[a-zA-Z0-9][-a-zA-Z0-9]{0,58}[a-zA-Z0-9]$",
        "a Function app name (2-60 letters, digits and '-')",
    ),
    "AZURE_LOCATION": (r"^[a-z0-9]+$", "a region name such as eastus"),
    "VM_SIZE": (r"^[A-Za-z0-9_]+$", "a VM size such as Standard_B1s"),
    "STORAGE_ACCOUNT_NAME": (r"^[a-z0-9]{3,24}$", "3-24 lowercase letters and digits"),
    "SMS_FROM_NUMBER": (r"^\+[1-9]\d{6,14}$", "a phone number in E.164 form"),
    "ACS_DATA_LOCATION": (r"^[A-Za-z ]+$", "a data location such as United States"),
}


@dataclass
class Settings:
    """What to create and where: read from the environment, which ``.env`` fills."""

    subscription_id: str
    group: str = "rg-acs-tutorial"
    location: str = "eastus"
    acs_name: str = "acs-tutorial"
    data_location: str = "United States"
    uai_name: str = "id-acs-tutorial"
    vm_name: str = "vm-tutorial"
    vm_size: str = "Standard_B1s"
    func_name: str = "func-tutorial"
    storage_name: str = ""
    sms_from: str = ""
    ssh_from: str = ""  # a CIDR allowed to reach port 22; empty: no inbound rule
    public_ip: bool = False  # outbound through a public IP instead of default outbound access
    names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.storage_name:
            # Storage names are global: the app's name plus a hash of where it lives.
            digest = hashlib.sha256(f"{self.subscription_id}/{self.group}".encode()).hexdigest()
            base = re.sub(r"[^a-z0-9]", "", self.func_name.lower())[:16]
            self.storage_name = f"st{base}{digest[:6]}"
        vm = self.vm_name
        self.names = {
            "nsg": f"{vm}-nsg",
            "vnet": f"{vm}-vnet",
            "subnet": "default",
            "nic": f"{vm}-nic",
            "pip": f"{vm}-ip",
            "plan": f"{self.func_name}-plan",
        }


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    pattern, meaning = _NAME_RULES[name]
    if not re.match(pattern, value):
        raise ProvisionError(f"{name} is malformed: it should be {meaning}.")
    return value


def read_settings(subscription_id: str, ssh_from: str = "", public_ip: bool = False) -> Settings:
    return Settings(
        subscription_id=subscription_id,
        group=_env("ACS_RESOURCE_GROUP", "rg-acs-tutorial"),
        location=_env("AZURE_LOCATION", "eastus"),
        acs_name=_env("ACS_RESOURCE_NAME", "acs-tutorial"),
        data_location=_env("ACS_DATA_LOCATION", "United States"),
        uai_name=_env("UAI_NAME", "id-acs-tutorial"),
        vm_name=_env("VM_NAME", "vm-tutorial"),
        vm_size=_env("VM_SIZE", "Standard_B1s"),
        func_name=_env("FUNC_APP_NAME", "func-tutorial"),
        storage_name=_env("STORAGE_ACCOUNT_NAME", ""),
        sms_from=_env("SMS_FROM_NUMBER", ""),
        ssh_from=ssh_from,
        public_ip=public_ip,
    )


# -- asking ------------------------------------------------------------------------------------


def confirm(question: str) -> bool:
    """Ask with "no" as the default; ``KIT_ASSUME_YES=1`` answers yes. Unlike
    ``helpers.confirm`` it asks on every target (the plan is worth reading) and needs no kit:
    it runs before ``.env`` is complete."""
    question = question.strip().rstrip("?")
    if assume_yes(question):
        return True
    answer = _ask(f"{question}? [y/N] ")
    return answer is not None and answer.strip().lower() in _YES


# -- the SSH key -------------------------------------------------------------------------------


def ssh_public_key(vm_name: str) -> tuple[str, str]:
    """(public key, where it came from): ~/.ssh's own key, else a new one kept in ~/.ssh.

    The VM accepts only this key (no password); the tutorial itself never uses SSH: Run
    Command reaches the VM through Resource Manager."""
    ssh = Path.home() / ".ssh"
    for name in ("id_ed25519.pub", "id_rsa.pub"):
        if (ssh / name).is_file():
            return (ssh / name).read_text().strip(), str(ssh / name)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    private = ssh / f"{vm_name}_rsa"
    ssh.mkdir(mode=0o700, exist_ok=True)
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    text = public.decode() + f" {vm_name}"
    Path(f"{private}.pub").write_text(text + "\n")
    return text, f"{private}.pub (new; its private key beside it)"


# -- the clients -------------------------------------------------------------------------------


class Clients:
    """The management clients, made once, all with the kit's keywords."""

    def __init__(self, credential: Any, subscription_id: str, kwargs: dict[str, Any]) -> None:
        from azure.mgmt.communication import CommunicationServiceManagementClient
        from azure.mgmt.compute import ComputeManagementClient
        from azure.mgmt.msi import ManagedServiceIdentityClient
        from azure.mgmt.network import NetworkManagementClient
        from azure.mgmt.resource.resources import ResourceManagementClient
        from azure.mgmt.storage import StorageManagementClient
        from azure.mgmt.web import WebSiteManagementClient

        args = (credential, subscription_id)
        self.resources = ResourceManagementClient(*args, **kwargs)
        self.acs = CommunicationServiceManagementClient(*args, **kwargs)
        self.msi = ManagedServiceIdentityClient(*args, **kwargs)
        self.network = NetworkManagementClient(*args, **kwargs)
        self.compute = ComputeManagementClient(*args, **kwargs)
        self.storage = StorageManagementClient(*args, **kwargs)
        self.web = WebSiteManagementClient(*args, **kwargs)


def _existing(get: Any) -> Any:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return get()
    except ResourceNotFoundError:
        return None


@dataclass
class Step:
    """One resource: how to find it and how to create it (given what came before)."""

    key: str
    kind: str
    name: str
    find: Any
    create: Any
    found: Any = None


def steps(c: Clients, s: Settings, ssh_key: str, done: dict[str, Any]) -> list[Step]:
    """Every resource in the order Azure needs them; ``done`` maps each step's key to the
    resource found or created, which later steps refer to."""
    g, loc, n = s.group, s.location, s.names

    def rg_find() -> Any:
        return (
            c.resources.resource_groups.get(g)
            if c.resources.resource_groups.check_existence(g)
            else None
        )

    def nsg_body() -> dict[str, Any]:
        rules = []
        if s.ssh_from:
            rules.append(
                {
                    "name": "ssh-from-you",
                    "properties": {
                        "protocol": "Tcp",
                        "sourceAddressPrefix": s.ssh_from,
                        "sourcePortRange": "*",
                        "destinationAddressPrefix": "*",
                        "destinationPortRange": "22",
                        "access": "Allow",
                        "priority": 1000,
                        "direction": "Inbound",
                    },
                }
            )
        return {"location": loc, "properties": {"securityRules": rules}}

    def vm_body() -> dict[str, Any]:
        return {
            "location": loc,
            "properties": {
                "hardwareProfile": {"vmSize": s.vm_size},
                "storageProfile": {
                    "imageReference": UBUNTU,
                    "osDisk": {
                        "createOption": "FromImage",
                        "managedDisk": {"storageAccountType": "Standard_LRS"},
                        "deleteOption": "Delete",
                    },
                },
                "osProfile": {
                    "computerName": s.vm_name[:15],
                    "adminUsername": ADMIN_USER,
                    "linuxConfiguration": {
                        "disablePasswordAuthentication": True,
                        "ssh": {
                            "publicKeys": [
                                {
                                    "path": f"/home/{ADMIN_USER}/.ssh/authorized_keys",
                                    "keyData": ssh_key,
                                }
                            ]
                        },
                    },
                },
                "networkProfile": {
                    "networkInterfaces": [
                        {
                            "id": done["nic"].id,
                            "properties": {"primary": True, "deleteOption": "Delete"},
                        }
                    ]
                },
            },
        }

    def site_body() -> dict[str, Any]:
        # The result is a Mapping too: its .keys is the mapping method, so index by name.
        key = c.storage.storage_accounts.list_keys(g, s.storage_name)["keys"][0]["value"]
        storage = (
            f"DefaultEndpointsProtocol=https;AccountName={s.storage_name};AccountKey={key};"
            "EndpointSuffix=core.windows.net"
        )
        settings = {
            "FUNCTIONS_EXTENSION_VERSION": "~4",
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "AzureWebJobsStorage": storage,
            "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING": storage,
            "WEBSITE_CONTENTSHARE": s.func_name.lower(),
            "ACS_ENDPOINT": acs_endpoint(done["acs"]),
            "SMS_FROM_NUMBER": s.sms_from,
        }
        return {
            "location": loc,
            "kind": "functionapp,linux",
            "properties": {
                "reserved": True,
                "httpsOnly": True,
                "serverFarmId": done["plan"].id,
                "siteConfig": {
                    "linuxFxVersion": f"Python|{PYTHON_VERSION}",
                    "ftpsState": "Disabled",
                    "minTlsVersion": "1.2",
                    "appSettings": [{"name": k, "value": v} for k, v in settings.items()],
                },
            },
        }

    out = [
        Step(
            "rg",
            "resource group",
            g,
            rg_find,
            lambda: c.resources.resource_groups.create_or_update(g, {"location": loc}),
        ),
        Step(
            "acs",
            "Communication Services resource",
            s.acs_name,
            lambda: c.acs.communication_services.get(g, s.acs_name),
            lambda: c.acs.communication_services.begin_create_or_update(
                g,
                s.acs_name,
                {"location": "global", "properties": {"dataLocation": s.data_location}},
            ).result(),
        ),
        Step(
            "uai",
            "user-assigned identity",
            s.uai_name,
            lambda: c.msi.user_assigned_identities.get(g, s.uai_name),
            lambda: c.msi.user_assigned_identities.create_or_update(
                g, s.uai_name, {"location": loc}
            ),
        ),
        Step(
            "nsg",
            "network security group" + (f" (SSH from {s.ssh_from})" if s.ssh_from else ""),
            n["nsg"],
            lambda: c.network.network_security_groups.get(g, n["nsg"]),
            lambda: c.network.network_security_groups.begin_create_or_update(
                g, n["nsg"], nsg_body()
            ).result(),
        ),
        Step(
            "vnet",
            "virtual network and subnet",
            f"{n['vnet']}/{n['subnet']}",
            lambda: c.network.virtual_networks.get(g, n["vnet"]),
            lambda: c.network.virtual_networks.begin_create_or_update(
                g,
                n["vnet"],
                {
                    "location": loc,
                    "properties": {
                        "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                        "subnets": [
                            {
                                "name": n["subnet"],
                                "properties": {
                                    "addressPrefix": "10.0.0.0/24",
                                    "networkSecurityGroup": {"id": done["nsg"].id},
                                    # Since Network API 2025-07-01 a new subnet is private (no
                                    # outbound internet) unless told; the VM needs outbound
                                    # HTTPS for Run Command's results, pip and ACS.
                                    "defaultOutboundAccess": not s.public_ip,
                                },
                            }
                        ],
                    },
                },
            ).result(),
        ),
        Step(
            "pip",
            "public IP (Standard, static; no inbound rule allows anything)",
            n["pip"],
            lambda: c.network.public_ip_addresses.get(g, n["pip"]),
            lambda: c.network.public_ip_addresses.begin_create_or_update(
                g,
                n["pip"],
                {
                    "location": loc,
                    "sku": {"name": "Standard"},
                    "properties": {"publicIPAllocationMethod": "Static"},
                },
            ).result(),
        ),
        Step(
            "nic",
            "network interface" + (" with the public IP" if s.public_ip else " (no public IP)"),
            n["nic"],
            lambda: c.network.network_interfaces.get(g, n["nic"]),
            lambda: c.network.network_interfaces.begin_create_or_update(
                g,
                n["nic"],
                {
                    "location": loc,
                    "properties": {
                        "ipConfigurations": [
                            {
                                "name": "ipconfig1",
                                "properties": {
                                    "subnet": {"id": done["vnet"].subnets[0].id},
                                    "privateIPAllocationMethod": "Dynamic",
                                    **(
                                        {"publicIPAddress": {"id": done["pip"].id}}
                                        if s.public_ip
                                        else {}
                                    ),
                                },
                            }
                        ]
                    },
                },
            ).result(),
        ),
        Step(
            "vm",
            f"virtual machine ({s.vm_size}, Ubuntu 24.04 LTS, SSH key only)",
            s.vm_name,
            lambda: c.compute.virtual_machines.get(g, s.vm_name),
            lambda: c.compute.virtual_machines.begin_create_or_update(
                g, s.vm_name, vm_body()
            ).result(),
        ),
        Step(
            "storage",
            "storage account (for the Function app)",
            s.storage_name,
            lambda: c.storage.storage_accounts.get_properties(g, s.storage_name),
            lambda: c.storage.storage_accounts.begin_create(
                g,
                s.storage_name,
                {
                    "location": loc,
                    "kind": "StorageV2",
                    "sku": {"name": "Standard_LRS"},
                    "properties": {"minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": False},
                },
            ).result(),
        ),
        Step(
            "plan",
            "Function app plan (Linux Consumption, Y1)",
            n["plan"],
            lambda: c.web.app_service_plans.get(g, n["plan"]),
            lambda: c.web.app_service_plans.begin_create_or_update(
                g,
                n["plan"],
                {
                    "location": loc,
                    "kind": "functionapp",
                    "sku": {"name": "Y1", "tier": "Dynamic"},
                    "properties": {"reserved": True},
                },
            ).result(),
        ),
        Step(
            "site",
            f"Function app (Python {PYTHON_VERSION})",
            s.func_name,
            lambda: c.web.web_apps.get(g, s.func_name),
            lambda: c.web.web_apps.begin_create_or_update(g, s.func_name, site_body()).result(),
        ),
    ]
    return [st for st in out if st.key != "pip" or s.public_ip]


def acs_endpoint(resource: Any) -> str:
    return f"https://{resource.host_name}/"


# -- the command -------------------------------------------------------------------------------


def _client_kwargs() -> tuple[dict[str, Any], dict[str, Any]]:
    """(management client keywords, credential keywords) for the kit's target and cloud.

    On the sandbox, ``helpers.setup()`` and ``helpers.mgmt_client_kwargs()``. On Azure the same
    when ``.env`` is complete; before provisioning it cannot be (no ACS_ENDPOINT or phone numbers
    yet), and then the cloud ``.env`` names (helpers/cloud.py, where the kit has it) decide, so
    a sovereign or private cloud is never mistaken for the public one."""
    import helpers
    from helpers import target

    chosen = (os.environ.get("KIT_TARGET") or target.SANDBOX).strip().lower()
    try:
        helpers.setup(chosen)
    except target.KitConfigError:
        if chosen == target.SANDBOX:
            raise
    else:
        cred = getattr(target, "credential_kwargs", None)
        if chosen == target.SANDBOX:
            return helpers.mgmt_client_kwargs(), {}
        return helpers.mgmt_client_kwargs(), (cred() if cred else {})
    try:
        from helpers import cloud  # type: ignore[attr-defined]
    except ImportError:
        return {}, {}  # this kit knows only the public cloud, whose defaults the SDKs have
    found = cloud.from_env()
    return found.mgmt_kwargs(), found.credential_kwargs()


def _subscription() -> str:
    from helpers import target

    value = os.environ.get("AZURE_SUBSCRIPTION_ID", "").strip()
    chosen = (os.environ.get("KIT_TARGET") or target.SANDBOX).strip().lower()
    if chosen == target.SANDBOX:
        return target.current().subscription_id
    if not re.match(r"^[0-9a-fA-F-]{36}$", value):
        raise ProvisionError(
            "AZURE_SUBSCRIPTION_ID is not set: add it to .env (`az account show --query id -o "
            "tsv` prints it)."
        )
    return value


def _print_costs(s: Settings) -> None:
    print("\nWhat it costs (prices as published; read on 2026-12-02):")
    for what, price, source in COSTS:
        print(
            f"  - {what.replace('VM_SIZE', s.vm_size)}: {price}"
            + (f" [{source}]" if source else "")
        )


def _print_next(s: Settings, found: dict[str, Any]) -> None:
    acs = found.get("acs")
    print("\nAdd these lines to .env (next to .env.example):")
    print("  KIT_TARGET=azure")
    print(f"  AZURE_SUBSCRIPTION_ID={s.subscription_id}")
    print(f"  ACS_RESOURCE_GROUP={s.group}")
    print(f"  ACS_RESOURCE_NAME={s.acs_name}")
    if acs is not None:
        print(f"  ACS_ENDPOINT={acs_endpoint(acs)}")
    print(f"  VM_NAME={s.vm_name}")
    print(f"  FUNC_APP_NAME={s.func_name}")
    print(f"  SMS_FROM_NUMBER={s.sms_from or '<the toll-free number you get in the portal>'}")
    print("  SMS_TO_NUMBER=<your own mobile number, E.164>")
    print(
        "\nA phone number is not bought by this script. In the Azure portal, open the "
        f"Communication Services resource '{s.acs_name}' > Phone numbers > Get, and choose a "
        "toll-free number with SMS. Buying needs a paid subscription whose billing address is "
        "in a supported country (not a free trial or credits); a US toll-free number must "
        "pass toll-free verification before it can send SMS to US phones. Then set "
        "SMS_FROM_NUMBER in .env and run this command again to put it in the Function app's "
        "settings. See docs/real-azure.md."
    )


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.provision", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--ssh-from",
        default="",
        metavar="CIDR",
        help="allow SSH to the VM from this address range (default: no inbound rule)",
    )
    parser.add_argument(
        "--public-ip",
        action="store_true",
        help="give the VM a public IP for its outbound traffic instead of the subnet's default "
        "outbound access (billed; see docs/real-azure.md)",
    )
    args = parser.parse_args(argv)
    from helpers.target import _load_dotenv

    _load_dotenv()
    from azure.identity import DefaultAzureCredential

    kwargs, cred_kwargs = _client_kwargs()
    s = read_settings(_subscription(), args.ssh_from, args.public_ip)
    # You, not a machine: no managed identity (on a laptop its probe would only wait, and on
    # the rehearsal it would try to leave the sandbox).
    credential = DefaultAzureCredential(
        exclude_interactive_browser_credential=True,
        exclude_managed_identity_credential=True,
        **cred_kwargs,
    )
    c = Clients(credential, s.subscription_id, kwargs)
    done: dict[str, Any] = {}
    plan = steps(c, s, "", done)
    for step in plan:
        step.found = _existing(step.find)
        if step.found is not None:
            done[step.key] = step.found
    missing = [st for st in plan if st.found is None]
    print(f"Subscription {s.subscription_id}, resource group {s.group}, location {s.location}:")
    for st in plan:
        state = "exists, kept as it is" if st.found is not None else "to create"
        print(f"  {st.kind:<58} {st.name:<28} {state}")
    if not missing:
        print("\nEverything exists already: nothing to create.")
        if s.sms_from and "site" in done:
            _update_sms_from(c, s)
        _print_next(s, done)
        return 0
    _print_costs(s)
    if not confirm(f"\nCreate the {len(missing)} missing resource(s) above?"):
        print("Nothing was created.")
        return 1
    key_text = ""
    if any(st.key == "vm" for st in missing):
        key_text, where = ssh_public_key(s.vm_name)
        print(f"The VM accepts the SSH key {where} (no password).")
    created = []
    for st in steps(c, s, key_text, done):
        if st.key in done:
            continue
        print(f"Creating the {st.kind} {st.name} ...", flush=True)
        done[st.key] = st.create()
        created.append(f"{st.kind} {st.name}")
    print(f"\nCreated {len(created)}:")
    for line in created:
        print(f"  - {line}")
    _print_next(s, done)
    return 0


def _update_sms_from(c: Clients, s: Settings) -> None:
    """SMS_FROM_NUMBER set after the app was made: put it in the app's settings (asks)."""
    current = c.web.web_apps.list_application_settings(s.group, s.func_name)
    props = dict(current.properties or {})
    if props.get("SMS_FROM_NUMBER") == s.sms_from:
        return
    if confirm(f"Set SMS_FROM_NUMBER={s.sms_from} in the Function app's settings?"):
        props["SMS_FROM_NUMBER"] = s.sms_from
        c.web.web_apps.update_application_settings(s.group, s.func_name, {"properties": props})
        print("The Function app's SMS_FROM_NUMBER is set.")


def main(argv: list[str] | None = None) -> int:
    from azure.core.exceptions import HttpResponseError

    from helpers.target import KitConfigError

    try:
        return run(argv)
    except (ProvisionError, KitConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except HttpResponseError as e:
        code = getattr(e.error, "code", None) or e.status_code
        message = getattr(e.error, "message", None) or e.message
        print(f"error: Azure refused ({code}): {message}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
