"""Shared fixtures: a live sandbox per test session (per xdist worker), personas, and the
socket guard that fails any test whose process opens a connection beyond loopback."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_kit import kit, shown  # noqa: F401 - fixtures for the helpers' tests

from helpers.sandbox_api import apply_env
from sandbox import client, personas, pki
from sandbox.config import Settings
from tests.loopback_guard.sitecustomize import install as install_loopback_guard

REPO = Path(__file__).resolve().parent.parent


# -- socket guard ----------------------------------------------------------------------------


class NonLoopbackConnection(AssertionError):
    pass


_violations: list[list[str]] = []  # one list per running test (the socket_guard fixture)


def _refuse(what: str) -> None:
    for found in _violations:
        found.append(what)
    raise NonLoopbackConnection(f"a test tried a {what}: only 127.0.0.1 is allowed")


_SESSION_STATE: dict[str, Path] = {}


def pytest_configure(config: pytest.Config) -> None:
    install_loopback_guard(_refuse)
    # The session's sandbox keys are made now, before test modules are imported, so that its CA
    # is trusted from the start: aiohttp reads SSL_CERT_FILE once, when it is first imported,
    # and a test module that imports an async client would otherwise freeze the wrong trust.
    folder = Path(tempfile.mkdtemp(prefix="kit-test-sandbox-"))
    pki.ensure_pki(folder)
    _SESSION_STATE["folder"] = folder
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        os.environ[name] = str(folder / pki.BUNDLE_FILE)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_SESSION_STATE.pop("folder", ""), ignore_errors=True)


@pytest.fixture(autouse=True)
def socket_guard() -> Any:
    """Fail the test if anything in it tried to leave loopback, even if the SDK swallowed it.
    Yields the list the test's refusals go to (a test of the guard itself empties it)."""
    found: list[str] = []
    _violations.append(found)
    yield found
    _violations.remove(found)
    assert found == [], f"non-loopback network use: {found}"


# -- a live sandbox ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox_settings() -> Settings:
    """The session sandbox's settings; its folder (and CA) were made in pytest_configure."""
    folder = _SESSION_STATE["folder"]
    os.chmod(folder, 0o700)
    return Settings(state_dir=folder, https_port=0, mi_port=0)


@pytest.fixture(scope="session")
def sandbox(sandbox_settings: Settings):
    """A running sandbox on free ports with a temporary state folder; its status document."""
    doc = client.start(sandbox_settings)
    yield doc
    client.stop(sandbox_settings)


class Control:
    """The control API, as the tests use it."""

    def __init__(self, settings: Settings, doc: dict[str, Any]) -> None:
        self.settings = settings
        self.doc = doc

    def __call__(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        return client.control(self.settings, method, path, body)

    def reset(self) -> None:
        self("POST", "/_sandbox/reset")

    def log_after(self, after_id: int) -> list[dict[str, Any]]:
        return self("GET", f"/_sandbox/log?after={after_id}")["entries"]

    def last_log_id(self) -> int:
        return self("GET", "/_sandbox/log?after=999999999")["last_id"]


@pytest.fixture(scope="session")
def control(sandbox_settings: Settings, sandbox: dict[str, Any]) -> Control:
    return Control(sandbox_settings, sandbox)


@pytest.fixture
def fresh(control: Control) -> Control:
    """A sandbox reset to the seeded world before the test."""
    control.reset()
    return control


@pytest.fixture
def trust_sandbox_ca(sandbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust the sandbox's CA (and the public roots) in this test's sync and async clients."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox["ca_bundle"])
    monkeypatch.setenv("SSL_CERT_FILE", sandbox["ca_bundle"])


@pytest.fixture
def persona(control: Control, monkeypatch: pytest.MonkeyPatch):
    """Switch this test's process to a persona: ``persona("vm-tutorial")``."""

    def switch(name: str) -> dict[str, Any]:
        env = control("GET", f"/_sandbox/personas/{name}")
        wanted = dict(os.environ)
        apply_env(wanted, env)
        for var in set(os.environ) - set(wanted):
            monkeypatch.delenv(var)
        for var, value in wanted.items():
            if os.environ.get(var) != value:
                monkeypatch.setenv(var, value)
        return env

    return switch


def https_json(doc: dict[str, Any], method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """A raw HTTPS call to the sandbox, for protocol checks the SDKs cannot express."""
    ctx = ssl.create_default_context(cafile=doc["ca_file"])
    req = urllib.request.Request(doc["https_url"] + path, method=method, **kwargs)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


__all__ = ["Control", "https_json", "personas", "REPO"]


def sandbox_cli(
    settings: Settings, *args: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """``python -m sandbox ARGS`` for the sandbox of ``settings`` (free ports), as a learner's
    shell runs it; ``prefix`` runs it through another command (``setpriv`` for another user)."""
    env = dict(
        os.environ,
        SANDBOX_STATE_DIR=str(settings.state_dir),
        SANDBOX_HTTPS_PORT="0",
        SANDBOX_MI_PORT="0",
    )
    return subprocess.run(
        [*prefix, sys.executable, "-m", "sandbox", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def own_settings(tmp_path: Path) -> Iterator[Settings]:
    """A sandbox of the test's own (its state folder in tmp_path), stopped afterwards."""
    settings = Settings(state_dir=tmp_path / "state", https_port=0, mi_port=0)
    yield settings
    client.stop(settings)
