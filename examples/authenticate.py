"""Get a Communication Services token as this app's managed identity, and show what it says.

Deployed code uses one deterministic credential: ``ManagedIdentityCredential``, not the whole
``DefaultAzureCredential`` chain, which would quietly sign in as whoever ran ``az login`` on
the machine if the identity were off. One credential per process, reused: it caches its token
and renews it before expiry, so a thousand calls cost one token request.

Settings (environment variables):
    AZURE_CLIENT_ID          optional: a user-assigned identity's client id (else system-assigned)
    AZURE_TOKEN_CREDENTIALS  optional: use DefaultAzureCredential limited to these credentials
                             instead ("ManagedIdentityCredential"; "dev" on a developer machine)

Run: ``python authenticate.py`` on the VM (see README.md). Prints claims, never the token.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time

from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

SCOPE = "https://communication.azure.com//.default"  # the ACS resource, as the ACS SDKs ask


def make_credential() -> ManagedIdentityCredential | DefaultAzureCredential:
    """The process's one credential (see the module docstring)."""
    if os.environ.get("AZURE_TOKEN_CREDENTIALS"):
        return DefaultAzureCredential(require_envvar=True)
    return ManagedIdentityCredential(client_id=os.environ.get("AZURE_CLIENT_ID"))


def claims(token: str) -> dict:
    """The token's payload, decoded but not verified: for reading, never for trusting."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def main() -> int:
    with make_credential() as credential:
        try:
            first = credential.get_token(SCOPE)
            again = credential.get_token(SCOPE)
        except ClientAuthenticationError as error:
            print(f"no token: {error.message.splitlines()[0]}", file=sys.stderr)
            return 1
    seen = claims(first.token)
    print("audience (aud):", seen["aud"])
    print("issuer (iss):", seen["iss"])
    print("object id (oid):", seen["oid"])
    print("managed identity (xms_mirid):", seen.get("xms_mirid", "-"))
    print(f"expires in: {(first.expires_on - time.time()) / 3600:.1f} h")
    print("second call served from the credential's cache:", again.token == first.token)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
