"""The Resource Manager slice, without HTTP: hosts and their identities, user-assigned identities,
role definitions and assignments, the ACS resource and its keys.

Every method takes the calling principal and checks RBAC first, as ARM does, so a refusal here is
the same ``AuthorizationFailed`` the cloud returns. Identity changes write the ``principal``
documents the managed-identity endpoints read, so they take effect on the next token request.

Choices where Azure's behaviour is not documented (also listed in sandbox/README.md):
- Disabling a system-assigned identity or deleting a user-assigned one deletes its service
  principal *and its role assignments* (Azure leaves orphaned "Identity not found" assignments;
  they could never apply again, so the sandbox removes them to keep listings readable), and
  deleting a user-assigned identity detaches it from every host.
- Hosts (VMs and sites) are created by PUT like any resource and become hosts like the seeded
  ones (identity endpoint, Run Command, app hosting); the other types the tutorial's world
  needs are stored as given (sandbox/arm/resources.py).
- Role definitions can be read by any caller holding a token for the tenant.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from sandbox import clock, world
from sandbox.arm import rbac, resources
from sandbox.store import Store

HOST_TYPES = {t["type"].lower(): t["type"] for t in world.HOSTS.values()}
UAI_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
ACS_TYPE = "Microsoft.Communication/communicationServices"
KNOWN_TYPES = {
    **HOST_TYPES,
    UAI_TYPE.lower(): UAI_TYPE,
    ACS_TYPE.lower(): ACS_TYPE,
    **{k: t.type for k, t in resources.SPECS.items()},
}
VM_TYPE = "Microsoft.Compute/virtualMachines"
SITE_TYPE = "Microsoft.Web/sites"

GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
ROLE_DEF_RE = re.compile(
    r"(?:^|/providers/Microsoft\.Authorization/roleDefinitions/)([^/]+)$", re.I
)
UAI_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$")
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")


class ArmError(Exception):
    """A refusal with ARM's status, ``error.code`` and message."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target  # Compute names the offending parameter


@dataclass(frozen=True)
class Caller:
    """Who a bearer token speaks for: object id, and the name ARM's messages show."""

    object_id: str
    name: str


def caller_from_claims(store: Store, claims: dict[str, Any]) -> Caller:
    """ARM names a user by UPN and an application by its app (client) id."""
    oid = str(claims.get("oid", ""))
    p = store.get("principal", oid) if oid else None
    if p and p.get("kind") == "User":
        return Caller(oid, p.get("upn") or oid)
    if p:
        return Caller(oid, p.get("app_id") or oid)
    return Caller(oid, claims.get("upn") or claims.get("appid") or oid)


def _now_iso() -> str:
    return datetime.fromtimestamp(clock.now(), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Scope:
    """A parsed ARM scope: subscription, resource group or resource (one level deep)."""

    subscription: str
    group: str | None = None
    type: str | None = None  # "Namespace/type" as given
    name: str | None = None

    @property
    def id(self) -> str:
        out = f"/subscriptions/{self.subscription}"
        if self.group is not None:
            out += f"/resourceGroups/{self.group}"
        if self.type is not None:
            out += f"/providers/{self.type}/{self.name}"
        return out


_SCOPE_RE = re.compile(
    r"^/subscriptions/([^/]+)(?:/resourceGroups/([^/]+)(?:/providers/([^/]+/[^/]+)/([^/]+))?)?/?$",
    re.I,
)


def parse_scope(text: str) -> Scope:
    m = _SCOPE_RE.match("/" + text.strip().lstrip("/"))
    if not m:
        raise ArmError(
            400,
            "InvalidScope",
            f"The scope '{text}' is not valid: use a subscription, resource group or resource id.",
        )
    return Scope(*m.groups())


class ResourceManager:
    """One request's view of Resource Manager, acting for ``caller``."""

    def __init__(self, store: Store, caller: Caller, acs_endpoint: str) -> None:
        self.store = store
        self.caller = caller
        self.acs_endpoint = acs_endpoint
        self.operation: str | None = None  # the first action checked: what the log reports

    # -- authorization -----------------------------------------------------------------------

    def allowed(self, scope_id: str, action: str) -> bool:
        return rbac.is_allowed(self.store, self.caller.object_id, scope_id, action)

    def authorize(self, scope_id: str, action: str) -> None:
        if self.operation is None:
            self.operation = action
        if not self.allowed(scope_id, action):
            raise ArmError(
                403,
                "AuthorizationFailed",
                f"The client '{self.caller.name}' with object id '{self.caller.object_id}' does "
                f"not have authorization to perform action '{action}' over scope '{scope_id}' "
                "or the scope is invalid. If access was recently granted, please refresh your "
                "credentials.",
            )

    # -- subscriptions and groups ------------------------------------------------------------

    def _subscription(self, sub: str) -> dict[str, Any]:
        doc = self.store.get("subscription", sub.lower())
        if doc is None:
            raise ArmError(
                404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found."
            )
        return doc

    def _group(self, sub: str, rg: str) -> dict[str, Any]:
        self._subscription(sub)
        doc = self.store.get("resource_group", rg.lower())
        if doc is None:
            raise ArmError(
                404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found."
            )
        return doc

    def _has_any_role_in(self, scope_id: str) -> bool:
        prefix = scope_id.lower().rstrip("/")
        return any(
            a["principal_id"] == self.caller.object_id
            and (
                a["scope"].lower() == prefix
                or a["scope"].lower().startswith(prefix + "/")
                or prefix.startswith(a["scope"].lower().rstrip("/") + "/")
            )
            for a in self.store.list("role_assignment")
        )

    def _subscription_view(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{doc['id']}",
            "subscriptionId": doc["id"],
            "tenantId": doc["tenant_id"],
            "displayName": doc["display_name"],
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "tags": doc.get("tags", {}),
        }

    def get_subscription(self, sub: str) -> dict[str, Any]:
        """Visible to anyone holding a role anywhere in it, as in Azure."""
        doc = self._subscription(sub)
        self.operation = "Microsoft.Resources/subscriptions/read"
        if not self._has_any_role_in(f"/subscriptions/{doc['id']}"):
            self.authorize(f"/subscriptions/{doc['id']}", self.operation)
        return self._subscription_view(doc)

    def list_subscriptions(self) -> list[dict[str, Any]]:
        self.operation = "Microsoft.Resources/subscriptions/read"
        return [
            self._subscription_view(d)
            for d in self.store.list("subscription")
            if self._has_any_role_in(f"/subscriptions/{d['id']}")
        ]

    def _group_view(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": doc["id"],
            "name": doc["name"],
            "type": "Microsoft.Resources/resourceGroups",
            "location": doc["location"],
            "tags": doc.get("tags", {}),
            "properties": {"provisioningState": "Succeeded"},
        }

    def get_group(self, sub: str, rg: str) -> dict[str, Any]:
        doc = self._group(sub, rg)
        self.authorize(doc["id"], "Microsoft.Resources/subscriptions/resourceGroups/read")
        return self._group_view(doc)

    def list_groups(self, sub: str) -> list[dict[str, Any]]:
        self._subscription(sub)
        self.operation = "Microsoft.Resources/subscriptions/resourceGroups/read"
        return [
            self._group_view(d)
            for d in self.store.list("resource_group")
            if self.allowed(d["id"], self.operation)
        ]

    # -- finding resources -------------------------------------------------------------------

    def _not_found(self, scope: Scope) -> ArmError:
        return ArmError(
            404,
            "ResourceNotFound",
            f"The Resource '{scope.type}/{scope.name}' under resource group '{scope.group}' "
            "was not found. For more details please go to "
            "https://aka.ms/ARMResourceNotFoundFix",
        )

    def _canonical_type(self, scope: Scope) -> str:
        found = KNOWN_TYPES.get((scope.type or "").lower())
        if found is None:
            ns, _, rtype = (scope.type or "/").partition("/")
            raise ArmError(
                404,
                "InvalidResourceType",
                f"The resource type '{rtype}' could not be found in the namespace '{ns}'.",
            )
        return found

    def _find(self, scope: Scope) -> tuple[str, dict[str, Any] | None]:
        """(canonical type, document or None) for a resource scope in an existing group."""
        rtype = self._canonical_type(scope)
        self._group(scope.subscription, scope.group or "")
        rid = scope.id.lower()
        if rtype in HOST_TYPES.values():
            docs = self.store.list("host", lambda h: h["resource_id"].lower() == rid)
        elif rtype == UAI_TYPE:
            found = self.store.get("user_assigned_identity", rid)
            docs = [found] if found else []
        elif resources.spec(rtype):
            found = self.store.get("arm_resource", rid)
            docs = [found] if found else []
        else:
            docs = self.store.list("acs_resource", lambda a: a["id"].lower() == rid)
        return rtype, (docs[0] if docs else None)

    def require_scope(self, scope: Scope) -> str:
        """The canonical id of an existing subscription, group or resource (404 otherwise)."""
        if scope.group is None:
            return f"/subscriptions/{self._subscription(scope.subscription)['id']}"
        group = self._group(scope.subscription, scope.group)
        if scope.type is None:
            return group["id"]
        rtype, doc = self._find(scope)
        if doc is None:
            raise self._not_found(scope)
        return doc.get("resource_id") or doc["id"]

    # -- generic resources: the hosts --------------------------------------------------------

    def _identity_view(self, host: dict[str, Any]) -> dict[str, Any] | None:
        ident = host.get("identity") or {"type": "None"}
        if ident.get("type", "None") == "None":
            return None
        out: dict[str, Any] = {"type": ident["type"]}
        if ident.get("principal_id"):
            out["principalId"] = ident["principal_id"]
            out["tenantId"] = world.TENANT_ID
        if ident.get("user_assigned"):
            ua = {}
            for rid in ident["user_assigned"]:
                doc = self.store.get("user_assigned_identity", rid.lower())
                if doc:
                    ua[doc["id"]] = {
                        "principalId": doc["principal_id"],
                        "clientId": doc["client_id"],
                    }
            out["userAssignedIdentities"] = ua
        return out

    def host_view(self, host: dict[str, Any]) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": host["resource_id"],
            "name": host["name"],
            "type": host["type"],
            "location": host["location"],
            "tags": host.get("tags", {}),
        }
        if host["type"] == SITE_TYPE:
            view["kind"] = host.get("site_kind", "functionapp")
            view["properties"] = site_properties(host, self.acs_endpoint)
        else:
            given = host.get("properties") or {"hardwareProfile": {"vmSize": "Standard_B1s"}}
            view["properties"] = {
                **given,
                "vmId": str(uuid.uuid5(uuid.NAMESPACE_URL, host["resource_id"].lower())),
                "provisioningState": "Succeeded",
            }
            if host.get("created_on"):
                view["properties"]["timeCreated"] = host["created_on"]
        identity = self._identity_view(host)
        if identity:
            view["identity"] = identity
        return view

    def get_resource(self, scope: Scope) -> dict[str, Any]:
        rtype = self._canonical_type(scope)
        self.authorize(scope.id, f"{rtype}/read")
        rtype, doc = self._find(scope)
        if doc is None:
            raise self._not_found(scope)
        if rtype == UAI_TYPE:
            return self.uai_view(doc)
        if rtype == ACS_TYPE:
            return self.acs_view(doc)
        if resources.spec(rtype):
            return resources.view(doc)
        return self.host_view(doc)

    def update_host(self, scope: Scope, body: Any, *, replace: bool) -> dict[str, Any]:
        """PATCH (merge) or PUT (replace) a host; only ``identity`` and ``tags`` change."""
        rtype = self._canonical_type(scope)
        self.authorize(scope.id, f"{rtype}/write")
        _, host = self._find(scope)
        if host is None:
            raise self._not_found(scope)
        if not isinstance(body, dict):
            raise _invalid_content("the body must be a JSON object")
        if replace:
            location = _required_location(body)
            if _norm_location(location) != _norm_location(host["location"]):
                raise _location_conflict(host["resource_id"], host["location"], location)
        with self.store.transaction():
            if replace or "identity" in body:
                self._apply_identity(host, body.get("identity"), merge=not replace)
            if replace or "tags" in body:
                host["tags"] = _tags(body.get("tags"))
            self.store.put("host", host["name"], host)
        return self.host_view(host)

    def put_host(self, scope: Scope, body: Any) -> tuple[int, dict[str, Any]]:
        """PUT a VM or site: replace an existing host (200), or create one (201) that is a host
        like the seeded ones, with its own identity endpoint (see sandbox/managed_identity)."""
        rtype = self._canonical_type(scope)
        self.authorize(scope.id, f"{rtype}/write")
        group = self._group(scope.subscription, scope.group or "")
        _, host = self._find(scope)
        if not isinstance(body, dict):
            raise _invalid_content("the body must be a JSON object")
        if host is not None:
            view = self.update_host(scope, body, replace=True)
            if isinstance(body.get("properties"), dict) and host.get("created_on"):
                with self.store.transaction():
                    host = self._find(scope)[1] or host
                    self._store_host_properties(host, body)
                    self.store.put("host", host["name"], host)
                view = self.host_view(host)
            return 200, view
        location = _required_location(body)
        name = scope.name or ""
        if rtype == VM_TYPE:
            _check_vm(body)
        if self.store.get("host", name) is not None:
            # Hosts are keyed by name (their identity endpoint's path): our choice, one host of
            # a name per sandbox, whatever its group.
            raise ArmError(
                409, "Conflict", f"A host named '{name}' already exists in another resource group."
            )
        kind = str(body.get("kind") or "")
        host = {
            "name": name,
            "kind": "vm" if rtype == VM_TYPE else "functionapp",
            "type": rtype,
            "endpoint_style": "imds" if rtype == VM_TYPE else "appservice",
            "resource_id": f"{group['id']}/providers/{rtype}/{name}",
            "location": location,
            "identity": {"type": "None"},
            "identity_header": secrets.token_hex(16),
            "tags": _tags(body.get("tags")),
            "created_on": _now_iso(),
        }
        if rtype == SITE_TYPE:
            host["site_kind"] = kind or "app"
        with self.store.transaction():
            self._store_host_properties(host, body)
            self._apply_identity(host, body.get("identity"), merge=False)
            self.store.put("host", name, host)
        # WebApps_CreateOrUpdate answers 200 or 202 (its spec), VirtualMachines_CreateOrUpdate
        # 200 or 201: a finished create is 200 for a site, 201 for a VM.
        return (201 if rtype == VM_TYPE else 200), self.host_view(host)

    def _store_host_properties(self, host: dict[str, Any], body: dict[str, Any]) -> None:
        """As given, less what Azure never returns (a VM's admin password and custom data; a
        site's app settings, which only ``config/appsettings/list`` shows)."""
        props = dict(body.get("properties") or {})
        for key in ("vmId", "provisioningState", "timeCreated", "instanceView"):
            props.pop(key, None)
        if isinstance(props.get("osProfile"), dict):
            props["osProfile"] = {
                k: v
                for k, v in props["osProfile"].items()
                if k not in ("adminPassword", "customData")
            }
        if isinstance(props.get("siteConfig"), dict):
            config = dict(props["siteConfig"])
            settings = config.pop("appSettings", None)
            if isinstance(settings, list):
                host["app_settings"] = {
                    str(s.get("name")): str(s.get("value", ""))
                    for s in settings
                    if isinstance(s, dict) and s.get("name")
                }
            props["siteConfig"] = config
        host["properties"] = props

    def delete_host(self, scope: Scope) -> bool:
        """Delete a VM or site and its system-assigned identity; False when there was none."""
        rtype = self._canonical_type(scope)
        self.authorize(scope.id, f"{rtype}/delete")
        _, host = self._find(scope)
        if host is None:
            return False
        with self.store.transaction():
            principal = (host.get("identity") or {}).get("principal_id")
            if principal:
                self._drop_principal(principal)
            self.store.delete("host", host["name"])
        return True

    # -- resources stored as given (sandbox/arm/resources.py) --------------------------------

    def put_generic(self, scope: Scope, body: Any) -> tuple[int, dict[str, Any]]:
        rtype = self._canonical_type(scope)
        self.authorize(scope.id, f"{rtype}/write")
        group = self._group(scope.subscription, scope.group or "")
        if not isinstance(body, dict):
            raise _invalid_content("the body must be a JSON object")
        location = _required_location(body)
        rid = f"{group['id']}/providers/{rtype}/{scope.name}"
        with self.store.transaction():
            old = self.store.get("arm_resource", rid.lower())
            if old and _norm_location(location) != _norm_location(old["location"]):
                raise _location_conflict(old["id"], old["location"], location)
            try:
                doc = resources.build(
                    resources.SPECS[rtype.lower()], rid, scope.name or "", body, old
                )
            except resources.Invalid as e:
                raise ArmError(e.status, e.code, e.message, e.target) from None
            self.store.put("arm_resource", rid.lower(), doc)
        return (200 if old else resources.SPECS[rtype.lower()].created), resources.view(doc)

    def delete_generic(self, scope: Scope) -> bool:
        rtype = self._canonical_type(scope)
        self.authorize(scope.id, f"{rtype}/delete")
        _, doc = self._find(scope)
        if doc is None:
            return False
        self.store.delete("arm_resource", doc["id"].lower())
        return True

    def put_subnet(self, scope: Scope, name: str, body: Any) -> tuple[int, dict[str, Any]]:
        """PUT …/virtualNetworks/{vnet}/subnets/{name}: written into the vnet document."""
        self.authorize(f"{scope.id}/subnets/{name}", f"{resources.SUBNET_TYPE}/write")
        if not isinstance(body, dict):
            raise _invalid_content("the body must be a JSON object")
        with self.store.transaction():
            _, vnet = self._find(scope)
            if vnet is None:
                raise self._not_found(scope)
            try:
                created, sub = resources.put_subnet(vnet, name, body)
            except resources.Invalid as e:
                raise ArmError(e.status, e.code, e.message, e.target) from None
            self.store.put("arm_resource", vnet["id"].lower(), vnet)
        return (201 if created else 200), sub

    def get_subnet(self, scope: Scope, name: str) -> dict[str, Any]:
        self.authorize(f"{scope.id}/subnets/{name}", f"{resources.SUBNET_TYPE}/read")
        _, vnet = self._find(scope)
        if vnet is None:
            raise self._not_found(scope)
        for sub in vnet["properties"].get("subnets", []):
            if sub["name"].lower() == name.lower():
                return sub
        raise ArmError(
            404,
            "NotFound",
            f"Resource '{vnet['id']}/subnets/{name}' not found.",
        )

    def storage_keys(self, scope: Scope) -> dict[str, Any]:
        self.authorize(scope.id, f"{resources.STORAGE_TYPE}/listkeys/action")
        _, doc = self._find(scope)
        if doc is None:
            raise self._not_found(scope)
        return resources.storage_keys(doc)

    # -- resource groups ---------------------------------------------------------------------

    def group_exists(self, sub: str, rg: str) -> bool:
        self._subscription(sub)
        self.operation = "Microsoft.Resources/subscriptions/resourceGroups/read"
        doc = self.store.get("resource_group", rg.lower())
        if doc is None:
            return False
        self.authorize(doc["id"], self.operation)
        return True

    def put_group(self, sub: str, rg: str, body: Any) -> tuple[int, dict[str, Any]]:
        """Create (201) or update (200) a resource group; its location cannot change (409
        InvalidResourceGroupLocation, the text az group create shows: Azure/azure-cli#22242)."""
        sub_doc = self._subscription(sub)
        rid = f"/subscriptions/{sub_doc['id']}/resourceGroups/{rg}"
        self.authorize(rid, "Microsoft.Resources/subscriptions/resourceGroups/write")
        if not isinstance(body, dict):
            raise _invalid_content("the body must be a JSON object")
        location = _required_location(body)
        with self.store.transaction():
            doc = self.store.get("resource_group", rg.lower())
            if doc is not None:
                if _norm_location(location) != _norm_location(doc["location"]):
                    raise ArmError(
                        409,
                        "InvalidResourceGroupLocation",
                        f"Invalid resource group location '{location}'. The Resource group "
                        f"already exists in location '{doc['location']}'.",
                    )
                if "tags" in body:
                    doc["tags"] = _tags(body.get("tags"))
                self.store.put("resource_group", rg.lower(), doc)
                return 200, self._group_view(doc)
            doc = {"id": rid, "name": rg, "location": location, "tags": _tags(body.get("tags"))}
            self.store.put("resource_group", rg.lower(), doc)
        return 201, self._group_view(doc)

    def delete_group(self, sub: str, rg: str) -> None:
        """Delete a group and everything in it, role assignments at or below it included."""
        doc = self._group(sub, rg)
        self.authorize(doc["id"], "Microsoft.Resources/subscriptions/resourceGroups/delete")
        prefix = doc["id"].lower() + "/"
        inside = lambda rid: rid.lower().startswith(prefix)  # noqa: E731
        with self.store.transaction():
            for host in self.store.list("host", lambda h: inside(h["resource_id"])):
                principal = (host.get("identity") or {}).get("principal_id")
                if principal:
                    self._drop_principal(principal)
                self.store.delete("host", host["name"])
            for uai in self.store.list("user_assigned_identity", lambda u: inside(u["id"])):
                self._drop_principal(uai["principal_id"])
                self.store.delete("user_assigned_identity", uai["id"].lower())
            for acs in self.store.list("acs_resource", lambda a: inside(a["id"])):
                self.store.delete("acs_resource", acs["name"])
            for res in self.store.list("arm_resource", lambda r: inside(r["id"])):
                self.store.delete("arm_resource", res["id"].lower())
            for a in self.store.list(
                "role_assignment",
                lambda a: inside(a["scope"]) or a["scope"].lower() == doc["id"].lower(),
            ):
                self.store.delete("role_assignment", a["name"])
            self.store.delete("resource_group", rg.lower())

    def _apply_identity(self, host: dict[str, Any], identity: Any, *, merge: bool) -> None:
        current = dict(host.get("identity") or {"type": "None"})
        if identity is None:
            system, user, ua_body = False, False, None
        elif not isinstance(identity, dict):
            raise _invalid_content("'identity' must be an object")
        else:
            system, user = _identity_type(identity.get("type"))
            ua_body = identity.get("userAssignedIdentities")
        if ua_body is not None and not isinstance(ua_body, dict):
            raise _invalid_content("'identity.userAssignedIdentities' must be an object")
        if ua_body and not user:
            raise ArmError(
                400,
                "InvalidIdentityValues",
                "'userAssignedIdentities' may only be given when the identity type includes "
                "'UserAssigned'.",
            )
        attached: list[str] = list(current.get("user_assigned", [])) if (merge and user) else []
        if user:
            for rid, value in (ua_body or {}).items():
                attached = [r for r in attached if r.lower() != rid.lower()]
                if value is None:
                    continue
                uai = self.store.get("user_assigned_identity", rid.lower())
                if uai is None:
                    raise ArmError(
                        400,
                        "FailedIdentityOperation",
                        f"Identity operation for resource '{host['resource_id']}' failed: the "
                        f"user-assigned identity '{rid}' was not found.",
                    )
                self.authorize(uai["id"], f"{UAI_TYPE}/assign/action")
                attached.append(uai["id"])
            if not attached:
                raise ArmError(
                    400,
                    "InvalidIdentityValues",
                    "The identity type includes 'UserAssigned' but 'userAssignedIdentities' "
                    "names no identity.",
                )
        principal_id = current.get("principal_id")
        if system and not principal_id:
            principal_id = self._new_principal(host["name"], host["resource_id"], "SystemAssigned")
        elif not system and principal_id:
            self._drop_principal(principal_id)
            principal_id = None
        new: dict[str, Any] = {"type": _type_text(system, user)}
        if principal_id:
            new["principal_id"] = principal_id
        if attached:
            new["user_assigned"] = attached
        host["identity"] = new

    def _new_principal(self, display: str, resource_id: str, mi_type: str) -> str:
        oid = str(uuid.uuid4())
        self.store.put(
            "principal",
            oid,
            {
                "object_id": oid,
                "kind": "ManagedIdentity",
                "display_name": display,
                "app_id": str(uuid.uuid4()),
                "tenant_id": world.TENANT_ID,
                "mi_resource_id": resource_id,
                "mi_type": mi_type,
            },
        )
        return oid

    def _drop_principal(self, object_id: str) -> None:
        self.store.delete("principal", object_id)
        for a in self.store.list("role_assignment", lambda a: a["principal_id"] == object_id):
            self.store.delete("role_assignment", a["name"])

    def list_resources(self, sub: str, rg: str | None) -> list[dict[str, Any]]:
        """Generic listing: what the caller may read, in a group or the whole subscription."""
        if rg is None:
            self._subscription(sub)
        else:
            self._group(sub, rg)
        self.operation = "Microsoft.Resources/subscriptions/resources/read"
        views = [self.host_view(h) for h in self.store.list("host")]
        views += [self.uai_view(u) for u in self.store.list("user_assigned_identity")]
        views += [self.acs_view(a) for a in self.store.list("acs_resource")]
        views += [resources.view(r) for r in self.store.list("arm_resource")]
        prefix = (
            world.SUBSCRIPTION_SCOPE
            if rg is None
            else f"{world.SUBSCRIPTION_SCOPE}/resourceGroups/{rg}"
        ).lower() + "/"
        out = []
        for v in views:
            if v["id"].lower().startswith(prefix) and self.allowed(v["id"], f"{v['type']}/read"):
                item = {
                    k: v[k]
                    for k in ("id", "name", "type", "location", "tags", "kind", "identity", "sku")
                    if k in v
                }
                out.append(item)
        return out

    # -- user-assigned identities ------------------------------------------------------------

    def uai_view(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": doc["id"],
            "name": doc["name"],
            "type": UAI_TYPE,
            "location": doc["location"],
            "tags": doc.get("tags", {}),
            "properties": {
                "tenantId": doc["tenant_id"],
                "principalId": doc["principal_id"],
                "clientId": doc["client_id"],
                "isolationScope": "None",
            },
        }

    def put_uai(self, scope: Scope, body: Any) -> tuple[int, dict[str, Any]]:
        """Create (201) or update (200) a user-assigned identity and its service principal."""
        self.authorize(scope.id, f"{UAI_TYPE}/write")
        group = self._group(scope.subscription, scope.group or "")
        if not isinstance(body, dict):
            raise _invalid_content("the body must be a JSON object")
        name = scope.name or ""
        if not UAI_NAME_RE.match(name):
            raise ArmError(
                400,
                "InvalidResourceName",
                f"The resource name '{name}' is invalid: use 3-128 letters, digits, '-' or '_', "
                "starting with a letter or digit.",
            )
        location = _required_location(body)
        rid = f"{group['id']}/providers/{UAI_TYPE}/{name}"
        with self.store.transaction():
            existing = self.store.get("user_assigned_identity", rid.lower())
            if existing:
                if _norm_location(location) != _norm_location(existing["location"]):
                    raise _location_conflict(existing["id"], existing["location"], location)
                existing["tags"] = _tags(body.get("tags"))
                self.store.put("user_assigned_identity", rid.lower(), existing)
                return 200, self.uai_view(existing)
            oid = self._new_principal(name, rid, "UserAssigned")
            doc = {
                "id": rid,
                "name": name,
                "resource_group": group["name"],
                "location": location,
                "tags": _tags(body.get("tags")),
                "principal_id": oid,
                "client_id": self.store.get("principal", oid)["app_id"],
                "tenant_id": world.TENANT_ID,
            }
            self.store.put("user_assigned_identity", rid.lower(), doc)
            return 201, self.uai_view(doc)

    def patch_uai(self, scope: Scope, body: Any) -> dict[str, Any]:
        self.authorize(scope.id, f"{UAI_TYPE}/write")
        _, doc = self._find(scope)
        if doc is None:
            raise self._not_found(scope)
        if not isinstance(body, dict):
            raise _invalid_content("the body must be a JSON object")
        if "tags" in body:
            doc["tags"] = _tags(body.get("tags"))
            self.store.put("user_assigned_identity", doc["id"].lower(), doc)
        return self.uai_view(doc)

    def delete_uai(self, scope: Scope) -> bool:
        """Delete and detach from every host; False when there was nothing to delete."""
        self.authorize(scope.id, f"{UAI_TYPE}/delete")
        _, doc = self._find(scope)
        if doc is None:
            return False
        with self.store.transaction():
            for host in self.store.list("host"):
                ident = host.get("identity") or {}
                ua = [r for r in ident.get("user_assigned", []) if r.lower() != doc["id"].lower()]
                if ua != ident.get("user_assigned", []):
                    system = bool(ident.get("principal_id"))
                    ident["type"] = _type_text(system, bool(ua))
                    if ua:
                        ident["user_assigned"] = ua
                    else:
                        ident.pop("user_assigned", None)
                    host["identity"] = ident
                    self.store.put("host", host["name"], host)
            self._drop_principal(doc["principal_id"])
            self.store.delete("user_assigned_identity", doc["id"].lower())
        return True

    def list_uais(self, sub: str, rg: str | None) -> list[dict[str, Any]]:
        if rg is None:
            self._subscription(sub)
        else:
            group = self._group(sub, rg)
            self.authorize(group["id"], f"{UAI_TYPE}/read")
        self.operation = f"{UAI_TYPE}/read"
        return [
            self.uai_view(d)
            for d in self.store.list("user_assigned_identity")
            if (rg is None or d["resource_group"].lower() == rg.lower())
            and self.allowed(d["id"], f"{UAI_TYPE}/read")
        ]

    # -- role definitions --------------------------------------------------------------------

    def role_definition_view(self, doc: dict[str, Any]) -> dict[str, Any]:
        """As GET roleDefinitions answers (spec example GetRoleDefinitionByName.json)."""
        return {
            "id": world.role_definition_id(doc["id"]),
            "name": doc["id"],
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {
                "roleName": doc["roleName"],
                "type": doc.get("type", "BuiltInRole"),
                "description": doc["description"],
                "assignableScopes": list(doc.get("assignableScopes", ["/"])),
                "permissions": [
                    {
                        "actions": list(doc["actions"]),
                        "notActions": list(doc["notActions"]),
                        "dataActions": list(doc.get("dataActions", [])),
                        "notDataActions": list(doc.get("notDataActions", [])),
                    }
                ],
                "createdOn": "2015-02-02T21:55:09.8806423Z",
                "updatedOn": "2025-01-01T00:00:00.0000000Z",
                "createdBy": None,
                "updatedBy": None,
            },
        }

    def get_role_definition(self, scope: Scope, guid: str) -> dict[str, Any]:
        self.operation = "Microsoft.Authorization/roleDefinitions/read"
        self.require_scope(scope)
        doc = rbac.role_definition(self.store, guid)
        if doc is None:
            raise ArmError(
                404,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{guid}' does not exist.",
            )
        return self.role_definition_view(doc)

    def list_role_definitions(self, scope: Scope, filter_text: str | None) -> list[dict[str, Any]]:
        self.operation = "Microsoft.Authorization/roleDefinitions/read"
        self.require_scope(scope)
        stored = self.store.list("role_definition")
        docs = [rbac.role_definition(self.store, d["id"]) or d for d in stored]
        if filter_text:
            m = re.fullmatch(r"\s*(roleName|type)\s+eq\s+'([^']*)'\s*", filter_text, re.I)
            if not m:
                # No public source for this refusal's code or text; our choice, worded like
                # the role-assignment one below.
                raise ArmError(
                    400,
                    "UnsupportedQuery",
                    f"The filter '{filter_text}' is not supported. Supported filters are either "
                    "'roleName eq '{value}'' or 'type eq 'BuiltInRole|CustomRole''.",
                )
            field = "roleName" if m.group(1).lower() == "rolename" else "type"
            docs = [
                d for d in docs if str(d.get(field, "BuiltInRole")).lower() == m.group(2).lower()
            ]
        return [self.role_definition_view(d) for d in docs]

    # -- role assignments --------------------------------------------------------------------

    def assignment_view(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"{doc['scope']}/providers/Microsoft.Authorization/roleAssignments/{doc['name']}",
            "name": doc["name"],
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": world.role_definition_id(doc["role_definition_guid"]),
                "principalId": doc["principal_id"],
                "principalType": doc["principal_type"],
                "scope": doc["scope"],
                "condition": doc.get("condition"),
                "conditionVersion": doc.get("condition_version"),
                "description": doc.get("description"),
                "createdOn": doc["created_on"],
                "updatedOn": doc.get("updated_on", doc["created_on"]),
                "createdBy": doc.get("created_by"),
                "updatedBy": doc.get("created_by"),
                "delegatedManagedIdentityResourceId": None,
            },
        }

    def create_assignment(self, scope: Scope, name: str, body: Any) -> tuple[int, dict[str, Any]]:
        self.authorize(scope.id, "Microsoft.Authorization/roleAssignments/write")
        scope_id = self.require_scope(scope)
        if not GUID_RE.match(name):
            raise ArmError(
                400,
                "InvalidRoleAssignmentId",
                f"The role assignment ID '{name}' is not valid. "
                "The role assignment ID must be a GUID.",
            )
        props = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(props, dict):
            raise _invalid_content("the body needs a 'properties' object")
        role_ref, principal_id = props.get("roleDefinitionId"), props.get("principalId")
        if not role_ref or not principal_id:
            raise _invalid_content(
                "'properties.roleDefinitionId' and 'properties.principalId' are required"
            )
        m = ROLE_DEF_RE.search(str(role_ref))
        role = rbac.role_definition(self.store, m.group(1)) if m else None
        if role is None:
            raise ArmError(
                400,
                "RoleDefinitionDoesNotExist",
                "The specified role definition with ID "
                f"'{m.group(1) if m else role_ref}' does not exist.",
            )
        principal = self.store.get("principal", str(principal_id))
        if principal is None:
            # ARM writes the principal id without dashes (captured messages, code search).
            raise ArmError(
                400,
                "PrincipalNotFound",
                f"Principal {_hex(principal_id)} does not exist in the directory "
                f"{world.TENANT_ID}. Check that you have the correct principal ID. If you are "
                "creating this principal and then immediately assigning a role, this error might "
                "be related to a replication delay. In this case, set the role assignment "
                "principalType property to a value, such as ServicePrincipal, User, or Group.  "
                "See https://aka.ms/docs-principaltype",
            )
        actual = "User" if principal["kind"] == "User" else "ServicePrincipal"
        given = props.get("principalType")
        if given and given not in PRINCIPAL_TYPES:
            raise _invalid_content(
                f"'{given}' is not a principal type ({', '.join(PRINCIPAL_TYPES)})"
            )
        if given and given != actual:
            raise ArmError(
                400,
                "UnmatchedPrincipalType",
                f"The PrincipalId '{principal_id}' has type '{actual}', which is different from "
                f"specified PrincipalType '{given}'.",
            )
        with self.store.transaction():
            existing = self.store.get("role_assignment", name.lower())
            same = lambda a: (  # noqa: E731
                a["principal_id"] == principal["object_id"]
                and a["role_definition_guid"] == role["id"]
                and a["scope"].lower() == scope_id.lower()
            )
            if existing:
                if same(existing):
                    return 200, self.assignment_view(existing)
                raise ArmError(
                    409,
                    "RoleAssignmentUpdateNotPermitted",
                    "Tenant ID, application ID, principal ID, and scope are not allowed to be "
                    "updated.",
                )
            clash = self.store.list("role_assignment", same)
            if clash:
                raise ArmError(
                    409,
                    "RoleAssignmentExists",
                    "The role assignment already exists.\nThe ID of the existing role assignment "
                    f"is {_hex(clash[0]['name'])}.",
                )
            doc = {
                "name": name.lower(),
                "scope": scope_id,
                "role_definition_guid": role["id"],
                "principal_id": principal["object_id"],
                "principal_type": actual,
                "created_on": _now_iso(),
                "created_by": self.caller.object_id,
            }
            if props.get("description"):
                doc["description"] = str(props["description"])
            self.store.put("role_assignment", doc["name"], doc)
        return 201, self.assignment_view(doc)

    def _assignment_at(self, scope: Scope, name: str) -> dict[str, Any] | None:
        doc = self.store.get("role_assignment", name.lower())
        if doc and doc["scope"].lower() == scope.id.lower().rstrip("/"):
            return doc
        return None

    def get_assignment(self, scope: Scope, name: str) -> dict[str, Any]:
        self.authorize(scope.id, "Microsoft.Authorization/roleAssignments/read")
        self.require_scope(scope)
        doc = self._assignment_at(scope, name)
        if doc is None:
            raise ArmError(
                404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found."
            )
        return self.assignment_view(doc)

    def delete_assignment(self, scope: Scope, name: str) -> dict[str, Any] | None:
        """The deleted assignment, or None when there was none (ARM answers 204)."""
        self.authorize(scope.id, "Microsoft.Authorization/roleAssignments/delete")
        self.require_scope(scope)
        doc = self._assignment_at(scope, name)
        if doc is None:
            return None
        self.store.delete("role_assignment", doc["name"])
        return self.assignment_view(doc)

    def list_assignments(self, scope: Scope, filter_text: str | None) -> list[dict[str, Any]]:
        """At, above and below the scope; ``atScope()`` keeps at-or-above; ``principalId eq``."""
        self.authorize(scope.id, "Microsoft.Authorization/roleAssignments/read")
        scope_id = self.require_scope(scope).lower()
        at_scope, principal = False, None
        for part in re.split(r"\s+and\s+", (filter_text or "").strip(), flags=re.I):
            if not part:
                continue
            if re.fullmatch(r"atScope\(\)", part, re.I):
                at_scope = True
                continue
            m = re.fullmatch(
                r"(?:principalId\s+eq\s+'([^']*)'|assignedTo\('([^']*)'\))", part, re.I
            )
            if not m:
                # Text as ARM wrote it in 2024 (Azure/azure-rest-api-specs#28255); the code is
                # not in that report: UnsupportedQuery is our choice.
                raise ArmError(
                    400,
                    "UnsupportedQuery",
                    f"The filter '{filter_text}' is not supported. Supported filters are either "
                    "'atScope()' or 'principalId eq '{value}' or assignedTo('{value}')'.",
                )
            principal = m.group(1) or m.group(2)

        def keep(a: dict[str, Any]) -> bool:
            s = a["scope"].lower().rstrip("/")
            above = scope_id == s or scope_id.startswith(s + "/")
            below = s.startswith(scope_id + "/")
            if not (above or (below and not at_scope)):
                return False
            return principal is None or a["principal_id"].lower() == principal.lower()

        return [self.assignment_view(a) for a in self.store.list("role_assignment", keep)]

    # -- the Communication Services resource -------------------------------------------------

    def acs_view(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": doc["id"],
            "name": doc["name"],
            "type": "Microsoft.Communication/CommunicationServices",
            "location": doc["location"],
            "tags": doc.get("tags", {}),
            "properties": {
                "provisioningState": "Succeeded",
                "hostName": urlsplit(self.acs_endpoint).netloc,
                "dataLocation": doc["data_location"],
                "notificationHubId": None,
                "version": "0.2.0",
                "immutableResourceId": doc["immutable_resource_id"],
                "linkedDomains": [],
                "publicNetworkAccess": "Enabled",
                "disableLocalAuth": bool(doc.get("disable_local_auth", False)),
            },
        }

    def _acs(self, scope: Scope) -> dict[str, Any]:
        _, doc = self._find(scope)
        if doc is None:
            raise self._not_found(scope)
        return doc

    def acs_keys(self, doc: dict[str, Any]) -> dict[str, str]:
        endpoint = self.acs_endpoint if self.acs_endpoint.endswith("/") else self.acs_endpoint + "/"
        keys = doc["keys"]
        return {
            "primaryKey": keys["primaryKey"],
            "secondaryKey": keys["secondaryKey"],
            "primaryConnectionString": f"endpoint={endpoint};accesskey={keys['primaryKey']}",
            "secondaryConnectionString": f"endpoint={endpoint};accesskey={keys['secondaryKey']}",
        }

    def list_acs_keys(self, scope: Scope) -> dict[str, str]:
        self.authorize(scope.id, f"{ACS_TYPE}/ListKeys/action")
        return self.acs_keys(self._acs(scope))

    def regenerate_acs_key(self, scope: Scope, body: Any) -> dict[str, str]:
        """A new key replaces the old one at once: the ACS data plane reads ``acs_resource``.

        The answer holds only the regenerated key and its connection string, as the spec example
        regenerateKey.json shows (stable 2023-04-01 and 2025-09-01).
        """
        self.authorize(scope.id, f"{ACS_TYPE}/RegenerateKey/action")
        kind = str(body.get("keyType", "")) if isinstance(body, dict) else ""
        field = {"primary": "primaryKey", "secondary": "secondaryKey"}.get(kind.lower())
        if field is None:
            # No public source for the refusal of another keyType; code and text our choice.
            raise ArmError(
                400,
                "InvalidKeyType",
                "keyType must be 'Primary' or 'Secondary' (case-insensitive).",
            )
        with self.store.transaction():
            doc = self._acs(scope)
            doc["keys"][field] = world.new_access_key()
            self.store.put("acs_resource", doc["name"], doc)
        side = "primary" if field == "primaryKey" else "secondary"
        keys = self.acs_keys(doc)
        return {field: keys[field], f"{side}ConnectionString": keys[f"{side}ConnectionString"]}

    def patch_acs(self, scope: Scope, body: Any) -> dict[str, Any]:
        self.authorize(scope.id, f"{ACS_TYPE}/write")
        if not isinstance(body, dict):
            raise _invalid_content("the body must be a JSON object")
        props = body.get("properties")
        local_auth = props.get("disableLocalAuth") if isinstance(props, dict) else None
        if local_auth is not None and not isinstance(local_auth, bool):
            raise _invalid_content("properties.disableLocalAuth must be true or false")
        with self.store.transaction():
            doc = self._acs(scope)
            if "tags" in body:
                doc["tags"] = _tags(body.get("tags"))
            if local_auth is not None:
                # Keys off (or on again): the ACS data plane reads this on every access-key call.
                doc["disable_local_auth"] = local_auth
            self.store.put("acs_resource", doc["name"], doc)
        return self.acs_view(doc)

    def put_acs(self, scope: Scope, body: Any) -> tuple[int, dict[str, Any]]:
        """Create (201) or update (200) a Communication Services resource (CommunicationServices
        _CreateOrUpdate). An update replaces ``tags``; ``dataLocation`` cannot change. A new
        resource gets its own keys, but the sandbox's ACS data plane answers for acs-tutorial
        only (see sandbox/FIDELITY.md)."""
        self.authorize(scope.id, f"{ACS_TYPE}/write")
        group = self._group(scope.subscription, scope.group or "")
        if not isinstance(body, dict):
            raise _invalid_content("the body must be a JSON object")
        location = _required_location(body)
        props = body.get("properties") if isinstance(body.get("properties"), dict) else {}
        data_location = props.get("dataLocation")
        with self.store.transaction():
            _, doc = self._find(scope)
            if doc is not None:
                if _norm_location(location) != _norm_location(doc["location"]):
                    raise _location_conflict(doc["id"], doc["location"], location)
                if data_location and str(data_location) != doc["data_location"]:
                    # No public source for this refusal's text; code and wording our choice.
                    raise ArmError(
                        400,
                        "BadRequest",
                        "The dataLocation of an existing Communication Services resource "
                        "cannot be changed.",
                    )
                doc["tags"] = _tags(body.get("tags"))
                self.store.put("acs_resource", doc["name"], doc)
                return 200, self.acs_view(doc)
            if not data_location or not isinstance(data_location, str):
                raise _invalid_content("'properties.dataLocation' is required")
            name = scope.name or ""
            # After ``reset --empty``: the seeded numbers, as if bought in the portal.
            numbers = self.store.get("phone_inventory", name) or {}
            if str(numbers.get("group", "")).lower() != group["name"].lower():
                numbers = {}
            else:
                self.store.delete("phone_inventory", name)
            doc = {
                "name": name,
                "id": f"{group['id']}/providers/{ACS_TYPE}/{name}",
                "immutable_resource_id": str(uuid.uuid4()),
                "location": location,
                "data_location": data_location,
                "tags": _tags(body.get("tags")),
                "keys": {
                    "primaryKey": world.new_access_key(),
                    "secondaryKey": world.new_access_key(),
                },
                "sender_numbers": list(numbers.get("sender_numbers", [])),
                "learner_phones": list(numbers.get("learner_phones", [])),
            }
            self.store.put("acs_resource", name, doc)
        return 201, self.acs_view(doc)

    def list_acs(self, sub: str, rg: str | None) -> list[dict[str, Any]]:
        if rg is None:
            self._subscription(sub)
        else:
            self._group(sub, rg)
        self.operation = f"{ACS_TYPE}/read"
        return [
            self.acs_view(d)
            for d in self.store.list("acs_resource")
            if (rg is None or f"/resourcegroups/{rg.lower()}/" in d["id"].lower())
            and self.allowed(d["id"], f"{ACS_TYPE}/read")
        ]


# -- small helpers -----------------------------------------------------------------------------


def site_properties(host: dict[str, Any], https_url: str) -> dict[str, Any]:
    """A Consumption-plan Function app's properties as App Service returns them (the spec
    example GetWebApp.json, 2023-12-01; ``sku`` as live sites carry it): the Azure CLI's
    ``az functionapp show`` reads ``serverFarmId`` and ``sku``. ``defaultHostName`` is where the
    sandbox serves the site (``https://{defaultHostName}/api/{route}``, as in Azure; see
    sandbox/functions/models.py); the SCM name stays Azure's, as the sandbox serves no SCM. A site
    created by PUT keeps what it was given (its plan, its siteConfig less the app settings)."""
    from sandbox.functions.models import site_url_host

    name = host["name"]
    group = host["resource_id"].split("/")[4]
    default = site_url_host(https_url.rstrip("/"), name)
    given = dict(host.get("properties") or {})
    given.pop("siteConfig", None)  # GET on a site does not return the app's configuration
    return {
        "state": "Running",
        "hostNames": [default],
        "repositorySiteName": name,
        "usageState": "Normal",
        "enabled": True,
        "enabledHostNames": [default, f"{name}.scm.azurewebsites.net"],
        "availabilityState": "Normal",
        "serverFarmId": f"{world.GROUP_SCOPE}/providers/Microsoft.Web/serverfarms/EastUSPlan",
        "sku": "Dynamic",
        "reserved": True,
        "resourceGroup": group,
        "defaultHostName": default,
        "httpsOnly": True,
        "clientAffinityEnabled": False,
        "keyVaultReferenceIdentity": "SystemAssigned",
        "managedEnvironmentId": None,
        **given,
        "provisioningState": "Succeeded",
    }


def _check_vm(body: dict[str, Any]) -> None:
    """Compute's refusal of a VM body missing a required part: 400 InvalidParameter naming it
    in ``target`` (Azure/azure-powershell#4001 records the whole body for 'osDisk'; the same
    text for 'storageProfile' and 'osProfile' in other reports). 'networkProfile' likewise:
    our choice, by the same pattern."""
    props = body.get("properties") if isinstance(body.get("properties"), dict) else {}
    storage = props.get("storageProfile")
    missing = None
    if not isinstance(storage, dict):
        missing = "storageProfile"
    elif not storage.get("imageReference") and not isinstance(storage.get("osDisk"), dict):
        missing = "osDisk"  # no image to start from: the OS disk must be given
    elif storage.get("imageReference") and not isinstance(props.get("osProfile"), dict):
        missing = "osProfile"
    elif not isinstance(props.get("networkProfile"), dict):
        missing = "networkProfile"
    if missing:
        raise ArmError(
            400, "InvalidParameter", f"Required parameter '{missing}' is missing (null).", missing
        )


def _required_location(body: dict[str, Any]) -> str:
    """Every tracked resource's ``location``: ARM's 400 LocationRequired when missing."""
    location = body.get("location")
    if not location or not isinstance(location, str):
        raise ArmError(
            400, "LocationRequired", "The location property is required for this definition."
        )
    return location


def _hex(guid: str) -> str:
    """A GUID as ARM's messages print it: 32 hex digits, no dashes."""
    return str(guid).replace("-", "").lower()


def _invalid_content(detail: str) -> ArmError:
    return ArmError(
        400,
        "InvalidRequestContent",
        f"The request content was invalid and could not be deserialized: {detail}.",
    )


def _identity_type(value: Any) -> tuple[bool, bool]:
    """(system, user) from an identity type such as 'SystemAssigned, UserAssigned'."""
    parts = {p.strip().lower() for p in str(value or "").split(",")}
    table = {
        frozenset({"none"}): (False, False),
        frozenset({"systemassigned"}): (True, False),
        frozenset({"userassigned"}): (False, True),
        frozenset({"systemassigned", "userassigned"}): (True, True),
    }
    found = table.get(frozenset(parts))
    if found is None:
        raise _invalid_content(
            f"'{value}' is not a valid identity type; use 'None', 'SystemAssigned', "
            "'UserAssigned' or 'SystemAssigned, UserAssigned'"
        )
    return found


def _type_text(system: bool, user: bool) -> str:
    if system and user:
        return "SystemAssigned, UserAssigned"
    return "SystemAssigned" if system else "UserAssigned" if user else "None"


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid_content("'tags' must be an object of strings")
    return {str(k): str(v) for k, v in value.items()}


def _norm_location(value: str) -> str:
    return str(value).replace(" ", "").lower()


def _location_conflict(rid: str, current: str, given: str) -> ArmError:
    name = rid.rsplit("/", 1)[-1]
    return ArmError(
        400,
        "InvalidResourceLocation",
        f"The resource '{name}' already exists in location '{current}'. A resource with the same "
        f"name cannot be created in location '{given}'. Please select a new resource name.",
    )
