"""show_token, inbox, events and the fault switches, against the live sandbox with real SDKs."""

from __future__ import annotations

import time

import pytest
from azure.communication.sms import SmsClient
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from helpers_kit import connection_string, enable_vm_identity, html_of, sp_credential

import helpers
from helpers.display import countdown, table, token_rows
from helpers.target import AZURE, Kit

ACS = "https://communication.azure.com/.default"
SP_CLIENT_ID = "c0ffee00-1111-4222-8333-444455556666"


def test_show_token_displays_claims_never_the_signature(kit, shown):
    helpers.act_as("service-principal")
    token = sp_credential().get_token(ACS)
    claims = helpers.show_token(token)
    assert claims["aud"] == "https://communication.azure.com"
    assert claims["appid"] == SP_CLIENT_ID and claims["idtyp"] == "app"
    [view] = shown
    page, text = html_of(view), repr(view)
    signature = token.token.rsplit(".", 1)[1]
    for shown_form in (page, text):
        assert signature not in shown_form and token.token not in shown_form
        assert SP_CLIENT_ID in shown_form and "audience" in shown_form
        assert "header: alg=RS256, kid=" in shown_form and "signature not shown" in shown_form
    assert "expires in " in text and " UTC" in text
    assert "other claims (not shown):" in text and "uti" in text


def test_show_token_of_a_managed_identity_names_its_resource(kit, shown):
    principal = enable_vm_identity(kit)
    helpers.act_as("vm-tutorial")
    claims = helpers.show_token(ManagedIdentityCredential().get_token(ACS).token)
    assert claims["oid"] == principal
    assert claims["xms_mirid"].endswith("/providers/Microsoft.Compute/virtualMachines/vm-tutorial")
    assert "resource id of the managed identity" in html_of(shown[0])


def test_show_token_refuses_what_is_not_a_token():
    with pytest.raises(ValueError, match="three dot-separated parts"):
        helpers.show_token("not-a-token")
    with pytest.raises(TypeError, match="token string or the AccessToken"):
        helpers.show_token(42)


def test_token_rows_order_and_countdown():
    now = 1_800_000_000
    rows = token_rows({"exp": now + 3600, "aud": "x", "zzz": 1, "iat": now}, now=now)
    assert [r[0] for r in rows] == ["aud", "iat", "exp"]
    assert rows[2][1] == "2027-01-15 09:00:00 UTC (expires in 60 min)"
    assert countdown(now - 120, now=now) == "expired 2 min ago"


def test_token_view_accepts_an_access_token():
    from helpers.display import token_view

    jwt = "eyJhbGciOiJub25lIn0.eyJhdWQiOiJhIn0.c2ln"
    claims, view = token_view(AccessToken(jwt, 0))
    assert claims == {"aud": "a"} and "c2ln" not in repr(view)


def test_table_escapes_html():
    view = table(("a",), [("<b>x</b>",)])
    assert "<b>x</b>" not in view.html and "&lt;b&gt;" in view.html
    assert repr(view) == "a\n<b>x</b>"


def test_inbox_and_events_show_what_was_sent(kit, shown):
    sms = SmsClient.from_connection_string(connection_string(kit))
    [result] = sms.send(
        from_=kit.sender, to=[kit.phone], message="hello inbox", enable_delivery_report=True
    )
    assert result.successful
    messages = helpers.inbox()
    assert [m["message"] for m in messages] == ["hello inbox"]
    assert messages[0]["messageId"] == result.message_id
    text = repr(shown[-1])
    assert f"inbox of {kit.phone}: 1 message" in text and "hello inbox" in text
    assert helpers.inbox(kit.phones[1]) == []
    assert "0 messages" in repr(shown[-1])

    found = helpers.events("Microsoft.Communication.SMSDeliveryReportReceived")
    assert [e["data"]["MessageId"] for e in found] == [result.message_id]
    text = repr(shown[-1])
    assert "SMSDeliveryReportReceived" in text and f"to {kit.phone}: Delivered" in text
    assert helpers.events("Microsoft.Communication.SMSReceived") == []


def test_faults_switch_on_and_off(kit, shown):
    sms = SmsClient.from_connection_string(connection_string(kit), retry_total=0)
    stored = helpers.fault("throttle", count=1, retry_after=2)
    assert stored == {"count": 1, "retry_after": 2}
    assert "the next 1 ACS call(s) answer 429" in repr(shown[-1])
    with pytest.raises(HttpResponseError) as raised:
        sms.send(from_=kit.sender, to=kit.phone, message="x")
    assert raised.value.status_code == 429
    helpers.fault("unavailable", count=3)
    helpers.clear_faults("unavailable")
    assert "fault 'unavailable' cleared." in repr(shown[-1])
    assert sms.send(from_=kit.sender, to=kit.phone, message="x")[0].successful
    helpers.fault("mi_unreachable", hosts=["vm-tutorial"])
    assert "endpoint of vm-tutorial does not answer" in repr(shown[-1])
    helpers.clear_faults()
    assert kit.sandbox.call("GET", "/_sandbox/faults")["faults"] == {}


def test_unknown_faults_are_refused_with_the_known_names(kit):
    with pytest.raises(ValueError, match="known faults: throttle"):
        helpers.fault("earthquake")
    with pytest.raises(ValueError, match="has no parameter 'bogus'"):
        helpers.fault("throttle", bogus=1)


@pytest.fixture
def azure_kit(monkeypatch: pytest.MonkeyPatch):
    """A kit on the azure target (no call leaves the machine: these helpers only explain)."""
    from helpers import target

    kit_ = Kit(AZURE, "https://x.communication.azure.com/", "s", "g", "n", "+1", ["+2"])
    monkeypatch.setattr(target, "_current", kit_)
    return kit_


def test_on_azure_the_sandbox_only_helpers_explain_themselves(azure_kit, shown):
    assert helpers.inbox() == [] and helpers.events() == []
    assert helpers.fault("throttle") == {}
    helpers.clear_faults()
    helpers.flow(None)
    texts = [repr(x) for x in shown]
    assert texts[0].startswith("Skipped on Azure: the phone's inbox, because only the sandbox")
    assert texts[2].startswith("Skipped on Azure: the fault 'throttle', because faults are")
    assert texts[2].endswith("nothing was changed.")
    assert texts[-1].startswith("Skipped on Azure: the request-flow picture, because")


def test_countdown_uses_this_machine_clock():
    assert countdown(time.time() + 600) in ("expires in 10 min", "expires in 9 min")


def test_an_acs_user_token_labels_scp_as_its_internal_bitmask():
    acs_user = {"scp": 1792, "skypeid": "acs:x", "acsScope": "voip"}
    meaning = {name: text for name, _, text in token_rows(acs_user)}
    assert "internal" in meaning["scp"] and "acsScope" in meaning["scp"]
    entra_user = {"scp": "user_impersonation", "upn": "a@b"}
    meaning = {name: text for name, _, text in token_rows(entra_user)}
    assert meaning["scp"] == "scopes granted to the app (delegated)"
