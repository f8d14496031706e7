"""The slice of Microsoft Graph the Azure CLI reads to name and resolve principals.

``az role assignment list`` fills in principal names (``POST /directoryObjects/getByIds``),
``az role assignment create --assignee`` resolves a user principal name, an application id or an
object id (``GET /users?$filter=userPrincipalName eq '…'``, ``GET /servicePrincipals?$filter=
servicePrincipalNames/any(c:c eq '…')``, then getByIds), and the idempotent re-create after a 409
lists assignments with names. Graph answers those only for the tenant's own directory objects:
the sandbox's users, service principals and managed identities (documents of kind ``principal``).

Who may read: a signed-in user (the CLI's delegated token carries ``Directory.AccessAsUser.All``
on Azure) reads the directory; an application or managed identity needs a Graph application
permission it does not have in this tenant, so Graph refuses it with 403
``Authorization_RequestDenied`` — and the CLI, as against Azure, goes on without names.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.store import Store

GRAPH_BASE = "https://graph.microsoft.com/v1.0"
USER_TYPE = "#microsoft.graph.user"
SP_TYPE = "#microsoft.graph.servicePrincipal"
# Graph's getByIds takes at most 1000 ids (learn.microsoft.com, directoryobject-getbyids).
MAX_IDS = 1000


class GraphError(Exception):
    """A refusal with Graph's status, ``error.code`` and ``error.message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(key: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects are "
        "not present.",
    )


def denied() -> GraphError:
    return GraphError(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


def unsupported_query() -> GraphError:
    # No public source for the exact text of every unsupported filter; code as Graph's docs
    # name it for filters a collection does not support, message our choice.
    return GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")


# $filter clauses the CLI sends, and the simple equality forms learners type.
_EQ = re.compile(r"^\s*(?P<field>[A-Za-z]+)\s+eq\s+'(?P<value>(?:[^']|'')*)'\s*$")
_ANY = re.compile(
    r"^\s*servicePrincipalNames/any\(\s*(?P<v>\w+)\s*:\s*(?P=v)\s+eq\s+'(?P<value>(?:[^']|'')*)'\s*\)\s*$"
)
_STARTS = re.compile(
    r"^\s*startswith\(\s*(?P<field>[A-Za-z]+)\s*,\s*'(?P<value>(?:[^']|'')*)'\s*\)\s*$"
)


class Directory:
    """The tenant's directory as Graph shows it, for one caller."""

    def __init__(self, store: Store, caller_oid: str, delegated: bool) -> None:
        self.store = store
        self.caller_oid = caller_oid
        self.delegated = delegated

    # -- access ------------------------------------------------------------------------------

    def require_read(self) -> None:
        if not self.delegated:
            raise denied()

    # -- views -------------------------------------------------------------------------------

    def _objects(self) -> list[dict[str, Any]]:
        kinds = ("User", "ServicePrincipal", "ManagedIdentity")
        return [p for p in self.store.list("principal") if p.get("kind") in kinds]

    @staticmethod
    def user_view(p: dict[str, Any]) -> dict[str, Any]:
        name = p.get("display_name", "")
        given, _, surname = name.partition(" ")
        return {
            "@odata.type": USER_TYPE,
            "id": p["object_id"],
            "businessPhones": [],
            "displayName": name,
            "givenName": given or None,
            "jobTitle": None,
            "mail": None,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": None,
            "surname": surname or None,
            "userPrincipalName": p["upn"],
        }

    @staticmethod
    def sp_view(p: dict[str, Any]) -> dict[str, Any]:
        managed = p.get("kind") == "ManagedIdentity"
        names = [p["app_id"]]
        alternative: list[str] = []
        if managed:
            # A managed identity's service principal names its resource (Azure shows the
            # identity's resource id, and "isExplicit=True" for a user-assigned one).
            explicit = p.get("mi_type") == "UserAssigned"
            alternative = [f"isExplicit={explicit}", p.get("mi_resource_id", "")]
        return {
            "@odata.type": SP_TYPE,
            "id": p["object_id"],
            "accountEnabled": True,
            "alternativeNames": alternative,
            "appDisplayName": None if managed else p.get("display_name"),
            "appId": p["app_id"],
            "appOwnerOrganizationId": None if managed else p.get("tenant_id"),
            "displayName": p.get("display_name"),
            "servicePrincipalNames": names,
            "servicePrincipalType": "ManagedIdentity" if managed else "Application",
            "signInAudience": None if managed else "AzureADMyOrg",
        }

    def view(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.user_view(p) if p.get("kind") == "User" else self.sp_view(p)

    # -- reads -------------------------------------------------------------------------------

    def get_by_ids(self, body: Any) -> list[dict[str, Any]]:
        self.require_read()
        if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
            raise GraphError(
                400, "Request_BadRequest", "The request body must contain the parameter 'ids'."
            )
        ids = [str(i).lower() for i in body["ids"]]
        if len(ids) > MAX_IDS:
            raise GraphError(
                400,
                "Request_BadRequest",
                f"The number of ids in the request exceeds the limit of {MAX_IDS}.",
            )
        types = {str(t).lower() for t in body.get("types") or []}
        by_id = {p["object_id"].lower(): p for p in self._objects()}
        out = []
        for i in ids:
            p = by_id.get(i)
            if p is None:
                continue
            kind = "user" if p["kind"] == "User" else "serviceprincipal"
            if types and kind not in types and "directoryobject" not in types:
                continue
            out.append(self.view(p))
        return out

    def _find(self, kind: str, key: str) -> dict[str, Any]:
        for p in self._objects():
            if kind == "user" and p["kind"] == "User":
                if key.lower() in (p["object_id"].lower(), p["upn"].lower()):
                    return p
            if kind == "sp" and p["kind"] != "User" and key.lower() == p["object_id"].lower():
                return p
        raise not_found(key)

    def get_user(self, key: str) -> dict[str, Any]:
        self.require_read()
        return self.user_view(self._find("user", key))

    def get_service_principal(self, key: str) -> dict[str, Any]:
        self.require_read()
        return self.sp_view(self._find("sp", key))

    def me(self) -> dict[str, Any]:
        if not self.delegated:
            raise GraphError(
                400, "BadRequest", "/me request is only valid with delegated authentication flow."
            )
        return self.user_view(self._find("user", self.caller_oid))

    def list_users(self, filter_text: str | None) -> list[dict[str, Any]]:
        self.require_read()
        users = [self.user_view(p) for p in self._objects() if p["kind"] == "User"]
        return _filtered(users, filter_text, ("userPrincipalName", "displayName", "mail", "id"))

    def list_service_principals(self, filter_text: str | None) -> list[dict[str, Any]]:
        self.require_read()
        sps = [self.sp_view(p) for p in self._objects() if p["kind"] != "User"]
        return _filtered(sps, filter_text, ("appId", "displayName", "id", "servicePrincipalType"))


def _filtered(
    items: list[dict[str, Any]], filter_text: str | None, fields: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Apply one of the $filter forms the CLI sends; anything else is an unsupported query."""
    if not filter_text:
        return items
    m = _ANY.match(filter_text)
    if m:
        value = m.group("value").replace("''", "'").lower()
        return [
            i for i in items if value in (n.lower() for n in i.get("servicePrincipalNames") or [])
        ]
    for pattern, starts in ((_EQ, False), (_STARTS, True)):
        m = pattern.match(filter_text)
        if not m:
            continue
        field = next((f for f in fields if f.lower() == m.group("field").lower()), None)
        if field is None:
            raise unsupported_query()
        value = m.group("value").replace("''", "'").lower()
        return [
            i
            for i in items
            if isinstance(i.get(field), str)
            and (i[field].lower().startswith(value) if starts else i[field].lower() == value)
        ]
    raise unsupported_query()
