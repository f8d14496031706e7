"""Azure role-based access control: who may do what, at which scope.

Both Resource Manager (role assignments, keys) and the ACS data plane ask this module, so a role
granted through the management SDK takes effect on the very next ACS request, as in Azure
(apart from propagation delay, which the ACS layer can simulate).

Evaluation follows Azure's documented rules (MicrosoftDocs/azure-docs
articles/role-based-access-control/role-definitions.md): an action string is compared without
regard to case; ``*`` is the only wildcard and matches any run of characters, ``/`` included
(``*/read``, ``Microsoft.Authorization/*/Write``); a role allows an action when one of its
``actions`` matches and none of its ``notActions`` does (``notActions`` subtract from that role
only, they deny nothing another role grants); data-plane operations are judged by
``dataActions``/``notDataActions`` the same way; the effective permission is the union over every
assignment at the scope or above it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from sandbox import world
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


def role_definition(store: Store, guid: str) -> dict[str, Any] | None:
    """A role definition by id: a built-in one as Azure publishes it today (so a state written
    by an older sandbox still judges by the current definition), else the stored one."""
    key = guid.lower()
    if key in world.ROLES:
        return world.builtin_role(key)
    return store.get("role_definition", key)


def role_names_at(store: Store, principal_id: str, scope: str) -> list[str]:
    names = []
    for a in assignments_applying(store, principal_id, scope):
        role = role_definition(store, a["role_definition_guid"])
        if role:
            names.append(role["roleName"])
    return names


@lru_cache(maxsize=512)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in text.split("*")), re.I | re.S)


def matches(patterns: list[str], action: str) -> bool:
    """True when one of the permission strings covers ``action``, as Azure compares them."""
    return any(_pattern(p).fullmatch(action) for p in patterns)


def permits(role: dict[str, Any], action: str, *, data: bool = False) -> bool:
    """Whether one role definition allows ``action`` (a data action when ``data``)."""
    allow, deny = ("dataActions", "notDataActions") if data else ("actions", "notActions")
    return matches(role.get(allow, []), action) and not matches(role.get(deny, []), action)


def is_allowed(
    store: Store, principal_id: str, scope: str, action: str, *, data: bool = False
) -> bool:
    """True when some role the principal holds at or above ``scope`` permits ``action``."""
    for a in assignments_applying(store, principal_id, scope):
        role = role_definition(store, a["role_definition_guid"])
        if role and permits(role, action, data=data):
            return True
    return False
