"""helpers.doctor: each check passes on a ready machine and says what to do when it fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from azure.identity import ClientSecretCredential
from helpers_kit import REPO_ROOT, sp_credential

import helpers
from helpers.doctor import (
    check_credential,
    check_packages,
    check_python,
    check_sandbox,
    pinned_requirements,
    run_checks,
    tls_handshake,
)


def test_a_ready_kernel_gets_only_ticks(kit, shown):
    helpers.doctor()
    [report] = shown
    assert report.ok
    lines = repr(report).splitlines()
    assert lines == [
        "✓ Python 3.11 or newer",
        f"✓ all {len(pinned_requirements())} pinned packages installed at their versions",
        f"✓ sandbox answers at {kit.status['https_url']} with a certificate its CA bundle trusts",
        "✓ SDK clients in this kernel trust the sandbox (sync and async)",
    ]
    assert "color:#cf222e" not in report._repr_html_()


def test_python_too_old():
    check = check_python((3, 10, 18))
    assert check.ok is False
    assert check.line() == (
        "✗ Python 3.10.18 is too old — install Python 3.11 or newer, then run `make setup` again."
    )


def test_pins_come_from_pyproject_and_drift_is_named():
    pins = pinned_requirements()
    assert pins["azure-identity"] and pins["ipywidgets"]
    [wrong] = check_packages({"azure-identity": "0.0.1"})
    assert wrong.ok is False and "azure-identity is " in wrong.text and "pins 0.0.1" in wrong.text
    assert "`make setup`" in wrong.fix
    [missing] = check_packages({"no-such-package-for-the-kit": "1.0"})
    assert missing.text == "no-such-package-for-the-kit is not installed"


def test_sandbox_not_running():
    [check] = check_sandbox(None, in_kernel=False)
    assert check.ok is False and "`python -m sandbox start`" in check.fix


def test_untrusted_certificate_is_reported(sandbox):
    problem = tls_handshake(sandbox["https_url"], cafile=str(Path(sys.prefix) / "nothing.pem"))
    assert problem.startswith("cannot read the CA bundle")
    assert tls_handshake(sandbox["https_url"], sandbox["ca_bundle"]) is None
    # a bundle that exists but lacks the sandbox's CA
    import certifi

    assert "certificate not trusted" in tls_handshake(sandbox["https_url"], certifi.where())


def test_kernel_without_trust_settings_is_told_to_rerun_setup(kit, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE")
    checks = check_sandbox(kit.status, in_kernel=True)
    assert [c.ok for c in checks] == [True, False]
    assert "SSL_CERT_FILE does not make SDK clients trust the sandbox (not set)" in checks[1].text
    assert "helpers.setup()" in checks[1].fix


def test_credential_check(kit):
    helpers.act_as("service-principal")
    assert check_credential(sp_credential).ok is True

    def wrong_secret() -> ClientSecretCredential:
        return ClientSecretCredential(
            os.environ["AZURE_TENANT_ID"],
            os.environ["AZURE_CLIENT_ID"],
            "not-the-secret",
            authority=os.environ["AZURE_AUTHORITY_HOST"],
            disable_instance_discovery=True,
        )

    check = check_credential(wrong_secret)
    assert check.ok is False and "AADSTS7000215" in check.text and "az login" in check.fix


def test_azure_target_with_missing_settings(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in ("AZURE_SUBSCRIPTION_ID", "ACS_RESOURCE_GROUP"):
        monkeypatch.delenv(var, raising=False)
    report = run_checks("azure")
    assert not report.ok
    assert "AZURE_SUBSCRIPTION_ID is not set" in repr(report)


def _doctor_cli(state_dir: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KIT_TARGET"}
    env.update(SANDBOX_STATE_DIR=state_dir, SANDBOX_HTTPS_PORT="0", SANDBOX_MI_PORT="0")
    return subprocess.run(
        [sys.executable, "-m", "helpers.doctor"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )


def test_command_line_on_a_running_sandbox(sandbox):
    result = _doctor_cli(sandbox["state_dir"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"✓ sandbox answers at {sandbox['https_url']}" in result.stdout
    assert "· SDK clients started from this shell do not trust the sandbox yet" in result.stdout


def test_command_line_without_a_sandbox(tmp_path):
    result = _doctor_cli(str(tmp_path / "no-sandbox-here"))
    assert result.returncode == 1
    assert "✗ the sandbox is not running — run `python -m sandbox start`" in result.stdout


@pytest.mark.parametrize("version", [(3, 11, 0), (3, 13, 1)])
def test_supported_pythons(version):
    assert check_python(version).ok is True


def test_setup_says_what_to_do_when_the_sandbox_cannot_start(tmp_path, monkeypatch):
    """The sandbox starts while the set-up cell imports the SDKs; its refusal still comes back
    as one sentence with the sandbox's own reason."""
    from helpers.sandbox_api import SandboxUnavailable

    not_a_folder = tmp_path / "state"
    not_a_folder.write_text("a file where the state folder should be")
    monkeypatch.setenv("SANDBOX_STATE_DIR", str(not_a_folder))
    with pytest.raises(SandboxUnavailable) as refused:
        helpers.setup("sandbox")
    assert str(refused.value) == (
        f"The sandbox did not start (The state folder {not_a_folder} is not a folder; "
        "remove it or choose another with SANDBOX_STATE_DIR); run `python -m sandbox start` in "
        "a terminal to see the full message."
    )
