"""``helpers.doctor()`` and ``python -m helpers.doctor``: is this machine ready for the kit?

Most first-hour problems in a workshop are the same few: an old Python, packages that drifted
from the pins the notebooks' outputs were made with, a sandbox that is not running, or a
certificate Python does not trust. Each check prints ✓ or ✗, and every ✗ comes with one
sentence saying what to do. Nothing secret is printed, and no version numbers of the machine,
so the welcome notebook's output is the same on every machine that is ready.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from helpers import cloud, sandbox_api, target
from helpers.display import Rich, esc, show

MIN_PYTHON = (3, 11)  # pyproject.toml requires-python: the lock needs it
DIST_NAME = "acs-managed-identity-kit"
ACS_SCOPE = cloud.ACS_SCOPE
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


@dataclass
class Check:
    """One line of the report: ``ok`` is True (✓), False (✗) or None (information)."""

    ok: bool | None
    text: str
    fix: str = ""

    def line(self) -> str:
        mark = {True: "✓", False: "✗", None: "·"}[self.ok]
        return f"{mark} {self.text}" + (f" — {self.fix}" if self.fix else "")


class Report(Rich):
    def __init__(self, checks: list[Check]) -> None:
        self.checks = checks
        items = "".join(f"<li style='color:{_COLOR[c.ok]}'>{esc(c.line())}</li>" for c in checks)
        super().__init__(
            f"<ul style='list-style:none;padding-left:0'>{items}</ul>",
            "\n".join(c.line() for c in checks),
        )

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)


_COLOR = {True: "#1a7f37", False: "#cf222e", None: "inherit"}


# -- individual checks -----------------------------------------------------------------------------


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Check:
    if tuple(version[:2]) >= MIN_PYTHON:
        return Check(True, "Python 3.11 or newer")
    found = ".".join(str(v) for v in version)
    return Check(
        False,
        f"Python {found} is too old",
        "install Python 3.11 or newer, then run `make setup` again.",
    )


def pinned_requirements(pyproject: Path = PYPROJECT) -> dict[str, str]:
    """``{package: pinned version}`` from the kit's pyproject.toml, else from its metadata."""
    lines: list[str] = []
    if pyproject.is_file():
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10: read the installed metadata instead
            tomllib = None
        if tomllib is not None:
            lines = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    if not lines:
        try:
            lines = [r for r in metadata.requires(DIST_NAME) or [] if "extra ==" not in r]
        except metadata.PackageNotFoundError:
            lines = []
    pins = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s;]+)", line)
        if m:
            pins[re.sub(r"\[.*\]", "", m.group(1))] = m.group(2)
    return pins


def check_packages(pins: dict[str, str]) -> list[Check]:
    """Every pinned package installed at its pinned version (outputs were made with these)."""
    if not pins:
        return [Check(False, "cannot find the kit's package pins", "run `make setup` in the kit.")]
    wrong = []
    for name, wanted in sorted(pins.items()):
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(Check(False, f"{name} is not installed", "run `make setup`."))
            continue
        if found != wanted:
            wrong.append(
                Check(
                    False,
                    f"{name} is {found}, the kit pins {wanted}",
                    "run `make setup` (or `pip install -e .`) to install the pinned versions.",
                )
            )
    return wrong or [Check(True, f"all {len(pins)} pinned packages installed at their versions")]


def tls_handshake(url: str, cafile: str | None, timeout: float = 5.0) -> str | None:
    """None if ``url``'s server completes a verified TLS handshake, else the reason."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as e:
        return f"cannot read the CA bundle {cafile} ({e.__class__.__name__})"
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host):
                return None
    except ssl.SSLCertVerificationError as e:
        return f"certificate not trusted ({e.verify_message})"
    except (OSError, ssl.SSLError) as e:
        return f"no TLS answer ({e.__class__.__name__}: {e})"


def check_sandbox(status: dict[str, Any] | None, in_kernel: bool) -> list[Check]:
    """The sandbox runs, answers over TLS, and (in a set-up kernel) the SDKs trust it."""
    if status is None:
        return [
            Check(
                False,
                "the sandbox is not running",
                "run `python -m sandbox start` (or the set-up cell `helpers.setup()`).",
            )
        ]
    url = status["https_url"]
    checks = []
    problem = tls_handshake(url, status["ca_bundle"])
    if problem:
        return [
            Check(
                False,
                f"the sandbox at {url} does not answer: {problem}",
                "run `python -m sandbox stop`, then `python -m sandbox start`.",
            )
        ]
    checks.append(Check(True, f"sandbox answers at {url} with a certificate its CA bundle trusts"))
    if not in_kernel:
        checks.append(
            Check(
                None,
                "SDK clients started from this shell do not trust the sandbox yet",
                'run `eval "$(python -m sandbox env --as developer)"` when you need them to.',
            )
        )
        return checks
    for var in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        bundle = os.environ.get(var)
        problem = tls_handshake(url, bundle) if bundle else "not set"
        if problem:
            checks.append(
                Check(
                    False,
                    f"{var} does not make SDK clients trust the sandbox ({problem})",
                    "re-run the set-up cell `kit = helpers.setup()`.",
                )
            )
    if len(checks) == 1:
        checks.append(Check(True, "SDK clients in this kernel trust the sandbox (sync and async)"))
    return checks


def check_azure(credential_factory: Any = None) -> list[Check]:
    """On Azure: the settings, the ACS endpoint's TLS answer, and your sign-in (a Resource
    Manager token in .env's cloud)."""
    try:
        kit = target._azure_kit()
    except target.KitConfigError as e:
        return [Check(False, "the azure target's settings", str(e))]
    checks = [Check(True, "azure settings present and well-formed (.env or environment)")]
    problem = tls_handshake(kit.acs_endpoint, None)
    if problem:
        checks.append(
            Check(
                False,
                f"ACS endpoint {kit.acs_endpoint} does not answer: {problem}",
                "check ACS_ENDPOINT in .env against the portal's Keys page.",
            )
        )
    else:
        checks.append(Check(True, f"ACS endpoint {kit.acs_endpoint} answers over TLS"))
    # Your sign-in is checked for what this kernel does with it: Resource Manager's steps.
    # Azure CLI sign-ins cannot get Communication Services tokens (AADSTS65002, notebook 3):
    # those come from the hosts' managed identities.
    checks.append(check_credential(credential_factory, scope=kit.cloud.arm_scope))
    return checks


def check_credential(credential_factory: Any = None, scope: str = ACS_SCOPE) -> Check:
    """DefaultAzureCredential (or the given factory's credential) can get a token for ``scope``:
    Communication Services by default, or Resource Manager (any other scope)."""
    from azure.core.exceptions import ClientAuthenticationError

    api = "Communication Services" if scope == ACS_SCOPE else "Resource Manager"

    if credential_factory is None:  # in .env's cloud (a private authority: no discovery)
        from azure.identity import DefaultAzureCredential

        try:
            kwargs = cloud.from_env().credential_kwargs()
        except cloud.CloudConfigError:
            kwargs = {}  # check_azure reports the setting

        def credential_factory() -> Any:
            return DefaultAzureCredential(**kwargs)

    try:
        credential = credential_factory()
        credential.get_token(scope)
    except ClientAuthenticationError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        return Check(
            False,
            f"no credential could get a token for {api} ({first})",
            "run `az login` in a terminal (or set the variables of a service principal).",
        )
    return Check(True, f"a credential gets tokens for {api}")


# -- the report ---------------------------------------------------------------------------------


def run_checks(target_name: str | None = None) -> Report:
    """All checks for a target (default: the kit's, else KIT_TARGET, else the sandbox)."""
    kit = target._current
    if target_name is None:
        if kit is not None:
            target_name = kit.target
        else:
            target._load_dotenv()
            target_name = (os.environ.get("KIT_TARGET") or target.SANDBOX).strip().lower()
    checks = [check_python(), *check_packages(pinned_requirements())]
    if target_name == target.AZURE:
        checks += check_azure()
    else:
        in_kernel = kit is not None and kit.target == target.SANDBOX
        status = kit.status if in_kernel else sandbox_api.running()
        checks += check_sandbox(status, in_kernel)
    return Report(checks)


def doctor() -> None:
    """Display the readiness checks as a ✓/✗ list, with what to do for every ✗."""
    show(run_checks())


def main() -> int:
    report = run_checks()
    print(report.plain)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
