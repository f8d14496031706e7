"""The real, unmodified Azure CLI against a fresh sandbox registered as a custom cloud.

A pinned ``azure-cli`` (tests/real_az.py) is pointed at the sandbox with the kit's own
``python -m sandbox az-cloud --config-dir``, then runs every CLI command the notebooks and the
guides show, the sign-ins (device code without ``--tenant``, service principal, ``az login
--identity`` on both simulated hosts) and the commands the real-CLI review found missing
(reviews/real-az-cli-review-2026-12.md). Each must answer as Azure answers, refusals included.
Nothing may leave loopback: the CLI runs behind a dead proxy with the kit's loopback guard
loaded, and the guard's log must stay empty.

Each test stands on its own on the module's sandbox and signed-in developer (pytest-xdist may
spread them over workers, each then with its own); the notebooks' story, whose steps build on
each other (notebook 01's identities sign in on their hosts; notebook 07 cleans up), is one test.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from real_az import RealAz, ensure_cli, persona_exports

from sandbox import client, world
from sandbox.config import Settings

RG = world.RESOURCE_GROUP
ACS_ID = world.ACS_RESOURCE_ID
ACS_OWNER = "Communication and Email Service Owner"
UAI = "id-acs-tutorial"


class Run:
    """One module's shared state: the CLI, the sandbox, and one ``RealAz`` per persona."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.az_path, self.install_seconds = ensure_cli()
        self.folder = Path(tempfile.mkdtemp(prefix="kit-real-az-"))
        self.settings = Settings(state_dir=self.folder / "state", https_port=0, mi_port=0)
        self.status = client.start(self.settings)
        self.guard_log = self.folder / "loopback-guard.log"
        self.guard_log.touch()
        self.template = self.folder / "az-template"
        # The kit's own command registers the sandbox in a configuration folder.
        done = self.sandbox(
            "az-cloud", "--config-dir", str(self.template), "--az", str(self.az_path)
        )
        assert "registered the sandbox as cloud AzureSandbox" in done, done
        self.dev = self.persona_az("developer")
        # No --tenant: the CLI signs in on /organizations, then lists tenants (GET /tenants)
        # and each tenant's subscriptions, as against Azure.
        self.accounts = self.dev.device_code_login(self.sandbox_cmd)
        self.facts: dict[str, Any] = {}

    @property
    def sandbox_cmd(self) -> list[str]:
        return [
            "env",
            f"SANDBOX_STATE_DIR={self.settings.state_dir}",
            sys.executable,
            "-m",
            "sandbox",
        ]

    def sandbox(self, *args: str) -> str:
        import subprocess

        done = subprocess.run(
            [*self.sandbox_cmd, *args], capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def persona_az(self, name: str) -> RealAz:
        """A CLI configuration of its own, copied from the registered template."""
        folder = self.folder / f"az-{name}"
        shutil.copytree(self.template, folder)
        return RealAz(self.az_path, self.status, folder, self.guard_log)

    def close(self) -> None:
        client.stop(self.settings)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def run() -> Any:
    r = Run()
    yield r
    took = time.monotonic() - r.started
    print(
        f"\nreal az {r.az_path.parent.parent.name}: install {r.install_seconds:.1f} s, "
        f"module {took:.1f} s, {len(r.dev.timings)} developer commands"
    )
    r.close()


@pytest.fixture(autouse=True)
def nothing_left_loopback(run: Run) -> Any:
    yield
    assert run.guard_log.read_text() == "", "the real CLI tried to leave loopback"


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


# -- sign-in and account ---------------------------------------------------------------------


def test_plain_device_code_login_lists_the_tenant_and_its_subscription(run: Run):
    (account,) = run.accounts
    assert account["tenantId"] == world.TENANT_ID
    assert account["tenantDisplayName"] == "Contoso Sandbox"
    assert account["tenantDefaultDomain"] == world.TENANT_DOMAIN
    assert account["managedByTenants"] == []  # Azure's [] (the review saw null)
    assert account["user"] == {"name": world.DEVELOPER_UPN, "type": "user"}
    assert account["cloudName"] == "AzureSandbox"


def test_tokens_for_resource_manager_and_graph_and_an_unknown_resource(run: Run):
    arm = run.dev.ok("account", "get-access-token")
    assert _claims(arm["accessToken"])["aud"].rstrip("/") == "https://management.core.windows.net"
    graph = run.dev.ok("account", "get-access-token", "--resource-type", "ms-graph")
    audience = _claims(graph["accessToken"])["aud"].rstrip("/")
    assert audience == f"{run.status['https_url']}/graph"
    err = run.dev.refused("account", "get-access-token", "--resource", "https://vault.azure.net")
    assert "AADSTS500011" in err


def test_cli_token_for_acs_is_refused_aadsts65002(run: Run):
    # Azure: Microsoft's first-party public clients (the Azure CLI among them) are not
    # preauthorized for Communication Services, so Entra refuses the token with AADSTS65002.
    err = run.dev.refused(
        "account", "get-access-token", "--resource", "https://communication.azure.com"
    )
    assert "AADSTS65002" in err


# -- the notebooks' commands -----------------------------------------------------------------


def _notebook_01_enables_identities(run: Run) -> None:
    az = run.dev
    vm = az.ok("vm", "identity", "assign", "--resource-group", RG, "--name", "vm-tutorial")
    assert vm["systemAssignedIdentity"] and vm["userAssignedIdentities"] == {}
    func = az.ok(
        "functionapp", "identity", "assign", "--resource-group", RG, "--name", "func-tutorial"
    )
    assert func["type"] == "SystemAssigned" and func["principalId"]
    uai = az.ok("identity", "create", "--resource-group", RG, "--name", UAI)
    assert uai["name"] == UAI and uai["principalId"] and uai["clientId"]
    uai_id = az("identity", "show", "-g", RG, "-n", UAI, "--query", "id", "-o", "tsv").out.strip()
    assert uai_id.lower() == uai["id"].lower()
    both = az.ok(
        "functionapp",
        "identity",
        "assign",
        "--resource-group",
        RG,
        "--name",
        "func-tutorial",
        "--identities",
        "[system]",
        uai_id,
    )
    assert both["type"] == "SystemAssigned, UserAssigned"
    assert [k.lower() for k in both["userAssignedIdentities"]] == [uai_id.lower()]
    run.facts.update(
        vm_principal=vm["systemAssignedIdentity"], uai_id=uai_id, uai_principal=uai["principalId"]
    )


def _notebook_02_assigns_the_role_and_lists_with_names(run: Run) -> None:
    az = run.dev
    # `az communication show` comes with an extension that must be downloaded: with dynamic
    # install off the CLI says so, as it would on Azure. The generic command finds the id.
    err = az.refused("communication", "show", "-g", RG, "-n", "acs-tutorial")
    assert "'communication' is misspelled or not recognized by the system" in err
    acs_id = az(
        "resource",
        "show",
        "-g",
        RG,
        "-n",
        "acs-tutorial",
        "--resource-type",
        "Microsoft.Communication/CommunicationServices",
        "--query",
        "id",
        "-o",
        "tsv",
    ).out.strip()
    assert acs_id.lower() == ACS_ID.lower()
    principal = az(
        "vm", "show", "-g", RG, "-n", "vm-tutorial", "--query", "identity.principalId", "-o", "tsv"
    ).out.strip()
    assert principal == run.facts["vm_principal"]
    assign = ("role", "assignment", "create", "--assignee-object-id", principal)
    assign += ("--assignee-principal-type", "ServicePrincipal", "--role", ACS_OWNER)
    assign += ("--scope", acs_id)
    created = az.ok(*assign)
    assert created["principalId"] == principal and created["scope"].lower() == ACS_ID.lower()
    table = az(
        "role", "assignment", "list", "--scope", acs_id, "--include-inherited", "-o", "table"
    )
    assert table.rc == 0, table.err
    # Graph fills in names: the developer's UPN, the service principal's and the VM
    # identity's application ids (the CLI shows a service principal by its first name).
    assert world.DEVELOPER_UPN in table.out and world.SP_CLIENT_ID in table.out
    assert ACS_OWNER in table.out
    # Creating it again is idempotent: the CLI sees 409 RoleAssignmentExists and looks the
    # assignment up through Graph.
    again = az.ok(*assign)
    assert again["id"] == created["id"]
    # --assignee resolves a user principal name and an application id through Graph.
    by_upn = az.ok(
        "role",
        "assignment",
        "create",
        "--assignee",
        world.DEVELOPER_UPN,
        "--role",
        "Reader",
        "--scope",
        acs_id,
    )
    assert by_upn["principalId"] == world.DEVELOPER_OID and by_upn["principalType"] == "User"
    by_app = az.ok(
        "role",
        "assignment",
        "create",
        "--assignee",
        world.SP_CLIENT_ID,
        "--role",
        "Reader",
        "--scope",
        acs_id,
    )
    assert by_app["principalId"] == world.SP_OID and by_app["principalType"] == "ServicePrincipal"
    run.facts.update(role_assignment_id=created["id"], reader_ids=[by_upn["id"], by_app["id"]])


def test_resource_manager_apis_the_review_found_missing(run: Run):
    az = run.dev
    provider = az.ok("provider", "show", "-n", "Microsoft.Communication")
    assert provider["registrationState"] == "Registered"
    (rt,) = [t for t in provider["resourceTypes"] if t["resourceType"] == "communicationServices"]
    assert "2023-04-01" in rt["apiVersions"]
    # Without --api-version the CLI picks one from the providers API.
    shown = az.ok("resource", "show", "--ids", ACS_ID)
    assert shown["properties"]["immutableResourceId"] == world.ACS_IMMUTABLE_ID
    tagged = az.ok("resource", "tag", "--ids", ACS_ID, "--tags", "course=acs")
    assert tagged["tags"] == {"course": "acs"}
    merged = az.ok(
        "tag", "update", "--resource-id", ACS_ID, "--operation", "merge", "--tags", "env=lab"
    )
    assert merged["properties"]["tags"] == {"course": "acs", "env": "lab"}
    func = az.ok("functionapp", "show", "-g", RG, "-n", "func-tutorial")
    assert func["defaultHostName"].endswith("/sites/func-tutorial")  # the sandbox serves it
    assert func["state"] == "Running"
    # The Azure Stack Hub way: one URL, the rest read from /metadata/endpoints.
    az.ok(
        "cloud",
        "register",
        "-n",
        "SandboxDiscovered",
        "--endpoint-resource-manager",
        run.status["https_url"] + "/",
    )
    cloud = az.ok("cloud", "show", "-n", "SandboxDiscovered")
    assert cloud["endpoints"]["activeDirectory"] == run.status["authority_host"]
    assert cloud["endpoints"]["activeDirectoryResourceId"] == "https://management.core.windows.net/"
    assert cloud["endpoints"]["microsoftGraphResourceId"] == f"{run.status['https_url']}/graph/"


def test_rest_to_resource_manager_and_the_acs_resource_flag(run: Run):
    az = run.dev
    url = f"{run.status['https_url']}{ACS_ID}/listKeys?api-version=2023-04-01"
    keys = az.ok("rest", "--method", "post", "--url", url)
    assert set(keys) >= {"primaryKey", "secondaryKey", "primaryConnectionString"}
    # ACS shares the sandbox's origin with Resource Manager, so without --resource the CLI
    # attaches its Resource Manager token, which ACS refuses for its audience.
    ident = f"{run.status['https_url']}/identities?api-version=2023-10-01"
    err = az.refused("rest", "--method", "post", "--url", ident, "--body", "{}")
    assert "401" in err or "Unauthorized" in err


# -- other sign-ins --------------------------------------------------------------------------


def test_service_principal_sign_in_and_its_refusals(run: Run):
    exports = persona_exports(run.sandbox_cmd, "service-principal")
    sp = run.persona_az("sp")
    wrong = sp.refused(
        "login",
        "--service-principal",
        "-u",
        world.SP_CLIENT_ID,
        "-p",
        "not-the-secret",
        "--tenant",
        world.TENANT_ID,
    )
    assert "AADSTS7000215" in wrong
    (account,) = sp.ok(
        "login",
        "--service-principal",
        "-u",
        world.SP_CLIENT_ID,
        f"--password={exports['AZURE_CLIENT_SECRET']}",  # a secret may start with '-'
        "--tenant",
        world.TENANT_ID,
    )
    assert account["user"] == {"name": world.SP_CLIENT_ID, "type": "servicePrincipal"}
    # Contributor on the group may not grant roles: ARM's 403, word for word.
    err = sp.refused(
        "role",
        "assignment",
        "create",
        "--assignee-object-id",
        world.SP_OID,
        "--assignee-principal-type",
        "ServicePrincipal",
        "--role",
        "Reader",
        "--scope",
        ACS_ID,
    )
    assert "AuthorizationFailed" in err and "Microsoft.Authorization/roleAssignments/write" in err
    # Graph refuses an application without directory permissions; the CLI lists anyway.
    listed = sp.ok("role", "assignment", "list", "--scope", ACS_ID, "--include-inherited")
    assert any(a["principalId"] == world.SP_OID for a in listed)
    # A service principal may get a Communication Services token (AADSTS65002 is for
    # Microsoft's public clients only).
    token = sp.ok("account", "get-access-token", "--resource", "https://communication.azure.com")
    assert _claims(token["accessToken"])["aud"].rstrip("/") == "https://communication.azure.com"


def _identity_sign_in(run: Run, host: str) -> None:
    exports = persona_exports(run.sandbox_cmd, host)
    az = run.persona_az(host)
    az.extra_env = {k: v for k, v in exports.items() if k.startswith(("IDENTITY_", "AZURE_"))}
    url = f"{run.status['https_url']}{ACS_ID}/listKeys?api-version=2023-04-01"
    if host == "vm-tutorial":  # notebook 02 gave the VM's identity the ACS owner role
        (account,) = az.ok("login", "--identity")
        assert account["id"] == world.SUBSCRIPTION_ID
        assert account["user"]["type"] == "servicePrincipal"
        keys = az.ok("rest", "--method", "post", "--url", url)
        assert "primaryKey" in keys
        return
    # The Function app's identity holds no role anywhere, so it sees no subscription: the CLI
    # says so, as on Azure, and signs in at tenant level only when asked to.
    err = az.refused("login", "--identity")
    assert "No access was configured for the managed identity" in err
    (account,) = az.ok("login", "--identity", "--allow-no-subscriptions")
    assert account["tenantId"] == world.TENANT_ID
    assert account["user"]["type"] == "servicePrincipal"
    # Signed in without a subscription, the CLI cannot pick an account for a URL inside one:
    # it stops before sending, as it would on Azure.
    err = az.refused("rest", "--method", "post", "--url", url)
    assert f"Subscription '{world.SUBSCRIPTION_ID}' not found" in err


# -- notebook 07: clean up -------------------------------------------------------------------


def _notebook_07_cleans_up(run: Run) -> None:
    az = run.dev
    deleted = az.ok("role", "assignment", "delete", "--ids", run.facts["role_assignment_id"])
    assert deleted is None or deleted
    for rid in run.facts["reader_ids"]:
        az.ok("role", "assignment", "delete", "--ids", rid)
    vm = az.ok("vm", "identity", "remove", "-g", RG, "-n", "vm-tutorial")
    assert vm is None or vm.get("type") in (None, "None")
    az.ok(
        "functionapp",
        "identity",
        "remove",
        "-g",
        RG,
        "-n",
        "func-tutorial",
        "--identities",
        "[system]",
        run.facts["uai_id"],
    )
    az.ok("identity", "delete", "-g", RG, "-n", UAI)
    err = az.refused("identity", "show", "-g", RG, "-n", UAI)
    assert "ResourceNotFound" in err
    assert f"Microsoft.ManagedIdentity/userAssignedIdentities/{UAI}" in err


def test_the_notebooks_commands_and_identity_sign_ins_in_order(run: Run):
    """Notebooks 01 and 02 as the learner types them, the hosts' identities signing in with
    what those notebooks granted, then notebook 07's clean-up: one story, so one test."""
    _notebook_01_enables_identities(run)
    _notebook_02_assigns_the_role_and_lists_with_names(run)
    for host in ("vm-tutorial", "func-tutorial"):
        _identity_sign_in(run, host)
    _notebook_07_cleans_up(run)
