"""Which Azure cloud the azure target talks to: the public cloud, or one named in ``.env``.

Sovereign clouds (Azure Government, Azure operated by 21Vianet) and private clouds (Azure Stack
Hub) are the same APIs at other addresses: an Entra ID authority, a Resource Manager URL, and the
audience Resource Manager's tokens are minted for. Learners on such a cloud name them in ``.env``;
everything else in the kit reads them from here, so no cell or helper hard-codes a public host.

The variable names follow Microsoft's own: ``AZURE_AUTHORITY_HOST`` is the one azure-identity
reads itself (every credential then signs in there); ``AZURE_ARM_ENDPOINT`` and
``AZURE_ARM_AUDIENCE`` are the names Microsoft's Azure samples use for the Resource Manager URL and
its token audience (the Azure CLI calls them ``endpoint_resource_manager`` and
``endpoint_active_directory_resource_id``: ``az cloud show`` prints them). See docs/custom-cloud.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

AUTHORITY_VAR, ARM_VAR, AUDIENCE_VAR = (
    "AZURE_AUTHORITY_HOST",
    "AZURE_ARM_ENDPOINT",
    "AZURE_ARM_AUDIENCE",
)

PUBLIC_AUTHORITY = "https://login.microsoftonline.com"
PUBLIC_ARM = "https://management.azure.com"
PUBLIC_ARM_AUDIENCE = "https://management.azure.com"

# The Communication Services audience is not a cloud setting: the ACS SDKs ask for this scope
# themselves (azure-communication-*'s auth policy), in every cloud that offers the service.
ACS_SCOPE = "https://communication.azure.com/.default"

# Microsoft's clouds (azure-identity's AzureAuthorityHosts, with MSAL's aliases): MSAL knows these.
# For any other authority, instance discovery would ask login.microsoftonline.com about it.
KNOWN_AUTHORITIES = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
    }
)


class CloudConfigError(ValueError):
    """A malformed cloud setting, in one sentence that names the variable."""


def scope_for(audience: str) -> str:
    """The ``/.default`` scope of a resource (its audience, with or without the trailing slash)."""
    return audience.rstrip("/") + "/.default"


def is_private_authority(authority_host: str) -> bool:
    """True for an authority that is not one of Microsoft's clouds (a private cloud, the sandbox):
    MSAL's instance discovery must be off for it, or the first sign-in asks Microsoft about it."""
    return (urlsplit(authority_host).hostname or "").lower() not in KNOWN_AUTHORITIES


@dataclass(frozen=True)
class Cloud:
    """The three addresses a cloud is made of; ``custom`` when any differs from the public one."""

    authority_host: str = PUBLIC_AUTHORITY
    arm_url: str = PUBLIC_ARM
    arm_audience: str = PUBLIC_ARM_AUDIENCE

    @property
    def custom(self) -> bool:
        return (self.authority_host, self.arm_url, self.arm_audience) != (
            PUBLIC_AUTHORITY,
            PUBLIC_ARM,
            PUBLIC_ARM_AUDIENCE,
        )

    @property
    def arm_scope(self) -> str:
        return scope_for(self.arm_audience)

    @property
    def private_authority(self) -> bool:
        return is_private_authority(self.authority_host)

    def credential_kwargs(self) -> dict[str, Any]:
        """Keywords for an azure-identity credential: ``authority`` (and instance discovery off
        for a private authority). Empty on the public cloud, where the defaults are right."""
        if self.authority_host == PUBLIC_AUTHORITY:
            return {}
        kwargs: dict[str, Any] = {"authority": self.authority_host}
        if self.private_authority:
            kwargs["disable_instance_discovery"] = True
        return kwargs

    def mgmt_kwargs(self) -> dict[str, Any]:
        """Keywords for a management client: where Resource Manager is and which token it takes.
        Empty on the public cloud (the management SDKs' defaults)."""
        if (self.arm_url, self.arm_audience) == (PUBLIC_ARM, PUBLIC_ARM_AUDIENCE):
            return {}
        return {"base_url": self.arm_url, "credential_scopes": [self.arm_scope]}


def _url(environ: Mapping[str, str], name: str, default: str) -> str:
    value = (environ.get(name) or "").strip()
    if not value:
        return default
    if "://" not in value and name == AUTHORITY_VAR:
        value = "https://" + value  # a bare host, as azure-identity accepts it
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise CloudConfigError(
            f"{name} is malformed: it should be an https URL such as {default} (see "
            "docs/custom-cloud.md)."
        )
    return value.rstrip("/")


def from_env(environ: Mapping[str, str] | None = None) -> Cloud:
    """The cloud ``.env`` (or the environment) names; Azure's public cloud for what it leaves out.

    A custom Resource Manager URL without an audience is refused rather than guessed: a token for
    the wrong audience is a 401 much later, far from the setting that caused it.
    """
    env = os.environ if environ is None else environ
    arm_url = _url(env, ARM_VAR, PUBLIC_ARM)
    audience = (env.get(AUDIENCE_VAR) or "").strip()
    if not audience:
        if arm_url != PUBLIC_ARM:
            raise CloudConfigError(
                f"{AUDIENCE_VAR} is not set: with {ARM_VAR} set, name the audience of its tokens "
                "too (`az cloud show --query endpoints.activeDirectoryResourceId`)."
            )
        audience = PUBLIC_ARM_AUDIENCE
    else:
        audience = _url(env, AUDIENCE_VAR, PUBLIC_ARM_AUDIENCE)
    return Cloud(_url(env, AUTHORITY_VAR, PUBLIC_AUTHORITY), arm_url, audience)
