"""Azure role-based access control: who may do what, at which scope.

Both Resource Manager (role assignments, keys) and the ACS data plane ask this module, so a role
granted through the management SDK takes effect on the very next ACS request, as in Azure
(apart from propagation delay, which the ACS layer can simulate).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from sandbox.store import Store


def _under(scope: str, assignment_scope: str) -> bool:
    """An assignment at a scope applies to that scope and everything beneath it."""
    s, a = scope.rstrip("/").lower(), assignment_scope.rstrip("/").lower()
    return s == a or s.startswith(a + "/")


def assignments_applying(store: Store, principal_id: str, scope: str) -> list[dict[str, Any]]:
    return store.list(
        "role_assignment",
        lambda a: a["principal_id"] == principal_id and _under(scope, a["scope"]),
    )


def role_names_at(store: Store, principal_id: str, scope: str) -> list[str]:
    names = []
    for a in assignments_applying(store, principal_id, scope):
        role = store.get("role_definition", a["role_definition_guid"])
        if role:
            names.append(role["roleName"])
    return names


def _matches(patterns: list[str], action: str) -> bool:
    return any(fnmatchcase(action.lower(), p.lower()) for p in patterns)


def is_allowed(store: Store, principal_id: str, scope: str, action: str) -> bool:
    """True when some role the principal holds at or above ``scope`` permits ``action``."""
    for a in assignments_applying(store, principal_id, scope):
        role = store.get("role_definition", a["role_definition_guid"])
        if role and _matches(role["actions"], action) and not _matches(role["notActions"], action):
            return True
    return False
