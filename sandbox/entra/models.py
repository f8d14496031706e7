"""Microsoft Entra ID as the tutorial needs it: tenants, clients, grants, device codes.

Plain classes over the store so the behaviour can be tested without HTTP (routes.py is the skin).
Each check mirrors one Entra ID makes, and each refusal is an ``EntraError`` carrying the AADSTS
code, OAuth error and message Entra would send, because learners search for those codes.

Store kinds owned here: ``device_code`` and ``refresh_token``, both keyed by the SHA-256 of the
code or token, so the store never holds one a process could redeem. ``world.reset`` wipes both,
which revokes every sign-in, as a password reset does in Entra ID.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt

from sandbox import clock, world
from sandbox.entra.tokens import (
    CLOCK_SKEW_LEEWAY,
    DEFAULT_USER_ROLE,
    TokenService,
    normalize_resource,
    pairwise_subject,
)
from sandbox.store import Store

DEVICE_CODE_LIFETIME = 900  # what Entra ID gives a device code
DEVICE_CODE_INTERVAL = 1  # Entra says 5; 1 keeps sign-ins (and tests) quick
REFRESH_TOKEN_LIFETIME = 90 * 24 * 3600  # Entra's inactivity limit for refresh tokens
REFRESH_TOKENS_KEPT = 5  # per sign-in; older rotated refresh tokens stop working
ID_TOKEN_LIFETIME = 3600
FEDERATED_TOKEN_LIFETIME = 3600  # a Kubernetes projected service-account token's default
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_REFRESH_TOKEN = "refresh_token"
GRANT_PASSWORD = "password"  # ROPC: Microsoft advises against it; `az login -u -p` still sends it

TENANT_ALIASES = ("organizations", "common")  # multi-tenant endpoints; the sandbox has one tenant
OIDC_SCOPES = ("openid", "profile", "offline_access", "email")
USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud in workshops
USER_CODE_LENGTH = 9

# Resource identifiers (compared without a trailing slash) the sandbox's tenant knows.
KNOWN_RESOURCES = {
    "https://communication.azure.com": "communication",
    "https://management.azure.com": "management",
    "https://management.core.windows.net": "management",
    "https://graph.microsoft.com": "graph",
}
GRAPH = "https://graph.microsoft.com"
COMMUNICATION = "https://communication.azure.com"
ACS_RESOURCE_APP_ID = "632ec9eb-fad7-4cbd-993a-e72973ba2acc"  # the ACS data plane's first-party app

# Microsoft's own public clients that developer tools sign in with (azure-identity's
# _constants.py: the CLI id is also its DEVELOPER_SIGN_ON_CLIENT_ID, used by the interactive and
# device-code credentials; azure-identity's VS Code credential; Azure PowerShell). Every tenant
# knows them. Entra refuses them tokens for Communication Services with AADSTS65002 because ACS
# never preauthorized them (Azure/azure-cli#23485, #26271; Azure/azure-sdk-for-net#35816).
FIRST_PARTY_PUBLIC_CLIENTS = {
    "04b07795-8ddb-461a-bbee-02f9e1bf7b46": "Microsoft Azure CLI",
    "1950a258-227b-4e31-a9cf-717495945fc2": "Microsoft Azure PowerShell",
    "aebc6443-996d-45c2-90f0-388ff96faa56": "Visual Studio Code",
    "872cd9fa-d31f-45e0-9eab-6e460a02d1f1": "Visual Studio",
}
# The fault that lifts the refusal, for the day Microsoft preauthorizes these clients for ACS.
PREAUTHORIZED_FAULT = "cli_preauthorized"


# What the OpenID documents list (panva/wellknown issuers/entra-common for v2.0).
CLAIMS_SUPPORTED_V2 = ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                       "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time",
                       "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash",
                       "c_hash", "email"]  # fmt: skip
CLAIMS_SUPPORTED_V1 = ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                       "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time",
                       "acr", "amr", "nonce", "email", "given_name", "family_name",
                       "nickname"]  # fmt: skip


class EntraError(Exception):
    """A refusal exactly as Entra ID words it: HTTP status, OAuth error, AADSTS code."""

    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.status = status
        self.error = error
        self.code = code
        self.message = message

    @property
    def reason(self) -> str:
        """First sentence, for the request log."""
        return f"AADSTS{self.code}: {self.message.split('. ')[0].rstrip('.')}"

    def body(self, https_url: str, correlation_id: str | None = None) -> dict[str, Any]:
        trace_id = str(uuid.uuid4())
        correlation_id = correlation_id or str(uuid.uuid4())
        stamp = dt.datetime.fromtimestamp(clock.now(), dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%SZ"
        )
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.message}\r\n"
            f"Trace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {stamp}",
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{https_url}/error?code={self.code}",
        }


def missing(parameter: str) -> EntraError:
    return EntraError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{parameter}'.",
    )


def unknown_tenant(segment: str) -> EntraError:
    return EntraError(
        400,
        "invalid_request",
        90002,
        f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud. Check with your subscription administrator, this "
        "may happen if there are no active subscriptions for the tenant.",
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _iso(epoch: Any) -> str:
    """Entra's time format in messages; claims come from callers, so anything may arrive."""
    try:
        return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%m/%d/%Y %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return str(epoch)


@dataclass(frozen=True)
class Tenant:
    id: str
    domain: str
    display_name: str
    segment: str  # as it appeared in the URL
    alias: bool  # reached through organizations/common


@dataclass(frozen=True)
class Client:
    principal: dict[str, Any]
    credential: str | None  # "client-secret", "client-assertion" or None (public client)

    @property
    def app_id(self) -> str:
        return self.principal["app_id"]

    @property
    def public(self) -> bool:
        return self.principal["kind"] == "PublicClient"


@dataclass
class ScopeRequest:
    """What a ``scope`` (v2) or ``resource`` (v1) parameter asks for."""

    resource: str  # identifier as requested: it becomes the token's audience
    scopes: list[str]  # the resource's scopes, as requested
    oidc: set[str] = field(default_factory=set)

    @property
    def granted(self) -> str:
        return " ".join(self.scopes + [s for s in OIDC_SCOPES if s in self.oidc])


class Entra:
    """The sandbox's Entra ID: one tenant, its clients and users, and the grants they use."""

    def __init__(
        self,
        store: Store,
        tokens: TokenService,
        https_url: str,
        faults: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.https_url = https_url.rstrip("/")
        self.faults = {} if faults is None else faults  # the sandbox's live switches

    # -- tenants and metadata ----------------------------------------------------------------

    def tenant(self, segment: str) -> Tenant:
        """Resolve the tenant part of a URL: its id, its domain or a multi-tenant alias."""
        wanted = segment.strip().lower()
        for doc in self.store.list("tenant"):
            if wanted in (doc["id"].lower(), doc["domain"].lower()):
                return Tenant(doc["id"], doc["domain"], doc["display_name"], segment, False)
        if wanted in TENANT_ALIASES:
            doc = self.store.get("tenant", world.TENANT_ID)
            if doc:
                return Tenant(doc["id"], doc["domain"], doc["display_name"], segment, True)
        raise unknown_tenant(segment)

    def openid_configuration(self, segment: str, version: str = "2.0") -> dict[str, Any]:
        """The OpenID document of the v2.0 or the v1.0 endpoint, each with the issuer Entra
        publishes there: ``…/{tenant}/v2.0`` (v2.0 ID tokens) and ``https://sts.windows.net/
        {tenant}/`` (v1.0 tokens, which is what Resource Manager and ACS access tokens are)."""
        tenant = self.tenant(segment)
        # Entra answers a domain with its tenant id, and an alias with a templated issuer.
        part = tenant.segment if tenant.alias else tenant.id
        named = "{tenantid}" if tenant.alias else tenant.id
        base = f"{self.https_url}/{part}"
        v2 = version == "2.0"
        v = "/v2.0" if v2 else ""
        doc: dict[str, Any] = {
            "token_endpoint": f"{base}/oauth2{v}/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery{v}/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        if v2:
            doc.update(
                response_types_supported=["code", "id_token", "code id_token", "id_token token"],
                scopes_supported=["openid", "profile", "email", "offline_access"],
                issuer=self.tokens.v2_issuer(named),
                request_uri_parameter_supported=False,
                userinfo_endpoint=f"{self.https_url}/oidc/userinfo",
            )
        else:
            doc.update(
                response_types_supported=[
                    "code",
                    "id_token",
                    "code id_token",
                    "token id_token",
                    "token",
                ],
                scopes_supported=["openid"],
                issuer=self.tokens.issuer(named),
                microsoft_multi_refresh_token=True,
            )
        doc.update(
            authorization_endpoint=f"{base}/oauth2{v}/authorize",
            device_authorization_endpoint=f"{base}/oauth2{v}/devicecode",
            http_logout_supported=True,
            frontchannel_logout_supported=True,
            end_session_endpoint=f"{base}/oauth2{v}/logout",
            claims_supported=(CLAIMS_SUPPORTED_V2 if v2 else CLAIMS_SUPPORTED_V1),
        )
        if not v2:
            doc.update(
                check_session_iframe=f"{base}/oauth2/checksession",
                userinfo_endpoint=f"{base}/openid/userinfo",
            )
        doc.update(
            kerberos_endpoint=f"{base}/kerberos",
            tenant_region_scope=None if tenant.alias else "NA",
            cloud_instance_name=urlsplit(self.https_url).netloc,
            cloud_graph_host_name="graph.windows.net",
            msgraph_host="graph.microsoft.com",
            rbac_url="https://pas.windows.net",
        )
        return doc

    def keys(self, segment: str, version: str = "2.0") -> dict[str, Any]:
        """The signing keys; the v2.0 keys name the issuer they sign for."""
        tenant = self.tenant(segment)
        if version != "2.0":
            return self.tokens.jwks()
        return self.tokens.jwks(self.tokens.v2_issuer("{tenantid}" if tenant.alias else tenant.id))

    # -- clients -------------------------------------------------------------------------------

    def _principal_by_app_id(self, tenant: Tenant, app_id: str) -> dict[str, Any] | None:
        found = self.store.list(
            "principal",
            lambda p: (
                p.get("app_id", "").lower() == app_id.lower() and p.get("tenant_id") == tenant.id
            ),
        )
        if found:
            return found[0]
        name = FIRST_PARTY_PUBLIC_CLIENTS.get(app_id.lower())
        if name:  # Microsoft's own public clients exist in every tenant
            return {"object_id": app_id.lower(), "kind": "PublicClient", "display_name": name,
                    "app_id": app_id.lower(), "tenant_id": tenant.id}  # fmt: skip
        return None

    def authenticate_client(
        self, tenant: Tenant, form: dict[str, str], facts: dict[str, Any]
    ) -> Client:
        """Who is asking: a public client (no secret) or a confidential one that proves itself."""
        client_id = form.get("client_id", "").strip()
        if not client_id:
            raise missing("client_id")
        facts["caller"] = client_id
        principal = self._principal_by_app_id(tenant, client_id)
        if principal is None:
            raise EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant.display_name}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You may have sent your authentication request to the wrong tenant.",
            )
        facts["caller"] = principal["display_name"]
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if principal["kind"] == "PublicClient":
            if secret or assertion:
                raise EntraError(
                    400,
                    "invalid_client",
                    700025,
                    "Client is public so neither 'client_assertion' nor 'client_secret' should "
                    "be presented.",
                )
            return Client(principal, None)
        facts["principal_id"] = principal["object_id"]
        if tenant.alias:
            raise EntraError(
                400,
                "invalid_request",
                50194,
                f"Application '{client_id}'({principal['display_name']}) is not configured as a "
                f"multi-tenant application. Usage of the /{tenant.segment} endpoint is not "
                "supported for such applications. Use a tenant-specific endpoint or configure "
                "the application to be multi-tenant.",
            )
        if secret:
            facts["credential"] = "client-secret"
            expected = principal.get("secret") or ""
            if not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
                raise EntraError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID, for a secret added to "
                    f"app '{client_id}'.",
                )
            return Client(principal, "client-secret")
        if assertion:
            facts["credential"] = "client-assertion"
            self._check_assertion(principal, assertion, form.get("client_assertion_type"))
            return Client(principal, "client-assertion")
        raise EntraError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
        )

    def federated_issuer(self) -> str:
        """The issuer the seeded federated credentials trust: the sandbox itself, standing in for
        a Kubernetes cluster's OIDC issuer."""
        return self.tokens.v2_issuer(world.TENANT_ID)

    def _check_assertion(self, principal: dict[str, Any], assertion: str, kind: str | None) -> None:
        if not kind:
            raise missing("client_assertion_type")
        if kind != JWT_BEARER:
            raise EntraError(
                400,
                "invalid_request",
                50027,
                f"Invalid client_assertion_type '{kind}'; it must be '{JWT_BEARER}'.",
            )
        malformed = EntraError(400, "invalid_request", 50027, "JWT token is invalid or malformed.")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise malformed from None
        bad_signature = EntraError(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. The assertion was not signed by a key "
            "the federated credential's issuer publishes.",
        )
        if header.get("alg") != "RS256" or header.get("kid") != self.tokens.kid:
            raise bad_signature
        try:
            self.tokens.signed_claims(assertion)
        except jwt.InvalidSignatureError:
            raise bad_signature from None
        except jwt.PyJWTError:
            raise malformed from None
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        subject = principal.get("federated_subject")
        if (
            not subject
            or claims.get("iss") != self.federated_issuer()
            or claims.get("sub") != subject
            or FEDERATED_AUDIENCE not in audiences
        ):
            raise EntraError(
                400,
                "invalid_request",
                70021,
                "No matching federated identity record found for presented assertion. "
                f"Assertion Issuer: '{claims.get('iss')}'. Assertion Subject: "
                f"'{claims.get('sub')}'. Assertion Audience: '{','.join(map(str, audiences))}'.",
            )
        now = clock.now()
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat", 0))
        if (
            not isinstance(exp, (int, float))
            or not isinstance(nbf, (int, float))
            or exp + CLOCK_SKEW_LEEWAY < now
            or nbf - CLOCK_SKEW_LEEWAY > now
        ):
            raise EntraError(
                400,
                "invalid_client",
                700024,
                f"Client assertion is not within its valid time range. Current time: "
                f"{_iso(now)}, assertion valid from {_iso(nbf)}, expiry time of assertion "
                f"{_iso(exp)}.",
            )

    def mint_federated_token(self, client_id: str) -> dict[str, Any]:
        """What Kubernetes projects into a pod for workload identity (AZURE_FEDERATED_TOKEN_FILE).
        Raises LookupError when the client has no federated credential."""
        tenant = self.tenant(world.TENANT_ID)
        principal = self._principal_by_app_id(tenant, client_id)
        if not principal or not principal.get("federated_subject"):
            raise LookupError(client_id)
        now = int(clock.now())
        claims = {
            "iss": self.federated_issuer(),
            "sub": principal["federated_subject"],
            "aud": [FEDERATED_AUDIENCE],
            "iat": now,
            "nbf": now,
            "exp": now + FEDERATED_TOKEN_LIFETIME,
            "jti": str(uuid.uuid4()),
        }
        return {
            "token": self.tokens.sign(claims),
            "expires_on": claims["exp"],
            "issuer": claims["iss"],
            "subject": claims["sub"],
            "audience": FEDERATED_AUDIENCE,
        }

    # -- scopes --------------------------------------------------------------------------------

    def parse_scope(self, tenant: Tenant, raw: str | None, *, app_only: bool) -> ScopeRequest:
        """Map a v2 ``scope`` to one resource; Entra grants one resource per token."""
        items = (raw or "").split()
        if not items:
            raise missing("scope")
        oidc = {s for s in items if s in OIDC_SCOPES}
        resources: dict[str, tuple[str, list[str]]] = {}
        for item in items:
            if item in OIDC_SCOPES:
                continue
            if "/" not in item and item.replace(".", "").replace("_", "").isalnum():
                resource, permission = GRAPH, item  # bare names such as User.Read mean Graph
            else:
                resource, _, permission = item.rpartition("/")
                looks_like_uri = "://" in resource and urlsplit(resource).netloc
                if not permission or not resource or ("://" in resource and not looks_like_uri):
                    raise self._invalid_scope(item)
            key = normalize_resource(resource)
            resources.setdefault(key, (resource, []))[1].append(item)
            if app_only and permission != ".default":
                raise EntraError(
                    400,
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {item} is not valid. Client credential flows "
                    "must have a scope value with /.default suffixed to the resource identifier "
                    "(application ID URI).",
                )
        if not resources:
            if app_only:
                raise self._invalid_scope(raw or "")
            resources[GRAPH] = (GRAPH, [f"{GRAPH}/User.Read"])  # sign-in only: a Graph token
        if len(resources) > 1:
            raise EntraError(
                400,
                "invalid_scope",
                28000,
                "Provided value for the input parameter scope is not valid because it contains "
                f"more than one resource. Scope {raw} is not valid.",
            )
        ((key, (resource, scopes)),) = resources.items()
        self._check_resource(tenant, key, resource)
        return ScopeRequest(resource, scopes, oidc)

    def parse_resource(
        self, tenant: Tenant, resource: str | None, scope: str | None
    ) -> ScopeRequest:
        """The v1 endpoints name the resource itself (``resource=``)."""
        if not resource:
            raise missing("resource")
        self._check_resource(tenant, normalize_resource(resource), resource)
        oidc = {s for s in (scope or "").split() if s in OIDC_SCOPES} | {"offline_access"}
        return ScopeRequest(resource, [f"{resource}/.default"], oidc)

    def _invalid_scope(self, item: str) -> EntraError:
        return EntraError(
            400,
            "invalid_scope",
            70011,
            f"The provided request must include a 'scope' input parameter. The provided value for "
            f"the input parameter 'scope' is not valid. The scope {item} is not valid.",
        )

    def _check_resource(self, tenant: Tenant, key: str, resource: str) -> None:
        # Graph's identifier in the sandbox cloud is also where it is served (sandbox/graph/),
        # as in a sovereign cloud, so a real Azure CLI registered to the sandbox can reach it.
        if key not in KNOWN_RESOURCES and key != normalize_resource(f"{self.https_url}/graph"):
            raise EntraError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{tenant.display_name}. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You might have sent your authentication request to the wrong tenant.",
            )

    # -- grants ----------------------------------------------------------------------------------

    def token(
        self, segment: str, form: dict[str, str], facts: dict[str, Any], *, v1: bool = False
    ) -> dict[str, Any]:
        """The token endpoint. ``facts`` collects what the request log says, even on refusal."""
        tenant = self.tenant(segment)
        grant = form.get("grant_type", "").strip()
        if not grant:
            raise missing("grant_type")
        credential = {
            GRANT_CLIENT_CREDENTIALS: None,
            GRANT_DEVICE_CODE: "device-code",
            GRANT_REFRESH_TOKEN: "refresh-token",
            GRANT_PASSWORD: "password",
        }
        if grant not in credential:
            raise EntraError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        if credential[grant]:
            facts["credential"] = credential[grant]
        client = self.authenticate_client(tenant, form, facts)
        if grant == GRANT_CLIENT_CREDENTIALS:
            return self._client_credentials(tenant, client, form, facts, v1)
        if grant == GRANT_DEVICE_CODE:
            return self._redeem_device_code(tenant, client, form, facts, v1)
        if grant == GRANT_PASSWORD:
            return self._redeem_password(tenant, client, form, facts, v1)
        return self._redeem_refresh_token(tenant, client, form, facts, v1)

    def _requested(self, tenant: Tenant, form: dict[str, str], v1: bool, app_only: bool):
        if v1:
            return self.parse_resource(tenant, form.get("resource"), form.get("scope"))
        return self.parse_scope(tenant, form.get("scope"), app_only=app_only)

    def _client_credentials(
        self, tenant: Tenant, client: Client, form: dict[str, str], facts: dict[str, Any], v1: bool
    ) -> dict[str, Any]:
        if client.public:  # a public client has nothing to prove itself with
            raise EntraError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        wanted = self._requested(tenant, form, v1, app_only=True)
        facts["audience"] = wanted.resource
        acr = "1" if client.credential == "client-secret" else "2"
        token, exp = self.tokens.access_token(
            tenant_id=tenant.id,
            audience=wanted.resource,
            oid=client.principal["object_id"],
            appid=client.app_id,
            idtyp="app",
            extra={"appidacr": acr},
        )
        return self._response(token, exp, wanted, v1, app_only=True)

    def _response(
        self, access_token: str, exp: int, wanted: ScopeRequest, v1: bool, app_only: bool = False
    ) -> dict[str, Any]:
        """The token response; a v2.0 client-credentials answer has no ``scope``, as Entra's."""
        lifetime = exp - int(clock.now())
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        }
        if v1:
            body.update(
                expires_on=str(exp),
                not_before=str(exp - lifetime),
                resource=wanted.resource,
                expires_in=str(lifetime),
                ext_expires_in=str(lifetime),
            )
        elif not app_only:
            body["scope"] = wanted.granted
        return body

    # -- user sign-in: device code ---------------------------------------------------------------

    def start_device_flow(
        self, segment: str, form: dict[str, str], facts: dict[str, Any], *, v1: bool = False
    ) -> dict[str, Any]:
        tenant = self.tenant(segment)
        facts["credential"] = "device-code"
        client = self.authenticate_client(tenant, form, facts)
        wanted = (
            self.parse_resource(tenant, form.get("resource"), form.get("scope"))
            if v1
            else self.parse_scope(tenant, form.get("scope"), app_only=False)
        )
        facts["audience"] = wanted.resource
        now = clock.now()
        self._prune_device_codes(now)
        pending = {d["user_code"] for d in self.store.list("device_code")}
        user_code = ""
        while not user_code or user_code in pending:
            user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
        device_code = secrets.token_urlsafe(48)
        self.store.put(
            "device_code",
            _sha256(device_code),
            {
                "key": _sha256(device_code),
                "user_code": user_code,
                "tenant_id": tenant.id,
                "client_id": client.app_id,
                "client_name": client.principal["display_name"],
                "resource": wanted.resource,
                "scopes": wanted.scopes,
                "oidc": sorted(wanted.oidc),
                "created_at": now,
                "expires_at": now + DEVICE_CODE_LIFETIME,
                "status": "pending",
                "user_oid": None,
            },
        )
        uri = f"{self.https_url}/devicelogin"
        message = (
            f"To sign in, use a web browser to open the page {uri} and enter the code "
            f"{user_code} to authenticate."
        )
        if v1:  # the v1.0 endpoint: verification_url, and numbers as strings
            return {
                "user_code": user_code,
                "device_code": device_code,
                "verification_url": uri,
                "expires_in": str(DEVICE_CODE_LIFETIME),
                "interval": str(DEVICE_CODE_INTERVAL),
                "message": message,
            }
        return {
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": uri,
            "expires_in": DEVICE_CODE_LIFETIME,
            "interval": DEVICE_CODE_INTERVAL,
            "message": message,
        }

    def _prune_device_codes(self, now: float) -> None:
        """Forget codes an hour past expiry so the store does not grow with every sign-in."""
        for key, _doc in self._device_codes(lambda d: d["expires_at"] + 3600 < now):
            self.store.delete("device_code", key)

    def _device_codes(self, where) -> list[tuple[str, dict[str, Any]]]:
        return [(d["key"], d) for d in self.store.list("device_code", where)]

    def find_user_code(self, user_code: str) -> tuple[str, dict[str, Any]] | None:
        """(device code, document) for a code a person typed, forgiving case, spaces, dashes."""
        wanted = "".join(c for c in user_code.upper() if c.isalnum())
        for key, doc in self._device_codes(lambda d: d["user_code"] == wanted):
            return key, doc
        return None

    def device_code_answered(self, user_code: str) -> bool:
        """Whether polling the code now gets more than ``authorization_pending``: a person
        answered it, it ran out, or it is unknown."""
        found = self.find_user_code(user_code)
        return (
            found is None
            or found[1]["status"] != "pending"
            or (found[1]["expires_at"] <= clock.now())
        )

    def pending_device_codes(self) -> list[dict[str, Any]]:
        now = clock.now()
        return [
            {
                "user_code": d["user_code"],
                "client_id": d["client_id"],
                "client_name": d["client_name"],
                "resource": d["resource"],
                "expires_on": int(d["expires_at"]),
            }
            for d in self.store.list(
                "device_code", lambda d: d["status"] == "pending" and d["expires_at"] > now
            )
        ]

    def user_by_name(self, upn: str) -> dict[str, Any] | None:
        found = self.store.list(
            "principal",
            lambda p: p["kind"] == "User" and p.get("upn", "").lower() == upn.strip().lower(),
        )
        return found[0] if found else None

    def check_password(self, upn: str, password: str) -> dict[str, Any]:
        """The developer's sign-in on the device-code page."""
        user = self.user_by_name(upn)
        if user is None:
            raise EntraError(
                400,
                "invalid_grant",
                50034,
                f"The user account {upn} does not exist in the {world.TENANT_DOMAIN} directory. "
                "To sign into this application, the account must be added to the directory.",
            )
        expected = world.installation_secrets(self.store)["developer_password"]
        if user["object_id"] != world.DEVELOPER_OID:
            expected = user.get("password") or ""
        if not expected or not hmac.compare_digest(password.encode(), expected.encode()):
            raise EntraError(
                400,
                "invalid_grant",
                50126,
                "Error validating credentials due to invalid username or password.",
            )
        return user

    def decide_device_code(self, user_code: str, user: dict[str, Any], approve: bool) -> dict:
        """Record a person's answer to a device-code sign-in. Raises LookupError (unknown code)
        or ValueError (expired or already answered)."""
        found = self.find_user_code(user_code)
        if found is None:
            raise LookupError(user_code)
        key, doc = found
        if doc["expires_at"] <= clock.now():
            raise ValueError("This code has expired. Start the sign-in again to get a new code.")
        if doc["status"] != "pending":
            raise ValueError(f"This code was already used ({doc['status']}).")
        doc.update(status="approved" if approve else "denied", user_oid=user["object_id"])
        self.store.put("device_code", key, doc)
        return doc

    def expire_device_code(self, user_code: str) -> dict[str, Any]:
        """Make a pending code run out now (lessons on what a late sign-in looks like)."""
        found = self.find_user_code(user_code)
        if found is None:
            raise LookupError(user_code)
        key, doc = found
        doc["expires_at"] = clock.now() - 1
        self.store.put("device_code", key, doc)
        return doc

    def _redeem_device_code(
        self, tenant: Tenant, client: Client, form: dict[str, str], facts: dict[str, Any], v1: bool
    ) -> dict[str, Any]:
        device_code = form.get("device_code") or form.get("code")
        if not device_code:
            raise missing("device_code")
        doc = self.store.get("device_code", _sha256(device_code))
        if doc is None or doc["client_id"] != client.app_id or doc["tenant_id"] != tenant.id:
            raise EntraError(
                400,
                "invalid_grant",
                70000,
                "The provided value for the input parameter 'device_code' is not valid.",
            )
        facts["audience"] = doc["resource"]
        if doc["status"] == "redeemed":
            raise EntraError(
                400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed."
            )
        if doc["status"] == "denied":
            raise EntraError(
                400, "access_denied", 65004, "User declined to consent to access the app."
            )
        if doc["expires_at"] <= clock.now():
            raise EntraError(
                400,
                "expired_token",
                70020,
                "The provided value for the input parameter 'device_code' is not valid. This "
                "device code has expired.",
            )
        if doc["status"] != "approved":
            raise EntraError(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        user = self.store.get("principal", doc["user_oid"])
        if user is None:
            raise EntraError(400, "invalid_grant", 50034, "The user account no longer exists.")
        doc["status"] = "redeemed"
        self.store.put("device_code", doc["key"], doc)
        wanted = ScopeRequest(doc["resource"], doc["scopes"], set(doc["oidc"]))
        family = str(uuid.uuid4())
        return self._user_tokens(tenant, client, user, wanted, form, facts, family, v1)

    def _redeem_password(
        self, tenant: Tenant, client: Client, form: dict[str, str], facts: dict[str, Any], v1: bool
    ) -> dict[str, Any]:
        """Resource owner password credentials (ROPC): the password itself, checked as the
        sign-in page checks it. Microsoft advises against this grant; the Azure CLI still sends
        it for ``az login -u NAME -p PASSWORD``, and the kit's catch-up uses it as plumbing."""
        for name in ("username", "password"):
            if not form.get(name):
                raise missing(name)
        user = self.check_password(form["username"], form["password"])
        wanted = self._requested(tenant, form, v1, app_only=False)
        return self._user_tokens(tenant, client, user, wanted, form, facts, str(uuid.uuid4()), v1)

    # -- user sign-in: refresh tokens ------------------------------------------------------------

    def _redeem_refresh_token(
        self, tenant: Tenant, client: Client, form: dict[str, str], facts: dict[str, Any], v1: bool
    ) -> dict[str, Any]:
        presented = form.get("refresh_token")
        if not presented:
            raise missing("refresh_token")
        doc = self.store.get("refresh_token", _sha256(presented))
        if doc is None:
            raise EntraError(
                400,
                "invalid_grant",
                70000,
                "The provided value for the 'refresh_token' is not valid: it is malformed, was "
                "never issued, or was revoked (the sandbox was reset or the user signed out).",
            )
        if doc["client_id"] != client.app_id or doc["tenant_id"] != tenant.id:
            raise EntraError(
                400,
                "invalid_grant",
                70000,
                "The provided value for the 'refresh_token' is not valid: it was issued to a "
                "different client or tenant.",
            )
        if doc["expires_at"] <= clock.now():
            raise EntraError(
                400,
                "invalid_grant",
                700082,
                "The refresh token has expired due to inactivity. The token was issued on "
                f"{_iso(doc['issued_at'])} and was inactive for 90.00:00:00.",
            )
        user = self.store.get("principal", doc["oid"])
        if user is None:
            raise EntraError(400, "invalid_grant", 50034, "The user account no longer exists.")
        wanted = self._requested(tenant, form, v1, app_only=False)
        return self._user_tokens(tenant, client, user, wanted, form, facts, doc["family"], v1)

    def _issue_refresh_token(self, tenant: Tenant, client: Client, user: dict, family: str) -> str:
        token = "0.A" + secrets.token_urlsafe(64)
        now = clock.now()
        self.store.put(
            "refresh_token",
            _sha256(token),
            {
                "family": family,
                "tenant_id": tenant.id,
                "client_id": client.app_id,
                "oid": user["object_id"],
                "issued_at": now,
                "expires_at": now + REFRESH_TOKEN_LIFETIME,
                "key": _sha256(token),
            },
        )
        kin = self.store.list("refresh_token", lambda d: d["family"] == family)
        for old in kin[:-REFRESH_TOKENS_KEPT]:
            self.store.delete("refresh_token", old["key"])
        return token

    def revoke_sign_ins(self, oid: str) -> int:
        """Forget every refresh token of a user (what ``az logout`` cannot do, but an admin can)."""
        gone = self.store.list("refresh_token", lambda d: d["oid"] == oid)
        for doc in gone:
            self.store.delete("refresh_token", doc["key"])
        return len(gone)

    def _user_tokens(
        self,
        tenant: Tenant,
        client: Client,
        user: dict[str, Any],
        wanted: ScopeRequest,
        form: dict[str, str],
        facts: dict[str, Any],
        family: str,
        v1: bool,
    ) -> dict[str, Any]:
        facts.update(caller=user["upn"], principal_id=user["object_id"], audience=wanted.resource)
        self._check_preauthorized(client, wanted)
        token, exp = self.tokens.access_token(
            tenant_id=tenant.id,
            audience=wanted.resource,
            oid=user["object_id"],
            appid=client.app_id,
            idtyp="user",
            extra={
                "acr": "1",
                "amr": ["pwd"],
                "appidacr": "0" if client.public else "1",
                "ipaddr": "127.0.0.1",
                "name": user["display_name"],
                "puid": hashlib.sha256(user["object_id"].encode()).hexdigest()[:16].upper(),
                "scp": "user_impersonation",
                "unique_name": user["upn"],
                "upn": user["upn"],
                "wids": [DEFAULT_USER_ROLE],
            },
        )
        body = self._response(token, exp, wanted, v1)
        if v1 or "offline_access" in wanted.oidc:
            body["refresh_token"] = self._issue_refresh_token(tenant, client, user, family)
        if v1 or "openid" in wanted.oidc:
            body["id_token"] = self._id_token(tenant, client, user)
        if form.get("client_info") == "1":
            info = {"uid": user["object_id"], "utid": tenant.id}
            body["client_info"] = _b64url(json.dumps(info, separators=(",", ":")).encode())
        return body

    def _check_preauthorized(self, client: Client, wanted: ScopeRequest) -> None:
        """AADSTS65002: Microsoft's public clients get no token for Communication Services,
        unless the ``cli_preauthorized`` switch says Microsoft has preauthorized them."""
        if (
            client.app_id.lower() in FIRST_PARTY_PUBLIC_CLIENTS
            and normalize_resource(wanted.resource) == COMMUNICATION
            and PREAUTHORIZED_FAULT not in self.faults
        ):
            raise EntraError(
                400,
                "invalid_request",
                65002,
                f"Consent between first party application '{client.app_id}' and first party "
                f"resource '{ACS_RESOURCE_APP_ID}' must be configured via preauthorization - "
                "applications owned and operated by Microsoft must get approval from the API "
                "owner before requesting tokens for that API.",
            )

    def _id_token(self, tenant: Tenant, client: Client, user: dict[str, Any]) -> str:
        now = int(clock.now())
        pairwise = pairwise_subject(user["object_id"], client.app_id)
        return self.tokens.sign(
            {
                "aud": client.app_id,
                "iss": self.tokens.v2_issuer(tenant.id),
                "iat": now,
                "nbf": now,
                "exp": now + ID_TOKEN_LIFETIME,
                "sub": pairwise,
                "oid": user["object_id"],
                "tid": tenant.id,
                "name": user["display_name"],
                "preferred_username": user["upn"],
                "ver": "2.0",
            }
        )
