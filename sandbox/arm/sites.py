"""The Function app's sub-resources that ``az functionapp show`` reads after the site itself.

The Azure CLI's ``show`` reads the site's configuration (``GET …/sites/{name}/config/web``) and
its publishing profile (``POST …/sites/{name}/publishxml``, for ``ftpPublishingUrl``). Shapes
follow the Microsoft.Web spec examples (GetSiteConfig, ListPublishingProfileXmlWithSecrets, in
azure-rest-api-specs); see sandbox/FIDELITY.md. The sandbox serves no FTP or deployment endpoint,
so the profile's password is a fresh random value that opens nothing (our choice: it is what
Azure's profile carries in shape, never a secret of the sandbox's).
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from xml.sax.saxutils import quoteattr

from starlette.responses import JSONResponse, Response

from sandbox.arm.models import ArmError, ResourceManager, Scope

SITE_TYPE = "Microsoft.Web/sites"
_SUB_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Web/sites/"
    r"(?P<name>[^/]+)/(?P<rest>config/web|publishxml|host/default/listkeys|config/appsettings"
    r"|config/appsettings/list)/?$",
    re.I,
)


def site_config(host: dict[str, Any]) -> dict[str, Any]:
    """A Linux Consumption Function app's ``siteConfig`` (the GetSiteConfig example's fields)."""
    return {
        "numberOfWorkers": 1,
        "defaultDocuments": [],
        "netFrameworkVersion": "v4.0",
        "linuxFxVersion": "Python|3.11",
        "requestTracingEnabled": False,
        "remoteDebuggingEnabled": False,
        "httpLoggingEnabled": False,
        "logsDirectorySizeLimit": 35,
        "detailedErrorLoggingEnabled": False,
        "use32BitWorkerProcess": False,
        "webSocketsEnabled": False,
        "alwaysOn": False,
        "managedPipelineMode": "Integrated",
        "loadBalancing": "LeastRequests",
        "http20Enabled": False,
        "minTlsVersion": "1.2",
        "scmMinTlsVersion": "1.2",
        "ftpsState": "FtpsOnly",
        "functionAppScaleLimit": 200,
        "minimumElasticInstanceCount": 0,
        "azureStorageAccounts": {},
    }


def publish_profiles_xml(host: dict[str, Any]) -> str:
    """The publishing profile document (publishData/publishProfile), one entry per method."""
    name = host["name"]
    scm = f"{name}.scm.azurewebsites.net:443"
    methods = [
        ("MSDeploy", scm),
        ("FTP", "ftps://waws-prod-blu-001.ftp.azurewebsites.windows.net/site/wwwroot"),
        ("ZipDeploy", scm),
    ]
    entries = []
    for method, url in methods:
        attrs = {
            "profileName": f"{name} - {method}",
            "publishMethod": method,
            "publishUrl": url,
            "userName": f"${name}",
            "userPWD": secrets.token_urlsafe(45),
            "destinationAppUrl": f"https://{name}.azurewebsites.net",
            "SQLServerDBConnectionString": "",
            "webSystem": "WebSites",
        }
        text = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
        entries.append(f"<publishProfile {text}><databases /></publishProfile>")
    return "<publishData>" + "".join(entries) + "</publishData>"


def is_site_subresource(path: str) -> bool:
    return _SUB_RE.match(path) is not None


# sub-resource: (method, the action Resource Manager checks), as the Microsoft.Web operations
# list names them (Learn, "Azure permissions for Web and Mobile")
_OPERATIONS = {
    "config/web": ("GET", "Microsoft.Web/sites/config/Read"),
    "publishxml": ("POST", "Microsoft.Web/sites/publishxml/Action"),
    "host/default/listkeys": ("POST", "Microsoft.Web/sites/host/listkeys/action"),
    "config/appsettings": ("PUT", "Microsoft.Web/sites/config/Write"),
    "config/appsettings/list": ("POST", "Microsoft.Web/sites/config/list/Action"),
}


def _app_settings_view(host: dict[str, Any], settings: dict[str, str]) -> dict[str, Any]:
    """The StringDictionary Microsoft.Web answers for a site's app settings."""
    return {
        "id": f"{host['resource_id']}/config/appsettings",
        "name": "appsettings",
        "type": "Microsoft.Web/sites/config",
        "location": host["location"],
        "properties": settings,
    }


def _new_settings(body: Any) -> dict[str, str]:
    props = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in props.items()
    ):
        raise ArmError(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: 'properties' must "
            "be an object of string values.",
        )
    return dict(props)


def serve(rm: ResourceManager, method: str, path: str, body: Any = None) -> Response | None:
    """The answer for a site sub-resource path, or None when ``path`` is not one. A change of
    app settings restarts the site's worker on its next request, as Azure restarts the app."""
    from sandbox.functions.models import app_settings, site_keys

    m = _SUB_RE.match(path)
    if not m:
        return None
    scope = Scope(m.group("sub"), m.group("rg"), SITE_TYPE, m.group("name"))
    rest = m.group("rest").lower()
    wanted, action = _OPERATIONS[rest]
    if method != wanted:
        raise ArmError(
            405,
            "MethodNotAllowed",
            f"The requested resource does not support http method '{method}'.",
        )
    rm.authorize(scope.id, action)
    _, host = rm._find(scope)
    if host is None:
        raise rm._not_found(scope)
    base = rm.acs_endpoint.rstrip("/")
    if rest == "publishxml":
        return Response(publish_profiles_xml(host), media_type="application/xml")
    if rest == "host/default/listkeys":
        keys = site_keys(rm.store, host)
        return JSONResponse(
            {"masterKey": keys["master"], "functionKeys": keys["host"], "systemKeys": {}}
        )
    if rest == "config/appsettings/list":
        return JSONResponse(_app_settings_view(host, app_settings(host, base)))
    if rest == "config/appsettings":
        host["app_settings"] = _new_settings(body)
        rm.store.put("host", host["name"], host)
        return JSONResponse(_app_settings_view(host, host["app_settings"]))
    return JSONResponse(
        {
            "id": f"{host['resource_id']}/config/web",
            "name": host["name"],
            "type": "Microsoft.Web/sites/config",
            "location": host["location"],
            "properties": site_config(host),
        }
    )
