"""``python -m sandbox az-cloud``: point a real, unmodified Azure CLI at the sandbox.

The sandbox is registered as a custom cloud, the way Azure Stack Hub and the sovereign clouds
are: explicit endpoints (``az cloud register --skip-endpoint-discovery``; the sandbox also serves
``/metadata/endpoints`` for the one-line form), MSAL's instance discovery off (it would ask
login.microsoftonline.com about the sandbox's authority), and the sandbox's CA trusted through
``REQUESTS_CA_BUNDLE``. Microsoft Graph is the sandbox's own slice at ``<https_url>/graph/``.

Without ``--config-dir`` the command prints the settings for a shell; with it, it runs them with
``AZURE_CONFIG_DIR`` set to that folder, so a learner's own CLI configuration stays untouched.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sandbox.arm.discovery import graph_resource_id

CLOUD_NAME = "AzureSandbox"
ARM_AUDIENCE = "https://management.core.windows.net/"

# The CLI's settings for an offline cloud: no telemetry, no upgrade or survey prompts, no
# extension downloads mid-command, no instance discovery against Microsoft's hosts.
CONFIG = (
    "core.collect_telemetry=false",
    "core.instance_discovery=false",
    "core.survey_message=false",
    "core.login_experience_v2=off",
    "auto-upgrade.enable=no",
    "extension.use_dynamic_install=no",
)


def environment(status: dict[str, Any], config_dir: str | None = None) -> dict[str, str]:
    """Variables the real CLI needs: CA trust (requests reads REQUESTS_CA_BUNDLE), no telemetry."""
    env = {
        "REQUESTS_CA_BUNDLE": status["ca_bundle"],
        "AZURE_CORE_COLLECT_TELEMETRY": "0",
    }
    if config_dir:
        env["AZURE_CONFIG_DIR"] = config_dir
    return env


def commands(status: dict[str, Any]) -> list[list[str]]:
    """The ``az`` argument lists that register the sandbox and make it the active cloud."""
    base = status["https_url"].rstrip("/")
    register = [
        "cloud",
        "register",
        "--name",
        CLOUD_NAME,
        "--skip-endpoint-discovery",
        "--endpoint-resource-manager",
        f"{base}/",
        "--endpoint-active-directory",
        status["authority_host"].rstrip("/"),
        "--endpoint-active-directory-resource-id",
        ARM_AUDIENCE,
        "--endpoint-management",
        ARM_AUDIENCE,
        "--endpoint-active-directory-graph-resource-id",
        "https://graph.windows.net/",
        "--endpoint-microsoft-graph-resource-id",
        graph_resource_id(base),
        "--suffix-storage-endpoint",
        "core.windows.net",
        "--suffix-keyvault-dns",
        ".vault.azure.net",
        "--profile",
        "latest",
    ]
    return [
        ["config", "set", *CONFIG],
        # A registration from an earlier sandbox (other ports) is replaced; the active cloud
        # cannot be unregistered, so switch away first. Both fail harmlessly the first time.
        ["cloud", "set", "--name", "AzureCloud"],
        ["cloud", "unregister", "--name", CLOUD_NAME],
        register,
        ["cloud", "set", "--name", CLOUD_NAME],
    ]


def _may_fail(args: list[str]) -> bool:
    return args[:2] == ["cloud", "unregister"] or args[-1] == "AzureCloud"


def script(status: dict[str, Any]) -> str:
    """The recipe as shell lines a learner can paste or ``eval``."""
    lines = [
        "# Point a real Azure CLI at the sandbox (a custom cloud, as Azure Stack Hub is).",
        "# Tip: export AZURE_CONFIG_DIR=<a folder> first to keep your own CLI settings apart.",
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in environment(status).items()]
    for args in commands(status):
        line = "az " + " ".join(shlex.quote(a) for a in args)
        if _may_fail(args):
            line += " 2>/dev/null || true"
        lines.append(line)
    lines += [
        f"# then: az login --use-device-code --tenant {status['tenant_id']}"
        "   (approve with: python -m sandbox approve CODE)",
        "# az rest to the ACS data plane needs --resource https://communication.azure.com:",
        "# the sandbox serves Resource Manager and ACS from one origin, so without it the CLI",
        "# would attach its Resource Manager token.",
    ]
    return "\n".join(lines)


def _real_az(explicit: str | None) -> str:
    """The real CLI: ``--az``, else the first ``az`` on PATH that is not the kit's own shim."""
    if explicit:
        return explicit
    shim_dirs = {Path(sys.executable).parent.resolve()}
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which("az", path=folder) if folder else None
        if found and Path(found).parent.resolve() not in shim_dirs:
            text = Path(found).read_bytes()[:200]
            if b"sandbox.azcli" not in text:
                return found
    raise FileNotFoundError("no real Azure CLI ('az') on PATH; name one with --az")


def run(status: dict[str, Any], config_dir: str, az: str | None = None) -> int:
    """Apply the recipe to ``config_dir``; returns the first failing step's exit code, or 0."""
    Path(config_dir).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **environment(status, config_dir)}
    binary = _real_az(az)
    for args in commands(status):
        done = subprocess.run([binary, *args, "--only-show-errors"], env=env, capture_output=True)
        if done.returncode and not _may_fail(args):
            sys.stderr.write(done.stderr.decode(errors="replace"))
            return done.returncode
    print(f"registered the sandbox as cloud {CLOUD_NAME} in {config_dir} (now active)")
    print(
        f"use it with: AZURE_CONFIG_DIR={shlex.quote(config_dir)} "
        f"REQUESTS_CA_BUNDLE={shlex.quote(status['ca_bundle'])} az login ..."
    )
    return 0


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "az-cloud",
        help="print (or, with --config-dir, run) the settings that point a real Azure CLI here",
    )
    p.add_argument("--config-dir", help="run the registration against this AZURE_CONFIG_DIR")
    p.add_argument("--az", help="the real Azure CLI to run (default: the first on PATH)")
    p.set_defaults(func=cmd_az_cloud)


def cmd_az_cloud(settings: Any, args: argparse.Namespace) -> int:
    from sandbox import client

    status = client.start(settings)
    if not args.config_dir:
        print(script(status))
        return 0
    try:
        return run(status, args.config_dir, args.az)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
