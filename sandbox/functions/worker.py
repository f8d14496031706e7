"""The worker a site's functions run in: a child process of the sandbox, as the Python worker is
a child of the Functions host in Azure.

It imports the app's ``function_app.py`` (v2 programming model) with the real ``azure-functions``
package, tells the sandbox its functions (name, route, methods, auth level), then answers one
invocation per line on stdin with one line on stdout (JSON both ways). Its environment is the
site's alone (the sandbox builds it: identity endpoint, app settings), never the learner's.
What the functions print or log goes to stderr, the sandbox's log, as App Insights would keep it.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any


def load(app_dir: Path) -> Any:
    """The app's ``FunctionApp`` object, imported as the Functions host does (app folder on the
    path, ``function_app`` as the module's name)."""
    sys.path.insert(0, str(app_dir))
    spec = importlib.util.spec_from_file_location("function_app", app_dir / "function_app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["function_app"] = module
    spec.loader.exec_module(module)
    import azure.functions as func

    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionApp)]
    if len(apps) != 1:
        raise SystemExit("function_app.py must define exactly one FunctionApp")
    return apps[0]


def table(app: Any) -> dict[str, dict[str, Any]]:
    """Each HTTP-triggered function: {name: {route, methods, auth_level, call}}."""
    found = {}
    for fn in app.get_functions():
        trigger = fn.get_trigger()
        if getattr(trigger, "type", None) != "httpTrigger":
            continue
        level = trigger.auth_level or "function"
        found[fn.get_function_name()] = {
            "route": trigger.route or fn.get_function_name(),
            "methods": [str(getattr(m, "value", m)).upper() for m in trigger.methods or []],
            "auth_level": str(getattr(level, "value", level)).lower(),
            "call": fn.get_user_function(),
        }
    return found


def invoke(functions: dict[str, dict[str, Any]], msg: dict[str, Any]) -> dict[str, Any]:
    """Run one function; its HttpResponse as {status, headers, body}, or ``error`` (traceback)."""
    import azure.functions as func

    request = func.HttpRequest(
        method=msg["method"],
        url=msg["url"],
        headers=msg["headers"],
        params=msg["params"],
        route_params=msg["route_params"],
        body=base64.b64decode(msg["body"]),
    )
    try:
        result = functions[msg["function"]]["call"](request)
        if isinstance(result, str | bytes):
            result = func.HttpResponse(result)
        if not isinstance(result, func.HttpResponse):
            raise TypeError(f"the function returned {type(result).__name__}, not an HttpResponse")
    except Exception:
        return {"error": traceback.format_exc()}
    headers = dict(result.headers)
    if result.mimetype:
        headers.setdefault("Content-Type", f"{result.mimetype}; charset={result.charset}")
    return {
        "status": result.status_code,
        "headers": headers,
        "body": base64.b64encode(result.get_body() or b"").decode(),
    }


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # the functions' prints must not break the protocol
    try:
        functions = table(load(Path(sys.argv[1])))
    except BaseException:
        out.write(json.dumps({"error": traceback.format_exc()}) + "\n")
        return
    listing = {k: {f: v for f, v in d.items() if f != "call"} for k, d in functions.items()}
    out.write(json.dumps({"functions": listing}) + "\n")
    for line in sys.stdin:
        out.write(json.dumps(invoke(functions, json.loads(line))) + "\n")


if __name__ == "__main__":
    main()
