"""The azure target, offline: a learner's .env is enough, each setting is checked with one
sentence when a step needs it, nothing changes without asking, and sandbox-only steps and
checks say that they are skipped instead of running as the learner or grading "not yet".

No subscription exists here, so these tests build the kit from a .env in a temporary folder and
exercise only what happens before any request would leave the machine. The last tests use the
session's sandbox for what needs a real ACS endpoint (deleting recorded users).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from azure.communication.identity import CommunicationIdentityClient
from helpers_kit import REPO_ROOT, sp_credential

import helpers
from helpers import checks, leftovers, progress, target
from helpers.target import KitConfigError, RunsOnHost

EXAMPLE = REPO_ROOT / ".env.example"
VARIABLES = [
    "KIT_TARGET",
    *target._AZURE_SETTINGS,
    "AZURE_TENANT_ID",
    "VM_NAME",
    "FUNC_APP_NAME",
    *target.SP_SETTINGS,
    "KIT_ASSUME_YES",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
]
TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "66666666-7777-8888-9999-000000000000"


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A folder whose .env is a copy of .env.example, a shell with none of the variables, and
    the kit's record under this test's own state folder; returns a function that writes extra
    lines to .env and sets the kit up."""
    monkeypatch.setattr(target, "_current", None)
    for var in VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    shutil.copy(EXAMPLE, tmp_path / ".env")
    monkeypatch.chdir(tmp_path)

    def setup(**lines: str) -> target.Kit:
        with (tmp_path / ".env").open("a") as env:
            env.writelines(f"\n{name}={value}\n" for name, value in lines.items())
        return target.setup()

    yield setup
    for var in VARIABLES:  # load_dotenv wrote .env's values into os.environ
        os.environ.pop(var, None)


def _never_asked(prompt: str) -> str:
    raise AssertionError(f"asked: {prompt}")


# -- a learner's .env is enough ------------------------------------------------------------------


def test_hosts_default_to_the_tutorials_names(azure, tmp_path):
    text = (tmp_path / ".env").read_text()
    (tmp_path / ".env").write_text(text.replace("VM_NAME=", "#").replace("FUNC_APP_NAME=", "#"))
    kit = azure()
    assert (kit.vm_name, kit.func_app_name) == ("vm-tutorial", "func-tutorial")


def test_hosts_come_from_env(azure):
    kit = azure(VM_NAME="vm-contoso-01", FUNC_APP_NAME="func-contoso")
    assert (kit.vm_name, kit.func_app_name) == ("vm-contoso-01", "func-contoso")
    assert progress.vm_id(kit).endswith("/virtualMachines/vm-contoso-01")
    assert progress.func_id(kit).endswith("/sites/func-contoso")
    assert "func-contoso" in progress.catch_up(through=2, quiet=True)
    assert kit.summary()["VM"] == "vm-contoso-01"


def test_catch_up_on_azure_names_what_you_did_not_the_sandbox(azure):
    azure()
    assert progress.catch_up(through=0, quiet=True) == (
        "azure target: catch_up changes nothing in your subscription. Make sure you have done "
        "notebook 0 first (the developer is signed in (az login))."
    )
    assert "sandbox" not in progress.catch_up(through=2, quiet=True)


@pytest.mark.parametrize(
    ("var", "bad"), [("VM_NAME", "vm with spaces"), ("FUNC_APP_NAME", "func_underscore")]
)
def test_a_malformed_host_name_is_named_in_one_sentence(azure, var, bad):
    with pytest.raises(KitConfigError, match=rf"^{var} is malformed: it should be ") as e:
        azure(**{var: bad})
    assert str(e.value).count(". ") == 0  # one sentence


def test_several_phones_each_checked(azure, monkeypatch):
    monkeypatch.setenv("SMS_TO_NUMBER", "+14255550123, +447700900123")
    kit = azure()
    assert kit.phones == ["+14255550123", "+447700900123"] and kit.phone == "+14255550123"
    target._current = None
    monkeypatch.setenv("SMS_TO_NUMBER", "+14255550123,07700 900123")
    with pytest.raises(KitConfigError, match=r"^SMS_TO_NUMBER is malformed: .*'07700 900123' is"):
        target.setup()


def test_the_service_principal_is_read_only_when_a_step_needs_it(azure, monkeypatch):
    kit = azure()  # no KIT_SP_* at all: setting up works
    with pytest.raises(KitConfigError, match="^KIT_SP_TENANT_ID is not set: add it to .env as"):
        kit.service_principal()
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)  # the kit's tenant is the fallback
    target._current = None
    kit = target.setup()
    with pytest.raises(KitConfigError, match="^KIT_SP_CLIENT_ID is not set: add it to .env"):
        kit.service_principal()
    monkeypatch.setenv("KIT_SP_CLIENT_ID", "my-app")
    with pytest.raises(KitConfigError, match="^KIT_SP_CLIENT_ID is malformed: it should be"):
        kit.service_principal()
    monkeypatch.setenv("KIT_SP_CLIENT_ID", CLIENT)
    with pytest.raises(KitConfigError, match="^KIT_SP_CLIENT_SECRET is not set: add it to"):
        kit.service_principal()
    monkeypatch.setenv("KIT_SP_CLIENT_SECRET", "not-a-real-secret-value")
    sp = kit.service_principal()
    assert (sp.tenant_id, sp.client_id) == (TENANT, CLIENT)
    assert "not-a-real-secret" not in repr(sp)


def test_the_service_principal_environment_is_set_for_a_block_only(azure):
    kit = azure(
        KIT_SP_TENANT_ID=TENANT, KIT_SP_CLIENT_ID=CLIENT, KIT_SP_CLIENT_SECRET="s3cret-value"
    )
    assert "AZURE_CLIENT_ID" not in os.environ  # the kit's own names: no EnvironmentCredential
    with kit.service_principal().environment():
        assert os.environ["AZURE_CLIENT_ID"] == CLIENT
        assert os.environ["AZURE_CLIENT_SECRET"] == "s3cret-value"
    assert "AZURE_CLIENT_ID" not in os.environ and "AZURE_CLIENT_SECRET" not in os.environ


def test_the_example_documents_every_new_setting_without_a_value():
    text = EXAMPLE.read_text()
    for var in ("VM_NAME", "FUNC_APP_NAME", *target.SP_SETTINGS, "KIT_ASSUME_YES"):
        assert f"{var}=" in text, var
    assert "# KIT_SP_CLIENT_SECRET=\n" in text  # named, never filled in


# -- no silent substitution -----------------------------------------------------------------------


def test_act_as_a_host_on_azure_says_where_it_runs(azure):
    kit = azure(VM_NAME="vm-contoso-01")
    before = dict(os.environ)
    assert helpers.act_as("developer") == "developer"
    assert helpers.act_as("service-principal") == "service-principal"
    for persona in (kit.vm_name, "vm-tutorial"):
        with pytest.raises(RunsOnHost, match=r"^On Azure this step runs on the VM vm-contoso-01,"):
            helpers.act_as(persona)
    with pytest.raises(RunsOnHost, match=r"helpers\.call_function"):
        helpers.act_as(kit.func_app_name)
    with pytest.raises(RunsOnHost, match=r"helpers\.on_host\(kit\.vm_name, code\)"):
        with helpers.acting_as(kit.vm_name):
            pass
    assert dict(os.environ) == before  # nothing switched


def test_sandbox_only_steps_say_they_are_skipped_on_azure(azure, shown):
    azure()
    assert helpers.sandbox_only("the clock fault", "Azure's clock cannot be moved") is False
    assert repr(shown[-1]) == (
        "Skipped on Azure: the clock fault, because Azure's clock cannot be moved."
    )
    assert helpers.fault("clock_skew", seconds=60) == {}
    assert repr(shown[-1]).startswith("Skipped on Azure: the fault 'clock_skew', because")


@pytest.mark.parametrize(
    "check",
    [
        checks.authenticated_everywhere,
        checks.identity_api_with_managed_identity,
        checks.sms_with_managed_identity,
        checks.troubleshooting,
    ],
)
def test_log_checks_on_azure_are_skipped_never_not_yet(azure, check):
    kit = azure()
    report = check(kit, since=0)
    text = repr(report) + report._repr_html_()
    assert repr(report).endswith("skipped (sandbox only)", 0, repr(report).index("\n"))
    assert "not yet" not in text and "✗" not in text
    assert not report.ok


# -- nothing changes or bills without asking ------------------------------------------------------


def test_confirm_on_the_sandbox_does_not_ask(monkeypatch):
    sandbox_kit = target.Kit(target.SANDBOX, "https://127.0.0.1:1/", "s", "g", "n", "+1", ["+2"])
    monkeypatch.setattr(target, "_current", sandbox_kit)
    assert helpers.confirm("Delete everything", ask=_never_asked) is True


@pytest.mark.parametrize(
    ("answer", "go"),
    [("", False), ("n", False), ("no", False), ("maybe", False), ("y", True), (" YES ", True)],
)
def test_confirm_on_azure_defaults_to_no(azure, shown, answer, go):
    azure()
    asked = []
    assert (
        helpers.confirm("Delete 2 role assignments", ask=lambda p: asked.append(p) or answer) is go
    )
    assert asked == ["Delete 2 role assignments in your subscription? [y/N] "]
    if not go:
        assert repr(shown[-1]) == (
            "Skipped: delete 2 role assignments (you did not answer yes); nothing was changed."
        )


def test_confirm_without_anyone_to_ask_is_no(azure, shown, monkeypatch):
    azure()

    def no_stdin(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", no_stdin)
    assert helpers.confirm("Regenerate the primary key") is False
    assert "set KIT_ASSUME_YES=1 to answer yes" in repr(shown[-1])


def test_kit_assume_yes_answers_yes_without_asking(azure, monkeypatch, capsys):
    azure()
    monkeypatch.setenv("KIT_ASSUME_YES", "1")
    assert helpers.confirm("Send 1 billed SMS", ask=_never_asked) is True
    assert capsys.readouterr().out == "Send 1 billed SMS? yes (KIT_ASSUME_YES=1)\n"
    monkeypatch.setenv("KIT_ASSUME_YES", "0")  # only 1 means yes
    assert helpers.confirm("Send 1 billed SMS", ask=lambda p: "") is False


# -- nothing left behind --------------------------------------------------------------------------


def test_the_record_lives_outside_the_repository_and_keeps_what_was_found_first(azure, tmp_path):
    kit = azure()
    path = leftovers.record_path(kit)
    assert path.is_relative_to(tmp_path / "state") and not path.is_relative_to(REPO_ROOT)
    leftovers.record_users(kit, "8:acs:a", "8:acs:b", "8:acs:a")
    assert leftovers.recorded_users(kit) == ["8:acs:a", "8:acs:b"]
    leftovers.forget_users(kit, "8:acs:a")
    assert leftovers.recorded_users(kit) == ["8:acs:b"]
    leftovers.remember_found(kit, "disable_local_auth", True)
    leftovers.remember_found(kit, "disable_local_auth", False)  # a re-run does not overwrite
    assert leftovers.found(kit, "disable_local_auth") is True
    assert leftovers.found(kit, "vm-tutorial.system_assigned", False) is False


def test_clean_up_deletes_recorded_users_with_the_service_principal(kit):
    helpers.act_as("service-principal")
    client = CommunicationIdentityClient(kit.acs_endpoint, sp_credential())
    kept = client.create_user().properties["id"]
    gone = client.create_user()
    client.delete_user(gone)
    leftovers.record_users(kit, kept, gone.properties["id"])
    report = checks.cleaned_up(kit, sp_credential(), principals=[])
    assert not report.ok and "recorded is left" in repr(report)
    assert leftovers.delete_recorded_users(kit, client) == 1  # the gone one was already gone
    assert leftovers.recorded_users(kit) == []


def test_a_client_without_a_role_keeps_the_record(kit):
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import DefaultAzureCredential
    from helpers_kit import enable_vm_identity

    enable_vm_identity(kit)  # an identity, and no role on the resource
    leftovers.record_users(kit, "8:acs:someone")
    helpers.act_as("vm-tutorial")
    no_role = CommunicationIdentityClient(kit.acs_endpoint, DefaultAzureCredential())
    with pytest.raises(ClientAuthenticationError):
        leftovers.delete_recorded_users(kit, no_role)
    assert leftovers.recorded_users(kit) == ["8:acs:someone"]
    leftovers.forget_users(kit, "8:acs:someone")


def test_the_role_switch_on_azure_says_where_the_call_runs(azure):
    kit = azure()
    switch = helpers.widgets.role_switch(CLIENT, run_as=kit.vm_name)
    switch.try_button.click()  # no request: the host check comes first
    assert "RunsOnHost: On Azure this step runs on the VM vm-tutorial" in switch.result.value


def test_the_sms_composer_on_azure_says_a_send_is_billed(azure):
    kit = azure()
    composer = helpers.widgets.sms_composer(object(), kit)  # nothing is sent here
    assert composer.button.description == "Send (billed SMS)"
