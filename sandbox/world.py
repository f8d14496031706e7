"""The seeded world: what a fresh (or reset) sandbox contains.

Read this file to know the simulated Azure estate the notebooks work in. Identifiers are fixed so
that notebook outputs stay comparable between runs; every secret (passwords, client secrets,
access keys, App Service identity headers) is generated once per installation and never committed.

    tenant        Contoso Sandbox (contososandbox.onmicrosoft.com)
    subscription  "ACS tutorial subscription"
      resource group  rg-acs-tutorial (eastus)
        acs-tutorial    Communication Services resource, one access key pair,
                        a toll-free sender number and learner phones that receive SMS
        vm-tutorial     virtual machine, IMDS-style identity endpoint, no managed identity yet
        func-tutorial   Function app, App Service-style identity endpoint, no managed identity yet
    people and apps
        developer       a user who signs in interactively (az login); Owner of the subscription
        sp-acs-tutorial a service principal with a client secret; Contributor on the group
                        (what `az ad sp create-for-rbac --role Contributor` creates)
        Azure CLI       the public client id the SDKs and the CLI sign in with
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from sandbox.store import Store

TENANT_ID = "7b3c2a10-5d4e-4f6a-9b8c-1d2e3f4a5b6c"
TENANT_DOMAIN = "contososandbox.onmicrosoft.com"
SUBSCRIPTION_ID = "3f2e1d0c-9b8a-4c7d-8e6f-5a4b3c2d1e0f"
RESOURCE_GROUP = "rg-acs-tutorial"
LOCATION = "eastus"

SUBSCRIPTION_SCOPE = f"/subscriptions/{SUBSCRIPTION_ID}"
GROUP_SCOPE = f"{SUBSCRIPTION_SCOPE}/resourceGroups/{RESOURCE_GROUP}"

ACS_NAME = "acs-tutorial"
ACS_RESOURCE_ID = (
    f"{GROUP_SCOPE}/providers/Microsoft.Communication/communicationServices/{ACS_NAME}"
)
ACS_IMMUTABLE_ID = "2dee53b4-368b-45b4-ab52-8493fb117652"
SENDER_NUMBERS = ["+18005550100"]  # toll-free, leased by acs-tutorial
LEARNER_PHONES = ["+14255550101", "+14255550102", "+14255550103"]

AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

DEVELOPER_OID = "a1b2c3d4-0001-4e5f-8a9b-0c1d2e3f4a5b"
DEVELOPER_UPN = f"developer@{TENANT_DOMAIN}"

SP_NAME = "sp-acs-tutorial"
SP_CLIENT_ID = "c0ffee00-1111-4222-8333-444455556666"
SP_OID = "5e6f7a8b-0002-4c3d-9e0f-1a2b3c4d5e6f"

HOSTS = {
    "vm-tutorial": {
        "kind": "vm",
        "type": "Microsoft.Compute/virtualMachines",
        "endpoint_style": "imds",
    },
    "func-tutorial": {
        "kind": "functionapp",
        "type": "Microsoft.Web/sites",
        "endpoint_style": "appservice",
    },
}

# Built-in role definitions exactly as Azure publishes them (roleName, description, permissions).
# Sources: MicrosoftDocs/azure-docs articles/role-based-access-control/built-in-roles/privileged.md
# (Owner, Contributor, User Access Administrator) and general.md (Reader); the Communication and
# Email Service Owner definition as the role-definitions API returns it (azure-rbac-catalog.org's
# copy, updated 2024-11-21; its list of EmailServices actions continues past what we could read,
# see sandbox/FIDELITY.md). Every role is assignable at "/" with no data actions.
ROLES: dict[str, dict[str, Any]] = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": {
        "roleName": "Owner",
        "description": "Grants full access to manage all resources, including the ability to "
        "assign roles in Azure RBAC.",
        "actions": ["*"],
        "notActions": [],
    },
    "b24988ac-6180-42a0-ab88-20f7382dd24c": {
        "roleName": "Contributor",
        "description": "Grants full access to manage all resources, but does not allow you to "
        "assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image "
        "galleries.",
        "actions": ["*"],
        "notActions": [
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
            "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
            "Microsoft.Subscription/cancel/action",
            "Microsoft.Subscription/enable/action",
        ],
    },
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": {
        "roleName": "Reader",
        "description": "View all resources, but does not allow you to make any changes.",
        "actions": ["*/read"],
        "notActions": [],
    },
    # Virtual Machine Contributor (MicrosoftDocs/azure-docs built-in-roles compute.md and the
    # role-definitions REST example): the Compute, Authorization, Insights and Resources actions
    # and the list's tail as published; its Network actions between them are left out (they
    # judge nothing the sandbox serves; see sandbox/FIDELITY.md, Run Command).
    "9980e02c-c2be-4d73-94e8-173b1dc7cf3c": {
        "roleName": "Virtual Machine Contributor",
        "description": "Lets you manage virtual machines, but not access to them, and not the "
        "virtual network or storage account they\u2019re connected to.",
        "actions": [
            "Microsoft.Authorization/*/read",
            "Microsoft.Compute/availabilitySets/*",
            "Microsoft.Compute/locations/*",
            "Microsoft.Compute/virtualMachines/*",
            "Microsoft.Compute/virtualMachineScaleSets/*",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.ResourceHealth/availabilityStatuses/read",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.SqlVirtualMachine/*",
            "Microsoft.Storage/storageAccounts/listKeys/action",
            "Microsoft.Storage/storageAccounts/read",
            "Microsoft.Support/*",
        ],
        "notActions": [],
    },
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": {
        "roleName": "User Access Administrator",
        "description": "Lets you manage user access to Azure resources.",
        "actions": ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
        "notActions": [],
    },
    "09976791-48a7-449e-bb21-39d1a415f350": {
        "roleName": "Communication and Email Service Owner",
        "description": "Create, read, modify, and delete Communications and Email Service "
        "resources.",
        "actions": [
            "Microsoft.Communication/CheckNameAvailability/action",
            "Microsoft.Communication/Locations/OperationStatuses/read",
            "Microsoft.Communication/Locations/OperationStatuses/write",
            "Microsoft.Communication/Operations/read",
            "Microsoft.Communication/CommunicationServices/read",
            "Microsoft.Communication/CommunicationServices/write",
            "Microsoft.Communication/CommunicationServices/delete",
            "Microsoft.Communication/CommunicationServices/ListKeys/action",
            "Microsoft.Communication/CommunicationServices/RegenerateKey/action",
            "Microsoft.Communication/CommunicationServices/LinkNotificationHub/action",
            "Microsoft.Communication/CommunicationServices/EventGridFilters/read",
            "Microsoft.Communication/CommunicationServices/EventGridFilters/write",
            "Microsoft.Communication/CommunicationServices/EventGridFilters/delete",
            "Microsoft.Communication/EmailServices/read",
            "Microsoft.Communication/EmailServices/write",
            "Microsoft.Communication/EmailServices/delete",
            "Microsoft.Communication/EmailServices/Domains/read",
            "Microsoft.Communication/EmailServices/Domains/write",
            "Microsoft.Communication/EmailServices/Domains/delete",
            "Microsoft.Communication/EmailServices/Domains/SenderUsernames/read",
            "Microsoft.Communication/EmailServices/Domains/SenderUsernames/write",
            "Microsoft.Communication/EmailServices/Domains/SenderUsernames/delete",
        ],
        "notActions": [],
    },
}
OWNER_ROLE_ID = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR_ROLE_ID = "b24988ac-6180-42a0-ab88-20f7382dd24c"

# Fixed names for the seeded role assignments (assignment names are GUIDs in Azure).
SEED_ASSIGNMENTS = [
    (
        "0d9c8b7a-0001-4000-8000-000000000001",
        SUBSCRIPTION_SCOPE,
        OWNER_ROLE_ID,
        DEVELOPER_OID,
        "User",
    ),
    (
        "0d9c8b7a-0002-4000-8000-000000000002",
        GROUP_SCOPE,
        CONTRIBUTOR_ROLE_ID,
        SP_OID,
        "ServicePrincipal",
    ),
]


def builtin_role(guid: str) -> dict[str, Any]:
    """The stored form of a built-in role definition: its published fields, no data actions."""
    role = ROLES[guid]
    return {
        "id": guid,
        "type": "BuiltInRole",
        "assignableScopes": ["/"],
        "dataActions": [],
        "notDataActions": [],
        **role,
    }


def role_definition_id(role_guid: str, scope: str = SUBSCRIPTION_SCOPE) -> str:
    return f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"


def host_resource_id(name: str) -> str:
    return f"{GROUP_SCOPE}/providers/{HOSTS[name]['type']}/{name}"


def new_access_key() -> str:
    """An ACS access key: 64 random bytes, base64, as the portal shows them."""
    return base64.b64encode(secrets.token_bytes(64)).decode()


def installation_secrets(store: Store) -> dict[str, Any]:
    """Secrets made once per installation; reset keeps them, a new state folder renews them."""
    found = store.get("installation", "secrets")
    if found and "mi_path" in found:
        return found
    made = found or {
        "developer_password": secrets.token_urlsafe(12),
        "sp_secret": secrets.token_urlsafe(30),
        "acs_keys": {"primaryKey": new_access_key(), "secondaryKey": new_access_key()},
        "identity_headers": {name: secrets.token_hex(16) for name in HOSTS},
    }
    # The identity endpoints' path segment: their plain-HTTP port is visible to every user of
    # the machine, so the path is what keeps another user from this installation's tokens.
    # (Added to state folders made before it existed.)
    made["mi_path"] = secrets.token_hex(16)
    store.put("installation", "secrets", made)
    return made


def seed(store: Store, *, empty: bool = False) -> None:
    """Write the seeded world into an empty store (documents only, no HTTP).

    ``empty``: the same tenant, people and roles, and the resource group with nothing in it
    (no ACS resource, no hosts), for a learner's first run of ``python -m helpers.provision``
    (``python -m sandbox reset --empty``)."""
    made = installation_secrets(store)
    with store.transaction():
        store.put(
            "tenant",
            TENANT_ID,
            {"id": TENANT_ID, "domain": TENANT_DOMAIN, "display_name": "Contoso Sandbox"},
        )
        store.put(
            "subscription",
            SUBSCRIPTION_ID,
            {
                "id": SUBSCRIPTION_ID,
                "display_name": "ACS tutorial subscription",
                "tenant_id": TENANT_ID,
            },
        )
        store.put(
            "resource_group",
            RESOURCE_GROUP.lower(),
            {"id": GROUP_SCOPE, "name": RESOURCE_GROUP, "location": LOCATION},
        )
        store.put(
            "principal",
            DEVELOPER_OID,
            {
                "object_id": DEVELOPER_OID,
                "kind": "User",
                "display_name": "Sandbox Developer",
                "upn": DEVELOPER_UPN,
                "tenant_id": TENANT_ID,
                "password": made["developer_password"],
            },
        )
        store.put(
            "principal",
            SP_OID,
            {
                "object_id": SP_OID,
                "kind": "ServicePrincipal",
                "display_name": SP_NAME,
                "app_id": SP_CLIENT_ID,
                "tenant_id": TENANT_ID,
                "secret": made["sp_secret"],
                # Workload identity: a federated credential trusts assertions signed by the
                # sandbox's own key for this subject (see entra docs in sandbox/README.md).
                "federated_subject": f"system:serviceaccount:default:{SP_NAME}",
            },
        )
        store.put(
            "principal",
            "public-client-azure-cli",
            {
                "object_id": "public-client-azure-cli",
                "kind": "PublicClient",
                "display_name": "Microsoft Azure CLI",
                "app_id": AZURE_CLI_CLIENT_ID,
                "tenant_id": TENANT_ID,
            },
        )
        for name, info in {} if empty else HOSTS.items():
            store.put(
                "host",
                name,
                {
                    "name": name,
                    "kind": info["kind"],
                    "type": info["type"],
                    "endpoint_style": info["endpoint_style"],
                    "resource_id": host_resource_id(name),
                    "location": LOCATION,
                    "identity": {"type": "None"},
                    "identity_header": made["identity_headers"][name],
                },
            )
        for guid in ROLES:
            store.put("role_definition", guid, builtin_role(guid))
        for name, scope, role, principal, ptype in SEED_ASSIGNMENTS:
            store.put(
                "role_assignment",
                name,
                {
                    "name": name,
                    "scope": scope,
                    "role_definition_guid": role,
                    "principal_id": principal,
                    "principal_type": ptype,
                    "created_on": "2026-01-01T00:00:00Z",
                },
            )
        if empty:
            # The numbers a learner would buy in the portal (which the sandbox has no stand-in
            # for): they go to the ACS resource created under the seeded name in the seeded
            # group (sandbox/arm/models.py ``put_acs``).
            store.put(
                "phone_inventory",
                ACS_NAME,
                {
                    "group": RESOURCE_GROUP,
                    "sender_numbers": list(SENDER_NUMBERS),
                    "learner_phones": list(LEARNER_PHONES),
                },
            )
            return
        store.put(
            "acs_resource",
            ACS_NAME,
            {
                "name": ACS_NAME,
                "id": ACS_RESOURCE_ID,
                "immutable_resource_id": ACS_IMMUTABLE_ID,
                "location": "global",
                "data_location": "United States",
                "keys": dict(made["acs_keys"]),
                "sender_numbers": list(SENDER_NUMBERS),
                "learner_phones": list(LEARNER_PHONES),
            },
        )


def reset(store: Store, *, empty: bool = False) -> None:
    """Back to the seeded world (``empty``: with an empty resource group), keeping the
    installation's secrets."""
    made = installation_secrets(store)
    with store.transaction():
        store.wipe()
        store.put("installation", "secrets", made)
        seed(store, empty=empty)
