"""Keys can be turned off: ``disableLocalAuth`` on the Communication Services resource.

The last step of a tutorial about not holding secrets. The developer sets the property through
the real management SDK (azure-mgmt-communication); from then on every access-key (HMAC) call to
the data plane is refused as ACS refuses a key it will not take (401 ``Denied``), while Entra ID
tokens keep working. Turning it back on restores the keys.
"""

from __future__ import annotations

import asyncio

import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.identity.aio import CommunicationIdentityClient as AsyncIdentityClient
from azure.communication.sms import SmsClient
from azure.communication.sms.aio import SmsClient as AsyncSmsClient
from azure.core.exceptions import ClientAuthenticationError
from azure.mgmt.communication import CommunicationServiceManagementClient
from azure.mgmt.communication.models import CommunicationServiceResourceUpdate

from sandbox import world
from sandbox.acs.errors import DENIED
from sandbox.store import Store
from tests.acs_support import (
    PHONE,
    SENDER,
    StaticCredential,
    connection_string,
    developer_mgmt,
    forge,
)

pytestmark = pytest.mark.usefixtures("trust_sandbox_ca")


def _mgmt(fresh) -> CommunicationServiceManagementClient:
    return developer_mgmt(CommunicationServiceManagementClient, fresh)


def _set(fresh, disabled: bool) -> bool:
    resource = _mgmt(fresh).communication_services.update(
        world.RESOURCE_GROUP,
        world.ACS_NAME,
        CommunicationServiceResourceUpdate(disable_local_auth=disabled),
    )
    return resource.disable_local_auth


def _is_denied(error: ClientAuthenticationError) -> bool:
    return (error.status_code, error.error.code, error.error.message) == (401, "Denied", DENIED)


def test_the_property_is_stored_and_shown(sandbox, fresh):
    mgmt = _mgmt(fresh)
    assert (
        mgmt.communication_services.get(world.RESOURCE_GROUP, world.ACS_NAME).disable_local_auth
        is False
    )
    assert _set(fresh, True) is True
    assert (
        mgmt.communication_services.get(world.RESOURCE_GROUP, world.ACS_NAME).disable_local_auth
        is True
    )
    assert _set(fresh, False) is False


def test_keys_off_refuses_every_access_key_call_and_entra_keeps_working(sandbox, fresh):
    conn = connection_string(fresh)
    identity = CommunicationIdentityClient.from_connection_string(conn)
    sms = SmsClient.from_connection_string(conn)
    assert identity.create_user().properties["id"]

    before = fresh.last_log_id()
    assert _set(fresh, True) is True
    with pytest.raises(ClientAuthenticationError) as e:
        identity.create_user()
    assert _is_denied(e.value)
    with pytest.raises(ClientAuthenticationError) as e:
        sms.send(SENDER, PHONE, "with a key")
    assert _is_denied(e.value)
    refused = [e for e in fresh.log_after(before) if e["status"] == 401]
    assert len(refused) == 2
    assert all("disableLocalAuth is true" in e["reason"] for e in refused)
    assert {e["credential"] for e in refused} == {"hmac"}

    token = forge(fresh.settings, sandbox, oid=world.DEVELOPER_OID)
    by_entra = CommunicationIdentityClient(sandbox["acs_endpoint"], StaticCredential(token))
    assert by_entra.create_user().properties["id"]
    [result] = SmsClient(sandbox["acs_endpoint"], StaticCredential(token)).send(
        SENDER, PHONE, "with a token"
    )
    assert result.successful

    assert _set(fresh, False) is False
    assert identity.create_user().properties["id"]


def test_async_clients_with_a_key_are_refused_too(sandbox, fresh):
    conn = connection_string(fresh)
    _set(fresh, True)

    async def main():
        async with AsyncIdentityClient.from_connection_string(conn) as identity:
            with pytest.raises(ClientAuthenticationError) as e:
                await identity.create_user()
            assert _is_denied(e.value)
        async with AsyncSmsClient.from_connection_string(conn) as sms:
            with pytest.raises(ClientAuthenticationError) as e:
                await sms.send(SENDER, PHONE, "async with a key")
            assert _is_denied(e.value)

    try:
        asyncio.run(main())
    finally:
        _set(fresh, False)


def test_the_setting_is_written_to_the_store_so_it_survives_a_restart(sandbox, fresh):
    _set(fresh, True)
    doc = fresh("GET", "/_sandbox/acs/connection-string?key=primary")
    assert doc["connection_string"]  # keys still exist; they are only refused
    store = Store(fresh.settings.db_file)  # the database the server writes, opened afresh
    try:
        assert store.get("acs_resource", world.ACS_NAME)["disable_local_auth"] is True
    finally:
        store.close()
        _set(fresh, False)
