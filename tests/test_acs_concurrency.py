"""Many callers at once, through the SDKs: nothing lost, nothing sent twice, every count exact;
and the data plane's state survives a restart of the sandbox."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.sms import SmsClient
from azure.communication.sms.aio import SmsClient as AsyncSmsClient

from sandbox import client
from sandbox.config import Settings
from tests.acs_support import PHONE, SENDER, connection_string

SENDERS = 60


pytestmark = pytest.mark.usefixtures("trust_sandbox_ca")


def _phone(i: int) -> str:
    return f"+1206555{i:04d}"


def test_sixty_async_senders_lose_nothing_and_duplicate_nothing(fresh):
    conn = connection_string(fresh)

    async def sender(i: int) -> list[str]:
        # One client per sender, as separate processes would have; each sends three messages:
        # two to its own phone and one to the shared learner phone.
        async with AsyncSmsClient.from_connection_string(conn) as sms:
            ids = []
            for n, to in enumerate((_phone(i), PHONE, _phone(i))):
                [result] = await sms.send(SENDER, to, f"sender {i} message {n}")
                assert result.successful, result.error_message
                ids.append(result.message_id)
            return ids

    async def main() -> list[list[str]]:
        return await asyncio.gather(*(sender(i) for i in range(SENDERS)))

    ids = [m for batch in asyncio.run(main()) for m in batch]
    assert len(ids) == len(set(ids)) == SENDERS * 3  # 180 units: within 200/min for the number
    everything = fresh("GET", "/_sandbox/inbox")
    assert everything["count"] == SENDERS * 3
    assert everything["phones"] == {PHONE: SENDERS, **{_phone(i): 2 for i in range(SENDERS)}}
    by_phone: dict[str, list[str]] = {}
    for m in everything["messages"]:
        by_phone.setdefault(m["to"], []).append(m["message"])
    assert sorted(by_phone[PHONE]) == sorted(f"sender {i} message 1" for i in range(SENDERS))
    for i in range(SENDERS):
        # Each sender awaited its first message before its last: per-phone order is kept.
        assert by_phone[_phone(i)] == [f"sender {i} message 0", f"sender {i} message 2"]
    assert sorted(m["messageId"] for m in everything["messages"]) == sorted(ids)
    sent = [e for e in fresh.log_after(0) if e["path"] == "/sms" and e["status"] == 202]
    assert len(sent) == SENDERS * 3


def test_fifty_threads_with_one_shared_sync_client_each_kind(fresh):
    conn = connection_string(fresh)
    identity = CommunicationIdentityClient.from_connection_string(conn)
    sms = SmsClient.from_connection_string(conn)

    def work(i: int) -> tuple[str, str]:
        user, token = identity.create_user_and_token(["chat"])
        [result] = sms.send(SENDER, _phone(i), f"thread {i}", enable_delivery_report=True)
        assert result.successful
        return user.properties["id"], result.message_id

    with ThreadPoolExecutor(max_workers=50) as pool:
        done = list(pool.map(work, range(50)))
    users, messages = zip(*done, strict=True)
    assert len(set(users)) == 50 and len(set(messages)) == 50
    reports = fresh(
        "GET", "/_sandbox/events?type=Microsoft.Communication.SMSDeliveryReportReceived"
    )
    assert sorted(e["id"] for e in reports["events"]) == sorted(messages)
    assert fresh("GET", "/_sandbox/inbox")["phones"] == {_phone(i): 1 for i in range(50)}


def test_concurrent_retries_of_one_repeatable_request_send_once(fresh):
    """The SDK resends the same repeatabilityRequestId when it retries; many copies at once must
    still deliver one message."""
    import json

    from tests.acs_support import key_of, signed, sms_body

    key = key_of(connection_string(fresh))
    body = json.dumps(sms_body([PHONE], "exactly once")).encode()
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(
            pool.map(
                lambda _: signed(fresh.doc, key, "POST", "/sms?api-version=2021-03-07", body),
                range(20),
            )
        )
    assert {a[0] for a in answers} == {202}
    assert len({a[1]["value"][0]["messageId"] for a in answers}) == 1
    assert fresh("GET", f"/_sandbox/inbox/{PHONE}")["count"] == 1


@pytest.fixture
def own_sandbox(tmp_path):
    settings = Settings(state_dir=tmp_path / "state", https_port=0, mi_port=0)
    yield settings
    client.stop(settings)


def test_users_tokens_and_inbox_survive_a_restart(own_sandbox, monkeypatch):
    settings = own_sandbox
    doc = client.start(settings)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", doc["ca_bundle"])
    conn = client.control(settings, "GET", "/_sandbox/acs/connection-string")["connection_string"]
    identity = CommunicationIdentityClient.from_connection_string(conn)
    user, token = identity.create_user_and_token(["chat"])
    SmsClient.from_connection_string(conn).send(SENDER, PHONE, "before the restart")
    client.control(settings, "POST", f"/_sandbox/phones/{PHONE}/reply", {"message": "STOP"})

    client.stop(settings)
    doc = client.start(settings)  # a new process on new ports, same state folder
    conn = client.control(settings, "GET", "/_sandbox/acs/connection-string")["connection_string"]
    identity = CommunicationIdentityClient.from_connection_string(conn)

    check = client.control(
        settings, "POST", "/_sandbox/acs/check-user-token", {"token": token.token}
    )
    assert check == {"valid": True, "reason": "valid"}
    assert identity.get_token(user, ["voip"]).token  # the identity is still known
    inbox = client.control(settings, "GET", f"/_sandbox/inbox/{PHONE}")
    assert [m["message"] for m in inbox["messages"]] == ["before the restart"]
    [blocked] = SmsClient.from_connection_string(conn).send(SENDER, PHONE, "after STOP")
    assert blocked.successful
    assert client.control(settings, "GET", f"/_sandbox/inbox/{PHONE}")["count"] == 1  # opt-out kept
