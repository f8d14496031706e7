"""The resource types this Resource Manager serves and the api-versions each accepts: one table.

Azure's Resource Manager routes a request by the resource type in its path and refuses an
api-version that the type's provider has not registered. The refusal differs by who owns the
type, so each entry names its ``refusal``:

- ``NoRegisteredProviderFound`` (400): resource providers (Compute, Web, ManagedIdentity,
  Communication) and Microsoft.Authorization's roleDefinitions. Live texts: Azure/azure-cli#28496,
  MicrosoftDocs/azure-docs PR #62621, Azure/azure-sdk-for-java PR #28334 (roleDefinitions, with
  "The supported locations are ''").
- ``InvalidResourceType`` (404): Microsoft.Authorization's roleAssignments (Azure/azure-sdk-for-
  java PR #28334, Azure/acs-engine#4037, whose deployment detail gives the status NotFound).
- ``InvalidApiVersionParameter`` (400): the types Resource Manager serves itself (subscriptions,
  resource groups, the generic resource list), with Resource Manager's own version list in its
  own order (Azure/azure-cli#31331, 2025; the same list grows in pulumi/pulumi-azure-native#3637
  and Azure/azure-powershell#3079).

The version lists come from those live answers and from the API specs' readme tags in
Azure/azure-rest-api-specs (``specification/<service>/resource-manager/.../readme.md``); each
entry's ``sources`` says which. This module is data plus two pure functions so a providers API
(``GET /subscriptions/{id}/providers/{namespace}``) can be built on the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

# Resource Manager's own api-versions, exactly as its InvalidApiVersionParameter message lists
# them (Azure/azure-cli#31331, 2025), preceded by the two newer ones the spec's readme tags add
# (package-resources-2025-03, -2025-04; azure-mgmt-resource 26.0.0 sends 2025-04-01). Where ARM
# puts them in its list is not known: our choice, first.
ARM_VERSIONS = (
    "2025-04-01,2025-03-01,"
    "2024-10-01-preview,2024-11-01,2024-08-01,2024-07-01,2024-06-01-preview,2024-03-01,"
    "2023-07-01,2023-07-01-preview,2023-03-01-preview,2022-12-01,2022-11-01-preview,2022-09-01,"
    "2022-06-01,2022-05-01,2022-03-01-preview,2022-01-01,2021-04-01,2021-01-01,2020-10-01,"
    "2020-09-01,2020-08-01,2020-07-01,2020-06-01,2020-05-01,2020-01-01,2019-11-01,2019-10-01,"
    "2019-09-01,2019-08-01,2019-07-01,2019-06-01,2019-05-10,2019-05-01,2019-03-01,2018-11-01,"
    "2018-09-01,2018-08-01,2018-07-01,2018-06-01,2018-05-01,2018-02-01,2018-01-01,2017-12-01,"
    "2017-08-01,2017-06-01,2017-05-10,2017-05-01,2017-03-01,2016-09-01,2016-07-01,2016-06-01,"
    "2016-02-01,2015-11-01,2015-01-01,2014-04-01-preview,2014-04-01,2014-01-01,2013-03-01,"
    "2014-02-26,2014-04"
).split(",")

# Public regions as a Compute NoRegisteredProviderFound answer lists them (MicrosoftDocs/azure-docs
# PR #62621). Our choice: the same list for Web and ManagedIdentity, whose own lists we have not
# seen in full.
PUBLIC_REGIONS = (
    "eastus, eastus2, westus, centralus, northcentralus, southcentralus, northeurope, westeurope, "
    "eastasia, southeastasia, japaneast, japanwest, australiaeast, australiasoutheast, "
    "australiacentral, brazilsouth, southindia, centralindia, westindia, canadacentral, "
    "canadaeast, westus2, westcentralus, uksouth, ukwest, koreacentral, koreasouth, "
    "francecentral, southafricanorth, uaenorth, switzerlandnorth, germanywestcentral, norwayeast"
).split(", ")

NO_PROVIDER = "NoRegisteredProviderFound"
INVALID_TYPE = "InvalidResourceType"
INVALID_VERSION = "InvalidApiVersionParameter"


@dataclass(frozen=True)
class ResourceType:
    """One registered resource type: what ARM knows about it before any provider answers."""

    namespace: str
    type: str  # as ARM names it in messages: "virtualMachines", "roleAssignments"
    api_versions: tuple[str, ...]  # in the order ARM lists them
    locations: tuple[str, ...]
    refusal: str
    sources: str

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.type}"


def _versions(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


_WEB_VERSIONS = _versions(
    "2015-08-01, 2016-08-01, 2018-02-01, 2018-11-01, 2019-08-01, 2020-06-01, 2020-09-01, "
    "2020-10-01, 2020-12-01, 2021-01-01, 2021-01-15, 2021-02-01, 2021-03-01, 2022-03-01, "
    "2022-09-01, 2023-01-01, 2023-12-01, 2024-04-01, 2024-11-01, 2025-03-01, 2025-05-01"
)
_WEB_SOURCES = (
    "Azure/azure-resource-manager-schemas#2037 (Microsoft.Web/sites/* to 2021-02-01); "
    "specification/web/resource-manager/Microsoft.Web/AppService stable folders "
    "(2021-03-01 to 2025-03-01); azure-mgmt-web 11.0.0 (Azure CLI 2.91.0) and 11.0.1 (the "
    "lock) send 2025-05-01"
)
# Microsoft.Network: a subset of the stable versions (the spec readme's package tags we
# confirmed); ARM's own list is longer. azure-mgmt-network 33.1.0 (the lock) sends 2026-03-01.
_NETWORK_VERSIONS = _versions(
    "2015-06-15, 2016-09-01, 2017-06-01, 2018-02-01, 2018-08-01, 2019-02-01, 2019-11-01, "
    "2020-06-01, 2020-11-01, 2021-02-01, 2021-05-01, 2021-08-01, 2022-01-01, 2022-05-01, "
    "2022-07-01, 2022-09-01, 2022-11-01, 2023-02-01, 2023-04-01, 2023-05-01, 2023-06-01, "
    "2023-09-01, 2023-11-01, 2024-01-01, 2024-03-01, 2024-05-01, 2026-03-01"
)
_NETWORK_SOURCES = (
    "specification/network/resource-manager/readme.md package tags (a subset); "
    "azure-mgmt-network 33.1.0 sends 2026-03-01"
)


def _network(rtype: str) -> ResourceType:
    return ResourceType(
        "Microsoft.Network",
        rtype,
        _NETWORK_VERSIONS,
        tuple(PUBLIC_REGIONS),
        NO_PROVIDER,
        _NETWORK_SOURCES,
    )


RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        "Microsoft.Compute",
        "virtualMachines",
        _versions(
            "2015-05-01-preview, 2015-06-15, 2016-03-30, 2016-04-30-preview, 2016-08-30, "
            "2017-03-30, 2017-12-01, 2018-04-01, 2018-06-01, 2018-10-01, 2019-03-01, 2019-07-01, "
            "2019-12-01, 2020-06-01, 2020-12-01, 2021-03-01, 2021-04-01, 2021-07-01, 2021-11-01, "
            "2022-03-01, 2022-08-01, 2022-11-01, 2023-03-01, 2023-07-01, 2023-09-01, 2024-03-01, "
            "2024-07-01, 2024-11-01, 2025-04-01, 2026-04-01"
        ),
        tuple(PUBLIC_REGIONS),
        NO_PROVIDER,
        "Azure/azure-cli#7533 (live list to 2018-06-01); Azure/azure-rest-api-specs#27695 (live "
        "Compute list to 2024-03-01); specification/compute/.../Compute/readme.md (2024-07-01, "
        "2024-11-01, 2025-04-01); Azure/azure-cli 2.91.0 aaz vm show/update send 2026-04-01",
    ),
    ResourceType(
        "Microsoft.Web", "sites", _WEB_VERSIONS, tuple(PUBLIC_REGIONS), NO_PROVIDER, _WEB_SOURCES
    ),
    ResourceType(
        "Microsoft.Web",
        "serverfarms",
        _WEB_VERSIONS,
        tuple(PUBLIC_REGIONS),
        NO_PROVIDER,
        _WEB_SOURCES,
    ),
    _network("virtualNetworks"),
    _network("virtualNetworks/subnets"),
    _network("networkSecurityGroups"),
    _network("publicIPAddresses"),
    _network("networkInterfaces"),
    ResourceType(
        "Microsoft.Storage",
        "storageAccounts",
        _versions(
            "2015-06-15, 2016-01-01, 2017-06-01, 2018-02-01, 2019-06-01, 2021-09-01, "
            "2022-09-01, 2023-01-01, 2023-05-01, 2024-01-01, 2025-01-01, 2025-06-01, "
            "2025-08-01, 2026-04-01, 2026-06-01, 2026-09-01"
        ),
        tuple(PUBLIC_REGIONS),
        NO_PROVIDER,
        "specification/storage/resource-manager/readme.md package tags (2025-01 to 2026-09; "
        "earlier ones a subset); azure-mgmt-storage 25.3.0 (the lock) sends 2026-09-01",
    ),
    ResourceType(
        "Microsoft.ManagedIdentity",
        "userAssignedIdentities",
        _versions(
            "2015-08-31-preview, 2018-11-30, 2021-09-30-preview, 2022-01-31-preview, 2023-01-31, "
            "2023-07-31-preview, 2024-11-30, 2025-01-31-preview, 2025-05-31-preview, 2026-05-31"
        ),
        tuple(PUBLIC_REGIONS),
        NO_PROVIDER,
        "specification/msi/resource-manager/Microsoft.ManagedIdentity/ManagedIdentity/readme.md",
    ),
    ResourceType(
        "Microsoft.Communication",
        "communicationServices",
        _versions(
            "2020-08-20-preview, 2020-08-20, 2021-10-01-preview, 2022-07-01-preview, "
            "2023-03-01-preview, 2023-03-31, 2023-04-01-preview, 2023-04-01, 2023-06-01-preview, "
            "2024-09-01-preview, 2025-05-01-preview, 2025-05-01, 2025-09-01, 2026-03-18"
        ),
        ("global",),
        NO_PROVIDER,
        "specification/communication/resource-manager/Microsoft.Communication/Communication/"
        "readme.md; locations 'global': our choice (ACS resources live in 'global')",
    ),
    ResourceType(
        "Microsoft.Authorization",
        "roleDefinitions",
        _versions(
            "2014-04-01-preview, 2014-07-01-preview, 2014-10-01-preview, 2015-05-01-preview, "
            "2015-06-01, 2015-07-01, 2016-07-01, 2017-05-01, 2017-09-01, 2018-01-01-preview, "
            "2018-07-01, 2022-04-01, 2022-05-01-preview"
        ),
        (),
        NO_PROVIDER,
        "Azure/azure-sdk-for-java PR #28334 (live list, 2022); specification/authorization/.../"
        "Authorization/readme.md (2022-04-01, 2022-05-01-preview)",
    ),
    ResourceType(
        "Microsoft.Authorization",
        "roleAssignments",
        _versions(
            "2014-04-01-preview,2014-07-01-preview,2014-10-01-preview,2015-05-01-preview,"
            "2015-06-01,2015-07-01,2016-07-01,2017-05-01,2017-09-01,2017-10-01-preview,"
            "2018-01-01-preview,2018-07-01,2018-09-01-preview,2018-12-01-preview,"
            "2019-04-01-preview,2020-03-01-preview,2020-04-01-preview,2020-08-01-preview,"
            "2020-10-01-preview,2021-04-01-preview,2022-01-01-preview,2022-04-01"
        ),
        (),
        INVALID_TYPE,
        "Azure/azure-sdk-for-java PR #28334 (live list, 2022); specification/authorization/.../"
        "Authorization/readme.md (2022-04-01)",
    ),
    ResourceType(
        "Microsoft.Resources",
        "subscriptions",
        tuple(ARM_VERSIONS),
        (),
        INVALID_VERSION,
        "Azure/azure-cli#31331",
    ),
    ResourceType(
        "Microsoft.Resources",
        "resourceGroups",
        tuple(ARM_VERSIONS),
        (),
        INVALID_VERSION,
        "Azure/azure-cli#31331",
    ),
    ResourceType(
        "Microsoft.Resources",
        "resources",
        tuple(ARM_VERSIONS),
        (),
        INVALID_VERSION,
        "Azure/azure-cli#31331",
    ),
)

_BY_NAME = {t.full_name.lower(): t for t in RESOURCE_TYPES}


def resource_type(full_name: str) -> ResourceType | None:
    """The registered type for ``Namespace/type`` (any case), or None."""
    return _BY_NAME.get(full_name.lower())


def api_version_refusal(
    full_name: str, api_version: str, location: str
) -> tuple[int, str, str] | None:
    """(status, code, message) as ARM refuses ``api_version`` for the type, or None if supported.

    ARM compares api-versions case-insensitively; ``location`` is the one ARM routes by (the
    resource group's), empty where there is none.
    """
    rt = resource_type(full_name)
    if rt is None or api_version.lower() in (v.lower() for v in rt.api_versions):
        return None
    if rt.refusal == INVALID_VERSION:
        return (
            400,
            INVALID_VERSION,
            f"The api-version '{api_version}' is invalid. The supported versions are "
            f"'{','.join(rt.api_versions)}'.",
        )
    if rt.refusal == INVALID_TYPE:
        return (
            404,
            INVALID_TYPE,
            f"The resource type '{rt.type}' could not be found in the namespace "
            f"'{rt.namespace}' for api version '{api_version}'. The supported api-versions are "
            f"'{','.join(rt.api_versions)}'.",
        )
    return (
        400,
        NO_PROVIDER,
        f"No registered resource provider found for location '{location}' and API version "
        f"'{api_version}' for type '{rt.type}'. The supported api-versions are "
        f"'{', '.join(rt.api_versions)}'. The supported locations are "
        f"'{', '.join(rt.locations)}'.",
    )
