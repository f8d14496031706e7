"""Create a Communication Services user, give it a token, revoke it, delete the user: the
Identity API with this app's managed identity, as a back end that issues tokens to its clients.

The identity needs a role on the ACS resource (see the notebooks). One credential per process,
reused by every client (see authenticate.py); the user this creates is deleted before it ends,
even when a call fails, because ACS cannot list users to find forgotten ones later.

Settings (environment variables):
    ACS_ENDPOINT             https://<resource>.communication.azure.com/
    AZURE_CLIENT_ID          optional: a user-assigned identity's client id (else system-assigned)
    AZURE_TOKEN_CREDENTIALS  optional: use DefaultAzureCredential limited to these credentials

Run: ``python identity_api.py`` (see README.md). Prints ids and expiry times, never a token.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

from azure.communication.identity import CommunicationIdentityClient
from azure.core.exceptions import HttpResponseError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential


def make_credential() -> ManagedIdentityCredential | DefaultAzureCredential:
    """The process's one credential (see authenticate.py)."""
    if os.environ.get("AZURE_TOKEN_CREDENTIALS"):
        return DefaultAzureCredential(require_envvar=True)
    return ManagedIdentityCredential(client_id=os.environ.get("AZURE_CLIENT_ID"))


def main() -> int:
    endpoint = os.environ.get("ACS_ENDPOINT")
    if not endpoint:
        print("set ACS_ENDPOINT to your resource's endpoint", file=sys.stderr)
        return 2
    with make_credential() as credential:
        client = CommunicationIdentityClient(endpoint, credential)
        try:
            user, token = client.create_user_and_token(scopes=["chat", "voip"])
        except HttpResponseError as error:  # ClientAuthenticationError too: no token, or a 401
            reason = (error.message or str(error)).splitlines()[0]
            print(f"refused ({error.status_code or 'no token'}): {reason}", file=sys.stderr)
            return 1
        try:
            print("created user:", user.properties["id"])
            print("its first token expires:", token.expires_on)
            short = client.get_token(user, scopes=["chat"], token_expires_in=timedelta(hours=1))
            print("a one-hour chat token expires:", short.expires_on)
            client.revoke_tokens(user)
            print("revoked its tokens")
        finally:
            client.delete_user(user)
            print("deleted user:", user.properties["id"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
