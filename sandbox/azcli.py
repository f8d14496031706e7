"""A small ``az`` for the developer persona: sign in (device code or service principal), hand
out tokens.

``AzureCliCredential`` (and so ``DefaultAzureCredential`` on a developer's laptop) runs
``az account get-access-token`` and reads its JSON. The real Azure CLI is a large install and
signs in against login.microsoftonline.com only, so the sandbox ships this stand-in: the same
commands, output and error wording the SDK relies on, talking to the local Entra ID with a
refresh token kept in ``<SANDBOX_STATE_DIR>/azure-cli/`` (readable by its owner only).

Standard library only, and little of it: AzureCliCredential starts a new process for every
token it needs. Supported: ``login [--use-device-code] [--tenant T]``,
``login -u NAME -p PASSWORD`` (a user's password: no polling),
``login --service-principal -u APP_ID -p SECRET --tenant T`` (the real command's syntax; the
secret is kept in the profile file, as the real CLI keeps it in service_principal_entries),
``logout``,
``cloud register|set|show|list|unregister`` (sandbox/azcli_cloud.py),
``account show|list|clear``, ``account get-access-token [--resource R | --scope S] [--tenant T]
[--subscription S] [--query KEY] [--output json|tsv]``, ``version``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from sandbox import azcli_cloud
from sandbox.config import Settings

AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"  # = sandbox.world, not imported: speed
DEFAULT_RESOURCE = "https://management.core.windows.net/"
LOGIN_TENANT = "organizations"  # as the real CLI: the account's home tenant is learned at sign-in
REFRESH_MARGIN = 300  # reuse a cached access token while it has more than five minutes left
NOT_LOGGED_IN = "Please run 'az login' to set up an account."
FLAGS = {"--use-device-code", "--allow-no-subscriptions", "--only-show-errors", "--debug",
         "--verbose", "--all", "--help", "-h", "--version", "--service-principal",
         "--skip-endpoint-discovery"}  # fmt: skip
SHORT = {"-o": "--output", "-t": "--tenant", "-s": "--subscription", "-u": "--username",
         "-p": "--password", "-n": "--name"}  # fmt: skip


class CliError(Exception):
    """Printed as ``ERROR: ...`` on stderr with exit code 1, as the real CLI does."""


# -- where things are ----------------------------------------------------------------------------


def _settings() -> Settings:
    return Settings.from_env()


def _profile_file(settings: Settings) -> Path:
    return settings.azcli_dir / "profile.json"


def _load_profile(settings: Settings) -> dict[str, Any] | None:
    try:
        doc = json.loads(_profile_file(settings).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    return doc if doc.get("refresh_token") or doc.get("service_principal") else None


def _save_profile(settings: Settings, doc: dict[str, Any]) -> None:
    path = _profile_file(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".profile.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def _sandbox(settings: Settings) -> dict[str, Any]:
    """Where to sign in: the sandbox's instance document, with ``arm_url``, ``resource`` (the
    Resource Manager audience) and ``cloud``. The built-in clouds all mean the sandbox here; a
    registered custom cloud (``az cloud register``/``set``) means its own endpoints, which must
    be on this machine: this az talks to nothing else."""
    cloud = azcli_cloud.active(settings.azcli_dir)
    try:
        instance = json.loads(settings.instance_file.read_text())
    except (FileNotFoundError, ValueError):
        instance = None
    if cloud["name"] in azcli_cloud.KNOWN:
        if instance is None:
            raise CliError(
                "The sandbox is not running (no instance.json in "
                f"{settings.state_dir}); start it with: python -m sandbox start"
            )
        return {**instance, "arm_url": instance["https_url"], "resource": DEFAULT_RESOURCE,
                "cloud": cloud["name"]}  # fmt: skip
    ends = cloud["endpoints"]
    for url in (ends["activeDirectory"], ends["resourceManager"]):
        if not azcli_cloud.is_loopback(url):
            raise CliError(
                f"This az signs in to the sandbox on this machine only, not to {url} (cloud "
                f"'{cloud['name']}'); use the real Azure CLI for that cloud."
            )
    return {
        **(instance or {}),
        "https_url": ends["activeDirectory"].rstrip("/"),
        "arm_url": ends["resourceManager"].rstrip("/"),
        "resource": ends["activeDirectoryResourceId"],
        "cloud": cloud["name"],
    }


# -- HTTP -----------------------------------------------------------------------------------------


def _call(
    settings: Settings, url: str, form: dict[str, str] | None = None, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if form is not None else "GET")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    req.add_header("User-Agent", "azsdk-python-sandbox-az")
    context = ssl.create_default_context(cafile=str(settings.ca_file))  # the sandbox's only
    try:
        with urllib.request.urlopen(req, context=context, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (OSError, ValueError) as e:
        raise CliError(f"Cannot reach the sandbox at {url.split('/', 3)[2]} ({e}).") from None
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    return status, body if isinstance(body, dict) else {"value": body}


def _aad_error(body: dict[str, Any]) -> str:
    return str(body.get("error_description") or body.get("error") or "unexpected answer")


def _jwt_claims(token: str) -> dict[str, Any]:
    try:
        part = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return {}


# -- commands -------------------------------------------------------------------------------------


def _subscriptions(
    settings: Settings, instance: dict[str, Any], token: str, tenant: str, user: str
) -> list[dict[str, Any]]:
    """What ``az login`` prints: the subscriptions the account can see, from Resource Manager
    when it answers, else the sandbox's own (a sign-in must not depend on another service)."""
    status, body = _call(settings, f"{instance['arm_url']}/subscriptions?api-version=2022-12-01",
                         token=token)  # fmt: skip
    found = body.get("value") if status == 200 else None
    if not isinstance(found, list) or not found:
        found = [{"subscriptionId": instance.get("subscription_id"), "tenantId": tenant}]
    return [
        {
            "cloudName": instance["cloud"],
            "homeTenantId": tenant,
            "id": s.get("subscriptionId"),
            "isDefault": i == 0,
            "managedByTenants": [],
            "name": s.get("displayName") or s.get("subscriptionId"),
            "state": s.get("state", "Enabled"),
            "tenantId": s.get("tenantId", tenant),
            "user": {"name": user, "type": "user"},
        }
        for i, s in enumerate(found)
        if isinstance(s, dict)
    ]


def _client_credentials(
    settings: Settings, base: str, tenant: str, sp: dict[str, str], scope: str
) -> tuple[int, dict[str, Any]]:
    return _call(
        settings,
        f"{base}/{urllib.parse.quote(tenant)}/oauth2/v2.0/token",
        {
            "grant_type": "client_credentials",
            "client_id": sp["client_id"],
            "client_secret": sp["secret"],
            "scope": scope,
        },
    )


def login_service_principal(settings: Settings, opts: dict[str, str]) -> int:
    """``az login --service-principal -u APP_ID -p SECRET --tenant T``: check the secret with a
    client-credentials request for Resource Manager, then keep it for get-access-token."""
    app_id, secret, tenant = (opts.get(k) for k in ("--username", "--password", "--tenant"))
    if not app_id or not secret:
        raise CliError(
            "usage error: --service-principal --username NAME --password SECRET --tenant TENANT"
        )
    if not tenant:
        raise CliError("usage error: --tenant is required for a service principal login")
    instance = _sandbox(settings)
    base = instance["https_url"]
    scope = f"{instance['resource']}/.default"
    sp = {"client_id": app_id, "secret": secret}
    status, result = _client_credentials(settings, base, tenant, sp, scope)
    if status != 200 or not result.get("access_token"):
        raise CliError(_aad_error(result).splitlines()[0])
    home = _jwt_claims(result["access_token"]).get("tid") or tenant
    subs = _subscriptions(settings, instance, result["access_token"], home, app_id)
    for sub in subs:
        sub["user"] = {"name": app_id, "type": "servicePrincipal"}
    exp = int(time.time()) + int(result.get("expires_in", 3599))
    _save_profile(
        settings,
        {
            "tenant_id": home,
            "cloud": instance["cloud"],
            "user": {"name": app_id, "type": "servicePrincipal"},
            "service_principal": sp,
            "subscriptions": subs,
            "tokens": {
                f"{base}|{home}|{scope}": {"accessToken": result["access_token"], "exp": exp}
            },  # fmt: skip
        },
    )
    print(json.dumps(subs, indent=2))
    return 0


def _device_code(settings: Settings, base: str, tenant: str, wanted: str) -> dict[str, Any]:
    """The device-code sign-in: show the message, poll every ``interval`` until a person
    answers. This stand-in waits before each poll (MSAL polls first), so an approval given
    right after the message lands before the first poll, and it wakes as soon as the sandbox
    has the answer (``_wait_for_answer``), so an approved sign-in does not sit out the interval."""
    status, flow = _call(
        settings,
        f"{base}/{urllib.parse.quote(tenant)}/oauth2/v2.0/devicecode",
        {"client_id": AZURE_CLI_CLIENT_ID, "scope": wanted},
    )
    if status != 200 or "device_code" not in flow:
        raise CliError(_aad_error(flow))
    print(flow["message"], file=sys.stderr, flush=True)
    deadline = time.monotonic() + int(flow.get("expires_in", 900))
    interval = max(int(flow.get("interval", 5)), 1)
    while True:
        _wait_for_answer(settings, flow.get("user_code", ""), interval)
        status, result = _call(
            settings,
            f"{base}/{urllib.parse.quote(tenant)}/oauth2/v2.0/token",
            {
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "client_id": AZURE_CLI_CLIENT_ID,
                "device_code": flow["device_code"],
                "client_info": "1",
            },
        )
        if status == 200 and result.get("access_token"):
            break
        if result.get("error") != "authorization_pending" or time.monotonic() > deadline:
            raise CliError(_aad_error(result))
    return result


def _wait_for_answer(settings: Settings, user_code: str, seconds: int) -> None:
    """Sleep up to ``seconds``, waking once a person has answered ``user_code`` (the sandbox's
    control call; plumbing, not the protocol). Without it, sleep as the real CLI does."""
    from sandbox import client

    started = time.monotonic()
    try:
        client.control(
            settings,
            "GET",
            f"/_sandbox/device-codes/{urllib.parse.quote(user_code)}/wait?seconds={seconds}",
        )
    except (client.SandboxError, OSError, ValueError):
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))


def _password(
    settings: Settings, base: str, tenant: str, wanted: str, opts: dict[str, str]
) -> dict[str, Any]:
    """``az login -u NAME -p PASSWORD``: the resource owner password grant (no prompt, no
    polling; Microsoft advises against it, and it fails for accounts that need MFA)."""
    status, result = _call(
        settings,
        f"{base}/{urllib.parse.quote(tenant)}/oauth2/v2.0/token",
        {
            "grant_type": "password",
            "client_id": AZURE_CLI_CLIENT_ID,
            "username": opts["--username"],
            "password": opts.get("--password", ""),
            "scope": wanted,
            "client_info": "1",
        },
    )
    if status != 200 or not result.get("access_token"):
        raise CliError(_aad_error(result).splitlines()[0])
    return result


def login(settings: Settings, opts: dict[str, str]) -> int:
    if "--service-principal" in opts:
        return login_service_principal(settings, opts)
    instance = _sandbox(settings)
    base = instance["https_url"]
    tenant = opts.get("--tenant") or LOGIN_TENANT
    scope = f"{opts.get('--scope') or instance['resource'] + '/.default'}"
    wanted = f"{scope} offline_access openid profile"
    if opts.get("--username"):
        result = _password(settings, base, tenant, wanted, opts)
    else:
        result = _device_code(settings, base, tenant, wanted)
    claims = _jwt_claims(result.get("id_token", "")) or _jwt_claims(result["access_token"])
    home = claims.get("tid") or tenant
    user = claims.get("preferred_username") or claims.get("upn") or "unknown"
    subs = _subscriptions(settings, instance, result["access_token"], home, user)
    exp = int(time.time()) + int(result.get("expires_in", 3599))
    first = {"accessToken": result["access_token"], "exp": exp}
    _save_profile(
        settings,
        {
            "tenant_id": home,
            "cloud": instance["cloud"],
            "user": {"name": user, "type": "user"},
            "refresh_token": result.get("refresh_token", ""),
            "subscriptions": subs,
            "tokens": {f"{base}|{home}|{scope}": first},
        },
    )
    print(json.dumps(subs, indent=2))
    return 0


def logout(settings: Settings, opts: dict[str, str], quiet: bool = False) -> int:
    path = _profile_file(settings)
    if not path.exists():
        if quiet:
            return 0
        raise CliError("There are no active accounts.")
    path.unlink()
    return 0


def _signed_in(settings: Settings) -> dict[str, Any]:
    """The sign-in of the active cloud (a sign-in belongs to the cloud it was made in)."""
    profile = _load_profile(settings)
    cloud = azcli_cloud.load(settings.azcli_dir)["active"]
    if profile is None or profile.get("cloud", azcli_cloud.DEFAULT_CLOUD) != cloud:
        raise CliError(NOT_LOGGED_IN)
    return profile


def _subscription(profile: dict[str, Any], wanted: str | None) -> dict[str, Any]:
    subs = profile.get("subscriptions") or [{}]
    if not wanted:
        return next((s for s in subs if s.get("isDefault")), subs[0])
    for s in subs:
        if wanted.lower() in (str(s.get("id", "")).lower(), str(s.get("name", "")).lower()):
            return s
    raise CliError(
        f"Subscription '{wanted}' not found. Check the spelling and casing and try again."
    )


def get_access_token(settings: Settings, opts: dict[str, str]) -> dict[str, Any]:
    profile = _signed_in(settings)
    if opts.get("--resource") and opts.get("--scope"):
        raise CliError("usage error: --resource/--resource-type/--scope are mutually exclusive")
    instance = _sandbox(settings)
    resource = opts.get("--resource") or instance["resource"]
    scope = opts.get("--scope") or resource + "/.default"
    tenant = opts.get("--tenant") or profile["tenant_id"]
    sub = _subscription(profile, opts.get("--subscription"))
    # The issuer names the sandbox's URL: a token from before a restart on another port is void.
    key = f"{instance['https_url']}|{tenant}|{scope}"
    cached = profile.get("tokens", {}).get(key)
    if not cached or cached["exp"] - time.time() < REFRESH_MARGIN:
        sp = profile.get("service_principal")
        if sp:
            status, result = _client_credentials(settings, instance["https_url"], tenant, sp, scope)
        else:
            status, result = _call(
                settings,
                f"{instance['https_url']}/{urllib.parse.quote(tenant)}/oauth2/v2.0/token",
                {
                    "grant_type": "refresh_token",
                    "client_id": AZURE_CLI_CLIENT_ID,
                    "refresh_token": profile["refresh_token"],
                    "scope": f"{scope} offline_access openid profile",
                    "client_info": "1",
                },
            )
        if status != 200 or not result.get("access_token"):
            message = _aad_error(result).splitlines()[0]
            if sp:
                raise CliError(message)
            # The real CLI's words (Azure/azure-sdk-for-net#35816 quotes them for AADSTS65002).
            raise CliError(f"{message}\nTo re-authenticate, please run:\naz login --scope {scope}")
        cached = {
            "accessToken": result["access_token"],
            "exp": int(time.time()) + int(result.get("expires_in", 3599)),
        }
        profile.setdefault("tokens", {})[key] = cached
        profile["tokens"] = {k: v for k, v in profile["tokens"].items() if v["exp"] > time.time()}
        if result.get("refresh_token"):
            profile["refresh_token"] = result["refresh_token"]
        _save_profile(settings, profile)
    exp = int(cached["exp"])
    return {
        "accessToken": cached["accessToken"],
        "expiresOn": dt.datetime.fromtimestamp(exp).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "expires_on": exp,
        "subscription": sub.get("id"),
        "tenant": tenant,
        "tokenType": "Bearer",
    }


# -- command line ---------------------------------------------------------------------------------


def _parse(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    words: list[str] = []
    opts: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            name = SHORT.get(name, name)
            if eq:
                opts[name] = value
            elif name in FLAGS:
                opts[name] = ""
            elif i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                # As the real CLI's parser: a value that starts with '-' (a client secret may)
                # must be written --password=VALUE.
                raise CliError(f"argument {name}: expected one argument")
            else:
                opts[name] = argv[i + 1]
                i += 1
        elif not opts:
            words.append(arg)
        i += 1
    return words, opts


def _emit(result: Any, opts: dict[str, str]) -> None:
    query = opts.get("--query")
    if query:
        if not isinstance(result, dict) or query not in result:
            raise CliError(f"This az supports --query with a top-level key only, not '{query}'.")
        result = result[query]
    if opts.get("--output", "json") in ("tsv", "none") and not isinstance(result, (dict, list)):
        if opts.get("--output") == "tsv":
            print(result)
        return
    print(json.dumps(result, indent=2))


USAGE = (
    "This az is the ACS tutorial sandbox's stand-in for the Azure CLI. It supports:\n"
    "  az login [--use-device-code] [--tenant T]\n"
    "  az login -u NAME -p PASSWORD [--tenant T]\n"
    "  az login --service-principal -u APP_ID -p SECRET --tenant T\n"
    "  az logout\n"
    "  az account show | list | clear\n"
    "  az account get-access-token [--resource R | --scope S] [--tenant T] [--query KEY] [-o tsv]\n"
    "  az cloud register --name X --endpoint-resource-manager URL --endpoint-active-directory URL\n"
    "      --endpoint-active-directory-resource-id AUDIENCE [--endpoint-... URL] [--suffix-... S]\n"
    "  az cloud set --name X | show [--name X] | list | unregister --name X"
)


def _discover(settings: Settings, arm_url: str) -> dict[str, str]:
    """A cloud's endpoints from its Resource Manager's metadata document (the sandbox's only)."""
    if not azcli_cloud.is_loopback(arm_url):
        raise CliError(
            f"This az reads endpoints from the sandbox only, not {arm_url}: pass the endpoints "
            "with --skip-endpoint-discovery."
        )
    status, body = _call(settings, arm_url.rstrip("/") + azcli_cloud.METADATA)
    if status != 200:
        raise CliError(f"Unable to get endpoints from the cloud.\nServer returned status code "
                       f"{status} for {arm_url.rstrip('/')}{azcli_cloud.METADATA}")  # fmt: skip
    return azcli_cloud.from_metadata(body)


def cloud_command(settings: Settings, command: str, opts: dict[str, str]) -> int:
    """``az cloud register|set|show|list|unregister``, as the real CLI answers them."""
    folder = settings.azcli_dir
    try:
        if command == "cloud register":
            azcli_cloud.register(folder, opts, lambda url: _discover(settings, url))
        elif command == "cloud set":
            lines = azcli_cloud.set_active(folder, opts.get("--name"))
            profile = _load_profile(settings)
            if (
                lines
                and profile
                and profile.get("cloud", azcli_cloud.DEFAULT_CLOUD) == opts["--name"]
            ):
                sub = _subscription(profile, None)
                lines[1:] = [
                    f"Active subscription switched to '{sub.get('name')} ({sub.get('id')})'."
                ]
            for line in lines:
                print(f"WARNING: {line}", file=sys.stderr)
        elif command == "cloud unregister":
            azcli_cloud.unregister(folder, opts.get("--name"))
        elif command == "cloud show":
            doc = azcli_cloud.load(folder)
            _emit(azcli_cloud.describe(doc, opts.get("--name") or doc["active"]), opts)
        elif command == "cloud list":
            _emit(azcli_cloud.listed(folder), opts)
        else:
            raise CliError(f"'{command}' is misspelled or not recognized by the system.")
    except azcli_cloud.CloudError as e:
        raise CliError(str(e)) from None
    return 0


def run(argv: list[str]) -> int:
    words, opts = _parse(argv)
    settings = _settings()
    command = " ".join(words)
    if command in ("version", "") and "--version" in opts:
        print("azure-cli (sandbox stand-in)  2.0.0\n\nAll sign-ins stay on this machine.")
        return 0
    if command == "version":
        print(json.dumps({"azure-cli": "2.0.0", "sandbox-stand-in": True}, indent=2))
        return 0
    if not command or "--help" in opts or "-h" in opts:
        print(USAGE)
        return 0
    if command == "login":
        return login(settings, opts)
    if command == "logout":
        return logout(settings, opts)
    if command == "account clear":
        return logout(settings, opts, quiet=True)
    if command == "account get-access-token":
        _emit(get_access_token(settings, opts), opts)
        return 0
    if command.startswith("cloud "):
        return cloud_command(settings, command, opts)
    if command in ("account show", "account list"):
        profile = _signed_in(settings)
        if command == "account list":
            _emit(profile.get("subscriptions", []), opts)
        else:
            _emit(_subscription(profile, opts.get("--subscription")), opts)
        return 0
    print(f"ERROR: '{command}' is misspelled or not recognized by the system.\n\n{USAGE}",
          file=sys.stderr)  # fmt: skip
    return 2


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except CliError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
