"""The widgets, driven through their own API (set ``.value``, call ``.click()``, read
``.result.value``) against the live sandbox with real SDK credentials and clients."""

from __future__ import annotations

import os
import subprocess
import sys

import ipywidgets
import pytest
from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier
from azure.communication.sms import SmsClient
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential
from helpers_kit import connection_string, enable_vm_identity, sign_in, sp_credential

import helpers
from helpers import widgets
from helpers.widgets import attempts_from_error

SP_CLIENT_ID = "c0ffee00-1111-4222-8333-444455556666"


def test_token_inspector_shows_claims_for_the_scope_typed(kit):
    helpers.act_as("service-principal")
    credential = sp_credential()
    inspector = helpers.widgets.token_inspector(credential)
    assert isinstance(inspector, ipywidgets.VBox)
    inspector.button.click()
    assert inspector.claims["aud"] == "https://communication.azure.com"
    page = inspector.result.value
    assert SP_CLIENT_ID in page and "signature not shown" in page
    assert credential.get_token(inspector.scope.value).token.rsplit(".", 1)[1] not in page

    inspector.scope.value = "https://management.azure.com/.default"
    inspector.button.click()
    assert inspector.claims["aud"] == "https://management.azure.com"

    inspector.scope.value = "https://unknown.example/.default"
    inspector.button.click()
    assert inspector.claims is None
    assert "✗ no token:" in inspector.result.value and "AADSTS" in inspector.result.value


def test_widgets_have_a_short_stable_text_form(kit):
    inspector = widgets.token_inspector(object())
    text = inspector._repr_mimebundle_()["text/plain"]
    assert text == "token inspector (interactive: run the notebook to use it)"


def test_an_unexpected_error_is_shown_in_the_widget(kit):
    explorer = widgets.identity_explorer(object())  # not an identity client
    explorer.button.click()
    assert "✗ AttributeError:" in explorer.result.value


def test_chain_explorer_as_a_laptop_without_sign_in(kit):
    explorer = widgets.credential_chain_explorer()
    assert explorer.persona.value == "developer"
    explorer.button.click()
    outcome = explorer.outcome
    assert outcome["answered"] is None
    why = {name: reason for name, _, reason in outcome["chain"]}
    assert "Please run 'az login'" in why["AzureCliCredential"]
    assert "no response from the IMDS endpoint" in why["ManagedIdentityCredential"]
    assert "✗ DefaultAzureCredential as developer: no credential answered" in (
        explorer.result.value
    )
    assert os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"].endswith("/developer-laptop")


def test_chain_explorer_explains_why_earlier_credentials_did_not_answer(kit):
    sign_in(kit)
    explorer = widgets.credential_chain_explorer()
    explorer.persona.value = "developer"
    # Resource Manager: Entra refuses the Azure CLI a Communication Services token (AADSTS65002).
    explorer.scope.value = "https://management.azure.com/.default"
    outcome = explorer.explore()
    assert outcome["answered"] == "AzureCliCredential"
    rows = {name: (result, reason) for name, result, reason in outcome["chain"]}
    assert rows["AzureCliCredential"][0] == "✓ answered"
    assert rows["EnvironmentCredential"][0] == "✗ did not answer"
    assert "Environment variables are not fully configured" in rows["EnvironmentCredential"][1]
    assert rows["ManagedIdentityCredential"][0] == "✗ did not answer"
    assert rows["AzurePowerShellCredential"][0] == "– not tried"


def test_chain_explorer_switches_persona_only_for_the_call(kit):
    principal = enable_vm_identity(kit)
    before = dict(os.environ)
    explorer = widgets.credential_chain_explorer()
    explorer.persona.value = "vm-tutorial"
    explorer.button.click()
    assert explorer.outcome["answered"] == "ManagedIdentityCredential"
    assert "token from ManagedIdentityCredential" in explorer.result.value
    assert dict(os.environ) == before and kit.persona == "developer"
    assert principal

    explorer.persona.value = "service-principal"
    explorer.button.click()
    assert explorer.outcome["answered"] == "EnvironmentCredential"
    assert [r for _, r, _ in explorer.outcome["chain"]][0] == "✓ answered"


def test_attempts_are_read_from_the_chain_error():
    message = (
        "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
        "Attempted credentials:\n\tEnvironmentCredential: not configured.\n"
        "Visit https://aka.ms/x to troubleshoot this issue.\n"
        "\tAzureCliCredential: Please run 'az login' to set up an account\n"
        "To mitigate this issue, please refer to the troubleshooting guidelines here."
    )
    assert attempts_from_error(message) == {
        "EnvironmentCredential": "not configured.",
        "AzureCliCredential": "Please run 'az login' to set up an account",
    }


def test_role_switch_grants_tries_and_removes(kit):
    principal = enable_vm_identity(kit)
    sign_in(kit)
    helpers.act_as("vm-tutorial")
    credential = ManagedIdentityCredential()
    switch = widgets.role_switch(principal, credential=credential)
    assert switch.refresh() is False

    switch.try_button.click()
    assert "✗ refused (401:" in switch.result.value

    switch.granted.value = True
    switch.apply_button.click()
    assert switch.status.value.count("✓ Contributor on acs-tutorial granted.") == 1
    assert switch.refresh() is True
    switch.try_button.click()
    assert "✓ allowed: create_user()" in switch.result.value

    switch.granted.value = False
    switch.apply_button.click()
    assert "removed" in switch.status.value and switch.refresh() is False
    assert switch.try_call() is False
    assert kit.persona == "vm-tutorial"  # the management calls ran as the developer, then back


def test_role_switch_runs_the_call_on_the_principal_s_host_whatever_the_kernel_acts_as(kit):
    principal = enable_vm_identity(kit)
    sign_in(kit)
    helpers.act_as("developer")
    switch = widgets.role_switch(principal, run_as="vm-tutorial")
    assert switch.try_call() is False  # the VM's identity, not the developer (who is Owner)
    assert "Denied by the resource provider." in switch.result.value
    switch.granted.value = True
    assert switch.apply() is True
    assert switch.try_call() is True
    assert kit.persona == "developer" and "vm-tutorial" not in os.environ.get(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST", ""
    )


def test_role_switch_reports_a_refused_change(kit):
    helpers.act_as("service-principal")
    switch = widgets.role_switch(
        "5e6f7a8b-0002-4c3d-9e0f-1a2b3c4d5e6f",
        credential=sp_credential(),
        admin_credential=sp_credential(),  # Contributor may not write role assignments
    )
    switch.granted.value = True
    assert switch.apply() is False
    assert "✗ could not change the role: 403" in switch.status.value


def test_identity_explorer_issues_tokens_with_the_chosen_scopes(kit):
    client = CommunicationIdentityClient.from_connection_string(connection_string(kit))
    explorer = widgets.identity_explorer(client)
    explorer.scopes["chat"].value = False
    explorer.button.click()
    assert "Pick at least one scope." in explorer.result.value

    explorer.scopes["chat"].value = True
    explorer.scopes["voip"].value = True
    explorer.expiry.value = 60
    explorer.button.click()
    issued = explorer.issued
    assert issued["user_id"].startswith("8:acs:")
    assert issued["claims"]["acsScope"] == "chat,voip"
    page = explorer.result.value
    assert "token for chat, voip" in page and "(expires in 60 min)" in page
    assert "the Communication Services user" in page
    # Nothing left behind: the user is deleted in the same click (ACS cannot list users).
    assert "The user is deleted again" in page
    with pytest.raises(ClientAuthenticationError):  # ACS answers 401 for a deleted user
        client.get_token(CommunicationUserIdentifier(issued["user_id"]), ["chat"])


def test_sms_composer_sends_and_shows_the_inbox(kit):
    sms = SmsClient.from_connection_string(connection_string(kit))
    composer = widgets.sms_composer(sms, kit)
    assert composer.to.value == kit.phone and composer.sender.value == kit.sender
    composer.message.value = "from the composer"
    composer.button.click()
    [result] = composer.sent
    assert result.successful
    page = composer.result.value
    assert "✓ accepted" in page and f"inbox of {kit.phone}: 1 message" in page
    assert "from the composer" in page and "sms-composer" in page

    composer.to.value = "12345"
    composer.button.click()
    assert "✗ refused" in composer.result.value
    assert "Invalid To phone number format." in composer.result.value


def test_widgets_are_imported_only_when_a_notebook_uses_them():
    """ipywidgets takes a fifth of a second to import: a set-up cell does not pay for it, and
    ``helpers.widgets`` (attribute, ``from helpers import widgets``, completion) still works."""
    code = (
        "import sys, helpers\n"
        "assert 'ipywidgets' not in sys.modules\n"
        "assert 'widgets' in dir(helpers)\n"
        "assert callable(helpers.widgets.credential_chain_explorer)\n"
        "from helpers import widgets\n"
        "assert widgets is helpers.widgets and 'ipywidgets' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
