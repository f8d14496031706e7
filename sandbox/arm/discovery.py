"""Resource Manager's own discovery and tagging APIs: tenants, resource providers, tags, metadata.

These are what a real Azure CLI asks before (or instead of) a resource's own API:

- ``GET /tenants`` lists the tenants a token's account belongs to (plain ``az login`` without
  ``--tenant`` lists tenants, then subscriptions per tenant);
- ``GET /subscriptions/{id}/providers[/{namespace}]`` tells the registration state, resource types,
  locations and api-versions of each provider (``az resource show`` without ``--api-version``
  picks the newest non-preview version from it). The data is the one table in
  sandbox/arm/providers.py, which also drives Resource Manager's api-version checks;
- ``{scope}/providers/Microsoft.Resources/tags/default`` reads and writes the tags of a
  subscription, resource group or resource (``az tag update``, ``az tag create --resource-id``);
- ``GET /metadata/endpoints`` is the cloud metadata document that ``az cloud register
  --endpoint-resource-manager`` reads (Azure Stack Hub and sovereign clouds are registered so).

Shapes follow the azure-rest-api-specs examples for Microsoft.Resources 2022-12-01 (GetTenants,
GetProvider, PutTagsResource, GetSubscription); see sandbox/FIDELITY.md. Each function takes the
request's ``ResourceManager`` so authorization and the request log work as for every other call.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox import world
from sandbox.arm import providers, sites
from sandbox.arm.models import ArmError, ResourceManager, _tags, parse_scope
from sandbox.runtime import sandbox_of

# Resource Manager serves these itself, so its own api-version list applies (the one for
# subscriptions in sandbox/arm/providers.py).
_ARM_OWN = "Microsoft.Resources/subscriptions"
TAGS_WRITE = "Microsoft.Resources/tags/write"
TAGS_READ = "Microsoft.Resources/tags/read"
TAG_OPERATIONS = ("Merge", "Replace", "Delete")

_TAGS_RE = re.compile(
    r"^(?P<scope>/subscriptions/.*?)/providers/Microsoft\.Resources/tags/default/?$", re.I
)
_PROVIDERS_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers(?:/(?P<ns>[^/]+)(?:/(?P<action>register))?)?/?$",
    re.I,
)
# What the sandbox's provider table does not hold but a providers document carries (the spec
# example GetProvider.json); "RegistrationRequired" is what Compute, Web, ManagedIdentity and
# Communication show in `az provider show`.
REGISTRATION_POLICY = "RegistrationRequired"
CAPABILITIES = (
    "CrossResourceGroupResourceMove, CrossSubscriptionResourceMove, SupportsTags, SupportsLocation"
)


def _check_version(request: Request) -> None:
    refusal = providers.api_version_refusal(_ARM_OWN, request.query_params["api-version"], "")
    if refusal:
        raise ArmError(*refusal)


# -- tenants ---------------------------------------------------------------------------------


def list_tenants(rm: ResourceManager) -> list[dict[str, Any]]:
    """Every tenant the caller belongs to: the sandbox's one, for any token it issued."""
    rm.operation = "Microsoft.Resources/tenants/read"
    out = []
    for doc in rm.store.list("tenant"):
        out.append(
            {
                "id": f"/tenants/{doc['id']}",
                "tenantId": doc["id"],
                "countryCode": "US",
                "displayName": doc["display_name"],
                "domains": [doc["domain"]],
                "tenantCategory": "Home",
                "defaultDomain": doc["domain"],
                "tenantType": "AAD",
            }
        )
    return out


# -- resource providers ----------------------------------------------------------------------


def _newest_first(versions: tuple[str, ...]) -> list[str]:
    """Azure lists a type's api-versions newest first; the CLI takes the first non-preview."""
    return sorted(versions, reverse=True)


def provider_view(sub: str, namespace: str) -> dict[str, Any]:
    """The providers document for ``namespace`` (any case), built from providers.py's table."""
    types = [t for t in providers.RESOURCE_TYPES if t.namespace.lower() == namespace.lower()]
    if not types:
        raise ArmError(
            404,
            "InvalidResourceNamespace",
            f"The resource namespace '{namespace}' is invalid.",
        )
    canonical = types[0].namespace
    resource_types = []
    for t in types:
        entry: dict[str, Any] = {
            "resourceType": t.type,
            "locations": list(t.locations),
            "apiVersions": _newest_first(t.api_versions),
        }
        if t.locations:
            entry["capabilities"] = CAPABILITIES
        resource_types.append(entry)
    return {
        "id": f"/subscriptions/{sub}/providers/{canonical}",
        "namespace": canonical,
        "registrationState": "Registered",
        "registrationPolicy": REGISTRATION_POLICY,
        "resourceTypes": resource_types,
    }


def list_providers(rm: ResourceManager, sub: str) -> list[dict[str, Any]]:
    rm.operation = "Microsoft.Resources/subscriptions/providers/read"
    namespaces = sorted({t.namespace for t in providers.RESOURCE_TYPES})
    return [provider_view(rm_sub(rm, sub), ns) for ns in namespaces]


def rm_sub(rm: ResourceManager, sub: str) -> str:
    """The subscription's canonical id (404 SubscriptionNotFound for an unknown one)."""
    return rm._subscription(sub)["id"]


def get_provider(rm: ResourceManager, sub: str, namespace: str) -> dict[str, Any]:
    rm.operation = "Microsoft.Resources/subscriptions/providers/read"
    return provider_view(rm_sub(rm, sub), namespace)


def register_provider(rm: ResourceManager, sub: str, namespace: str) -> dict[str, Any]:
    """Every provider the sandbox serves is registered already; registering again is a no-op."""
    canonical = rm_sub(rm, sub)
    rm.authorize(f"/subscriptions/{canonical}", f"{namespace}/register/action")
    return provider_view(canonical, namespace)


# -- tags ------------------------------------------------------------------------------------


def _tag_target(rm: ResourceManager, scope_text: str) -> tuple[str, str, dict[str, Any], str]:
    """(store kind, key, document, canonical id) of the scope whose tags are read or written."""
    scope = parse_scope(scope_text)
    if scope.group is None:
        doc = rm._subscription(scope.subscription)
        return "subscription", doc["id"], doc, f"/subscriptions/{doc['id']}"
    if scope.type is None:
        doc = rm._group(scope.subscription, scope.group)
        return "resource_group", doc["name"].lower(), doc, doc["id"]
    rtype, doc = rm._find(scope)
    if doc is None:
        raise rm._not_found(scope)
    if "resource_id" in doc:
        return "host", doc["name"], doc, doc["resource_id"]
    if rtype.lower() == "microsoft.managedidentity/userassignedidentities":
        return "user_assigned_identity", doc["id"].lower(), doc, doc["id"]
    return "acs_resource", doc["name"], doc, doc["id"]


def _tags_view(scope_id: str, tags: dict[str, str]) -> dict[str, Any]:
    return {
        "id": f"{scope_id}/providers/Microsoft.Resources/tags/default",
        "name": "default",
        "type": "Microsoft.Resources/tags",
        "properties": {"tags": tags},
    }


def _body_tags(body: Any) -> dict[str, str]:
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise ArmError(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: the body must be "
            "an object with 'properties.tags'.",
        )
    return _tags(body["properties"].get("tags"))


def tags(rm: ResourceManager, method: str, scope_text: str, body: Any) -> tuple[int, Any]:
    """GET, PUT (replace), PATCH (Merge/Replace/Delete) or DELETE the tags of one scope."""
    kind, key, doc, scope_id = _tag_target(rm, scope_text)
    if method == "GET":
        rm.authorize(scope_id, TAGS_READ)
        return 200, _tags_view(scope_id, dict(doc.get("tags") or {}))
    rm.authorize(scope_id, TAGS_WRITE)
    current = dict(doc.get("tags") or {})
    if method == "PUT":
        new = _body_tags(body)
    elif method == "PATCH":
        given = _body_tags(body)
        operation = str(body.get("operation", ""))
        if operation.lower() == "merge":
            new = {**current, **given}
        elif operation.lower() == "replace":
            new = given
        elif operation.lower() == "delete":
            new = {k: v for k, v in current.items() if not (k in given and given[k] == v)}
        else:
            raise ArmError(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: 'operation' "
                f"must be one of {', '.join(TAG_OPERATIONS)}.",
            )
    elif method == "DELETE":
        new = {}
    else:
        raise ArmError(
            405,
            "MethodNotAllowed",
            f"The requested resource does not support http method '{method}'.",
        )
    with rm.store.transaction():
        doc["tags"] = new
        rm.store.put(kind, key, doc)
    if method == "DELETE":
        return 200, None
    return 200, _tags_view(scope_id, new)


# -- the dispatcher Resource Manager's routes call first -------------------------------------


async def serve(rm: ResourceManager, request: Request, path: str, body) -> Response | None:
    """The answer for a discovery, tags or site sub-resource path (sandbox/arm/sites.py), or
    None when ``path`` is none of them and Resource Manager's resource dispatch takes it.

    ``body`` is the coroutine function that reads and parses the request body as ARM does.
    """
    method = request.method
    if path.rstrip("/").lower() == "/tenants":
        _check_version(request)
        return JSONResponse({"value": list_tenants(rm)})
    m = _TAGS_RE.match(path)
    if m:
        _check_version(request)
        status, answer = tags(rm, method, m.group("scope"), await body(request))
        return (
            JSONResponse(answer, status_code=status)
            if answer is not None
            else Response(status_code=status)
        )
    m = _PROVIDERS_RE.match(path)
    if m:
        _check_version(request)
        sub, ns, action = m.group("sub"), m.group("ns"), m.group("action")
        if action:
            if method != "POST":
                raise ArmError(
                    405,
                    "MethodNotAllowed",
                    f"The requested resource does not support http method '{method}'.",
                )
            return JSONResponse(register_provider(rm, sub, ns))
        if method != "GET":
            raise ArmError(
                405,
                "MethodNotAllowed",
                f"The requested resource does not support http method '{method}'.",
            )
        if ns:
            return JSONResponse(get_provider(rm, sub, ns))
        return JSONResponse({"value": list_providers(rm, sub)})
    if sites.is_site_subresource(path):
        refusal = providers.api_version_refusal(
            sites.SITE_TYPE, request.query_params["api-version"], world.LOCATION
        )
        if refusal:
            raise ArmError(*refusal)
        given = await body(request) if method == "PUT" else None
        return sites.serve(rm, method, path, given)
    return None


# -- cloud metadata --------------------------------------------------------------------------


def metadata_document(https_url: str) -> dict[str, Any]:
    """The sandbox described as one cloud, in the shape ``az cloud register`` maps to endpoints.

    Resource Manager publishes one such object per cloud; Azure Stack Hub serves its own cloud's
    at its Resource Manager endpoint. The Graph entry points at the sandbox's Microsoft Graph
    slice (sandbox/graph/), whose identifier is its own URL as in a sovereign cloud.
    """
    base = https_url.rstrip("/")
    return {
        "name": "AzureSandbox",
        "portal": f"{base}/",
        "resourceManager": f"{base}/",
        "authentication": {
            "loginEndpoint": base,
            "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "graphAudience": "https://graph.windows.net/",
        "graph": "https://graph.windows.net/",
        "microsoftGraphResourceId": graph_resource_id(https_url),
        "suffixes": {"storage": "core.windows.net", "keyVaultDns": "vault.azure.net"},
    }


def graph_resource_id(https_url: str) -> str:
    """Where the sandbox serves Microsoft Graph, which is also Graph's identifier there."""
    return f"{https_url.rstrip('/')}/graph/"


async def metadata_endpoints(request: Request) -> Response:
    """Unauthenticated, as on Azure; an api-version is required."""
    if "api-version" not in request.query_params:
        return JSONResponse(
            {
                "error": {
                    "code": "MissingApiVersionParameter",
                    "message": "The api-version query parameter (?api-version=) is required for "
                    "all requests.",
                }
            },
            status_code=400,
        )
    return JSONResponse(metadata_document(sandbox_of(request).https_url))


def routes() -> list[BaseRoute]:
    # The CLI appends "/metadata/endpoints" to the URL as given, so a Resource Manager URL
    # with its trailing slash asks for "//metadata/endpoints"; Azure answers both.
    return [
        Route(path, metadata_endpoints, methods=["GET"])
        for path in ("/metadata/endpoints", "//metadata/endpoints")
    ]
