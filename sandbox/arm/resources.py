"""Resource types stored as given: the network, storage and App Service plan the tutorial's VM
and Function app stand on.

Resource Manager checks what every tracked resource needs (a location), each provider checks
its own required properties, and the stored resource comes back as given plus the read-only
properties the provider adds (``provisioningState``, ids of nested parts, ``resourceGuid``...).
Hosts (VMs and sites) are not here: they live in ``host`` documents (sandbox/arm/models.py)
because the identity endpoints and the app hosting read those.

Long-running operations finish before the answer: a create answers 201 and an update 200 with
``provisioningState`` ``Succeeded``, which the management SDKs' pollers accept at once. Azure
answers Network and Compute creates 201 with an ``Azure-AsyncOperation`` header and a state such
as ``Updating``, and storage account creates 202 with ``Location`` (see sandbox/FIDELITY.md).
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sandbox import clock

NETWORK = "Microsoft.Network"
VNET_TYPE = "Microsoft.Network/virtualNetworks"
SUBNET_TYPE = "Microsoft.Network/virtualNetworks/subnets"
NSG_TYPE = "Microsoft.Network/networkSecurityGroups"
PIP_TYPE = "Microsoft.Network/publicIPAddresses"
NIC_TYPE = "Microsoft.Network/networkInterfaces"
STORAGE_TYPE = "Microsoft.Storage/storageAccounts"
PLAN_TYPE = "Microsoft.Web/serverfarms"


class Invalid(Exception):
    """A provider's refusal of a body: (status, code, message, target)."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.target = status, code, message, target


def _get(body: dict[str, Any], path: str) -> Any:
    value: Any = body
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _now() -> str:
    return datetime.fromtimestamp(clock.now(), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _etag() -> str:
    return f'W/"{uuid.uuid4()}"'


# -- what each provider requires ---------------------------------------------------------------


def _check_storage(body: dict[str, Any], rid: str) -> None:
    """Storage lists every missing or invalid parameter in one message (terraform-provider-
    azurerm#8089 shows the text for invalid ``kind`` and ``sku``; missing ones: our choice)."""
    missing = [p for p in ("kind", "sku") if not _get(body, p if p == "kind" else "sku.name")]
    if missing:
        raise Invalid(
            400,
            "InvalidValuesForRequestParameters",
            f"Values for request parameters are invalid: {', '.join(missing)}.",
        )


def _check_nic(body: dict[str, Any], rid: str) -> None:
    """Each IP configuration needs a subnet (text: Azure/azure-sdk-for-python PR #536; the
    code is not in that report: ours)."""
    configs = _get(body, "properties.ipConfigurations")
    if not isinstance(configs, list) or not configs:
        raise Invalid(
            400,
            "NetworkInterfaceMustHaveIpConfiguration",
            f"Network interface {rid} must have one or more IP configurations.",
        )
    for cfg in configs:
        name = cfg.get("name", "ipconfig1") if isinstance(cfg, dict) else "ipconfig1"
        if not _get(cfg if isinstance(cfg, dict) else {}, "properties.subnet.id"):
            raise Invalid(
                400,
                "SubnetReferenceRequired",
                f"Subnet reference is required for ipconfiguration {rid}/ipConfigurations/{name}.",
            )


def _check_subnet(body: dict[str, Any], rid: str) -> None:
    """No public source for this refusal; code and text our choice."""
    props = body.get("properties") or {}
    if not (props.get("addressPrefix") or props.get("addressPrefixes")):
        raise Invalid(400, "InvalidRequestFormat", f"Subnet {rid} must have an address prefix.")


# -- what each provider adds -------------------------------------------------------------------


def _network_common(props: dict[str, Any]) -> None:
    props["provisioningState"] = "Succeeded"
    props.setdefault("resourceGuid", str(uuid.uuid4()))


def _subnet_view(vnet_id: str, sub: dict[str, Any]) -> dict[str, Any]:
    name = sub.get("name", "default")
    props = dict(sub.get("properties") or {})
    props["provisioningState"] = "Succeeded"
    return {
        "name": name,
        "id": f"{vnet_id}/subnets/{name}",
        "etag": sub.get("etag") or _etag(),
        "type": SUBNET_TYPE,
        "properties": props,
    }


def _fill_vnet(doc: dict[str, Any]) -> None:
    props = doc["properties"]
    _network_common(props)
    props.setdefault("enableDdosProtection", False)
    props["subnets"] = [
        _subnet_view(doc["id"], s) for s in props.get("subnets") or [] if isinstance(s, dict)
    ]


def _fill_nsg(doc: dict[str, Any]) -> None:
    props = doc["properties"]
    _network_common(props)
    rules = []
    for rule in props.get("securityRules") or []:
        if isinstance(rule, dict):
            name = rule.get("name", "rule")
            r_props = dict(rule.get("properties") or {})
            r_props["provisioningState"] = "Succeeded"
            rules.append(
                {
                    "name": name,
                    "id": f"{doc['id']}/securityRules/{name}",
                    "type": f"{NSG_TYPE}/securityRules",
                    "etag": _etag(),
                    "properties": r_props,
                }
            )
    props["securityRules"] = rules


def _fill_pip(doc: dict[str, Any]) -> None:
    props = doc["properties"]
    _network_common(props)
    props.setdefault("publicIPAddressVersion", "IPv4")
    props.setdefault("publicIPAllocationMethod", "Static")
    props.setdefault("idleTimeoutInMinutes", 4)


def _fill_nic(doc: dict[str, Any]) -> None:
    props = doc["properties"]
    _network_common(props)
    configs = []
    for i, cfg in enumerate(props.get("ipConfigurations") or []):
        name = cfg.get("name", f"ipconfig{i + 1}")
        c_props = dict(cfg.get("properties") or {})
        c_props["provisioningState"] = "Succeeded"
        c_props.setdefault("privateIPAllocationMethod", "Dynamic")
        c_props.setdefault("privateIPAddress", f"10.0.0.{4 + i}")
        c_props.setdefault("privateIPAddressVersion", "IPv4")
        c_props.setdefault("primary", i == 0)
        configs.append(
            {
                "name": name,
                "id": f"{doc['id']}/ipConfigurations/{name}",
                "etag": _etag(),
                "type": f"{NIC_TYPE}/ipConfigurations",
                "properties": c_props,
            }
        )
    props["ipConfigurations"] = configs
    props.setdefault("enableAcceleratedNetworking", False)
    props.setdefault("enableIPForwarding", False)
    props.setdefault("nicType", "Standard")


def _fill_storage(doc: dict[str, Any]) -> None:
    name = doc["name"]
    props = doc["properties"]
    props["provisioningState"] = "Succeeded"
    props.setdefault("creationTime", _now())
    props["primaryLocation"] = doc["location"]
    props["statusOfPrimary"] = "available"
    props["primaryEndpoints"] = {
        svc: f"https://{name}.{svc}.core.windows.net/"
        for svc in ("blob", "queue", "table", "file", "dfs", "web")
    }
    props.setdefault("supportsHttpsTrafficOnly", True)
    props.setdefault("minimumTlsVersion", "TLS1_2")
    if "keys" not in doc:
        doc["keys"] = [
            base64.b64encode(secrets.token_bytes(64)).decode(),
            base64.b64encode(secrets.token_bytes(64)).decode(),
        ]


def _fill_plan(doc: dict[str, Any]) -> None:
    props = doc["properties"]
    props["provisioningState"] = "Succeeded"
    props["status"] = "Ready"
    props.setdefault("reserved", False)
    props["numberOfSites"] = props.get("numberOfSites", 0)
    props.setdefault("maximumNumberOfWorkers", 1 if doc.get("sku", {}).get("tier") else 0)
    props["resourceGroup"] = doc["id"].split("/")[4]


@dataclass(frozen=True)
class TypeSpec:
    """A stored-as-given type: how its provider checks a body and what it adds."""

    type: str
    check: Callable[[dict[str, Any], str], None] | None
    fill: Callable[[dict[str, Any]], None]
    etag: bool  # Network resources carry an etag at the top level
    created: int = 201  # the status of a create: the spec's PUT answers 200/201, or 200/202


SPECS: dict[str, TypeSpec] = {
    t.type.lower(): t
    for t in (
        TypeSpec(VNET_TYPE, None, _fill_vnet, True),
        TypeSpec(NSG_TYPE, None, _fill_nsg, True),
        TypeSpec(PIP_TYPE, None, _fill_pip, True),
        TypeSpec(NIC_TYPE, _check_nic, _fill_nic, True),
        # StorageAccounts_Create and AppServicePlans_CreateOrUpdate answer 200 or 202 (their
        # specs); finished at once, 200.
        TypeSpec(STORAGE_TYPE, _check_storage, _fill_storage, False, 200),
        TypeSpec(PLAN_TYPE, None, _fill_plan, False, 200),
    )
}


def spec(full_type: str) -> TypeSpec | None:
    return SPECS.get(full_type.lower())


def build(
    ts: TypeSpec, rid: str, name: str, body: dict[str, Any], old: dict[str, Any] | None
) -> dict[str, Any]:
    """The stored document for a PUT of ``body`` (replacing ``old``): as given, plus what the
    provider adds. Raises Invalid when the provider refuses the body."""
    if ts.check:
        ts.check(body, rid)
    doc: dict[str, Any] = {
        k: v for k, v in body.items() if k not in ("id", "name", "type", "etag", "properties")
    }
    doc.update(id=rid, name=name, type=ts.type)
    doc["properties"] = dict(body.get("properties") or {})
    doc.setdefault("tags", {})
    if old:
        if "resourceGuid" in old.get("properties", {}):
            doc["properties"]["resourceGuid"] = old["properties"]["resourceGuid"]
        if "keys" in old:
            doc["keys"] = old["keys"]
        if "creationTime" in old.get("properties", {}):
            doc["properties"]["creationTime"] = old["properties"]["creationTime"]
    ts.fill(doc)
    if ts.etag:
        doc["etag"] = _etag()
    return doc


def view(doc: dict[str, Any]) -> dict[str, Any]:
    """What GET answers: the document without what only listKeys shows."""
    return {k: v for k, v in doc.items() if k != "keys"}


def put_subnet(vnet: dict[str, Any], name: str, body: dict[str, Any]) -> tuple[bool, dict]:
    """(created, subnet view) after writing subnet ``name`` into ``vnet`` (a vnet document)."""
    _check_subnet(body, f"{vnet['id']}/subnets/{name}")
    subnets = vnet["properties"].setdefault("subnets", [])
    created = not any(s["name"].lower() == name.lower() for s in subnets)
    new = _subnet_view(vnet["id"], {"name": name, "properties": body.get("properties") or {}})
    vnet["properties"]["subnets"] = [s for s in subnets if s["name"].lower() != name.lower()]
    vnet["properties"]["subnets"].append(new)
    return created, new


def storage_keys(doc: dict[str, Any]) -> dict[str, Any]:
    """listKeys's answer (spec example StorageAccountListKeys.json's shape)."""
    created = doc["properties"].get("creationTime")
    return {
        "keys": [
            {"creationTime": created, "keyName": f"key{i + 1}", "value": v, "permissions": "FULL"}
            for i, v in enumerate(doc["keys"])
        ]
    }
