"""A custom cloud named in ``.env``: the kit's helpers, the real SDKs and both CLIs use only it.

The sandbox plays a private cloud (its Entra ID authority, its Resource Manager and the audience
Resource Manager's tokens are for), configured the way a learner on a sovereign or private cloud
configures the kit: ``KIT_TARGET=azure`` and a ``.env``, no persona, no control API on the kit's
side. The tests read the sandbox's request log only to prove where each request went.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from azure.identity import AzureCliCredential, ClientSecretCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.communication import CommunicationServiceManagementClient
from helpers_kit import set_up_kit
from real_az import RealAz, ensure_cli

import helpers
from helpers import cloud, target
from helpers.doctor import check_credential
from sandbox import azcloud, personas, world

AUDIENCE = "https://management.core.windows.net/"


# -- helpers/cloud.py on its own ---------------------------------------------------------------


def test_public_cloud_by_default_and_no_keywords():
    public = cloud.from_env({})
    assert (public.authority_host, public.arm_url) == (cloud.PUBLIC_AUTHORITY, cloud.PUBLIC_ARM)
    assert not public.custom and public.mgmt_kwargs() == {} and public.credential_kwargs() == {}
    assert public.arm_scope == "https://management.azure.com/.default"


def test_a_sovereign_cloud_keeps_instance_discovery_and_a_private_one_turns_it_off():
    gov = cloud.from_env(
        {
            "AZURE_AUTHORITY_HOST": "login.microsoftonline.us",  # a bare host, as azure-identity
            "AZURE_ARM_ENDPOINT": "https://management.usgovcloudapi.net/",
            "AZURE_ARM_AUDIENCE": "https://management.core.usgovcloudapi.net/",
        }
    )
    assert gov.credential_kwargs() == {"authority": "https://login.microsoftonline.us"}
    assert gov.mgmt_kwargs() == {
        "base_url": "https://management.usgovcloudapi.net",
        "credential_scopes": ["https://management.core.usgovcloudapi.net/.default"],
    }
    stack = cloud.from_env({"AZURE_AUTHORITY_HOST": "https://adfs.local.azurestack.external/adfs"})
    assert stack.credential_kwargs()["disable_instance_discovery"] is True


@pytest.mark.parametrize(
    "env, names",
    [
        ({"AZURE_ARM_ENDPOINT": "https://arm.contoso.example"}, "AZURE_ARM_AUDIENCE is not set"),
        ({"AZURE_ARM_ENDPOINT": "http://arm.contoso.example"}, "AZURE_ARM_ENDPOINT is malformed"),
        ({"AZURE_AUTHORITY_HOST": "ftp://login"}, "AZURE_AUTHORITY_HOST is malformed"),
        ({"AZURE_ARM_AUDIENCE": "not a url"}, "AZURE_ARM_AUDIENCE is malformed"),
    ],
)
def test_malformed_cloud_settings_name_the_variable(env, names):
    with pytest.raises(cloud.CloudConfigError, match=names):
        cloud.from_env(env)


# -- the sandbox as a custom cloud, through .env ---------------------------------------------------


@pytest.fixture
def custom_cloud(sandbox, control, tmp_path, monkeypatch) -> Any:
    """``helpers.setup()`` with KIT_TARGET=azure and a ``.env`` naming the sandbox's endpoints."""
    control.reset()
    for name in (*personas.CREDENTIAL_VARIABLES, "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE",
                 "KIT_TARGET", "SANDBOX_STATE_DIR", cloud.ARM_VAR, cloud.AUDIENCE_VAR):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    settings = {
        "KIT_TARGET": "azure",
        "AZURE_SUBSCRIPTION_ID": world.SUBSCRIPTION_ID,
        "AZURE_TENANT_ID": world.TENANT_ID,
        "ACS_RESOURCE_GROUP": world.RESOURCE_GROUP,
        "ACS_RESOURCE_NAME": world.ACS_NAME,
        "ACS_ENDPOINT": "https://acs-tutorial.communication.azure.com",
        "SMS_FROM_NUMBER": "+18005550100",
        "SMS_TO_NUMBER": "+14255550123",
        "AZURE_AUTHORITY_HOST": sandbox["authority_host"],
        "AZURE_ARM_ENDPOINT": sandbox["arm_url"],
        "AZURE_ARM_AUDIENCE": AUDIENCE,
        "REQUESTS_CA_BUNDLE": sandbox["ca_bundle"],
        "SSL_CERT_FILE": sandbox["ca_bundle"],
    }
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    monkeypatch.chdir(tmp_path)
    with set_up_kit(dict(os.environ)) as made:
        yield made


def test_setup_reads_the_cloud_from_dotenv(custom_cloud, sandbox):
    kit = custom_cloud
    assert kit.target == "azure" and kit.persona is None
    assert kit.cloud.private_authority and kit.private_authority
    assert helpers.mgmt_client_kwargs() == {
        "base_url": sandbox["arm_url"],
        "credential_scopes": ["https://management.core.windows.net/.default"],
    }
    assert target.credential_kwargs() == {
        "authority": sandbox["authority_host"],
        "disable_instance_discovery": True,
    }
    assert kit.arm_scope == "https://management.core.windows.net/.default"
    assert kit.summary()["Resource Manager"] == sandbox["arm_url"]


def test_a_service_principal_reads_the_acs_resource_and_its_roles_there(custom_cloud, control):
    """No DefaultAzureCredential: a ClientSecretCredential with the kit's authority, and the
    management clients with the kit's keywords, reach the sandbox and nothing else."""
    kit = custom_cloud
    secret = control("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]
    before = control.last_log_id()
    credential = ClientSecretCredential(
        world.TENANT_ID, world.SP_CLIENT_ID, secret, **target.credential_kwargs()
    )
    acs = CommunicationServiceManagementClient(
        credential, kit.subscription_id, **helpers.mgmt_client_kwargs()
    ).communication_services.get(kit.resource_group, kit.acs_name)
    assert acs.id.lower() == kit.acs_resource_id.lower()
    auth = AuthorizationManagementClient(
        credential, kit.subscription_id, **helpers.mgmt_client_kwargs()
    )
    assignments = list(auth.role_assignments.list_for_scope(kit.acs_resource_id))
    assert world.SP_OID in {a.principal_id for a in assignments}  # Contributor on the group
    entries = control.log_after(before)
    grants = [e for e in entries if e["path"] == f"/{world.TENANT_ID}/oauth2/v2.0/token"]
    assert [(g["caller"], g["audience"].rstrip("/")) for g in grants] == [
        (world.SP_NAME, AUDIENCE.rstrip("/"))
    ]
    assert {e["decision"] for e in entries if e["path"].startswith("/subscriptions/")} == {
        "allowed"
    }


def _sandbox_az(sandbox, *args: str) -> subprocess.CompletedProcess:
    """The kit's own ``az`` (sandbox/azcli.py), with nothing but the custom cloud's settings."""
    az = Path(sandbox["state_dir"]) / "bin" / "az"
    return subprocess.run([str(az), *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_sandbox_az_registers_the_cloud_and_signs_in_there(custom_cloud, sandbox, control):
    os.environ["SANDBOX_STATE_DIR"] = sandbox["state_dir"]  # where the stand-in keeps its profile
    shutil.rmtree(Path(sandbox["state_dir"]) / "azure-cli", ignore_errors=True)
    secret = control("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]
    register = _sandbox_az(
        sandbox, "cloud", "register", "--name", "KitCloud",
        "--endpoint-resource-manager", os.environ["AZURE_ARM_ENDPOINT"] + "/",
        "--endpoint-active-directory", os.environ["AZURE_AUTHORITY_HOST"],
        "--endpoint-active-directory-resource-id", os.environ["AZURE_ARM_AUDIENCE"],
        "--suffix-storage-endpoint", "core.windows.net",
    )  # fmt: skip
    assert register.returncode == 0, register.stderr
    again = _sandbox_az(sandbox, "cloud", "register", "--name", "KitCloud")
    assert again.stderr.strip() == "ERROR: The cloud 'KitCloud' is already registered."
    assert _sandbox_az(sandbox, "cloud", "set", "--name", "Nope").stderr.strip() == (
        "ERROR: The cloud 'Nope' is not registered."
    )
    switched = _sandbox_az(sandbox, "cloud", "set", "--name", "KitCloud")
    assert switched.stderr.splitlines()[0] == "WARNING: Switched active cloud to 'KitCloud'."
    shown = json.loads(_sandbox_az(sandbox, "cloud", "show").stdout)
    assert shown["name"] == "KitCloud" and shown["isActive"] is True
    assert shown["endpoints"]["resourceManager"] == sandbox["arm_url"] + "/"
    assert shown["endpoints"]["activeDirectoryResourceId"] == AUDIENCE
    assert shown["suffixes"]["storageEndpoint"] == "core.windows.net"
    assert set(shown["endpoints"]) >= {"management", "microsoftGraphResourceId", "portal"}
    # Without --skip-endpoint-discovery, the rest comes from Resource Manager's metadata.
    found = _sandbox_az(sandbox, "cloud", "register", "-n", "Found",
                        "--endpoint-resource-manager", sandbox["arm_url"] + "/")  # fmt: skip
    assert found.returncode == 0, found.stderr
    ends = json.loads(_sandbox_az(sandbox, "cloud", "show", "-n", "Found").stdout)["endpoints"]
    assert ends["activeDirectory"] == sandbox["authority_host"]
    assert ends["activeDirectoryResourceId"] == AUDIENCE
    assert _sandbox_az(sandbox, "cloud", "unregister", "-n", "Found").returncode == 0
    names = [c["name"] for c in json.loads(_sandbox_az(sandbox, "cloud", "list").stdout)]
    assert names == ["AzureCloud", "AzureChinaCloud", "AzureUSGovernment", "AzureBleuCloud",
                     "KitCloud"]  # fmt: skip

    before = control.last_log_id()
    login = _sandbox_az(sandbox, "login", "--service-principal", "-u", world.SP_CLIENT_ID,
                        f"--password={secret}", "--tenant", world.TENANT_ID)  # fmt: skip
    assert login.returncode == 0, login.stderr
    assert json.loads(login.stdout)[0]["cloudName"] == "KitCloud"
    token = json.loads(_sandbox_az(sandbox, "account", "get-access-token").stdout)
    claims = helpers.token_claims(token["accessToken"])
    assert claims["aud"] == AUDIENCE and claims["appid"] == world.SP_CLIENT_ID
    assert {e["listener"] for e in control.log_after(before)} == {"https"}
    # A sign-in belongs to its cloud: back on AzureCloud, this az is signed out; on KitCloud
    # again, its subscription is active again, as the real CLI says.
    _sandbox_az(sandbox, "cloud", "set", "--name", "AzureCloud")
    assert _sandbox_az(sandbox, "account", "show").stderr.strip() == (
        "ERROR: Please run 'az login' to set up an account."
    )
    back = _sandbox_az(sandbox, "cloud", "set", "--name", "KitCloud").stderr.splitlines()
    assert back[1] == (
        f"WARNING: Active subscription switched to 'ACS tutorial subscription "
        f"({world.SUBSCRIPTION_ID})'."
    )
    assert json.loads(_sandbox_az(sandbox, "account", "show").stdout)["cloudName"] == "KitCloud"


def test_the_sandbox_az_signs_in_to_this_machine_only(custom_cloud, sandbox):
    os.environ["SANDBOX_STATE_DIR"] = sandbox["state_dir"]
    shutil.rmtree(Path(sandbox["state_dir"]) / "azure-cli", ignore_errors=True)
    _sandbox_az(
        sandbox, "cloud", "register", "--name", "Far", "--skip-endpoint-discovery",
        "--endpoint-resource-manager", "https://management.usgovcloudapi.net/",
        "--endpoint-active-directory", "https://login.microsoftonline.us",
        "--endpoint-active-directory-resource-id", "https://management.core.usgovcloudapi.net/",
    )  # fmt: skip
    _sandbox_az(sandbox, "cloud", "set", "--name", "Far")
    refused = _sandbox_az(sandbox, "login", "-u", "someone", "-p", "x")
    assert refused.returncode == 1
    assert "signs in to the sandbox on this machine only" in refused.stderr


def test_the_real_azure_cli_does_the_same(custom_cloud, sandbox, control):
    """The real azure-cli 2.91.0, registered with the same endpoints from .env, signs the
    service principal in and gets a Resource Manager token for the configured audience."""
    az_path, _ = ensure_cli()
    folder = Path(tempfile.mkdtemp(prefix="kit-custom-cloud-"))
    try:
        guard_log = folder / "loopback-guard.log"
        guard_log.touch()
        az = RealAz(az_path, sandbox, folder / "config", guard_log)
        secret = control("GET", "/_sandbox/personas/service-principal")["set"][
            "AZURE_CLIENT_SECRET"
        ]
        az.ok("config", "set", *azcloud.CONFIG)  # the offline settings `sandbox az-cloud` uses
        az.ok(
            "cloud", "register", "--name", "KitCloud", "--skip-endpoint-discovery",
            "--endpoint-resource-manager", os.environ["AZURE_ARM_ENDPOINT"] + "/",
            "--endpoint-active-directory", os.environ["AZURE_AUTHORITY_HOST"],
            "--endpoint-active-directory-resource-id", os.environ["AZURE_ARM_AUDIENCE"],
        )  # fmt: skip
        az.ok("cloud", "set", "--name", "KitCloud")
        shown = az.ok("cloud", "show")
        assert shown["endpoints"]["resourceManager"] == sandbox["arm_url"] + "/"
        accounts = az.ok("login", "--service-principal", "-u", world.SP_CLIENT_ID,
                         f"--password={secret}", "--tenant", world.TENANT_ID)  # fmt: skip
        assert accounts[0]["cloudName"] == "KitCloud"
        token = az.ok("account", "get-access-token")
        claims = helpers.token_claims(token["accessToken"])
        assert claims["aud"] == AUDIENCE and claims["appid"] == world.SP_CLIENT_ID
        assert guard_log.read_text() == ""
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_doctor_checks_the_credential_in_the_custom_cloud(custom_cloud, control, monkeypatch):
    """helpers.doctor's credential check on a private cloud: the service principal's variables
    (EnvironmentCredential, first in the chain) get an ACS token from the sandbox, with no
    instance discovery at login.microsoftonline.com (the socket guard would see it)."""
    secret = control("GET", "/_sandbox/personas/service-principal")["set"]["AZURE_CLIENT_SECRET"]
    monkeypatch.setenv("AZURE_CLIENT_ID", world.SP_CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", secret)
    check = check_credential()
    assert check.ok is True, check


def test_doctor_checks_your_sign_in_for_resource_manager(custom_cloud, sandbox):
    """On Azure the doctor checks the sign-in this kernel uses (the developer's `az login`) for
    what it is used for: Resource Manager in .env's cloud. An Azure CLI sign-in gets no
    Communication Services token (AADSTS65002, notebook 3), so asking for one failed every
    learner signed in the documented way."""
    from helpers.doctor import check_azure
    from tests.test_developer_signin import developer_password

    # Set directly: custom_cloud puts the whole environment back. (monkeypatch would restore
    # .env's ACS_ENDPOINT after custom_cloud's clean-up, leaking it into later tests.)
    os.environ["ACS_ENDPOINT"] = sandbox["acs_endpoint"]  # https://127.0.0.1:PORT/
    os.environ["SANDBOX_STATE_DIR"] = sandbox["state_dir"]  # the az stand-in's profile
    os.environ["PATH"] = f"{personas.bin_dir(Path(sandbox['state_dir']))}:{os.environ['PATH']}"
    shutil.rmtree(Path(sandbox["state_dir"]) / "azure-cli", ignore_errors=True)
    try:
        for args in (
            ("cloud", "register", "--name", "KitCloud",
             "--endpoint-resource-manager", sandbox["arm_url"] + "/",
             "--endpoint-active-directory", sandbox["authority_host"],
             "--endpoint-active-directory-resource-id", AUDIENCE),
            ("cloud", "set", "--name", "KitCloud"),
            ("login", "-u", world.DEVELOPER_UPN, "-p", developer_password(sandbox)),
        ):  # fmt: skip
            done = _sandbox_az(sandbox, *args)
            assert done.returncode == 0, done.stderr
        checks = check_azure(AzureCliCredential)
        assert [c.ok for c in checks] == [True, True, True], checks
        assert checks[1].text == f"ACS endpoint {sandbox['acs_endpoint']} answers over TLS"
        assert checks[2].text == "a credential gets tokens for Resource Manager"
    finally:
        shutil.rmtree(Path(sandbox["state_dir"]) / "azure-cli", ignore_errors=True)
