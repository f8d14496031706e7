"""helpers.call_function: the Function app found through Resource Manager (URL from its
defaultHostName, the host key from listkeys) with the developer's sign-in, called over HTTPS;
failures are one sentence."""

from __future__ import annotations

import uuid

import helpers
from helpers import function_app
from sandbox import world
from tests.acs_support import ARM_AUDIENCE, PHONE, StaticCredential, forge
from tests.helpers_kit import sign_in


def test_call_function_runs_in_the_app_as_its_identity(kit, capsys):
    sign_in(kit)
    helpers.catch_up(through=2)  # identities on, roles granted (notebooks 1 and 2)
    function_app._cache.clear()
    answer = helpers.call_function("acs-token", {"scopes": "voip"})
    assert answer["called_as"]["xms_mirid"].endswith("/Microsoft.Web/sites/func-tutorial")
    assert answer["token_claims"]["acsScope"] == "voip" and answer["user_deleted"] is True
    sent = helpers.call_function("send-sms", method="POST", body={"to": PHONE, "message": "hi"})
    assert sent["successful"] is True
    assert kit.sandbox.call("GET", f"/_sandbox/inbox/{PHONE}")["messages"][-1]["message"] == "hi"
    capsys.readouterr()
    refused = helpers.call_function("send-sms", method="POST", body={"to": "12345"})
    out = capsys.readouterr().out.strip()
    assert out.startswith("func-tutorial answered 400 Bad Request: 'to' must be an E.164")
    assert "\n" not in out and refused["error"] in out


def test_a_renewed_key_is_read_again(kit, capsys):
    sign_in(kit)
    helpers.catch_up(through=2)
    function_app._cache.clear()
    assert helpers.call_function("acs-token")["user_deleted"] is True
    base, _ = function_app._cache[kit.func_app_name]
    function_app._cache[kit.func_app_name] = (base, "a-key-that-was-renewed")
    capsys.readouterr()
    assert helpers.call_function("acs-token")["user_deleted"] is True
    assert capsys.readouterr().out == ""


def test_a_reader_cannot_read_the_key(kit, control, capsys):
    sign_in(kit)
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.mgmt.msi import ManagedServiceIdentityClient

    developer = StaticCredential(
        forge(control.settings, control.doc, oid=world.DEVELOPER_OID, audience=ARM_AUDIENCE)
    )
    kwargs = helpers.mgmt_client_kwargs()
    msi = ManagedServiceIdentityClient(developer, kit.subscription_id, **kwargs)
    reader = msi.user_assigned_identities.create_or_update(
        kit.resource_group, "id-reader", {"location": world.LOCATION}
    )
    AuthorizationManagementClient(developer, kit.subscription_id, **kwargs).role_assignments.create(
        world.GROUP_SCOPE,
        str(uuid.uuid4()),
        {
            "role_definition_id": world.role_definition_id("acdd72a7-3385-48ef-bd42-f606fba81ae7"),
            "principal_id": reader.principal_id,
        },
    )
    token = forge(control.settings, control.doc, oid=reader.principal_id, audience=ARM_AUDIENCE)
    function_app._cache.clear()
    capsys.readouterr()
    assert helpers.call_function("acs-token", credential=StaticCredential(token)) is None
    out = capsys.readouterr().out.strip()
    assert out.startswith("Could not read func-tutorial's URL and key from Resource Manager (403")
    assert "Reader does not" in out and "\n" not in out
