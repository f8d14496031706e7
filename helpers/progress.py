"""Catching up: put the target in the state the earlier notebooks leave behind.

Each notebook's set-up cell calls ``helpers.catch_up(through=N - 1)``, so a learner can open any
notebook first, and the notebook tests can run every notebook in its own fresh sandbox at once.
The steps are the ones the notebooks teach, done with the same management SDK calls as the
developer, and each is skipped when its result is already there (so calling it twice, or after
doing the notebooks by hand, changes nothing).

On the azure target it changes nothing: it never creates or grants anything in a real
subscription behind the learner's back; it only says which notebooks to do first.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from helpers import target

# The names the tutorial uses (notebook 1 creates / enables them, notebook 2 grants the role).
# The hosts' names are the kit's (``kit.vm_name``, ``kit.func_app_name``: .env on Azure).
UAI_NAME = "id-acs-tutorial"
ROLE_NAME = "Communication and Email Service Owner"
VM_TYPE = "Microsoft.Compute/virtualMachines"
FUNC_TYPE = "Microsoft.Web/sites"
API_VERSIONS = {VM_TYPE: "2024-07-01", FUNC_TYPE: "2023-12-01"}


def steps(kit: target.Kit) -> dict[int, str]:
    """What each notebook leaves behind, for the message catch_up prints."""
    sandbox = "the sandbox runs and " if kit.target == target.SANDBOX else ""
    return {
        0: f"{sandbox}the developer is signed in (az login)",
        1: f"system-assigned identities on {kit.vm_name} and {kit.func_app_name}; "
        f"{UAI_NAME} created and attached to {kit.func_app_name}",
        2: f"'{ROLE_NAME}' on {kit.acs_name} for those three identities",
    }


class CatchUpError(RuntimeError):
    """A catch-up step failed; the message names the step and the notebook that teaches it."""


def host_id(kit: target.Kit, name: str, rtype: str) -> str:
    return (
        f"/subscriptions/{kit.subscription_id}/resourceGroups/{kit.resource_group}"
        f"/providers/{rtype}/{name}"
    )


def vm_id(kit: target.Kit) -> str:
    """The resource id of the tutorial's VM (``kit.vm_name``)."""
    return host_id(kit, kit.vm_name, VM_TYPE)


def func_id(kit: target.Kit) -> str:
    """The resource id of the tutorial's Function app (``kit.func_app_name``)."""
    return host_id(kit, kit.func_app_name, FUNC_TYPE)


def _az(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    az = shutil.which("az", path=env.get("PATH"))
    if az is None:
        raise CatchUpError("The sandbox's `az` is not on PATH for the developer persona.")
    return subprocess.run(
        [az, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


class SharedToken:
    """A credential whose token several clients share while it is valid (by default the
    developer's ``AzureCliCredential``).

    azure-identity's ``AzureCliCredential`` keeps no cache (nor does ``DefaultAzureCredential``
    when the CLI answers): every token it gives runs ``az``, a new process (half a second or
    more), and every management client asks for its own. A catch-up or a self-check uses
    three clients, so sharing one token saves two runs of ``az``. Create and use it as the
    developer (``acting_as("developer")``): ``AzureCliCredential`` finds ``az`` on PATH.
    """

    def __init__(self, credential: Any = None) -> None:
        if credential is None:
            from azure.identity import AzureCliCredential

            credential = AzureCliCredential()
        self._credential = credential
        self._tokens: dict[tuple[str, ...], Any] = {}

    @classmethod
    def of(cls, credential: Any) -> SharedToken:
        """``credential`` shared, unless it already is."""
        return credential if isinstance(credential, cls) else cls(credential)

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        if kwargs.get("claims"):  # a claims challenge wants a new token, never a cached one
            return self._credential.get_token(*scopes, **kwargs)
        token = self._tokens.get(scopes)
        if token is None or token.expires_on < time.time() + 300:
            token = self._tokens[scopes] = self._credential.get_token(*scopes, **kwargs)
        return token


def developer_credential(kit: target.Kit) -> SharedToken:
    """You, signed in, for every helper that acts as you with this kit (catching up, Run
    Command, reading the Function app's key): one token they share, so ``az`` runs once, not
    once per helper. A new set-up cell makes a new kit, which starts afresh. On the sandbox it
    is ``AzureCliCredential`` (the developer's ``az``); on Azure ``DefaultAzureCredential``,
    whichever way you signed in."""
    if kit.signed_in is None:
        credential = None
        if kit.target != target.SANDBOX:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        kit.signed_in = SharedToken(credential)
    return kit.signed_in


def _az_profile_exists(kit: target.Kit) -> bool:
    """Whether the sandbox's ``az`` keeps a sign-in at all. A fresh or reset sandbox has none,
    so asking ``az`` for a token (a process of its own) can only fail: every set-up cell of a
    notebook run in a fresh sandbox saves that run. (The folder is in the sandbox's status
    document; a sandbox too old to name it is asked.)"""
    folder = kit.status.get("az_config_dir")
    return folder is None or Path(folder).exists()


def sign_in_developer(
    kit: target.Kit, timeout: float = 30, credential: SharedToken | None = None
) -> bool:
    """Sign the developer in to the sandbox's ``az`` if needed (user name and password, so
    nothing waits for a poll). Returns True when a sign-in happened. ``credential``
    (the caller's, to reuse the token it gets) checks whether the sign-in still works."""
    from azure.core.exceptions import ClientAuthenticationError

    with target.acting_as("developer"):
        if _az_profile_exists(kit):
            # A token, not just `az account show`: a profile whose sign-in no longer works
            # fails. Not signed in is the expected answer here, not a warning for the notebook.
            identity_log = logging.getLogger("azure.identity")
            level = identity_log.level
            identity_log.setLevel(logging.ERROR)
            try:
                (credential or SharedToken()).get_token(kit.arm_scope)
                return False
            except ClientAuthenticationError:
                pass
            finally:
                identity_log.setLevel(level)
        # Plumbing, not the lesson (notebooks 0 and 3 teach the device code): sign in with the
        # developer's sandbox password, which needs no polling. The password goes in an
        # --password=... argument, as the real `az login -u -p`; it is the sandbox's own.
        who = kit.sandbox.developer_sign_in()
        done = _az(
            dict(os.environ),
            "login",
            "--username",
            who["username"],
            f"--password={who['password']}",
            "--output",
            "none",
            timeout=timeout,
        )
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise CatchUpError(f"The developer's sign-in did not complete: {reason}")
        return True


def _identity(resource: Any) -> dict[str, Any]:
    ident = getattr(resource, "identity", None)
    if ident is None:
        return {}
    return ident.as_dict() if hasattr(ident, "as_dict") else dict(ident)


def merged_identity(
    resource: Any,
    *,
    system_assigned: bool | None = None,
    add: tuple[str, ...] = (),
    remove: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The ``identity`` block to PATCH onto ``resource`` that changes only what is asked.

    Resource Manager takes the identity *type* as given: ``{"type": "SystemAssigned"}`` on a
    host that also has user-assigned identities detaches them, and ``{"type": "None"}`` turns
    off every identity, including ones someone else attached. So read the current block, merge,
    and write it whole, every attached identity named (as Entra's REST how-to advises).
    ``system_assigned`` None keeps the system-assigned identity as it is; ``add`` and
    ``remove`` are user-assigned identities' resource ids.
    """
    ident = _identity(resource)
    kinds = {k.strip().lower() for k in str(ident.get("type") or "None").split(",")}
    system = "systemassigned" in kinds if system_assigned is None else system_assigned
    gone = {r.lower() for r in remove}
    attached = [r for r in (ident.get("userAssignedIdentities") or {}) if r.lower() not in gone]
    attached += [r for r in add if r.lower() not in {a.lower() for a in attached}]
    types = (["SystemAssigned"] if system else []) + (["UserAssigned"] if attached else [])
    block: dict[str, Any] = {"type": ", ".join(types) or "None"}
    if attached:
        block["userAssignedIdentities"] = {r: {} for r in attached}
    return block


def enable_identities(kit: target.Kit, credential: Any) -> dict[str, str]:
    """Notebook 1's result; returns the principal ids by name (vm, func, uai) and the uai's id."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.mgmt.msi import ManagedServiceIdentityClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    kwargs = target.helper_client_kwargs()
    resources = ResourceManagementClient(credential, kit.subscription_id, **kwargs)
    msi = ManagedServiceIdentityClient(credential, kit.subscription_id, **kwargs)

    vm = resources.resources.get_by_id(vm_id(kit), api_version=API_VERSIONS[VM_TYPE])
    if "SystemAssigned" not in str(_identity(vm).get("type", "")):
        vm = resources.resources.begin_update_by_id(
            vm_id(kit),
            {"identity": merged_identity(vm, system_assigned=True)},
            api_version=API_VERSIONS[VM_TYPE],
        ).result()

    try:
        uai = msi.user_assigned_identities.get(kit.resource_group, UAI_NAME)
    except ResourceNotFoundError:
        location = resources.resource_groups.get(kit.resource_group).location
        uai = msi.user_assigned_identities.create_or_update(
            kit.resource_group, UAI_NAME, {"location": location}
        )

    func = resources.resources.get_by_id(func_id(kit), api_version=API_VERSIONS[FUNC_TYPE])
    ident = _identity(func)
    attached = {k.lower() for k in (ident.get("userAssignedIdentities") or {})}
    if "SystemAssigned" not in str(ident.get("type", "")) or uai.id.lower() not in attached:
        func = resources.resources.begin_update_by_id(
            func_id(kit),
            {"identity": merged_identity(func, system_assigned=True, add=(uai.id,))},
            api_version=API_VERSIONS[FUNC_TYPE],
        ).result()
    return {
        "vm": _identity(vm)["principalId"],
        "func": _identity(func)["principalId"],
        "uai": uai.principal_id,
        "uai_id": uai.id,
        "uai_client_id": uai.client_id,
    }


def assign_roles(kit: target.Kit, credential: Any, principals: dict[str, str]) -> None:
    """Notebook 2's result: the role on the ACS resource for each of the three identities."""
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

    auth = AuthorizationManagementClient(
        credential, kit.subscription_id, **target.helper_client_kwargs()
    )
    scope = kit.acs_resource_id
    role = next(iter(auth.role_definitions.list(scope, filter=f"roleName eq '{ROLE_NAME}'")))
    held = {
        a.principal_id
        for a in auth.role_assignments.list_for_scope(scope)
        if a.role_definition_id.rsplit("/", 1)[-1] == role.name and a.scope.lower() == scope.lower()
    }
    for key in ("vm", "func", "uai"):
        if principals[key] in held:
            continue
        auth.role_assignments.create(
            scope,
            str(uuid.uuid4()),
            RoleAssignmentCreateParameters(
                role_definition_id=role.id,
                principal_id=principals[key],
                principal_type="ServicePrincipal",
            ),
        )


def catch_up(through: int, quiet: bool = False) -> str:
    """Make the target look as if notebooks 1..``through`` had been done (0: only the sandbox and
    the developer's sign-in). Idempotent; on Azure it only says what to do. Returns the message
    it prints."""
    kit = target.current()
    done = [text for n, text in sorted(steps(kit).items()) if n <= through]
    if kit.target != target.SANDBOX:
        message = (
            "azure target: catch_up changes nothing in your subscription. Make sure you have "
            f"done notebook{f's 0-{through}' if through else ' 0'} first (" + "; ".join(done) + ")."
        )
    else:
        with target.acting_as("developer"):
            credential = developer_credential(kit)  # one token: the check, every client
            sign_in_developer(kit, credential=credential)
            if through >= 1:
                principals = enable_identities(kit, credential)
                if through >= 2:
                    assign_roles(kit, credential, principals)
        kit.sandbox.call("DELETE", "/_sandbox/faults")
        message = f"caught up through notebook {through}: " + "; ".join(done) + "."
    if not quiet:
        print(message)
    return message
