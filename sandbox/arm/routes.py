"""Resource Manager over HTTPS: ``/subscriptions/...`` paths, bearer tokens, ARM error bodies.

ARM paths are case-insensitive and nest (a role assignment can sit under a subscription, a group
or a resource), so one route takes every ``/subscriptions`` path and ``_dispatch`` parses it,
rather than a Starlette route per shape. Behaviour lives in sandbox/arm/models.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox import audit, world
from sandbox.arm import discovery, providers, resources, run_command
from sandbox.arm.headers import RateBuckets, arm_headers
from sandbox.arm.models import (
    ACS_TYPE,
    HOST_TYPES,
    UAI_TYPE,
    VM_TYPE,
    ArmError,
    Caller,
    ResourceManager,
    Scope,
    caller_from_claims,
    parse_scope,
)
from sandbox.entra.tokens import InvalidToken
from sandbox.runtime import sandbox_of

# Every form of the Resource Manager audience that Azure accepts.
ARM_AUDIENCES = [
    "https://management.azure.com/",
    "https://management.core.windows.net/",
]
# As ARM lists them when it refuses another audience (code search: several captured messages).
ALLOWED_AUDIENCES_TEXT = (
    "'https://management.core.windows.net/','https://management.core.windows.net',"
    "'https://management.azure.com/','https://management.azure.com'"
)
_BUCKETS = RateBuckets()

_AUTHZ_RE = re.compile(
    r"^(?P<scope>.*?)/providers/Microsoft\.Authorization/(?P<kind>roleAssignments|roleDefinitions)"
    r"(?:/(?P<name>[^/]+))?/?$",
    re.I,
)


def _error(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    target: str | None = None,
) -> Response:
    error = {"code": code, "message": message}
    if target:
        error["target"] = target
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _ok(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status)


def _unauthenticated(request: Request, code: str, message: str) -> Response:
    sb = sandbox_of(request)
    audit.note(request, credential="bearer", decision="refused", reason=message)
    challenge = (
        f'Bearer authorization_uri="{sb.https_url}/{world.TENANT_ID}", error="invalid_token", '
        f'error_description="{message}"'
    )
    return _error(401, code, message, {"WWW-Authenticate": challenge})


def _authenticate(request: Request) -> Caller | Response:
    """The caller behind the bearer token, or the 401 that ARM answers."""
    sb = sandbox_of(request)
    header = request.headers.get("authorization")
    if not header:
        return _unauthenticated(
            request,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthenticated(
            request,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        )
    try:
        claims = sb.tokens.verify(token.strip(), audiences=ARM_AUDIENCES, tenant_id=world.TENANT_ID)
    except InvalidToken as e:
        if e.code == "InvalidAuthenticationTokenAudience":
            audit.note(request, reason=e.reason)
            return _unauthenticated(request, e.code, _audience_text(token.strip()))
        return _unauthenticated(request, e.code, e.reason)
    return caller_from_claims(sb.store, claims)


def _audience_text(token: str) -> str:
    """ARM's refusal of a token minted for another resource, naming the audience it carries."""
    try:
        aud = jwt.decode(token, options={"verify_signature": False}).get("aud", "")
    except jwt.PyJWTError:
        aud = ""
    return (
        f"The access token has been obtained for wrong audience or resource '{aud}'. It should "
        f"exactly match with one of the allowed audiences {ALLOWED_AUDIENCES_TEXT}."
    )


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as e:
        detail = str(e)
    except RecursionError:
        # A body nested deeper than the parser goes (security review D7) is bad input, not a
        # server fault: ARM's 400 like any other undeserializable body.
        detail = "the JSON is nested too deeply"
    raise ArmError(
        400,
        "InvalidRequestContent",
        f"The request content was invalid and could not be deserialized: {detail}.",
    )


def _not_supported(method: str) -> ArmError:
    return ArmError(
        405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'."
    )


async def _authorization(rm: ResourceManager, request: Request, m: re.Match) -> Response:
    scope = parse_scope(m.group("scope"))
    kind, name, method = m.group("kind").lower(), m.group("name"), request.method
    filter_text = request.query_params.get("$filter")
    if kind == "roledefinitions":
        if method != "GET":
            raise _not_supported(method)
        if name:
            return _ok(rm.get_role_definition(scope, name))
        return _ok({"value": rm.list_role_definitions(scope, filter_text)})
    if name is None:
        if method != "GET":
            raise _not_supported(method)
        return _ok({"value": rm.list_assignments(scope, filter_text)})
    if method == "GET":
        return _ok(rm.get_assignment(scope, name))
    if method == "PUT":
        status, body = rm.create_assignment(scope, name, await _body(request))
        return _ok(body, status)
    if method == "DELETE":
        deleted = rm.delete_assignment(scope, name)
        return _ok(deleted) if deleted else Response(status_code=204)
    raise _not_supported(method)


async def _resource(
    rm: ResourceManager, request: Request, scope: Scope, action: str | None
) -> Response:
    rtype = (scope.type or "").lower()
    method = request.method
    if action is not None:
        if rtype == resources.STORAGE_TYPE.lower() and action.lower() == "listkeys":
            if method != "POST":
                raise _not_supported(method)
            return _ok(rm.storage_keys(scope))
        if rtype != ACS_TYPE.lower() or method != "POST":
            raise _not_supported(method)
        if action.lower() == "listkeys":
            return _ok(rm.list_acs_keys(scope))
        if action.lower() == "regeneratekey":
            return _ok(rm.regenerate_acs_key(scope, await _body(request)))
        raise ArmError(404, "NotFound", f"The action '{action}' is not known for {ACS_TYPE}.")
    if method == "GET":
        found = rm.get_resource(scope)
        if rtype == VM_TYPE.lower():  # a VM that is looked at is about to run programs
            await run_command.warm_up(sandbox_of(request), scope.name)
        return _ok(found)
    if rtype in HOST_TYPES and method == "PATCH":
        return _ok(rm.update_host(scope, await _body(request), replace=False))
    if rtype in HOST_TYPES and method == "PUT":
        status, body = rm.put_host(scope, await _body(request))
        return _ok(body, status)
    if rtype in HOST_TYPES and method == "DELETE":
        return Response(status_code=200 if rm.delete_host(scope) else 204)
    if resources.spec(rtype) and method == "PUT":
        status, body = rm.put_generic(scope, await _body(request))
        return _ok(body, status)
    if resources.spec(rtype) and method == "DELETE":
        return Response(status_code=200 if rm.delete_generic(scope) else 204)
    if rtype == UAI_TYPE.lower():
        if method == "PUT":
            status, body = rm.put_uai(scope, await _body(request))
            return _ok(body, status)
        if method == "PATCH":
            return _ok(rm.patch_uai(scope, await _body(request)))
        if method == "DELETE":
            return Response(status_code=200 if rm.delete_uai(scope) else 204)
    if rtype == ACS_TYPE.lower() and method == "PATCH":
        return _ok(rm.patch_acs(scope, await _body(request)))
    if rtype == ACS_TYPE.lower() and method == "PUT":
        status, body = rm.put_acs(scope, await _body(request))
        return _ok(body, status)
    rm._canonical_type(scope)  # unknown types answer InvalidResourceType, not 405
    raise _not_supported(method)


def _listing(rm: ResourceManager, sub: str, rg: str | None, ns_type: str) -> Response:
    kind = ns_type.lower()
    if kind == UAI_TYPE.lower():
        return _ok({"value": rm.list_uais(sub, rg)})
    if kind == ACS_TYPE.lower():
        return _ok({"value": rm.list_acs(sub, rg)})
    values = [v for v in rm.list_resources(sub, rg) if v["type"].lower() == kind]
    return _ok({"value": values})


async def _dispatch(rm: ResourceManager, request: Request, path: str) -> Response:
    m = _AUTHZ_RE.match(path)
    if m:
        return await _authorization(rm, request, m)
    segs = [s for s in path.split("/") if s]
    low = [s.lower() for s in segs]
    method = request.method
    n = len(segs)
    if n == 1:
        if method != "GET":
            raise _not_supported(method)
        return _ok({"value": rm.list_subscriptions()})
    if n == 2:
        if method != "GET":
            raise _not_supported(method)
        return _ok(rm.get_subscription(segs[1]))
    sub = segs[1]
    if n == 3 and low[2] == "resourcegroups":
        return _ok({"value": rm.list_groups(sub)})
    if n == 3 and low[2] == "resources":
        return _ok({"value": rm.list_resources(sub, None)})
    if n == 5 and low[2] == "providers":
        return _listing(rm, sub, None, f"{segs[3]}/{segs[4]}")
    if n >= 4 and low[2] == "resourcegroups":
        rg = segs[3]
        if n == 4:
            if method == "HEAD":
                return Response(status_code=204 if rm.group_exists(sub, rg) else 404)
            if method == "PUT":
                status, body = rm.put_group(sub, rg, await _body(request))
                return _ok(body, status)
            if method == "DELETE":
                # Azure answers 202 and deletes in the background; done before the answer here.
                rm.delete_group(sub, rg)
                return Response(status_code=200)
            if method != "GET":
                raise _not_supported(method)
            return _ok(rm.get_group(sub, rg))
        if n == 5 and low[4] == "resources":
            return _ok({"value": rm.list_resources(sub, rg)})
        if low[4] == "providers" and n == 7 and method == "GET":
            return _listing(rm, sub, rg, f"{segs[5]}/{segs[6]}")
        if low[4] == "providers" and n in (8, 9):
            scope = Scope(sub, rg, f"{segs[5]}/{segs[6]}", segs[7])
            return await _resource(rm, request, scope, segs[8] if n == 9 else None)
        if (
            low[4] == "providers"
            and n == 10
            and f"{low[5]}/{low[6]}/{low[8]}" == (resources.SUBNET_TYPE.lower())
        ):
            scope = Scope(sub, rg, f"{segs[5]}/{segs[6]}", segs[7])
            if method == "PUT":
                status, body = rm.put_subnet(scope, segs[9], await _body(request))
                return _ok(body, status)
            if method == "GET":
                return _ok(rm.get_subnet(scope, segs[9]))
            raise _not_supported(method)
    raise ArmError(404, "NotFound", f"No Resource Manager operation matches '{path}'.")


def _routed_type(path: str) -> tuple[str | None, str | None]:
    """(``Namespace/type`` ARM routes ``path`` to, resource group in the path), as far as known."""
    m = _AUTHZ_RE.match(path)
    if m:
        group = re.match(r"^/subscriptions/[^/]+/resourceGroups/([^/]+)", m.group("scope"), re.I)
        return f"Microsoft.Authorization/{m.group('kind')}", group.group(1) if group else None
    segs = [s for s in path.split("/") if s]
    low = [s.lower() for s in segs]
    n = len(segs)
    if n <= 2:
        return "Microsoft.Resources/subscriptions", None
    if low[2] == "providers" and n == 5:
        return f"{segs[3]}/{segs[4]}", None
    if low[2] == "resources":
        return "Microsoft.Resources/resources", None
    if low[2] != "resourcegroups":
        return None, None
    group = segs[3] if n >= 4 else None
    if n <= 4:
        return "Microsoft.Resources/resourceGroups", group
    if low[4] == "resources":
        return "Microsoft.Resources/resources", group
    if low[4] == "providers" and n >= 7:
        return f"{segs[5]}/{segs[6]}", group
    return None, group


def _check_api_version(request: Request, path: str) -> None:
    """ARM's refusal of an api-version the routed type does not support (sandbox/arm/providers.py).

    The location ARM names is the resource group's; with no group in the path there is none.
    """
    rtype, group = _routed_type(path)
    if rtype is None:
        return
    doc = sandbox_of(request).store.get("resource_group", group.lower()) if group else None
    refusal = providers.api_version_refusal(
        rtype, request.query_params["api-version"], doc["location"] if doc else ""
    )
    if refusal:
        raise ArmError(*refusal)


def _subscription_in(path: str) -> str | None:
    m = re.match(r"^/subscriptions/([^/]+)", path, re.I)
    return m.group(1) if m else None


async def arm(request: Request) -> Response:
    caller: Caller | None = None
    response: Response
    if "api-version" not in request.query_params:
        response = _error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    else:
        found = _authenticate(request)
        if isinstance(found, Response):
            response = found
        else:
            caller = found
            response = await _serve(request, caller)
    response.headers.update(
        arm_headers(
            _BUCKETS,
            request.method,
            request.headers.get("x-ms-correlation-request-id"),
            _subscription_in(request.url.path),
            caller.object_id if caller else None,
        )
    )
    return response


async def _serve(request: Request, caller: Caller) -> Response:
    sb = sandbox_of(request)
    rm = ResourceManager(sb.store, caller, sb.https_url + "/")
    path = request.url.path
    audit.note(request, caller=caller.name, principal_id=caller.object_id, credential="bearer")
    try:
        found = await discovery.serve(rm, request, path, _body)
        if found is None:
            found = await run_command.serve(rm, request, path, _body)
        if found is None:
            _check_api_version(request, path)
            found = await _dispatch(rm, request, path)
        response = found
    except ArmError as e:
        decision = "refused" if e.status in (401, 403) else "failed"
        audit.note(
            request, decision=decision, reason=f"{e.code}: {e.message}", operation=rm.operation
        )
        return _error(e.status, e.code, e.message, target=e.target)
    audit.note(request, decision="allowed", operation=rm.operation)
    return response


def routes() -> list[BaseRoute]:
    methods = ["GET", "HEAD", "PUT", "PATCH", "DELETE", "POST"]
    return [
        Route("/subscriptions", arm, methods=["GET"]),
        Route("/subscriptions/{rest:path}", arm, methods=methods),
        Route("/tenants", arm, methods=["GET"]),
        *discovery.routes(),
    ]
