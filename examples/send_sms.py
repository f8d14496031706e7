"""Send an SMS with this app's managed identity, asking for a delivery report.

"Accepted" means ACS took the message, not that it arrived: the delivery report comes later as
an Event Grid event (subscribe to ``Microsoft.Communication.SMSDeliveryReportReceived`` on the
ACS resource). One credential per process, reused (see authenticate.py).

Settings (environment variables):
    ACS_ENDPOINT             https://<resource>.communication.azure.com/
    SMS_FROM_NUMBER          a number the resource leases, E.164 (+18005550100)
    SMS_TO_NUMBER            one or more recipients, E.164, separated by commas
    AZURE_CLIENT_ID          optional: a user-assigned identity's client id (else system-assigned)
    AZURE_TOKEN_CREDENTIALS  optional: use DefaultAzureCredential limited to these credentials

Run: ``python send_sms.py "message text"`` (see README.md).
"""

from __future__ import annotations

import os
import sys

from azure.communication.sms import SmsClient
from azure.core.exceptions import HttpResponseError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential


def make_credential() -> ManagedIdentityCredential | DefaultAzureCredential:
    """The process's one credential (see authenticate.py)."""
    if os.environ.get("AZURE_TOKEN_CREDENTIALS"):
        return DefaultAzureCredential(require_envvar=True)
    return ManagedIdentityCredential(client_id=os.environ.get("AZURE_CLIENT_ID"))


def main(argv: list[str]) -> int:
    settings = {n: os.environ.get(n) for n in ("ACS_ENDPOINT", "SMS_FROM_NUMBER", "SMS_TO_NUMBER")}
    if missing := [name for name, value in settings.items() if not value]:
        print("set " + ", ".join(missing) + " (see the script's docstring)", file=sys.stderr)
        return 2
    recipients = [n.strip() for n in settings["SMS_TO_NUMBER"].split(",") if n.strip()]
    message = " ".join(argv) or "Hello from a managed identity"
    with make_credential() as credential:
        sms = SmsClient(settings["ACS_ENDPOINT"], credential)
        try:
            results = sms.send(
                from_=settings["SMS_FROM_NUMBER"],
                to=recipients,
                message=message,
                enable_delivery_report=True,
                tag="examples/send_sms.py",
            )
        except HttpResponseError as error:  # ClientAuthenticationError too: no token, or a 401
            reason = (error.message or str(error)).splitlines()[0]
            print(f"refused ({error.status_code or 'no token'}): {reason}", file=sys.stderr)
            return 1
    for result in results:
        if result.successful:
            print(f"{result.to}: accepted, message id {result.message_id}")
        else:
            print(f"{result.to}: not sent, {result.http_status_code} {result.error_message}")
    return 0 if all(r.successful for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
