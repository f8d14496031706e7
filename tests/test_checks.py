"""The check-your-understanding graders: they pass on the evidence, and only on it."""

from __future__ import annotations

import os
import uuid

import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.sms import SmsClient
from azure.identity import AzureCliCredential, DefaultAzureCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

import helpers
from helpers import checks, progress

CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"


def _lines(report: checks.Report) -> dict[str, bool]:
    return {line.text: line.ok for line in report.lines}


def test_report_shows_fixes_only_for_failures():
    report = checks.Report("Demo")
    report.add(True, "fine", "never shown")
    report.add(False, "<broken>", "do this")
    assert not report.ok
    assert "✓ fine" in repr(report) and "never shown" not in repr(report)
    assert "→ do this" in repr(report)
    assert "&lt;broken&gt;" in report._repr_html_() and "<broken>" not in report._repr_html_()
    assert not checks.Report("empty").ok  # nothing checked is not a pass


def test_ready_needs_the_developer_sign_in(kit):
    with helpers.acting_as("developer"):
        progress._az(dict(os.environ), "logout")
    assert not checks.ready(kit).ok
    helpers.catch_up(through=0, quiet=True)
    assert checks.ready(kit).ok


def test_identities_and_roles_follow_resource_manager_state(kit):
    helpers.catch_up(through=0, quiet=True)
    credential = AzureCliCredential()
    assert not any(_lines(checks.identities_enabled(kit, credential)).values())
    helpers.catch_up(through=1, quiet=True)
    assert checks.identities_enabled(kit, credential).ok
    roles = checks.roles_assigned(kit, credential)
    assert not roles.ok and len(roles.lines) == 3  # one ✗ per identity, nothing else to say
    helpers.catch_up(through=2, quiet=True)
    assert checks.roles_assigned(kit, credential).ok
    assert not checks.cleaned_up(kit, credential).ok


def test_contributor_passes_with_a_note_and_owner_is_flagged(kit):
    helpers.catch_up(through=1, quiet=True)
    credential = AzureCliCredential()
    principals = progress.enable_identities(kit, credential)
    auth = AuthorizationManagementClient(
        credential, kit.subscription_id, **helpers.mgmt_client_kwargs()
    )

    def grant(role: str, principal_id: str) -> None:
        auth.role_assignments.create(
            kit.acs_resource_id,
            str(uuid.uuid4()),
            RoleAssignmentCreateParameters(
                role_definition_id=f"{kit.acs_resource_id}/providers/Microsoft.Authorization/"
                f"roleDefinitions/{role}",
                principal_id=principal_id,
                principal_type="ServicePrincipal",
            ),
        )

    for key in ("vm", "func", "uai"):
        grant(CONTRIBUTOR, principals[key])
    report = checks.roles_assigned(kit, credential)
    assert report.ok  # Contributor is the role Microsoft documents
    notes = [line.text for line in report.lines if line.ok is None]
    assert any(n.startswith("Contributor works") for n in notes)
    assert any("list and regenerate the access keys" in n for n in notes)
    assert "ℹ Contributor works" in repr(report)

    grant(OWNER, principals["vm"])
    lines = _lines(checks.roles_assigned(kit, credential))
    assert lines["vm-tutorial's identity holds a role that reaches the ACS data plane"]
    assert not lines["vm-tutorial's identity cannot grant roles to others (no Owner)"]


def test_sms_check_tells_managed_identity_from_access_key(kit):
    helpers.catch_up(through=2, quiet=True)
    mark = kit.sandbox.mark()
    helpers.act_as("vm-tutorial")
    SmsClient(kit.acs_endpoint, DefaultAzureCredential()).send(
        from_=kit.sender, to=kit.phones, message="hello"
    )
    assert checks.sms_with_managed_identity(kit, since=mark).ok
    assert not checks.sms_with_managed_identity(kit, since=mark, host="func-tutorial").ok

    connection = kit.sandbox.call("GET", "/_sandbox/acs/connection-string")["connection_string"]
    SmsClient.from_connection_string(connection).send(
        from_=kit.sender, to=kit.phone, message="signed with the key"
    )
    lines = _lines(checks.sms_with_managed_identity(kit, since=mark))
    assert lines["no SMS was signed with an access key"] is False


def test_identity_api_check_needs_each_operation(kit):
    helpers.catch_up(through=2, quiet=True)
    mark = kit.sandbox.mark()
    helpers.act_as("vm-tutorial")
    client = CommunicationIdentityClient(kit.acs_endpoint, DefaultAzureCredential())
    user = client.create_user()
    client.delete_user(user)
    lines = _lines(checks.identity_api_with_managed_identity(kit, since=mark))
    created = "a user was created, authorized by a managed identity's Microsoft Entra ID token"
    revoked = (
        "a user's tokens were revoked, authorized by a managed identity's Microsoft Entra ID token"
    )
    assert lines[created] and not lines[revoked]


def test_troubleshooting_counts_what_the_log_shows(kit):
    helpers.catch_up(through=2, quiet=True)
    mark = kit.sandbox.mark()
    helpers.act_as("vm-tutorial")
    helpers.fault("throttle", count=1, retry_after=1)
    client = SmsClient(kit.acs_endpoint, DefaultAzureCredential(), retry_total=0)
    with pytest.raises(Exception):  # noqa: B017 - the 429 itself is not what is tested here
        client.send(from_=kit.sender, to=kit.phone, message="x")
    client.send(from_=kit.sender, to=kit.phone, message="x")
    lines = _lines(checks.troubleshooting(kit, since=mark))
    assert lines["throttling: 429 Too Many Requests"]
    assert not lines["rotated key: 401 signature mismatch"]
    assert lines["the last data-plane call worked again (everything fixed)"]


def test_authenticated_everywhere_sees_managed_identity_tokens(kit):
    helpers.catch_up(through=2, quiet=True)
    mark = kit.sandbox.mark()
    helpers.act_as("vm-tutorial")
    DefaultAzureCredential().get_token("https://communication.azure.com//.default")
    lines = _lines(checks.authenticated_everywhere(kit, since=mark))
    assert lines["vm-tutorial's system-assigned identity (IMDS)"]
    assert not lines["the service principal (ClientSecretCredential)"]


def test_fresh_world_is_clean_and_log_checks_need_the_sandbox(kit, monkeypatch):
    helpers.catch_up(through=0, quiet=True)
    assert checks.cleaned_up(kit, AzureCliCredential()).ok
    monkeypatch.setattr(kit, "target", "azure")
    report = checks.sms_with_managed_identity(kit, since=0)
    assert not report.ok and "request log" in report.lines[0].text
    assert repr(report).startswith("SMS sending: skipped (sandbox only)")
    assert "not yet" not in repr(report) + report._repr_html_()
