"""``az cloud register|set|show|list|unregister`` for the sandbox's ``az`` (sandbox/azcli.py).

A sovereign or private cloud is selected in the Azure CLI by registering its endpoints and making
it the active cloud; the kit's custom-cloud path (docs/custom-cloud.md) and its tests do the same
with this stand-in. Registered clouds and the active one are kept in ``clouds.json`` beside the
stand-in's profile (the real CLI keeps ``clouds.config`` and ``config``). The output has the real
CLI's shape (azure-cli 2.91.0): ``endpoints`` and ``suffixes`` with every key, ``null`` where a
registration named none. A sign-in belongs to the cloud it was made in, as in the real CLI.

Standard library only: ``az`` starts a process for every token a credential asks for.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

ENDPOINTS = ("activeDirectory", "activeDirectoryDataLakeResourceId",
             "activeDirectoryGraphResourceId", "activeDirectoryResourceId",
             "appInsightsResourceId", "appInsightsTelemetryChannelResourceId",
             "appServiceResourceId", "attestationResourceId", "azmirrorStorageAccountResourceId",
             "batchResourceId", "gallery", "logAnalyticsResourceId", "management",
             "mediaResourceId", "microsoftGraphResourceId", "ossrdbmsResourceId", "portal",
             "resourceManager", "sqlManagement", "synapseAnalyticsResourceId",
             "vmImageAliasDoc")  # fmt: skip
SUFFIXES = ("acrLoginServerEndpoint", "attestationEndpoint",
            "azureDatalakeAnalyticsCatalogAndJobEndpoint", "azureDatalakeStoreFileSystemEndpoint",
            "keyvaultDns", "mariadbServerEndpoint", "mhsmDns", "mysqlServerEndpoint",
            "postgresqlServerEndpoint", "sqlServerHostname", "storageEndpoint",
            "storageSyncEndpoint", "synapseAnalyticsEndpoint")  # fmt: skip

# The clouds azure-cli 2.91.0 knows, with the endpoints a sign-in uses (`az cloud list`).
KNOWN = {
    "AzureCloud": ("https://login.microsoftonline.com", "https://management.core.windows.net/",
                   "https://management.azure.com/", "https://graph.microsoft.com/"),
    "AzureChinaCloud": ("https://login.chinacloudapi.cn",
                        "https://management.core.chinacloudapi.cn/",
                        "https://management.chinacloudapi.cn",
                        "https://microsoftgraph.chinacloudapi.cn"),
    "AzureUSGovernment": ("https://login.microsoftonline.us",
                          "https://management.core.usgovcloudapi.net/",
                          "https://management.usgovcloudapi.net/", "https://graph.microsoft.us/"),
    "AzureBleuCloud": ("https://login.sovcloud-identity.fr", "https://management.sovcloud-api.fr/",
                       "https://management.sovcloud-api.fr", "https://graph.svc.sovcloud.fr"),
}  # fmt: skip
DEFAULT_CLOUD = "AzureCloud"
REQUIRED = {"resourceManager": "--endpoint-resource-manager",
            "activeDirectory": "--endpoint-active-directory",
            "activeDirectoryResourceId": "--endpoint-active-directory-resource-id"}  # fmt: skip
METADATA = "/metadata/endpoints?api-version=2022-09-01"


class CloudError(Exception):
    """The real CLI's words for a refused ``az cloud`` command."""


def _camel(option: str, prefix: str) -> str:
    head, *rest = option[len(prefix) :].split("-")
    return head + "".join(w.capitalize() for w in rest)


def _file(folder: Path) -> Path:
    return folder / "clouds.json"


def load(folder: Path) -> dict[str, Any]:
    try:
        doc = json.loads(_file(folder).read_text())
    except (FileNotFoundError, ValueError):
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    doc.setdefault("active", DEFAULT_CLOUD)
    doc.setdefault("custom", {})
    return doc


def _save(folder: Path, doc: dict[str, Any]) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = folder / f".clouds.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, _file(folder))


def describe(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """One cloud as ``az cloud show`` prints it."""
    if name in KNOWN:
        ad, audience, arm, graph = KNOWN[name]
        endpoints = {"activeDirectory": ad, "activeDirectoryResourceId": audience,
                     "management": audience, "resourceManager": arm,
                     "microsoftGraphResourceId": graph}  # fmt: skip
        suffixes: dict[str, Any] = {}
        profile = "latest"
    elif name in doc["custom"]:
        given = doc["custom"][name]
        endpoints, suffixes, profile = given["endpoints"], given["suffixes"], given["profile"]
    else:
        raise CloudError(f"The cloud '{name}' is not registered.")
    shown = {k: endpoints.get(k) for k in ENDPOINTS}
    # As the real CLI shows it: the management endpoint is Resource Manager's unless named.
    shown["management"] = shown["management"] or shown["resourceManager"]
    return {
        "endpoints": shown,
        "isActive": name == doc["active"],
        "name": name,
        "profile": profile,
        "suffixes": {k: suffixes.get(k) for k in SUFFIXES},
    }


def active(folder: Path) -> dict[str, Any]:
    doc = load(folder)
    return describe(doc, doc["active"])


def register(folder: Path, opts: dict[str, str], discover: Any = None) -> None:
    """``az cloud register --name X --endpoint-... URL [--suffix-... S] [--profile P]``.

    Without ``--skip-endpoint-discovery`` the real CLI reads the cloud's metadata document from
    its Resource Manager; ``discover(url)`` does that here and the flags override what it found.
    """
    name = opts.get("--name")
    if not name:
        raise CloudError("the following arguments are required: --name/-n")
    doc = load(folder)
    if name in KNOWN or name in doc["custom"]:
        raise CloudError(f"The cloud '{name}' is already registered.")
    endpoints = {
        _camel(k, "--endpoint-"): v for k, v in opts.items() if k.startswith("--endpoint-")
    }
    suffixes = {_camel(k, "--suffix-"): v for k, v in opts.items() if k.startswith("--suffix-")}
    if "--skip-endpoint-discovery" not in opts and endpoints.get("resourceManager") and discover:
        endpoints = {**discover(endpoints["resourceManager"]), **endpoints}
    missing = [flag for key, flag in REQUIRED.items() if not endpoints.get(key)]
    if missing:
        raise CloudError(
            "The following endpoints are required for the CLI to function and were not "
            "specified on the command line, in the cloud config or could not be autodetected.\n"
            "Specify them on the command line or through the cloud config file:\n"
            + ", ".join(missing)
        )
    unknown = sorted(set(endpoints) - set(ENDPOINTS)) + sorted(set(suffixes) - set(SUFFIXES))
    if unknown:
        raise CloudError(f"unrecognized arguments: {', '.join(unknown)}")
    doc["custom"][name] = {
        "endpoints": endpoints,
        "suffixes": suffixes,
        "profile": opts.get("--profile") or "latest",
    }
    _save(folder, doc)


def from_metadata(metadata: dict[str, Any]) -> dict[str, str]:
    """The endpoints a Resource Manager metadata document names (the CLI's mapping)."""
    auth = metadata.get("authentication") or {}
    audiences = auth.get("audiences") or [None]
    found = {
        "resourceManager": metadata.get("resourceManager"),
        "activeDirectory": auth.get("loginEndpoint"),
        "activeDirectoryResourceId": audiences[0],
        "management": audiences[0],
        "microsoftGraphResourceId": metadata.get("microsoftGraphResourceId"),
        "activeDirectoryGraphResourceId": metadata.get("graph"),
        "portal": metadata.get("portal"),
    }
    return {k: v for k, v in found.items() if isinstance(v, str) and v}


def set_active(folder: Path, name: str | None) -> list[str]:
    """``az cloud set --name X``; returns the warnings the real CLI prints when the new cloud
    has no sign-in (sandbox/azcli.py says instead which subscription is active when it has)."""
    if not name:
        raise CloudError("the following arguments are required: --name/-n")
    doc = load(folder)
    if name == doc["active"]:
        return []
    describe(doc, name)  # not registered: the real CLI's error
    doc["active"] = name
    _save(folder, doc)
    return [
        f"Switched active cloud to '{name}'.",
        "Use 'az login' to log in to this cloud.",
        "Use 'az account set' to set the active subscription.",
    ]


def unregister(folder: Path, name: str | None) -> None:
    if not name:
        raise CloudError("the following arguments are required: --name/-n")
    doc = load(folder)
    describe(doc, name)
    if name == doc["active"]:
        raise CloudError(f"The cloud '{name}' cannot be unregistered as it's currently active.")
    if name in KNOWN:
        raise CloudError(f"The cloud '{name}' cannot be unregistered as it's not a custom cloud.")
    del doc["custom"][name]
    _save(folder, doc)


def listed(folder: Path) -> list[dict[str, Any]]:
    doc = load(folder)
    return [describe(doc, name) for name in [*KNOWN, *doc["custom"]]]


def is_loopback(url: str) -> bool:
    """This stand-in signs in only against the sandbox on this machine."""
    return (urllib.parse.urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")
