"""Sending SMS: per-recipient outcomes, phones' inboxes, opt-outs and Event Grid events.

Plain classes over the store. Delivery is simulated at once: every accepted message to a phone
that has not opted out lands in that phone's inbox (any E.164 number can receive; the learner
phones are simply the seeded ones), and, when asked for, a delivery report is recorded as the
Event Grid event ``Microsoft.Communication.SMSDeliveryReportReceived`` immediately.

Decisions where the service's behaviour is not published (documented in sandbox/README.md):
  * repeatability: a ``repeatabilityRequestId`` is remembered per resource; sending it again
    returns the first result again (``repeatabilityResult: "accepted"``) without a second
    delivery;
  * segments: GSM-7 text is 160 characters in one segment and 153 per segment when
    concatenated; anything else is UCS-2, 70 UTF-16 units in one segment and 67 when
    concatenated (the GSM standard values);
  * opt-out keywords for the toll-free sender: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT opt
    out; START, UNSTOP opt back in. Sends to an opted-out phone are accepted (202, successful)
    and fail in the delivery report with "Sender blocked for given recipient." (code 4007).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from sandbox import clock
from sandbox.acs.errors import AcsError, invalid

MESSAGE_KIND = "sms_message"
REPEAT_KIND = "sms_repeatability"
OPTOUT_KIND = "sms_optout"
EVENT_KIND = "event_grid_event"

MAX_RECIPIENTS = 100
MAX_MESSAGE_LENGTH = 2048
# ASCII digits only, whole string: ``\d`` would take any script's digits and ``$`` a final newline.
E164 = re.compile(r"\+[1-9][0-9]{6,14}", re.ASCII)
# A ``to`` with letters in it is no phone number at all and fails the whole request (Azure's
# live test since 2023); anything else that is not valid E.164 fails only its own item.
REGION_SUFFIX = {"United States": "noam"}
# North America has no area code 555: a sender there cannot exist anywhere. Azure's recorded answer
# for such a sender (+15550000000) is a 401 ``InternalError``, not the ``Unauthorized`` a real but
# unowned number gets.
NO_SUCH_NUMBER = re.compile(r"\+1555[0-9]{7}", re.ASCII)

DELIVERY_REPORT = "Microsoft.Communication.SMSDeliveryReportReceived"
SMS_RECEIVED = "Microsoft.Communication.SMSReceived"
OPT_OUT_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
OPT_IN_WORDS = {"START", "UNSTOP"}
BLOCKED = "Sender blocked for given recipient."
BAD_TO = "Invalid To phone number format."
BAD_FIRST_SENT = (
    "Request sent with Invalid DateTime value for repeatability-first-sent. "
    "Expected is DateTime ,RFC1123 pattern."
)

_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€\f")


def segments(message: str) -> tuple[str, int]:
    """(encoding, segment count) of a message, as a carrier would split it."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in message):
        units = sum(2 if c in _GSM7_EXTENDED else 1 for c in message)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        units = len(message.encode("utf-16-le")) // 2
        single, part, encoding = 70, 67, "UCS-2"
    if units <= single:
        return encoding, 1
    return encoding, -(-units // part)


def _stamp(ts: float) -> str:
    """ISO time with 7 fractional digits and Z, as Event Grid data carries it."""
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0Z"


def _event_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def is_e164(value: Any) -> bool:
    return isinstance(value, str) and E164.fullmatch(value) is not None


def message_id(prefix: str, ts: float, region: str = "") -> str:
    """``Outgoing_<yyyyMMddHHmmss><guid>_noam`` (``Incoming_`` without a region): the form the
    SMS logs document, the suffix naming the resource's data location."""
    suffix = f"_{region}" if region else ""
    return f"{prefix}_{datetime.fromtimestamp(ts, timezone.utc):%Y%m%d%H%M%S}{uuid.uuid4()}{suffix}"


def event_topic(resource_id: str) -> str:
    """The Event Grid ``topic`` as the published events write it: the provider part lower-case
    (``.../providers/microsoft.communication/communicationservices/<name>``)."""
    head, sep, tail = resource_id.partition("/providers/")
    provider, _, name = tail.rpartition("/")
    return f"{head}{sep}{provider.lower()}/{name}" if sep else resource_id


class SmsService:
    """The SMS side of one Communication Services resource."""

    def __init__(self, store, resource: dict[str, Any]) -> None:
        self.store = store
        self.resource = resource

    @property
    def senders(self) -> list[str]:
        return list(self.resource.get("sender_numbers", []))

    # -- validation --------------------------------------------------------------------------

    def validate(self, body: Any) -> tuple[str, list[dict[str, Any]], str, dict[str, Any]]:
        """(from, recipients, message, options) or the request-level refusal."""
        if not isinstance(body, dict):
            raise AcsError(400, "InvalidRequestBody", "The request body must be a JSON object.")
        missing = [f for f in ("from", "smsRecipients", "message") if f not in body]
        if missing:
            raise invalid(f"The request is missing required field(s): {', '.join(missing)}.")
        sender, recipients, message = body["from"], body["smsRecipients"], body["message"]
        options = body.get("smsSendOptions") or {}
        if not isinstance(sender, str) or not isinstance(message, str):
            raise invalid("'from' and 'message' must be strings.")
        if not isinstance(recipients, list) or not all(isinstance(r, dict) for r in recipients):
            raise invalid("'smsRecipients' must be a list of objects with a 'to' number.")
        if not 1 <= len(recipients) <= MAX_RECIPIENTS:
            raise invalid(
                f"A message must have between 1 and {MAX_RECIPIENTS} recipients; "
                f"got {len(recipients)}."
            )
        if len(message) > MAX_MESSAGE_LENGTH:
            raise invalid(
                f"The message is {len(message)} characters long; "
                f"the maximum is {MAX_MESSAGE_LENGTH}."
            )
        if not isinstance(options, dict) or not isinstance(
            options.get("enableDeliveryReport", False), bool
        ):
            raise invalid("'smsSendOptions.enableDeliveryReport' must be true or false.")
        for recipient in recipients:
            to = recipient.get("to")
            if isinstance(to, str) and any(c.isalpha() for c in to):
                raise AcsError(
                    400,
                    "BadRequest",
                    BAD_TO,
                    diagnosis=f"recipient {to!r} has letters in it, so the whole request fails "
                    "(a number that is merely not E.164 fails only its own item).",
                )
        if sender not in self.senders:
            owned = ", ".join(self.senders) or "(none)"
            if not is_e164(sender) or NO_SUCH_NUMBER.fullmatch(sender):
                raise AcsError(
                    401,
                    "InternalError",
                    "The server encountered an internal error.",
                    diagnosis=f"'from' {sender!r} is not a phone number this resource could own; "
                    f"it owns: {owned}.",
                )
            raise AcsError(
                401,
                "Unauthorized",
                "",
                diagnosis=f"'from' number '{sender}' is not a number of this Communication "
                f"Services resource; send from one it owns: {owned}.",
            )
        return sender, recipients, message, options

    # -- sending -----------------------------------------------------------------------------

    def send(self, body: Any, caller_id: str) -> list[dict[str, Any]]:
        """The per-recipient items of a 202 answer (call ``validate`` first for the 4xx)."""
        sender, recipients, message, options = self.validate(body)
        report = options.get("enableDeliveryReport", False)
        tag = options.get("tag")
        encoding, parts = segments(message)
        items = []
        with self.store.transaction():
            for recipient in recipients:
                items.append(
                    self._one(recipient, sender, message, report, tag, encoding, parts, caller_id)
                )
        return items

    def _one(
        self,
        recipient: dict[str, Any],
        sender: str,
        message: str,
        report: bool,
        tag: Any,
        encoding: str,
        parts: int,
        caller_id: str,
    ) -> dict[str, Any]:
        to = recipient.get("to")
        to_text = to if isinstance(to, str) else str(to)
        request_id = recipient.get("repeatabilityRequestId")
        first_sent = recipient.get("repeatabilityFirstSent")
        if request_id is not None:
            if first_sent is not None and not _rfc1123(first_sent):
                return {
                    "to": to_text,
                    "httpStatusCode": 400,
                    "repeatabilityResult": "rejected",
                    "errorMessage": BAD_FIRST_SENT,
                    "successful": False,
                }
            earlier = self.store.get(REPEAT_KIND, str(request_id))
            if earlier is not None:
                return earlier["item"]
        if not is_e164(to):
            return {
                "to": to_text,
                "httpStatusCode": 400,
                "errorMessage": BAD_TO,
                "successful": False,
            }
        now = clock.now()
        region = REGION_SUFFIX.get(str(self.resource.get("data_location", "")), "")
        msg_id = message_id("Outgoing", now, region)
        blocked = self.store.get(OPTOUT_KIND, _optout_key(sender, to)) is not None
        self.store.put(
            MESSAGE_KIND,
            msg_id,
            {
                "messageId": msg_id,
                "from": sender,
                "to": to,
                "message": message,
                "sent_at": now,
                "receivedTimestamp": _stamp(now),
                "encoding": encoding,
                "segments": parts,
                "status": "Failed" if blocked else "Delivered",
                "statusDetails": BLOCKED if blocked else "No error.",
                "tag": tag,
                "sent_by": caller_id,
            },
        )
        if report:
            self._delivery_report(msg_id, sender, to, now, blocked, parts, tag)
        item = {"to": to, "messageId": msg_id, "httpStatusCode": 202, "successful": True}
        if request_id is not None:
            item["repeatabilityResult"] = "accepted"
            self.store.put(REPEAT_KIND, str(request_id), {"item": item, "at": now})
        return item

    def _delivery_report(
        self, msg_id: str, sender: str, to: str, now: float, blocked: bool, parts: int, tag: Any
    ) -> None:
        data: dict[str, Any] = {
            "MessageId": msg_id,
            "From": sender.lstrip("+"),
            "To": to,
            "DeliveryStatus": "Failed" if blocked else "Delivered",
            "DeliveryStatusDetails": BLOCKED if blocked else "No error.",
            "ReceivedTimestamp": _stamp(now),
            "DeliveryAttempts": [
                {
                    "Timestamp": _stamp(now),
                    "SegmentsSucceeded": 0 if blocked else parts,
                    "SegmentsFailed": parts if blocked else 0,
                }
            ],
        }
        if tag is not None:
            data["Tag"] = tag
        self._event(msg_id, DELIVERY_REPORT, f"/phonenumber/{sender.lstrip('+')}", data, now)

    def _event(self, event_id: str, event_type: str, subject: str, data: dict, now: float) -> None:
        self.store.put(
            EVENT_KIND,
            event_id,
            {
                "id": event_id,
                "topic": event_topic(self.resource["id"]),
                "subject": subject,
                "data": data,
                "eventType": event_type,
                "dataVersion": "1.0",
                "metadataVersion": "1",
                "eventTime": _event_time(now),
            },
        )

    # -- the phones' side --------------------------------------------------------------------

    def inbox(self, phone: str | None) -> list[dict[str, Any]]:
        """Messages delivered to a phone (or to every phone when None), oldest first."""
        return [
            {
                k: m[k]
                for k in (
                    "messageId",
                    "from",
                    "to",
                    "message",
                    "receivedTimestamp",
                    "segments",
                    "tag",
                )
            }
            for m in self.store.list(
                MESSAGE_KIND, lambda m: phone in (None, m["to"]) and m["status"] == "Delivered"
            )
        ]

    def reply(self, phone: str, to_sender: str | None, text: Any) -> dict[str, Any]:
        """A phone texts a sender number: an ``SMSReceived`` event; STOP/START change opt-out."""
        if not is_e164(phone):
            raise invalid(f"'{phone}' is not an E.164 phone number (e.g. +14255550101).")
        sender = to_sender or (self.senders[0] if self.senders else None)
        if sender not in self.senders:
            raise AcsError(
                404,
                "NotFound",
                f"'{sender}' is not a number of this resource; "
                f"reply to one of: {', '.join(self.senders)}.",
            )
        if not isinstance(text, str) or not text:
            raise invalid("'message' must be a non-empty string.")
        now = clock.now()
        msg_id = message_id("Incoming", now)
        word = text.strip().upper()
        with self.store.transaction():
            opted_out = None
            if word in OPT_OUT_WORDS:
                self.store.put(
                    OPTOUT_KIND,
                    _optout_key(sender, phone),
                    {"from": sender, "to": phone, "since": _event_time(now)},
                )
                opted_out = True
            elif word in OPT_IN_WORDS:
                self.store.delete(OPTOUT_KIND, _optout_key(sender, phone))
                opted_out = False
            data = {
                "MessageId": msg_id,
                "From": phone,
                "To": sender,
                "Message": text,
                "ReceivedTimestamp": _stamp(now),
                "SegmentCount": segments(text)[1],
            }
            self._event(msg_id, SMS_RECEIVED, f"/phonenumber/{sender.lstrip('+')}", data, now)
        result: dict[str, Any] = {"messageId": msg_id, "from": phone, "to": sender}
        if opted_out is not None:
            result["optedOut"] = opted_out
        return result

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return self.store.list(
            EVENT_KIND, (lambda e: e["eventType"] == event_type) if event_type else None
        )

    def opted_out(self, sender: str, phone: str) -> bool:
        return self.store.get(OPTOUT_KIND, _optout_key(sender, phone)) is not None


def _optout_key(sender: str, phone: str) -> str:
    return f"{sender}|{phone}"


def _rfc1123(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    return parsed is not None and value.rstrip().endswith("GMT")
