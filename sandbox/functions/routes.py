"""The sites' HTTP skin: ``/sites/{name}/api/{route}`` on the HTTPS listener, which is where a
sandbox site's ``defaultHostName`` points. Behaviour is in sandbox/functions/models.py.

Answers are the Functions host's: 404 with no body for a path no function serves, 401 with no
body without a valid key, 500 with no body when the function raises (the traceback goes to the
sandbox's log and the request log's reason, as Azure keeps it in Application Insights).
"""

from __future__ import annotations

import base64
import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sandbox import audit
from sandbox.functions import models
from sandbox.runtime import sandbox_of

log = logging.getLogger("sandbox")


def _site(request: Request, name: str) -> dict | None:
    host = sandbox_of(request).store.get("host", name.lower())
    return host if host and host.get("kind") == "functionapp" else None


async def invoke(request: Request) -> Response:
    sb = sandbox_of(request)
    name, route = request.path_params["site"], request.path_params["route"]
    host = _site(request, name)
    if host is None:
        audit.note(request, decision="failed", reason=f"no Function app named {name!r}")
        return Response(status_code=404)
    settings = models.app_settings(host, sb.https_url)
    env = models.worker_env(host, settings, sb.mi_url, sb.settings.state_dir)
    try:
        worker = await sb.function_hosts.worker(host, env)
    except models.WorkerFailed as e:
        log.error("site %s: worker failed to start: %s", name, e)
        audit.note(request, decision="failed", reason=f"the app's worker did not start: {e}")
        return Response(status_code=500)
    found = models.match(worker.functions, route, request.method)
    if found is None:
        audit.note(request, decision="failed", reason=f"no function of {name} serves /api/{route}")
        return Response(status_code=404)
    function, route_params = found
    level = worker.functions[function]["auth_level"]
    given = request.query_params.get("code") or request.headers.get("x-functions-key", "")
    if not models.key_allows(sb.store, host, level, given):
        why = "no key" if not given else "a key that is not one of this site's"
        audit.note(request, decision="refused", reason=f"{function} (auth level {level}): {why}")
        return Response(status_code=401)
    message = {
        "function": function,
        "method": request.method,
        "url": f"https://{models.site_url_host(sb.https_url, host['name'])}/api/{route}",
        "headers": {k: v for k, v in request.headers.items() if k != "x-functions-key"},
        "params": {k: v for k, v in request.query_params.items() if k != "code"},
        "route_params": route_params,
        "body": base64.b64encode(await request.body()).decode(),
    }
    try:
        answer = await worker.call(message)
    except models.WorkerFailed as e:
        sb.function_hosts.forget(host["name"])
        log.error("site %s: %s", name, e)
        audit.note(request, decision="failed", reason=f"{function}: {e}")
        return Response(status_code=500)
    if "error" in answer:
        log.error("site %s, function %s raised:\n%s", name, function, answer["error"])
        last = answer["error"].strip().splitlines()[-1]
        audit.note(request, decision="failed", reason=f"{function} raised {last}")
        return Response(status_code=500)
    answered = f"{function} answered {answer['status']}" if answer["status"] >= 400 else None
    audit.note(request, decision="allowed", operation=f"{name}/{function}", reason=answered)
    return Response(
        base64.b64decode(answer["body"]), status_code=answer["status"], headers=answer["headers"]
    )


def routes() -> list[BaseRoute]:
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return [Route("/sites/{site}/api/{route:path}", invoke, methods=methods)]
