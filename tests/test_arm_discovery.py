# ruff: noqa: F811 - the credential fixtures come from tests/test_arm.py
"""Resource Manager's tenants, providers, tags and cloud metadata, the Function app's site shape
and the ACS resource's create/update, driven by the real management SDKs and raw HTTPS."""

from __future__ import annotations

import ssl
import urllib.request
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.communication import CommunicationServiceManagementClient
from azure.mgmt.communication.models import CommunicationServiceResource
from azure.mgmt.resource.resources import ResourceManagementClient

from sandbox import world
from sandbox.arm import providers
from tests.test_arm import (  # noqa: F401 - fixtures
    MGMT_SCOPE,
    dev_credential,
    mgmt,
    raw,
    sp_credential,
    sp_secret,
)

SUB = world.SUBSCRIPTION_ID
ACS_ID = world.ACS_RESOURCE_ID
FUNC_ID = world.host_resource_id("func-tutorial")
V = "api-version=2022-12-01"


def token_of(credential: Any) -> str:
    return credential.get_token(MGMT_SCOPE).token


def test_tenants_list_the_sandbox_tenant_for_any_arm_token(sandbox, fresh, sp_credential):
    status, _, body = raw(sandbox, "GET", f"/tenants?{V}", token_of(sp_credential))
    assert status == 200
    (tenant,) = body["value"]
    assert tenant["tenantId"] == world.TENANT_ID and tenant["id"] == f"/tenants/{world.TENANT_ID}"
    assert tenant["displayName"] == "Contoso Sandbox"
    assert tenant["defaultDomain"] == world.TENANT_DOMAIN
    assert tenant["tenantCategory"] == "Home" and tenant["tenantType"] == "AAD"


def test_tenants_need_a_token_and_an_api_version(sandbox, sp_credential):
    status, headers, body = raw(sandbox, "GET", f"/tenants?{V}")
    assert status == 401 and body["error"]["code"] == "AuthenticationFailed"
    status, _, body = raw(sandbox, "GET", "/tenants", token_of(sp_credential))
    assert status == 400 and body["error"]["code"] == "MissingApiVersionParameter"
    status, _, body = raw(
        sandbox, "GET", "/tenants?api-version=1999-01-01", token_of(sp_credential)
    )
    assert status == 400 and body["error"]["code"] == "InvalidApiVersionParameter"


def test_providers_come_from_the_one_table(sandbox, fresh, sp_credential, dev_credential):
    with mgmt(ResourceManagementClient, dev_credential, sandbox) as rc:  # Owner
        assert rc.providers.register("Microsoft.Web").registration_state == "Registered"
    with mgmt(ResourceManagementClient, sp_credential, sandbox) as rc:
        acs = rc.providers.get("microsoft.communication")
        assert acs.namespace == "Microsoft.Communication"
        assert acs.registration_state == "Registered"
        (rt,) = acs.resource_types
        table = providers.resource_type("Microsoft.Communication/communicationServices")
        assert rt.resource_type == table.type
        assert rt.api_versions == sorted(table.api_versions, reverse=True)  # newest first
        assert rt.locations == list(table.locations)
        names = {p.namespace for p in rc.providers.list()}
        assert {t.namespace for t in providers.RESOURCE_TYPES} == names
        with pytest.raises(HttpResponseError) as denied:  # Contributor on the group only
            rc.providers.register("Microsoft.Web")
        with pytest.raises(ResourceNotFoundError) as e:
            rc.providers.get("Microsoft.Nothing")
    assert e.value.error.code == "InvalidResourceNamespace"
    assert denied.value.status_code == 403
    assert "'Microsoft.Web/register/action'" in denied.value.error.message
    assert e.value.error.message == "The resource namespace 'Microsoft.Nothing' is invalid."


def test_subscription_carries_the_fields_azure_returns(sandbox, fresh, sp_credential):
    status, _, body = raw(sandbox, "GET", f"/subscriptions/{SUB}?{V}", token_of(sp_credential))
    assert status == 200
    assert body["managedByTenants"] == [] and body["tenantId"] == world.TENANT_ID
    assert body["authorizationSource"] == "RoleBased"
    assert set(body["subscriptionPolicies"]) == {"locationPlacementId", "quotaId", "spendingLimit"}


def test_tags_at_resource_group_and_subscription_scope(
    sandbox, fresh, sp_credential, dev_credential
):
    group = f"/subscriptions/{SUB}/resourceGroups/{world.RESOURCE_GROUP}"
    with mgmt(ResourceManagementClient, sp_credential, sandbox) as rc:
        put = rc.tags.begin_create_or_update_at_scope(
            ACS_ID, {"properties": {"tags": {"a": "1"}}}
        ).result()
        assert put.properties.tags == {"a": "1"} and put.name == "default"
        merged = rc.tags.begin_update_at_scope(
            ACS_ID, {"operation": "Merge", "properties": {"tags": {"b": "2"}}}
        ).result()
        assert merged.properties.tags == {"a": "1", "b": "2"}
        deleted = rc.tags.begin_update_at_scope(
            ACS_ID, {"operation": "Delete", "properties": {"tags": {"a": "1"}}}
        ).result()
        assert deleted.properties.tags == {"b": "2"}
        assert rc.tags.get_at_scope(ACS_ID).properties.tags == {"b": "2"}
        rc.tags.begin_create_or_update_at_scope(
            group, {"properties": {"tags": {"course": "acs"}}}
        ).result()
        assert rc.resource_groups.get(world.RESOURCE_GROUP).tags == {"course": "acs"}
        # The service principal is Contributor on the group only.
        with pytest.raises(HttpResponseError) as e:
            rc.tags.begin_create_or_update_at_scope(
                f"/subscriptions/{SUB}", {"properties": {"tags": {"x": "y"}}}
            ).result()
    assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"
    assert "Microsoft.Resources/tags/write" in e.value.error.message
    with mgmt(ResourceManagementClient, dev_credential, sandbox) as rc:  # Owner
        rc.tags.begin_create_or_update_at_scope(
            f"/subscriptions/{SUB}", {"properties": {"tags": {"x": "y"}}}
        ).result()
        rc.tags.begin_delete_at_scope(ACS_ID).result()
        assert rc.tags.get_at_scope(ACS_ID).properties.tags == {}
    status, _, body = raw(sandbox, "GET", f"/subscriptions/{SUB}?{V}", token_of(dev_credential))
    assert body["tags"] == {"x": "y"}


def test_tags_refuse_a_bad_operation(sandbox, fresh, sp_credential):
    path = f"{ACS_ID}/providers/Microsoft.Resources/tags/default?{V}"
    body = {"operation": "Upsert", "properties": {"tags": {}}}
    status, _, answer = raw(sandbox, "PATCH", path, token_of(sp_credential), body)
    assert status == 400 and answer["error"]["code"] == "InvalidRequestContent"


def test_acs_resource_create_or_update(sandbox, fresh, sp_credential):
    with mgmt(CommunicationServiceManagementClient, sp_credential, sandbox) as cs:
        updated = cs.communication_services.begin_create_or_update(
            world.RESOURCE_GROUP,
            world.ACS_NAME,
            CommunicationServiceResource(
                location="global", data_location="United States", tags={"k": "v"}
            ),
        ).result()
        assert updated.tags == {"k": "v"}
        assert updated.immutable_resource_id == world.ACS_IMMUTABLE_ID
        made = cs.communication_services.begin_create_or_update(
            world.RESOURCE_GROUP,
            "acs-second",
            CommunicationServiceResource(location="global", data_location="Europe"),
        ).result()
        assert made.data_location == "Europe" and made.immutable_resource_id
        keys = cs.communication_services.list_keys(world.RESOURCE_GROUP, "acs-second")
        assert (
            keys.primary_key
            and keys.primary_key
            != cs.communication_services.list_keys(world.RESOURCE_GROUP, world.ACS_NAME).primary_key
        )
    path = f"{ACS_ID}?api-version=2023-04-01"
    status, _, body = raw(sandbox, "PUT", path, token_of(sp_credential), {"location": "eastus"})
    assert status == 400 and body["error"]["code"] == "InvalidResourceLocation"
    status, _, body = raw(sandbox, "PUT", path, token_of(sp_credential), {"tags": {}})
    assert status == 400 and body["error"]["code"] == "LocationRequired"


def test_function_app_site_shape_config_and_publishing_profile(sandbox, fresh, sp_credential):
    token = token_of(sp_credential)
    status, _, site = raw(sandbox, "GET", f"{FUNC_ID}?api-version=2025-05-01", token)
    assert status == 200
    props = site["properties"]
    assert props["serverFarmId"].startswith(f"/subscriptions/{SUB}/resourceGroups/")
    assert props["sku"] == "Dynamic" and props["state"] == "Running"
    # defaultHostName points at the sandbox's listener (sandbox/functions/models.py); the SCM
    # name stays Azure's.
    served = sandbox["https_url"].split("://")[1] + "/sites/func-tutorial"
    assert props["defaultHostName"] == served
    assert props["enabledHostNames"] == [served, "func-tutorial.scm.azurewebsites.net"]
    status, _, config = raw(sandbox, "GET", f"{FUNC_ID}/config/web?api-version=2025-05-01", token)
    assert status == 200 and config["type"] == "Microsoft.Web/sites/config"
    assert config["properties"]["minTlsVersion"] == "1.2"
    ctx = ssl.create_default_context(cafile=sandbox["ca_file"])
    req = urllib.request.Request(
        f"{sandbox['https_url']}{FUNC_ID}/publishxml?api-version=2025-05-01",
        b"{}",
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        xml = resp.read().decode()
    assert xml.startswith("<publishData>") and 'publishMethod="FTP"' in xml
    status, _, body = raw(sandbox, "GET", f"{FUNC_ID}/config/web?api-version=1999-01-01", token)
    assert status == 400 and body["error"]["code"] == "NoRegisteredProviderFound"


def test_cloud_metadata_document_is_public(sandbox):
    ctx = ssl.create_default_context(cafile=sandbox["ca_file"])
    for path in ("/metadata/endpoints", "//metadata/endpoints"):
        url = f"{sandbox['https_url']}{path}?api-version=2022-09-01"
        with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
            import json

            doc = json.loads(resp.read())
        assert doc["resourceManager"] == sandbox["https_url"] + "/"
        assert doc["authentication"]["loginEndpoint"] == sandbox["authority_host"]
        assert doc["authentication"]["audiences"][0] == "https://management.core.windows.net/"
        assert doc["microsoftGraphResourceId"] == sandbox["https_url"] + "/graph/"
    status, _, body = raw(sandbox, "GET", "/metadata/endpoints")
    assert status == 400 and body["error"]["code"] == "MissingApiVersionParameter"


def test_az_cloud_prints_the_registration_for_a_real_cli(sandbox):
    import os
    import subprocess
    import sys

    env = {**os.environ, "SANDBOX_STATE_DIR": sandbox["state_dir"]}
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "az-cloud"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"export REQUESTS_CA_BUNDLE={sandbox['ca_bundle']}" in out
    assert "core.instance_discovery=false" in out
    assert f"--endpoint-resource-manager {sandbox['https_url']}/" in out
    assert f"--endpoint-microsoft-graph-resource-id {sandbox['https_url']}/graph/" in out
    assert "az cloud set --name AzureSandbox" in out
    assert "--resource https://communication.azure.com" in out
