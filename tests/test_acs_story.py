"""The tutorial's whole story, end to end with the real SDKs and no shortcut:

the developer signs in (device code) → enables the VM's managed identity (Resource Manager) →
the VM's create_user is refused (no role) → the developer assigns Contributor on the ACS
resource (authorization management SDK) → the VM creates a user and sends an SMS that reaches
the phone, with a delivery report, and the request log says it was the managed identity, not an
access key → the role is removed → refused again. Then key rotation breaks an old connection
string.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.identity.aio import CommunicationIdentityClient as AsyncIdentityClient
from azure.communication.sms import SmsClient
from azure.communication.sms.aio import SmsClient as AsyncSmsClient
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.communication import CommunicationServiceManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from sandbox import world
from tests.acs_support import PHONE, SENDER
from tests.test_arm import developer_credential

MGMT = {"credential_scopes": ["https://management.azure.com/.default"]}


def test_managed_identity_story(sandbox, fresh, persona):
    persona("developer")
    dev = developer_credential(sandbox, fresh)
    arm = {"base_url": sandbox["arm_url"], **MGMT}
    resources = ResourceManagementClient(dev, world.SUBSCRIPTION_ID, **arm)
    authz = AuthorizationManagementClient(dev, world.SUBSCRIPTION_ID, **arm)
    acs_mgmt = CommunicationServiceManagementClient(dev, world.SUBSCRIPTION_ID, **arm)

    # 1. The developer enables the VM's system-assigned identity.
    vm = resources.resources.begin_update_by_id(
        world.host_resource_id("vm-tutorial"),
        {"identity": {"type": "SystemAssigned"}},
        api_version="2024-07-01",
    ).result()
    vm_principal = vm.identity.principal_id
    assert vm_principal

    # 2. On the VM, the managed identity authenticates, but it holds no role yet.
    persona("vm-tutorial")
    mi = ManagedIdentityCredential()
    identity = CommunicationIdentityClient(sandbox["acs_endpoint"], mi)
    sms = SmsClient(sandbox["acs_endpoint"], mi)
    before = fresh.last_log_id()
    with pytest.raises(ClientAuthenticationError) as refused:
        identity.create_user()
    # As ACS answers: 401 Denied, nothing more; the request log says who and why.
    assert (refused.value.status_code, refused.value.error.code) == (401, "Denied")
    assert refused.value.error.message == "Denied by the resource provider."
    [entry] = [e for e in fresh.log_after(before) if e["path"] == "/identities"]
    assert vm_principal in entry["reason"] and "vm-tutorial" in entry["reason"]
    assert world.ACS_RESOURCE_ID in entry["reason"]

    # 3. The developer assigns Contributor on the Communication Services resource.
    [contributor] = authz.role_definitions.list(
        world.ACS_RESOURCE_ID, filter="roleName eq 'Contributor'"
    )
    assignment_name = str(uuid.uuid4())
    authz.role_assignments.create(
        world.ACS_RESOURCE_ID,
        assignment_name,
        {
            "role_definition_id": contributor.id,
            "principal_id": vm_principal,
            "principal_type": "ServicePrincipal",
        },
    )

    # 4. The very next calls succeed: a user with a token, and an SMS that reaches the phone.
    before = fresh.last_log_id()
    user, token = identity.create_user_and_token(["voip"])
    assert fresh("POST", "/_sandbox/acs/check-user-token", {"token": token.token})["valid"]
    [sent] = sms.send(SENDER, PHONE, "Hello from the VM", enable_delivery_report=True, tag="story")
    assert sent.successful
    [msg] = fresh("GET", f"/_sandbox/inbox/{PHONE}")["messages"]
    assert (msg["messageId"], msg["message"]) == (sent.message_id, "Hello from the VM")
    [report] = fresh(
        "GET", "/_sandbox/events?type=Microsoft.Communication.SMSDeliveryReportReceived"
    )["events"]
    assert report["data"]["DeliveryStatus"] == "Delivered" and report["data"]["Tag"] == "story"

    # The request log shows the SMS was authorized by the VM's identity, not an access key.
    [entry] = [e for e in fresh.log_after(before) if e["path"] == "/sms"]
    assert entry["status"] == 202
    assert (entry["credential"], entry["principal_id"], entry["decision"]) == (
        "bearer",
        vm_principal,
        "allowed",
    )
    assert entry["caller"].startswith("vm-tutorial")
    assert "'Contributor'" in entry["reason"]

    # The async clients, with the async managed-identity credential, are authorized the same way.
    async def from_async() -> list:
        async with AsyncManagedIdentityCredential() as cred:
            async with AsyncIdentityClient(sandbox["acs_endpoint"], cred) as aid:
                await aid.get_token(user, ["chat"])
            async with AsyncSmsClient(sandbox["acs_endpoint"], cred) as asms:
                return await asms.send(SENDER, PHONE, "async hello")

    assert asyncio.run(from_async())[0].successful
    assert len(fresh("GET", f"/_sandbox/inbox/{PHONE}")["messages"]) == 2

    # 5. Removing the role takes effect on the next request, though the MI token is still valid.
    persona("developer")
    authz.role_assignments.delete(world.ACS_RESOURCE_ID, assignment_name)
    persona("vm-tutorial")
    with pytest.raises(ClientAuthenticationError) as again:
        sms.send(SENDER, PHONE, "should not arrive")
    assert again.value.status_code == 401 and again.value.error.code == "Denied"
    assert len(fresh("GET", f"/_sandbox/inbox/{PHONE}")["messages"]) == 2

    # 6. Key rotation: the connection string from listKeys works until its key is regenerated.
    persona("developer")
    keys = acs_mgmt.communication_services.list_keys(world.RESOURCE_GROUP, world.ACS_NAME)
    old = CommunicationIdentityClient.from_connection_string(keys.primary_connection_string)
    assert old.create_user().properties["id"]
    acs_mgmt.communication_services.regenerate_key(
        world.RESOURCE_GROUP, world.ACS_NAME, {"keyType": "Primary"}
    )
    with pytest.raises(ClientAuthenticationError) as rotated:
        old.create_user()
    assert rotated.value.status_code == 401 and rotated.value.error.code == "Denied"
    new = acs_mgmt.communication_services.list_keys(world.RESOURCE_GROUP, world.ACS_NAME)
    assert new.primary_key != keys.primary_key
    assert CommunicationIdentityClient.from_connection_string(
        new.primary_connection_string
    ).create_user()
    assert CommunicationIdentityClient.from_connection_string(
        keys.secondary_connection_string  # the other key was not rotated
    ).create_user()
