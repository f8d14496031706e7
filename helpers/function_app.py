"""Calling the tutorial's Function app (``apps/func-tutorial``) the way any client of a deployed
Function app does: its URL and a function key from Resource Manager, then plain HTTPS.

The same code on both targets: on Azure the site is the one you deployed (``FUNC_APP_NAME``);
on the sandbox its ``defaultHostName`` points at the sandbox, which runs the same app. The key
is read with the developer's own sign-in (``az login``): reading keys is a management action
(``Microsoft.Web/sites/host/listkeys/action``), which Reader does not allow.
"""

from __future__ import annotations

from typing import Any

from helpers import target

_cache: dict[str, tuple[str, str]] = {}  # site name -> (base URL, host key)


def _url_and_key(credential: Any = None) -> tuple[str, str]:
    """(``https://{defaultHostName}/api``, the host's default function key), from Resource
    Manager, read once per kernel."""
    from azure.mgmt.web import WebSiteManagementClient

    from helpers.progress import developer_credential

    kit = target.current()
    name = kit.func_app_name
    if name not in _cache:
        with target.acting_as("developer"):  # on the sandbox: the developer's az on PATH
            client = WebSiteManagementClient(
                credential or developer_credential(kit),
                kit.subscription_id,
                **target.helper_client_kwargs(),
            )
            site = client.web_apps.get(kit.resource_group, name)
            keys = client.web_apps.list_host_keys(kit.resource_group, name)
        _cache[name] = (f"https://{site.default_host_name}/api", keys.function_keys["default"])
    return _cache[name]


def call_function(
    route: str,
    params: dict[str, Any] | None = None,
    *,
    method: str = "GET",
    body: Any = None,
    credential: Any = None,
) -> Any:
    """Call ``/api/{route}`` on the tutorial's Function app with its function key and return
    what it answered (parsed JSON, or text). On failure, one sentence says what went wrong and
    the answer (if any) is returned as it came."""
    import requests
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    name = target.current().func_app_name
    for attempt in (1, 2):  # a key read earlier may have been renewed: read it again once
        cached = name in _cache
        try:
            base, key = _url_and_key(credential)
        except HttpResponseError as e:
            code = e.error.code if e.error else e.reason
            print(
                f"Could not read {name}'s URL and key from Resource Manager ({e.status_code} "
                f"{code}): reading keys needs Microsoft.Web/sites/host/listkeys/action on the "
                "site (Contributor has it, Reader does not)."
            )
            return None
        except ClientAuthenticationError as e:
            first = (str(e).strip().splitlines() or [""])[0]
            print(f"Could not sign in to Resource Manager to find {name}: {first}")
            return None
        url = f"{base}/{route.lstrip('/')}"
        try:
            response = requests.request(
                method, url, params=params, json=body, headers={"x-functions-key": key},
                timeout=120, verify=target.helper_verify(),
            )  # fmt: skip
        except requests.RequestException as e:
            print(f"Could not reach {name} at {url}: {type(e).__name__}.")
            return None
        if response.status_code != 401 or not cached or attempt == 2:
            break
        _cache.pop(name, None)
    try:
        answer = response.json()
    except ValueError:
        answer = response.text or None
    if response.status_code >= 400:
        detail = answer.get("error") if isinstance(answer, dict) else None
        reason = f": {detail}" if detail else " (no details: see the app's logs)"
        print(f"{name} answered {response.status_code} {response.reason}{reason}")
    return answer


def show_function_source(*names: str) -> None:
    """Display the app's code (all of ``function_app.py``, or only the named functions with
    their decorators), so a notebook shows exactly what runs in the Function app."""
    import ast
    from pathlib import Path

    from IPython.display import Markdown, display

    path = Path(__file__).resolve().parent.parent / "apps" / "func-tutorial" / "function_app.py"
    text = path.read_text()
    if names:
        lines = text.splitlines()
        parts = []
        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef) and node.name in names:
                start = min([d.lineno for d in node.decorator_list] + [node.lineno]) - 1
                parts.append("\n".join(lines[start : node.end_lineno]))
        text = "\n\n\n".join(parts)
    display(Markdown(f"`apps/func-tutorial/function_app.py`\n\n```python\n{text}\n```"))


__all__ = ["call_function", "show_function_source"]
