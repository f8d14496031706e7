"""What clean-up must find: the ACS users a step kept, and the state the tutorial found.

Communication Services cannot list its users, so an id nobody wrote down is a user nobody can
delete. Cells delete the users they create in the same cell where they can; what they (or a
widget) keep is recorded here, and notebook 7 deletes it. Likewise Azure does not remember how
a resource was before the tutorial changed it (were its access keys on? did the VM already have
an identity?), so the step that changes it first records what it found, and clean-up puts
that back instead of a guess.

The record is a small JSON file outside the repository: in the sandbox's state folder on the
sandbox (a reset forgets both), else in ``$XDG_STATE_HOME/acs-mi-kit`` (``~/.local/state``),
one entry per ACS resource.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from helpers import target

FILE_NAME = "kit-leftovers.json"


def record_path(kit: target.Kit) -> Path:
    """Where this kit's record lives (never inside the repository)."""
    if kit.target == target.SANDBOX:
        return Path(kit.status["state_dir"]) / FILE_NAME
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "acs-mi-kit" / FILE_NAME


def _load(kit: target.Kit) -> dict[str, Any]:
    try:
        everything = json.loads(record_path(kit).read_text())
    except (OSError, ValueError):
        return {}
    mine = everything.get(kit.acs_resource_id.lower()) if isinstance(everything, dict) else None
    return mine if isinstance(mine, dict) else {}


def _save(kit: target.Kit, mine: dict[str, Any]) -> None:
    path = record_path(kit)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        everything = json.loads(path.read_text())
    except (OSError, ValueError):
        everything = {}
    everything[kit.acs_resource_id.lower()] = mine
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(everything, indent=1, sort_keys=True))
    partial.replace(path)  # whole or not at all


def record_users(kit: target.Kit, *user_ids: str) -> None:
    """Remember ACS user ids that were created and kept, for clean-up to delete."""
    mine = _load(kit)
    users = mine.setdefault("acs_users", [])
    users.extend(u for u in user_ids if u not in users)
    _save(kit, mine)


def recorded_users(kit: target.Kit) -> list[str]:
    """The ACS user ids recorded and not yet deleted."""
    return list(_load(kit).get("acs_users", []))


def forget_users(kit: target.Kit, *user_ids: str) -> None:
    """Drop ids from the record (deleted, or already gone)."""
    mine = _load(kit)
    mine["acs_users"] = [u for u in mine.get("acs_users", []) if u not in user_ids]
    _save(kit, mine)


def delete_recorded_users(kit: target.Kit, identity_client: Any) -> int:
    """Delete every recorded user with ``identity_client`` and forget it. Returns how many
    were deleted.

    Communication Services answers 401 ``Denied`` both for a user that is already gone and for
    a caller without a role. So first one user is created and deleted, which proves the client
    may delete (a refusal raises, and every id stays recorded); after that, a 401 or 404 for a
    recorded id means it was already deleted, and it is forgotten too.
    """
    from azure.communication.identity import CommunicationUserIdentifier
    from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError

    ids = recorded_users(kit)
    if not ids:
        return 0
    identity_client.delete_user(identity_client.create_user())  # may this client delete?
    deleted = 0
    for user_id in ids:
        try:
            identity_client.delete_user(CommunicationUserIdentifier(user_id))
            deleted += 1
        except (ClientAuthenticationError, ResourceNotFoundError):
            pass  # already gone
        forget_users(kit, user_id)
    return deleted


def remember_found(kit: target.Kit, what: str, value: Any) -> None:
    """Record how ``what`` was before the tutorial first changed it; later calls keep the first
    value, so re-running a notebook does not overwrite what was really found."""
    mine = _load(kit)
    found = mine.setdefault("found", {})
    if what not in found:
        found[what] = value
        _save(kit, mine)


def found(kit: target.Kit, what: str, default: Any = None) -> Any:
    """What ``remember_found`` recorded for ``what``, else ``default``."""
    return _load(kit).get("found", {}).get(what, default)


def remember_identity(kit: target.Kit, name: str, resource: Any) -> None:
    """Record whether host ``name`` had a system-assigned identity before the tutorial turned
    one on, so clean-up turns off only what the tutorial turned on."""
    kind = str(getattr(getattr(resource, "identity", None), "type", "") or "")
    remember_found(kit, f"{name}.system_assigned", "systemassigned" in kind.lower())


def remember_user_assigned(kit: target.Kit, msi: Any, name: str) -> None:
    """Record whether the user-assigned identity ``name`` existed before the tutorial created
    it (``msi``: a ManagedServiceIdentityClient), so clean-up deletes only what it made."""
    from azure.core.exceptions import ResourceNotFoundError

    if found(kit, f"{name}.existed") is not None:
        return
    try:
        msi.user_assigned_identities.get(kit.resource_group, name)
        existed = True
    except ResourceNotFoundError:
        existed = False
    remember_found(kit, f"{name}.existed", existed)
