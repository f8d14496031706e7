""" "Check your understanding" graders: each reads evidence, never the learner's say-so.

Two kinds of evidence. Resource Manager state (is the identity on, who holds which role) is read
with the management SDK and the learner's own credential, so those checks work on Azure too.
What actually happened on the wire (was the SMS sent with a managed identity's token, or signed
with an access key?) is read from the sandbox's request log, whose entries say ``credential``,
``caller``, ``principal_id``, ``decision`` and ``reason``; on Azure those checks say they need the
sandbox. Every check returns a ``Report`` that shows ✓/✗ lines, each ✗ with what to do.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from helpers import progress, target
from helpers.redact import token_claims

ACS_AUDIENCE = "https://communication.azure.com"
DATA_PLANE_ROLES = ("Communication and Email Service Owner", "Contributor", "Owner")
LEAST_PRIVILEGE = "Communication and Email Service Owner"  # narrower, reported to work
DOCUMENTED_ROLE = "Contributor"  # the role Microsoft's quickstart assigns


@dataclass
class Line:
    """One graded line (``ok`` True or False) or a note that grades nothing (``ok`` None)."""

    ok: bool | None
    text: str
    fix: str = ""

    @property
    def mark(self) -> str:
        return {True: "✓", False: "✗", None: "ℹ"}[self.ok]


@dataclass
class Report:
    """The outcome of one check: shown as a ✓/✗ list (HTML in Jupyter, text elsewhere)."""

    title: str
    lines: list[Line] = field(default_factory=list)
    skipped: str = ""  # why nothing could be graded here, e.g. "sandbox only"

    @property
    def ok(self) -> bool:
        graded = [line.ok for line in self.lines if line.ok is not None]
        return bool(graded) and all(graded)

    @property
    def verdict(self) -> str:
        """ "all correct", "not yet", or "skipped (why)" when nothing could be graded here."""
        if self.skipped:
            return f"skipped ({self.skipped})"
        return "all correct" if self.ok else "not yet"

    def add(self, ok: bool, text: str, fix: str = "") -> bool:
        self.lines.append(Line(bool(ok), text, "" if ok else fix))
        return bool(ok)

    def note(self, text: str) -> None:
        """Something worth knowing that is neither right nor wrong (shown with ℹ)."""
        self.lines.append(Line(None, text))

    def __repr__(self) -> str:
        out = [f"{self.title}: {self.verdict}"]
        for line in self.lines:
            out.append(f"  {line.mark} {line.text}")
            if line.fix:
                out.append(f"      → {line.fix}")
        return "\n".join(out)

    def _repr_html_(self) -> str:
        rows = []
        for line in self.lines:
            mark = line.mark
            colour = {True: "#1a7f37", False: "#cf222e", None: "#0969da"}[line.ok]
            fix = f"<br/><em>→ {html.escape(line.fix)}</em>" if line.fix else ""
            rows.append(
                f"<tr><td style='color:{colour};font-weight:bold'>{mark}</td>"
                f"<td style='text-align:left'>{html.escape(line.text)}{fix}</td></tr>"
            )
        return (
            f"<div><strong>{html.escape(self.title)}: {html.escape(self.verdict)}</strong>"
            f"<table>{''.join(rows)}</table></div>"
        )


# -- evidence ------------------------------------------------------------------------------------


def _log(kit: target.Kit, since: int | None) -> list[dict[str, Any]]:
    return kit.sandbox.requests_since(since or 0)


def _needs_sandbox(report: Report) -> Report:
    """On Azure, a check graded from the request log grades nothing: it says it was skipped
    (never "not yet", which would blame the learner for what Azure does not show)."""
    report.skipped = "sandbox only"
    report.note(
        "this check reads the sandbox's request log, which Azure does not have: run the notebook "
        "on the sandbox to grade it, or read your resource's diagnostic logs in the portal"
    )
    return report


def _find(entries: Iterable[dict[str, Any]], **want: Any) -> list[dict[str, Any]]:
    """Entries whose fields equal the wanted values (a callable value is a predicate)."""
    found = []
    for e in entries:
        if all(v(e.get(k)) if callable(v) else e.get(k) == v for k, v in want.items()):
            found.append(e)
    return found


def _contains(*words: str) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and all(w.lower() in value.lower() for w in words)


def _is_acs(audience: Any) -> bool:
    return isinstance(audience, str) and audience.rstrip("/").lower() == ACS_AUDIENCE


def _mgmt(kit: target.Kit, credential: Any) -> tuple[Any, Any, Any]:
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.mgmt.msi import ManagedServiceIdentityClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    kwargs = target.helper_client_kwargs()
    credential = progress.SharedToken.of(credential)  # one token for the three clients
    return (
        ResourceManagementClient(credential, kit.subscription_id, **kwargs),
        ManagedServiceIdentityClient(credential, kit.subscription_id, **kwargs),
        AuthorizationManagementClient(credential, kit.subscription_id, **kwargs),
    )


def _identity_of(resources: Any, rid: str, api_version: str) -> dict[str, Any]:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        found = resources.resources.get_by_id(rid, api_version=api_version)
    except ResourceNotFoundError:
        return {"missing": True}
    ident = getattr(found, "identity", None)
    if ident is None:
        return {}
    return ident.as_dict() if hasattr(ident, "as_dict") else dict(ident)


def _principals(kit: target.Kit, credential: Any) -> dict[str, str | None]:
    """Principal ids of the tutorial's three identities (None where there is none)."""
    from azure.core.exceptions import ResourceNotFoundError

    resources, msi, _ = _mgmt(kit, credential)
    vm = _identity_of(
        resources,
        progress.vm_id(kit),
        progress.API_VERSIONS[progress.VM_TYPE],
    )
    func = _identity_of(
        resources,
        progress.func_id(kit),
        progress.API_VERSIONS[progress.FUNC_TYPE],
    )
    try:
        uai = msi.user_assigned_identities.get(kit.resource_group, progress.UAI_NAME)
    except ResourceNotFoundError:
        uai = None
    return {
        "vm": vm.get("principalId"),
        "func": func.get("principalId"),
        "uai": uai.principal_id if uai else None,
        "uai_id": uai.id if uai else None,
        "func_user_assigned": ",".join(k.lower() for k in func.get("userAssignedIdentities") or {}),
    }


def _roles_by_principal(kit: target.Kit, credential: Any) -> dict[str, list[tuple[str, str]]]:
    """principal id → [(role name, scope)] for assignments that apply to the ACS resource."""
    _, _, auth = _mgmt(kit, credential)
    names = {}
    for role in auth.role_definitions.list(kit.acs_resource_id):
        names[role.name.lower()] = role.role_name
    found: dict[str, list[tuple[str, str]]] = {}
    for a in auth.role_assignments.list_for_scope(kit.acs_resource_id):
        role = names.get(a.role_definition_id.rsplit("/", 1)[-1].lower(), "a custom role")
        found.setdefault(a.principal_id, []).append((role, a.scope))
    return found


# -- notebook 0 ----------------------------------------------------------------------------------


def ready(kit: target.Kit) -> Report:
    """Notebook 0: the target answers, and the developer's Azure CLI sign-in gives tokens."""
    from azure.identity import AzureCliCredential

    report = Report("Set-up")
    if kit.target == target.SANDBOX:
        report.add(
            kit.sandbox.call("GET", "/_sandbox/health").get("status") == "ok",
            "the sandbox answers over HTTPS with a certificate this kernel trusts",
            "Run `python -m sandbox start` in a terminal and re-run the set-up cell.",
        )
    try:
        with target.acting_as("developer"):  # on Azure: nothing changes
            token = AzureCliCredential().get_token(kit.arm_scope)
        claims = token_claims(token.token)
        who = claims.get("upn") or claims.get("preferred_username") or "a user"
        report.add(
            claims.get("idtyp", "user") == "user",
            f"the Azure CLI gives Resource Manager tokens as {who} (az login done)",
            "Sign in as a user with `az login`, not as a service principal.",
        )
    except Exception as e:  # noqa: BLE001 - every failure has the same fix
        report.add(
            False,
            f"the Azure CLI gives no token ({type(e).__name__})",
            "Run the sign-in cells of step 4 (on Azure: `az login` in a terminal).",
        )
    return report


# -- notebooks 1 and 2 ---------------------------------------------------------------------------


def identities_enabled(kit: target.Kit, credential: Any) -> Report:
    """Notebook 1: read from Resource Manager with your credential."""
    report = Report("Managed identities")
    p = _principals(kit, credential)
    report.add(
        p["vm"] is not None,
        f"{kit.vm_name} has a system-assigned identity",
        f"Run the step that PATCHes {kit.vm_name} with identity type 'SystemAssigned'.",
    )
    report.add(
        p["func"] is not None,
        f"{kit.func_app_name} has a system-assigned identity",
        f"PATCH {kit.func_app_name} with identity type 'SystemAssigned, UserAssigned'.",
    )
    report.add(
        p["uai"] is not None,
        f"the user-assigned identity {progress.UAI_NAME} exists",
        "Run the step that calls user_assigned_identities.create_or_update.",
    )
    report.add(
        bool(p["uai_id"]) and p["uai_id"].lower() in p["func_user_assigned"].split(","),
        f"{progress.UAI_NAME} is attached to {kit.func_app_name}",
        f"Include it in {kit.func_app_name}'s identity.userAssignedIdentities.",
    )
    return report


def roles_assigned(kit: target.Kit, credential: Any) -> Report:
    """Notebook 2: each identity holds a role that reaches the ACS data plane, on the ACS
    resource itself, and not Owner (which can grant roles to others).

    Contributor passes: it is the role Microsoft's quickstart assigns. The narrower
    Communication and Email Service Owner is reported to work and is what the notebook grants;
    a note says so. Neither is data-plane only (both can list and regenerate the keys), which is
    why notebook 4 turns keys off."""
    report = Report(f"Role assignments on {kit.acs_name}")
    credential = progress.SharedToken.of(credential)  # both reads share one token
    p = _principals(kit, credential)
    roles = _roles_by_principal(kit, credential)
    broad = False
    for key, label in (
        ("vm", f"{kit.vm_name}'s identity"),
        ("func", f"{kit.func_app_name}'s identity"),
        ("uai", progress.UAI_NAME),
    ):
        usable = [(r, s) for r, s in roles.get(p[key] or "", []) if r in DATA_PLANE_ROLES]
        if not report.add(
            bool(usable),
            f"{label} holds a role that reaches the ACS data plane",
            f"Assign '{LEAST_PRIVILEGE}' (or '{DOCUMENTED_ROLE}') to it on the ACS resource "
            "(step 3).",
        ):
            continue
        names = {r for r, _ in usable}
        report.add(
            "Owner" not in names,
            f"{label} cannot grant roles to others (no Owner)",
            f"Owner can hand out access too; assign '{LEAST_PRIVILEGE}' instead.",
        )
        report.add(
            any(s.lower() == kit.acs_resource_id.lower() for _, s in usable),
            f"{label}'s role is scoped to the ACS resource itself",
            "Assign it at the resource's id, not the resource group or the subscription.",
        )
        broad = broad or LEAST_PRIVILEGE not in names
    if broad:
        report.note(
            f"{DOCUMENTED_ROLE} works: it is the role Microsoft's quickstart assigns. "
            f"'{LEAST_PRIVILEGE}' is narrower (Communication and Email resources only) and "
            "reported to work."
        )
    if report.ok:
        report.note(
            f"Neither {DOCUMENTED_ROLE} nor '{LEAST_PRIVILEGE}' is data-plane only: both can "
            "list and regenerate the access keys. "
            "Notebook 4 turns keys off."
        )
    return report


# -- notebook 3 ----------------------------------------------------------------------------------


def authenticated_everywhere(kit: target.Kit, since: int) -> Report:
    """Notebook 3: tokens for ACS were issued to each kind of caller since ``since``, and the
    developer's Azure CLI sign-in was refused one (AADSTS65002), as Entra refuses it."""
    report = Report("Who got a token for Communication Services")
    if kit.target != target.SANDBOX:
        return _needs_sandbox(report)
    log = _log(kit, since)
    acs = [e for e in log if e.get("decision") == "issued" and _is_acs(e.get("audience"))]
    refused = [e for e in log if e.get("decision") == "denied" and _is_acs(e.get("audience"))]
    report.add(
        bool(_find(refused, caller=_contains("developer@"), reason=_contains("AADSTS65002"))),
        "the developer's Azure CLI sign-in was refused (AADSTS65002), as Entra refuses it",
        "Run the developer step that asks AzureCliCredential for a Communication Services token.",
    )
    report.add(
        bool(_find(acs, credential="client-secret")),
        "the service principal (ClientSecretCredential)",
        "Run the service-principal step.",
    )
    for host, kind, text in (
        (kit.vm_name, "SystemAssigned", f"{kit.vm_name}'s system-assigned identity (IMDS)"),
        (
            kit.func_app_name,
            "SystemAssigned",
            f"{kit.func_app_name}'s system-assigned identity (App Service)",
        ),
        (progress.UAI_NAME, "UserAssigned", f"{progress.UAI_NAME}, picked by its client id"),
    ):
        found = _find(acs, listener="mi", identity_kind=kind, caller=host)
        report.add(bool(found), text, "Run the step that acts as that host.")
    return report


# -- notebooks 4 and 5 ---------------------------------------------------------------------------


def _managed_identity_caller(value: Any) -> bool:
    return isinstance(value, str) and "managed identity" in value


def identity_api_with_managed_identity(kit: target.Kit, since: int) -> Report:
    """Notebook 4: the Identity API calls were authorized by a managed identity's token."""
    report = Report("Identity API calls")
    if kit.target != target.SANDBOX:
        return _needs_sandbox(report)
    log = _log(kit, since)
    by_mi = _find(log, credential="bearer", decision="allowed", caller=_managed_identity_caller)
    for operation, text in (
        ("Identity.Create", "a user was created"),
        ("Identity.IssueToken", "a user access token was issued"),
        ("Identity.RevokeTokens", "a user's tokens were revoked"),
        ("Identity.Delete", "a user was deleted"),
    ):
        report.add(
            bool(_find(by_mi, operation=operation)),
            f"{text}, authorized by a managed identity's Microsoft Entra ID token",
            f"Run the {operation.split('.')[1]} step on {kit.vm_name}.",
        )
    hmac = _find(log, credential="hmac", decision="allowed")
    report.add(
        bool(hmac),
        "the access-key comparison ran too (HMAC-signed, no identity in the log)",
        "Run the access-key step to compare what the log records.",
    )
    return report


def sms_with_managed_identity(kit: target.Kit, since: int, host: str | None = None) -> Report:
    """Notebook 5: the SMS went out with ``host``'s managed identity (default: the VM's), not
    with an access key."""
    report = Report("SMS sending")
    host = host or kit.vm_name
    if kit.target != target.SANDBOX:
        return _needs_sandbox(report)
    log = _log(kit, since)
    sends = _find(log, operation="Sms.Send")
    mine = _find(
        sends,
        credential="bearer",
        decision="allowed",
        status=202,
        caller=lambda c: isinstance(c, str) and c.startswith(host) and "managed identity" in c,
    )
    report.add(
        bool(mine),
        f"an SMS was accepted (202) for {host}'s managed identity",
        f"Send with SmsClient(kit.acs_endpoint, DefaultAzureCredential()) acting as {host}.",
    )
    report.add(
        not _find(sends, credential="hmac"),
        "no SMS was signed with an access key",
        "Build the SmsClient with a credential, not from a connection string.",
    )
    report.add(
        any((e.get("recipients") or 0) > 1 for e in mine),
        "one request reached several recipients",
        "Pass a list of numbers as `to`.",
    )
    return report


# -- notebook 6 ----------------------------------------------------------------------------------

# (what the learner met, the evidence in the log, the section to revisit)
_LAB: list[tuple[str, dict[str, Any], str]] = [
    (
        "missing role: 401 Denied",
        {"status": 401, "reason": _contains("no role")},
        "Missing role",
    ),
    (
        "wrong audience: 401",
        {"status": 401, "reason": _contains("audience")},
        "Wrong audience",
    ),
    (
        "expired token: 401",
        {"status": 401, "reason": _contains("expired")},
        "Expired token",
    ),
    (
        "identity not enabled: the identity endpoint said 'Identity not found'",
        {"listener": "mi", "decision": "refused", "reason": _contains("identity not found")},
        "Identity not enabled",
    ),
    (
        "identity endpoint unreachable",
        {"listener": "mi", "reason": _contains("mi_unreachable")},
        "Identity endpoint unreachable",
    ),
    (
        "throttling: 429 Too Many Requests",
        {"status": 429},
        "Throttling",
    ),
    (
        "HMAC clock skew: 401 outside the allowed window",
        {"status": 401, "credential": "hmac", "reason": _contains("window")},
        "HMAC clock skew",
    ),
    (
        "rotated key: 401 signature mismatch",
        {"status": 401, "credential": "hmac", "reason": _contains("signature mismatch")},
        "Rotated key",
    ),
]


def troubleshooting(kit: target.Kit, since: int) -> Report:
    """Notebook 6: each failure was met (the log shows it) and, after it, the call worked."""
    report = Report("Troubleshooting lab")
    if kit.target != target.SANDBOX:
        return _needs_sandbox(report)
    log = _log(kit, since)
    for text, want, section in _LAB:
        report.add(bool(_find(log, **want)), text, f"Work through the section '{section}'.")
    last_acs = [e for e in log if e.get("operation")]
    report.add(
        bool(last_acs) and last_acs[-1].get("decision") == "allowed",
        "the last data-plane call worked again (everything fixed)",
        "Run the last 'fix' cell again.",
    )
    return report


# -- notebook 7 ----------------------------------------------------------------------------------


def cleaned_up(kit: target.Kit, credential: Any, principals: Iterable[str] | None = None) -> Report:
    """Notebook 7: nothing the tutorial granted or enabled is left, and what the learner had
    before the tutorial (recorded in ``leftovers`` when a notebook first changed it) is there.

    ``principals``: the tutorial's identities as they were before clean-up; only their role
    assignments count (others on the resource are someone else's). Without it, every
    assignment made at the ACS resource itself counts, as on the sandbox's seeded world.
    """
    from helpers import leftovers

    report = Report("Clean-up")
    credential = progress.SharedToken.of(credential)  # both reads share one token
    p = _principals(kit, credential)
    roles = _roles_by_principal(kit, credential)
    for key, name in (("vm", kit.vm_name), ("func", kit.func_app_name)):
        if leftovers.found(kit, f"{name}.system_assigned", False):
            report.note(f"{name} keeps the system-assigned identity it had before the tutorial")
            continue
        report.add(p[key] is None, f"{name} has no system-assigned identity", "Run step 3.")
    if leftovers.found(kit, f"{progress.UAI_NAME}.existed", False):
        report.note(f"{progress.UAI_NAME} existed before the tutorial, so it is kept")
    else:
        report.add(
            p["uai"] is None,
            f"the user-assigned identity {progress.UAI_NAME} is deleted",
            "Run step 4.",
        )
    wanted = {pid.lower() for pid in principals} if principals is not None else None
    left = [
        pid
        for pid, held in roles.items()
        if any(s.lower() == kit.acs_resource_id.lower() for _, s in held)
        and (wanted is None or pid.lower() in wanted)
    ]
    whose = "the tutorial's identities" if wanted is not None else "any principal"
    report.add(
        not left,
        f"no role assignment of {whose} is left on {kit.acs_name} itself",
        f"{len(left)} principal(s) still hold a role there: run step 2.",
    )
    report.add(
        not leftovers.recorded_users(kit),
        "no Communication Services user the notebooks recorded is left",
        "Run step 1: it deletes the users the notebooks and widgets recorded.",
    )
    return report
