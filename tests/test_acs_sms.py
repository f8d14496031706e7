"""The SMS API through the real SDK, sync and async: per-recipient outcomes, the phones'
inboxes, delivery reports, replies and opt-out, repeatability, limits and fault switches."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest
from azure.communication.sms import SmsClient
from azure.communication.sms.aio import SmsClient as AsyncSmsClient
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from sandbox import world
from tests.acs_support import (
    MESSAGE_ID,
    PHONE,
    SENDER,
    connection_string,
    key_of,
    signed,
    sms_body,
)

REPORT = "Microsoft.Communication.SMSDeliveryReportReceived"
RECEIVED = "Microsoft.Communication.SMSReceived"


pytestmark = pytest.mark.usefixtures("trust_sandbox_ca")


@pytest.fixture
def sms(fresh) -> SmsClient:
    return SmsClient.from_connection_string(connection_string(fresh))


def _inbox(control, phone: str) -> list[dict]:
    return control("GET", f"/_sandbox/inbox/{phone}")["messages"]


def _events(control, kind: str) -> list[dict]:
    return control("GET", f"/_sandbox/events?type={kind}")["events"]


def test_send_lands_in_the_inbox_with_a_delivery_report_and_tag(sms, fresh):
    [result] = sms.send(
        SENDER, PHONE, "Your code is 123456", enable_delivery_report=True, tag="t-1"
    )
    assert result.successful and result.http_status_code == 202
    assert MESSAGE_ID.fullmatch(result.message_id), result.message_id
    assert result.to == PHONE
    [msg] = _inbox(fresh, PHONE)
    assert (msg["messageId"], msg["from"], msg["message"]) == (
        result.message_id,
        SENDER,
        "Your code is 123456",
    )
    [event] = _events(fresh, REPORT)
    assert event["id"] == result.message_id
    assert event["subject"] == "/phonenumber/18005550100"
    # The published event writes the provider part lower-case.
    assert event["topic"] == (
        f"/subscriptions/{world.SUBSCRIPTION_ID}/resourceGroups/{world.RESOURCE_GROUP}"
        f"/providers/microsoft.communication/communicationservices/{world.ACS_NAME}"
    )
    assert (event["dataVersion"], event["metadataVersion"]) == ("1.0", "1")
    data = event["data"]
    assert data["MessageId"] == result.message_id and data["To"] == PHONE
    assert (data["DeliveryStatus"], data["DeliveryStatusDetails"], data["Tag"]) == (
        "Delivered",
        "No error.",
        "t-1",
    )
    assert data["DeliveryAttempts"][0]["SegmentsSucceeded"] == 1


def test_without_delivery_report_no_event_is_recorded(sms, fresh):
    sms.send(SENDER, PHONE, "quiet")
    assert len(_inbox(fresh, PHONE)) == 1
    assert _events(fresh, REPORT) == []


def test_any_e164_number_receives_and_a_bad_one_fails_on_its_own(sms, fresh):
    other = "+442071838750"
    results = sms.send(SENDER, [PHONE, "+1425", other, "4255550199"], "hello all")
    assert [r.successful for r in results] == [True, False, True, False]
    for bad in (results[1], results[3]):
        assert bad.http_status_code == 400
        assert bad.error_message == "Invalid To phone number format."
        assert bad.message_id is None
    assert len(_inbox(fresh, other)) == 1 and len(_inbox(fresh, PHONE)) == 1


def test_from_a_number_the_resource_does_not_own_is_401_with_an_empty_message(sms, fresh):
    before = fresh.last_log_id()
    with pytest.raises(ClientAuthenticationError) as e:
        sms.send("+18005550199", PHONE, "spoofed")
    assert (e.value.status_code, e.value.error.code, e.value.error.message) == (
        401,
        "Unauthorized",
        "",
    )
    [entry] = [x for x in fresh.log_after(before) if x["status"] == 401]
    assert SENDER in entry["outcome"]  # the log says which numbers it owns


def test_from_something_that_is_no_number_is_401_internal_error(sms):
    with pytest.raises(ClientAuthenticationError) as e:
        sms.send("not-a-number", PHONE, "hi")
    assert (e.value.status_code, e.value.error.code, e.value.error.message) == (
        401,
        "InternalError",
        "The server encountered an internal error.",
    )


def test_a_to_that_is_no_phone_number_fails_the_whole_request(sms, fresh):
    """Azure's own live test (review F1): ``send`` raises; nothing is sent to anyone."""
    with pytest.raises(HttpResponseError) as e:
        sms.send(SENDER, [PHONE, "Ad155500000000000"], "Hello World via SMS")
    assert e.value.status_code == 400
    assert _inbox(fresh, PHONE) == []


def test_the_async_client_gets_the_same_whole_request_refusal(fresh):
    conn = connection_string(fresh)

    async def main():
        async with AsyncSmsClient.from_connection_string(conn) as client:
            await client.send(SENDER, "Ad155500000000000", "Hello World via SMS")

    with pytest.raises(HttpResponseError) as e:
        asyncio.run(main())
    assert e.value.status_code == 400


@pytest.mark.parametrize(
    "to",
    [
        "+1\u0664\u0662\u0665\u0665\u0665\u0665\u0660\u0661\u0660\u0661",
        "+1\uff14\uff12\uff15\uff15\uff15\uff15\uff10\uff11\uff10\uff11",
        PHONE + "\n",
    ],
    ids=["arabic-indic-digits", "full-width-digits", "trailing-newline"],
)
def test_only_ascii_e164_numbers_are_delivered(fresh, to):
    """Security review D8: other scripts' digits and a final newline were delivered."""
    key = key_of(connection_string(fresh))
    status, body, _ = signed(fresh.doc, key, "POST", "/sms?api-version=2021-03-07", sms_body([to]))
    assert status == 202, body
    [item] = body["value"]
    assert (item["httpStatusCode"], item["errorMessage"], item["successful"]) == (
        400,
        "Invalid To phone number format.",
        False,
    )
    assert fresh("GET", "/_sandbox/inbox")["messages"] == []


@pytest.mark.parametrize("count", [0, 101])
def test_recipient_count_outside_1_to_100_is_400(sms, count):
    phones = [f"+1425555{i:04d}" for i in range(count)]
    with pytest.raises(HttpResponseError) as e:
        sms.send(SENDER, phones, "hi")
    assert e.value.status_code == 400 and e.value.error.code == "ValidationError"
    assert f"got {count}" in e.value.error.message


def test_message_longer_than_2048_characters_is_400(sms, fresh):
    [ok] = sms.send(SENDER, PHONE, "a" * 2048)
    assert ok.successful
    with pytest.raises(HttpResponseError) as e:
        sms.send(SENDER, PHONE, "a" * 2049)
    assert e.value.status_code == 400 and e.value.error.code == "ValidationError"
    assert "2049 characters" in e.value.error.message


@pytest.mark.parametrize(
    "text, segments",
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),
        ("€" * 81, 2),
        ("é" * 70, 1),
        ("ж" * 70, 1),
        ("ж" * 71, 2),
        ("😀" * 35, 1),
        ("😀" * 36, 2),
    ],
)
def test_segments_follow_gsm7_and_ucs2(sms, fresh, text, segments):
    sms.send(SENDER, PHONE, text, enable_delivery_report=True)
    [msg] = _inbox(fresh, PHONE)
    assert msg["segments"] == segments
    [event] = _events(fresh, REPORT)
    assert event["data"]["DeliveryAttempts"][0]["SegmentsSucceeded"] == segments


def test_repeatability_same_request_id_is_sent_once(sms, fresh):
    key = key_of(connection_string(fresh))
    body = sms_body([PHONE], "once only")
    status, first, _ = signed(fresh.doc, key, "POST", "/sms?api-version=2021-03-07", body)
    status2, second, _ = signed(fresh.doc, key, "POST", "/sms?api-version=2021-03-07", body)
    assert status == status2 == 202
    assert first == second
    assert first["value"][0]["repeatabilityResult"] == "accepted"
    assert len(_inbox(fresh, PHONE)) == 1


def test_bad_repeatability_first_sent_is_rejected_per_recipient(sms, fresh):
    key = key_of(connection_string(fresh))
    body = sms_body([PHONE, "+14255550102"], "dated")
    body["smsRecipients"][0]["repeatabilityFirstSent"] = "2026-11-27 09:07:28"
    status, result, _ = signed(fresh.doc, key, "POST", "/sms?api-version=2021-03-07", body)
    assert status == 202
    bad, good = result["value"]
    assert bad == {
        "to": PHONE,
        "httpStatusCode": 400,
        "repeatabilityResult": "rejected",
        "errorMessage": "Request sent with Invalid DateTime value for repeatability-first-sent. "
        "Expected is DateTime ,RFC1123 pattern.",
        "successful": False,
    }
    assert good["successful"] and good["httpStatusCode"] == 202
    assert _inbox(fresh, PHONE) == [] and len(_inbox(fresh, "+14255550102")) == 1


def test_stop_opts_out_until_start(sms, fresh):
    sms.send(SENDER, PHONE, "before", enable_delivery_report=True)
    reply = fresh("POST", f"/_sandbox/phones/{PHONE}/reply", {"from": SENDER, "message": "STOP"})
    assert reply["optedOut"] is True
    [received] = _events(fresh, RECEIVED)
    assert received["data"]["From"] == PHONE and received["data"]["To"] == SENDER
    assert received["data"]["Message"] == "STOP" and received["id"].startswith("Incoming_")

    [blocked] = sms.send(SENDER, PHONE, "while opted out", enable_delivery_report=True, tag="b")
    assert blocked.successful and blocked.http_status_code == 202  # accepted, then not delivered
    assert [m["message"] for m in _inbox(fresh, PHONE)] == ["before"]
    report = _events(fresh, REPORT)[-1]["data"]
    assert report["MessageId"] == blocked.message_id
    assert (report["DeliveryStatus"], report["DeliveryStatusDetails"]) == (
        "Failed",
        "Sender blocked for given recipient.",
    )
    assert report["DeliveryAttempts"][0]["SegmentsFailed"] == 1

    assert (
        fresh("POST", f"/_sandbox/phones/{PHONE}/reply", {"message": "start"})["optedOut"] is False
    )
    sms.send(SENDER, PHONE, "after")
    assert [m["message"] for m in _inbox(fresh, PHONE)] == ["before", "after"]
    assert len(_events(fresh, RECEIVED)) == 2


def test_an_ordinary_reply_is_an_event_and_changes_nothing(sms, fresh):
    reply = fresh("POST", f"/_sandbox/phones/{PHONE}/reply", {"message": "thanks!"})
    assert "optedOut" not in reply
    sms.send(SENDER, PHONE, "still subscribed")
    assert len(_inbox(fresh, PHONE)) == 1
    with pytest.raises(Exception, match="not a number of this resource"):
        fresh("POST", f"/_sandbox/phones/{PHONE}/reply", {"from": "+18005550199", "message": "x"})


def test_async_client_sends_and_reports(fresh):
    conn = connection_string(fresh)

    async def main():
        async with AsyncSmsClient.from_connection_string(conn) as client:
            return await client.send(
                SENDER, [PHONE, "+14255550102"], "async hello", enable_delivery_report=True
            )

    results = asyncio.run(main())
    assert all(r.successful for r in results)
    assert len(_events(fresh, REPORT)) == 2
    assert [m["message"] for m in _inbox(fresh, "+14255550102")] == ["async hello"]


# -- api-version, malformed input --------------------------------------------------------------


# The SMS SDK 1.1 always sends api-version 2021-03-07 (it has no api_version option), so other
# versions are exercised with raw signed requests.
@pytest.mark.parametrize(
    "version, status",
    [
        ("2021-03-07", 202),
        ("2024-01-02", 202),
        ("2025-09-17", 202),
        ("2026-01-23", 202),
        ("2020-08-20-preview", 202),
        ("2022-07-07", 400),
        ("2025-05-29-preview", 400),
    ],
)
def test_sms_api_versions(fresh, version, status):
    key = key_of(connection_string(fresh))
    got, body, _ = signed(fresh.doc, key, "POST", f"/sms?api-version={version}", sms_body([PHONE]))
    assert got == status, body
    if status == 400:
        assert body["error"]["code"] == "UnsupportedApiVersion"
        assert f"does not support the API version '{version}'" in body["error"]["message"]
    else:
        assert body["value"][0]["successful"]


@pytest.mark.parametrize(
    "body, code",
    [
        (b"not json", "InvalidRequestBody"),
        (b"", "InvalidRequestBody"),
        (b'"a string"', "InvalidRequestBody"),
        (json.dumps({"from": SENDER, "message": "x"}).encode(), "ValidationError"),
        (
            json.dumps({"from": SENDER, "message": 5, "smsRecipients": [{"to": PHONE}]}).encode(),
            "ValidationError",
        ),
        (
            json.dumps({"from": SENDER, "message": "x", "smsRecipients": "+1"}).encode(),
            "ValidationError",
        ),
        (
            json.dumps(
                {
                    "from": SENDER,
                    "message": "x",
                    "smsRecipients": [{"to": PHONE}],
                    "smsSendOptions": {"enableDeliveryReport": "yes"},
                }
            ).encode(),
            "ValidationError",
        ),
    ],
)
def test_malformed_send_requests_are_400_never_500(fresh, body, code):
    key = key_of(connection_string(fresh))
    status, err, _ = signed(fresh.doc, key, "POST", "/sms?api-version=2021-03-07", body)
    assert status == 400, err
    assert err["error"]["code"] == code


def test_recipient_without_repeatability_and_non_string_to(fresh):
    key = key_of(connection_string(fresh))
    body = {"from": SENDER, "message": "x", "smsRecipients": [{"to": PHONE}, {"to": 14255550102}]}
    status, result, _ = signed(fresh.doc, key, "POST", "/sms?api-version=2021-03-07", body)
    assert status == 202
    first, second = result["value"]
    assert first["successful"] and "repeatabilityResult" not in first
    assert second == {
        "to": "14255550102",
        "httpStatusCode": 400,
        "errorMessage": "Invalid To phone number format.",
        "successful": False,
    }


# -- limits and faults ------------------------------------------------------------------------


def test_toll_free_number_is_limited_to_200_message_units_a_minute(fresh):
    # retry_total=0: the SDK retries a 429 four times with back-off (~5 s); the 429 itself is
    # what this test is about.
    client = SmsClient.from_connection_string(connection_string(fresh), retry_total=0)
    phones = [f"+1425555{i:04d}" for i in range(100)]
    assert all(r.successful for r in client.send(SENDER, phones, "1"))
    assert all(r.successful for r in client.send(SENDER, phones, "2"))
    with pytest.raises(HttpResponseError) as e:
        client.send(SENDER, PHONE, "3")
    assert e.value.status_code == 429 and e.value.error.code == "TooManyRequests"
    retry_after = int(e.value.response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert "200 message units per minute" in e.value.error.message
    assert _inbox(fresh, PHONE) == []
    fresh("POST", "/_sandbox/faults/unlimited", {})
    assert client.send(SENDER, PHONE, "load test")[0].successful


def test_throttle_fault_answers_429_with_retry_after_for_n_calls(fresh):
    # retry_total=0, as above: no slow SDK retries of the 429s.
    client = SmsClient.from_connection_string(connection_string(fresh), retry_total=0)
    fresh("POST", "/_sandbox/faults/throttle", {"count": 2, "retry_after": 7})
    for _ in range(2):
        with pytest.raises(HttpResponseError) as e:
            client.send(SENDER, PHONE, "x")
        assert e.value.status_code == 429 and e.value.response.headers["Retry-After"] == "7"
        assert e.value.error.code == "TooManyRequests"
    assert client.send(SENDER, PHONE, "x")[0].successful
    assert len(_inbox(fresh, PHONE)) == 1


def test_unavailable_fault_answers_503_and_the_sdk_retry_recovers(fresh):
    client = SmsClient.from_connection_string(connection_string(fresh), retry_total=0)
    fresh("POST", "/_sandbox/faults/unavailable", {"count": 1})
    with pytest.raises(HttpResponseError) as e:
        client.send(SENDER, PHONE, "x")
    assert e.value.status_code == 503 and e.value.error.code == "ServiceUnavailable"
    # With its default policy the SDK retries a 503 and the repeatability id stays the same.
    fresh("POST", "/_sandbox/faults/unavailable", {"count": 1})
    retrying = SmsClient.from_connection_string(connection_string(fresh), retry_backoff_factor=0.01)
    [result] = retrying.send(SENDER, PHONE, "y")
    assert result.successful and len(_inbox(fresh, PHONE)) == 1


def test_fault_control_routes_validate_and_list(fresh):
    listed = fresh("GET", "/_sandbox/faults")
    assert listed["faults"] == {} and "role_propagation" in listed["known"]
    with pytest.raises(Exception, match="Unknown fault"):
        fresh("POST", "/_sandbox/faults/meteor", {})
    with pytest.raises(Exception, match="no parameter 'size'"):
        fresh("POST", "/_sandbox/faults/throttle", {"size": 3})
    with pytest.raises(Exception, match="needs the parameter 'seconds'"):
        fresh("POST", "/_sandbox/faults", {"name": "clock_skew", "params": {}})
    fresh(
        "POST",
        "/_sandbox/faults",
        {"name": "mi_slow", "params": {"seconds": 1, "hosts": ["vm-tutorial"]}},
    )
    assert fresh("GET", "/_sandbox/faults")["faults"] == {
        "mi_slow": {"seconds": 1, "hosts": ["vm-tutorial"]}
    }
    assert fresh("DELETE", "/_sandbox/faults")["faults"] == {}


def test_control_routes_need_the_secret(sandbox):
    from tests.conftest import https_json

    for method, path in (
        ("GET", f"/_sandbox/inbox/{PHONE}"),
        ("GET", "/_sandbox/events"),
        ("GET", "/_sandbox/faults"),
        ("GET", "/_sandbox/acs/connection-string"),
    ):
        status, body = https_json(sandbox, method, path)
        assert status == 401 and body["error"]["code"] == "Unauthorized"


# -- the command line -------------------------------------------------------------------------


def test_cli_inbox_reply_and_fault(sms, fresh, sandbox_settings):
    env = dict(os.environ, SANDBOX_STATE_DIR=str(sandbox_settings.state_dir))

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "sandbox", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    sms.send(SENDER, PHONE, "hello from the CLI test")
    out = cli("inbox", PHONE)
    assert "1 message(s) for +14255550101" in out and "hello from the CLI test" in out
    assert "now opted out" in cli("reply", PHONE, "STOP")
    assert fresh("GET", "/_sandbox/events?type=" + RECEIVED)["count"] == 1
    assert "fault throttle set" in cli(
        "fault", "set", "throttle", "--param", "count=3", "--param", "retry_after=2"
    )
    assert fresh("GET", "/_sandbox/faults")["faults"]["throttle"] == {"count": 3, "retry_after": 2}
    cli("fault", "set", "mi_unreachable", "--param", "hosts=vm-tutorial,func-tutorial")
    assert fresh("GET", "/_sandbox/faults")["faults"]["mi_unreachable"] == {
        "hosts": ["vm-tutorial", "func-tutorial"]
    }
    assert "throttle" in cli("fault", "list")
    cli("fault", "clear", "throttle")
    assert list(fresh("GET", "/_sandbox/faults")["faults"]) == ["mi_unreachable"]
    cli("fault", "clear")
    assert "no fault set" in cli("fault", "list")


def test_message_ids_are_unique(sms, fresh):
    ids = {r.message_id for _ in range(5) for r in sms.send(SENDER, [PHONE, "+14255550102"], "u")}
    assert len(ids) == 10 and all(MESSAGE_ID.fullmatch(i) for i in ids)
    assert uuid.UUID(next(iter(ids))[-41:-5])
