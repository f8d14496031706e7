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
    r"(?P<name>[^/]+)/(?P<rest>config/web|config/appsettings/list|config/appsettings|publishxml)/?$",
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


def serve(rm: ResourceManager, method: str, path: str, body: Any = None) -> Response | None:
    """The answer for a site sub-resource path, or None when ``path`` is not one."""
    m = _SUB_RE.match(path)
    if not m:
        return None
    scope = Scope(m.group("sub"), m.group("rg"), SITE_TYPE, m.group("name"))
    rest = m.group("rest").lower()
    wanted = "GET" if rest == "config/web" else "POST"
    if rest == "config/appsettings":
        if method != "PUT":
            raise ArmError(
                405,
                "MethodNotAllowed",
                f"The requested resource does not support http method '{method}'.",
            )
        return JSONResponse(rm.put_site_app_settings(scope, body))
    if rest == "config/appsettings/list":
        if method != wanted:
            raise ArmError(
                405,
                "MethodNotAllowed",
                f"The requested resource does not support http method '{method}'.",
            )
        return JSONResponse(rm.site_app_settings(scope))
    if method != wanted:
        raise ArmError(
            405,
            "MethodNotAllowed",
            f"The requested resource does not support http method '{method}'.",
        )
    action = (
        "Microsoft.Web/sites/config/Read"
        if wanted == "GET"
        else ("Microsoft.Web/sites/publishxml/Action")
    )
    rm.authorize(scope.id, action)
    _, host = rm._find(scope)
    if host is None:
        raise rm._not_found(scope)
    if rest == "publishxml":
        return Response(publish_profiles_xml(host), media_type="application/xml")
    return JSONResponse(
        {
            "id": f"{host['resource_id']}/config/web",
            "name": host["name"],
            "type": "Microsoft.Web/sites/config",
            "location": host["location"],
            "properties": site_config(host),
        }
    )
