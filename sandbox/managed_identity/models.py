"""Managed-identity token issuing for the simulated hosts, without HTTP.

A host's identity endpoint answers only for identities attached to that host (its system-assigned
identity, or a user-assigned one picked by client id, object id or resource id), exactly like
IMDS and the App Service endpoint do. Which identities a host has is written by Resource Manager
(sandbox/arm/models.py) into the host document and the ``principal`` documents; this module only
reads them, so enabling an identity through the management SDK is visible on the very next token
request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sandbox import clock, world
from sandbox.entra.tokens import (
    CLOCK_SKEW_LEEWAY,
    MANAGED_IDENTITY_TOKEN_LIFETIME,
    TokenService,
    normalize_resource,
)
from sandbox.store import Store

IMDS = "imds"
APP_SERVICE = "appservice"

# Resources whose service principal exists in the sandbox tenant; anything else is AADSTS500011.
KNOWN_RESOURCES = (
    "https://communication.azure.com",
    "https://management.azure.com",
    "https://management.core.windows.net",
)

# Query parameters that pick a user-assigned identity, per endpoint style, and what they match.
SELECTORS = {
    IMDS: {"client_id": "client_id", "object_id": "object_id", "msi_res_id": "resource_id"},
    APP_SERVICE: {
        "client_id": "client_id",
        "principal_id": "object_id",
        "object_id": "object_id",
        "mi_res_id": "resource_id",
    },
}


# The endpoint hands out its cached token again until it has less than this left (our choice:
# no public source gives the margin; it must exceed the 5-6 minutes before expiry at which
# azure-core and MSAL ask again, or they would be handed the same nearly expired token).
CACHE_REFRESH_MARGIN = 600
# Entra backdates a managed identity's iat/nbf by five minutes (exp - iat = 86700 s, 2025 IMDS
# capture, for a 86400 s life).
BACKDATE = CLOCK_SKEW_LEEWAY
TENANT_CREATED = 1767225600  # xms_tcdt: when the sandbox's tenant was "created" (2026-01-01)

# What each endpoint returns on success: IMDS (2025 capture: all strings, no refresh_token) and
# App Service api-version 2019-08-01 (docs example; Azure/azure-sdk-for-python#11346).
IMDS_FIELDS = ("access_token", "client_id", "expires_in", "expires_on", "ext_expires_in",
               "not_before", "resource", "token_type")  # fmt: skip
APP_SERVICE_FIELDS = ("access_token", "expires_on", "resource", "token_type", "client_id")
# App Service's answer when the request names no identity it has (or none, and the app has no
# system-assigned identity): statusCode 400 with this message.
APP_SERVICE_NOT_FOUND = "Unable to load the proper Managed Identity."


def mirid(resource_id: str) -> str:
    """``xms_mirid`` as Azure casts it: ``/resourcegroups/`` in lower case, the rest as is."""
    return re.sub(r"/resourcegroups/", "/resourcegroups/", resource_id, flags=re.IGNORECASE)


class IdentityRequestError(Exception):
    """A refusal the endpoint answers with 4xx; ``error`` is the OAuth error code (IMDS shape)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class NoIdentityEndpoint(IdentityRequestError):
    """The machine has no identity endpoint at all (the developer's laptop, or no such host).

    A real laptop's IMDS address does not answer, and inside DefaultAzureCredential the SDK's
    one-second probe gives up at once. Here the SDK is pointed at the listener (so nothing can
    leave loopback) and its probe is off, so a refused connection would cost ~5 s of retries per
    attempt. Instead the listener answers at once with an empty 400, which the SDK reports in
    the laptop's words: "ManagedIdentityCredential authentication unavailable, no response from
    the IMDS endpoint." (measured: 0.03 s, against 4.8 s for a refused connection).
    """

    def __init__(self, name: str) -> None:
        super().__init__(400, "", f"'{name}' has no managed-identity endpoint (no Azure host)")


@dataclass(frozen=True)
class AttachedIdentity:
    """One identity a host can get tokens for."""

    kind: str  # "SystemAssigned" or "UserAssigned"
    object_id: str
    client_id: str
    resource_id: str  # the host's id (system-assigned) or the identity's own id
    name: str


def attached_identities(store: Store, host: dict[str, Any]) -> list[AttachedIdentity]:
    """The identities a host document says it has, resolved to their principals."""
    identity = host.get("identity") or {}
    found: list[AttachedIdentity] = []
    principal_id = identity.get("principal_id")
    if principal_id:
        p = store.get("principal", principal_id)
        if p:
            found.append(
                AttachedIdentity(
                    "SystemAssigned", p["object_id"], p["app_id"], host["resource_id"], host["name"]
                )
            )
    for rid in identity.get("user_assigned", []):
        uai = store.get("user_assigned_identity", rid.lower())
        p = store.get("principal", uai["principal_id"]) if uai else None
        if p:
            found.append(
                AttachedIdentity(
                    "UserAssigned", p["object_id"], p["app_id"], uai["id"], uai["name"]
                )
            )
    return found


def select_identity(
    identities: list[AttachedIdentity], selector: tuple[str, str] | None, style: str = IMDS
) -> AttachedIdentity:
    """Pick the identity a request asks for, with the rules of the endpoint's style.

    No selector means the system-assigned identity. IMDS then falls back to the only
    user-assigned one (the docs' FAQ); App Service never does ("Otherwise the token service will
    attempt to obtain a token for a system-assigned identity", overview-managed-identity.md) and
    answers 400 "Unable to load the proper Managed Identity.". A resource id selects a
    user-assigned identity only: the host's own id is not a user-assigned identity.
    """
    if style == APP_SERVICE:
        try:
            return (
                select_identity(identities, selector, IMDS)
                if selector
                else next(i for i in identities if i.kind == "SystemAssigned")
            )
        except (IdentityRequestError, StopIteration):
            raise IdentityRequestError(400, "invalid_request", APP_SERVICE_NOT_FOUND) from None
    if selector is None:
        system = [i for i in identities if i.kind == "SystemAssigned"]
        if system:
            return system[0]
        if len(identities) == 1:
            return identities[0]
        if len(identities) > 1:
            raise IdentityRequestError(
                400,
                "invalid_request",
                "Multiple user assigned identities exist, please specify the clientId / "
                "resourceId of the identity in the token request",
            )
        raise IdentityRequestError(400, "invalid_request", "Identity not found")
    field, value = selector
    for i in identities:
        if field == "resource_id" and i.kind != "UserAssigned":
            continue
        if getattr(i, field).lower() == value.lower():
            return i
    raise IdentityRequestError(400, "invalid_request", "Identity not found")


class ManagedIdentityEndpoints:
    """What every simulated host's identity endpoint does, whatever its style."""

    def __init__(
        self,
        store: Store,
        tokens: TokenService,
        cache: dict[tuple[str, str], tuple[str, int, int]] | None = None,
    ) -> None:
        self.store = store
        self.tokens = tokens
        # (object id, resource) -> (token, nbf, exp). The real endpoints cache tokens too and hand
        # the same one out again; it also spares a signature per request.
        self.cache = {} if cache is None else cache

    def _token_for(self, chosen: AttachedIdentity, resource: str) -> tuple[str, int, int]:
        """The cached token until it is near expiry, else a new one (about 24 hours)."""
        now = int(clock.now())
        key = (chosen.object_id, resource)
        found = self.cache.get(key)
        if found and found[1] <= now and found[2] - now > CACHE_REFRESH_MARGIN:
            return found
        token, exp = self.tokens.access_token(
            tenant_id=world.TENANT_ID,
            audience=resource,
            oid=chosen.object_id,
            appid=chosen.client_id,
            idtyp="app",
            extra={
                "appidacr": "2",
                "xms_mirid": mirid(chosen.resource_id),
                "xms_tcdt": TENANT_CREATED,
            },
            lifetime=MANAGED_IDENTITY_TOKEN_LIFETIME,
            backdate=BACKDATE,
        )
        self.cache[key] = (token, now - BACKDATE, exp)
        return self.cache[key]

    def host(self, name: str) -> dict[str, Any] | None:
        return self.store.get("host", name)

    def check_style(self, name: str, style: str) -> dict[str, Any]:
        """The host document, if the host exists and serves this style of endpoint."""
        host = self.host(name)
        if host is None:
            # No identity endpoint at all (the developer's laptop, or a name that is no host):
            # a 4xx, never a 404/5xx, so the SDKs give up at once instead of retrying.
            if style == IMDS:
                raise NoIdentityEndpoint(name)
            raise IdentityRequestError(400, "invalid_request", "Identity not found")
        if host["endpoint_style"] != style:
            if style == IMDS:
                msg = (
                    f"'{name}' is an App Service host: it has no IMDS endpoint. Its identity "
                    "endpoint is IDENTITY_ENDPOINT (/msi/token) with the X-IDENTITY-HEADER header."
                )
            else:
                msg = (
                    f"'{name}' is a virtual machine: it has no App Service identity endpoint. "
                    "Its identity endpoint is IMDS (/metadata/identity/oauth2/token)."
                )
            raise IdentityRequestError(400, "invalid_request", msg)
        return host

    def selector(self, style: str, query: dict[str, str]) -> tuple[str, str] | None:
        """(field, value) from the query's user-assigned identity parameter, if any."""
        given = [(k, v) for k, v in query.items() if k in SELECTORS[style] and v]
        if len(given) > 1:
            raise IdentityRequestError(
                400,
                "invalid_request",
                "Only one of " + ", ".join(SELECTORS[style]) + " may be given.",
            )
        if not given:
            return None
        key, value = given[0]
        return SELECTORS[style][key], value

    def issue(
        self, host: dict[str, Any], resource: str, selector: tuple[str, str] | None
    ) -> tuple[AttachedIdentity, dict[str, str]]:
        """A token response for ``resource`` for the chosen identity of ``host``."""
        if not resource:
            raise IdentityRequestError(
                400, "invalid_request", "Required audience parameter not specified"
            )
        style = host["endpoint_style"]
        chosen = select_identity(attached_identities(self.store, host), selector, style)
        if normalize_resource(resource) not in KNOWN_RESOURCES:
            raise IdentityRequestError(
                400,
                "invalid_resource",
                f"AADSTS500011: The resource principal named {resource} was not found in the "
                f"tenant named {world.TENANT_ID}. This can happen if the application has not "
                "been installed by the administrator of the tenant or consented to by any user "
                "in the tenant. You might have sent your authentication request to the wrong "
                "tenant.",
            )
        token, nbf, exp = self._token_for(chosen, resource)
        now = int(clock.now())
        # Strings, as both endpoints send them. The SDKs need what each sends: sync IMDS reads
        # expires_in, sync App Service expires_on, async both resource.
        every = {
            "access_token": token,
            "client_id": chosen.client_id,
            "expires_in": str(exp - now),
            "expires_on": str(exp),
            "ext_expires_in": str(exp - now),
            "not_before": str(nbf),
            "resource": resource,
            "token_type": "Bearer",
        }
        fields = APP_SERVICE_FIELDS if style == APP_SERVICE else IMDS_FIELDS
        return chosen, {name: every[name] for name in fields}
