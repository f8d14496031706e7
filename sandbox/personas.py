"""Who the SDKs act as: the environment variables that make a process one of the personas.

``python -m sandbox env --as NAME`` prints these for a shell, and the notebook helpers apply them
to the kernel. Each persona first clears every variable that could steer a credential elsewhere
(a leftover ``IDENTITY_ENDPOINT`` or ``AZURE_CLIENT_SECRET`` changes what ``DefaultAzureCredential``
does) and always points the IMDS probe at the sandbox, so nothing can reach 169.254.169.254.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path
from typing import Any

PERSONAS = ("developer", "service-principal", "vm-tutorial", "func-tutorial")

# Every variable azure-identity or MSAL reads to choose or configure a credential.
CREDENTIAL_VARIABLES = (
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_AUTHORITY_HOST",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_TOKEN_CREDENTIALS",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
)

# The variables that make Python's HTTP clients trust a CA bundle: requests (the sync SDK
# clients), aiohttp and ssl (the async ones), and curl.
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
# What the harness running the sandbox may hand down to a machine's processes (the tests'
# loopback guard and where Python keeps bytecode); nothing else of the sandbox's environment.
_HARNESS_VARIABLES = ("KIT_LOOPBACK_GUARD_LOG", "PYTHONPATH", "PYTHONPYCACHEPREFIX")


def host_environment(ca: str, mi_url: str, host: str) -> dict[str, str]:
    """What every process on a sandbox machine sees, whatever else its kind gives it: trust in
    the CA file ``ca`` (public Azure needs no setting for that), and the IMDS probe pointed at
    that machine's path on the sandbox, so a machine without an identity is refused there and
    nothing ever reaches 169.254.169.254. The sandbox's VMs and apps trust its CA alone (all
    they may reach is the sandbox); a learner's kernel trusts the bundle that adds the public
    roots, so that ``pip`` and the like still work in it."""
    return {
        **dict.fromkeys(CA_VARIABLES, ca),
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": f"{mi_url}/hosts/{host}",
    }


def harness_variables() -> dict[str, str]:
    """The harness's variables a host's processes inherit: only under the tests' loopback
    guard, so those processes stay under it too."""
    if not os.environ.get("KIT_LOOPBACK_GUARD_LOG"):
        return {}
    return {name: os.environ[name] for name in _HARNESS_VARIABLES if name in os.environ}


LAPTOP = "developer-laptop"  # a machine with no managed identity: its IMDS path answers 400


def bin_dir(state_dir: Path) -> Path:
    return state_dir / "bin"


def install_az_shim(state_dir: Path) -> Path:
    """Write the sandbox's ``az`` (see sandbox/azcli.py) with an absolute interpreter path,
    because AzureCliCredential runs it from a system directory with the caller's environment."""
    folder = bin_dir(state_dir)
    folder.mkdir(exist_ok=True)
    shim = folder / "az"
    text = f"#!{sys.executable}\nfrom sandbox.azcli import main\nraise SystemExit(main())\n"
    if not shim.exists() or shim.read_text() != text:
        shim.write_text(text)
        shim.chmod(stat.S_IRWXU)
    return shim


def persona_env(name: str, status: dict[str, Any], store_secrets: dict[str, Any]) -> dict[str, Any]:
    """{"set": {...}, "unset": [...], "path_prepend": str|None, "path_remove": str}.

    ``path_remove`` is the folder of the sandbox's ``az``: a process that stops being the
    developer must stop finding it, or AzureCliCredential would still sign in as the developer.
    """
    from sandbox import world  # here, not above: the command line imports this module early

    if name not in PERSONAS:
        raise KeyError(name)
    bundle = status["ca_bundle"]
    mi = status["mi_url"]
    machine = name if name in ("vm-tutorial", "func-tutorial") else LAPTOP
    values = {**host_environment(bundle, mi, machine), "SANDBOX_STATE_DIR": status["state_dir"]}
    path_prepend = None
    if name == "developer":
        path_prepend = str(bin_dir(Path(status["state_dir"])))
    elif name == "service-principal":
        values.update(
            AZURE_CLIENT_ID=world.SP_CLIENT_ID,
            AZURE_CLIENT_SECRET=store_secrets["sp_secret"],
            AZURE_TENANT_ID=world.TENANT_ID,
            AZURE_AUTHORITY_HOST=status["authority_host"],
        )
    elif name == "func-tutorial":
        values["IDENTITY_ENDPOINT"] = f"{mi}/hosts/func-tutorial/msi/token"
        values["IDENTITY_HEADER"] = store_secrets["identity_headers"]["func-tutorial"]
    unset = [v for v in CREDENTIAL_VARIABLES if v not in values]
    return {
        "set": values,
        "unset": unset,
        "path_prepend": path_prepend,
        "path_remove": str(bin_dir(Path(status["state_dir"]))),
    }


def shell_lines(env: dict[str, Any]) -> list[str]:
    lines = [f"unset {v}" for v in env["unset"]]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env["set"].items()]
    if env["path_prepend"]:
        lines.append(f'export PATH={shlex.quote(env["path_prepend"])}:"$PATH"')
    return lines
