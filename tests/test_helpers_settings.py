"""The azure target's settings: .env.example documents every one, and a missing or malformed one
is refused with a KitConfigError that names it."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from helpers_kit import REPO_ROOT

from helpers import target
from helpers.target import KitConfigError

EXAMPLE = REPO_ROOT / ".env.example"
REQUIRED = list(target._AZURE_SETTINGS)
ALL = ["KIT_TARGET", *REQUIRED, "AZURE_TENANT_ID"]


def documented() -> dict[str, tuple[str, str]]:
    """{variable: (value, the comment just above it)}; commented-out optional ones count."""
    found: dict[str, tuple[str, str]] = {}
    comment: list[str] = []
    for line in EXAMPLE.read_text().splitlines():
        m = re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$", line)
        if m:
            found[m.group(1)] = (m.group(2), " ".join(comment))
            comment = []
        elif line.startswith("#"):
            comment.append(line.lstrip("# "))
        else:
            comment = []
    return found


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """A folder holding a copy of .env.example as .env, and a shell with none of the variables."""
    monkeypatch.setattr(target, "_current", None)
    for var in ALL:
        monkeypatch.delenv(var, raising=False)
    shutil.copy(EXAMPLE, tmp_path / ".env")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for var in (*ALL, "VM_NAME", "FUNC_APP_NAME"):  # load_dotenv wrote .env's values: not
        os.environ.pop(var, None)  # for later tests (a custom cloud's .env would not win)


def test_every_setting_is_documented_with_a_comment():
    found = documented()
    assert set(ALL) <= set(found)
    for var in ALL:
        assert len(found[var][1]) > 20, f"{var} needs a comment saying what it is"


def test_the_example_holds_placeholders_only():
    values = {v for v, _ in documented().values()}
    text = EXAMPLE.read_text().lower()
    assert "accesskey=" not in text
    assert not re.search(r"secret=\S", text)  # a secret's variable may be named, never filled
    assert "00000000-0000-0000-0000-000000000000" in values


def test_the_example_as_is_gives_an_azure_kit(azure_env):
    kit = target.setup()
    assert kit.target == "azure"
    assert kit.acs_endpoint == "https://my-acs-resource.unitedstates.communication.azure.com/"
    assert kit.acs_resource_id.endswith("/communicationServices/my-acs-resource")
    assert kit.sender == "+18005550100" and kit.phone == "+14255550123"
    assert kit.tenant_id is None


@pytest.mark.parametrize("var", REQUIRED)
def test_a_missing_setting_is_named(azure_env, var):
    text = (azure_env / ".env").read_text()
    (azure_env / ".env").write_text(re.sub(rf"(?m)^{var}=.*$", "", text))
    with pytest.raises(KitConfigError, match=rf"^{var} is not set: add it to \.env"):
        target.setup()


@pytest.mark.parametrize(
    ("var", "bad"),
    [
        ("AZURE_SUBSCRIPTION_ID", "my-subscription"),
        ("ACS_RESOURCE_GROUP", "bad/group"),
        ("ACS_RESOURCE_NAME", "name with spaces"),
        ("ACS_ENDPOINT", "http://my-acs.communication.azure.com"),
        ("ACS_ENDPOINT", "https://my-acs.communication.azure.com:port/"),
        ("ACS_ENDPOINT", "https://my-acs.communication.azure.com/path"),
        ("SMS_FROM_NUMBER", "18005550100"),
        ("SMS_TO_NUMBER", "+1 425 555 0123"),
    ],
)
def test_a_malformed_setting_is_named(azure_env, monkeypatch, var, bad):
    monkeypatch.setenv(var, bad)  # the shell wins over .env
    with pytest.raises(KitConfigError, match=rf"^{var} is malformed: it should be "):
        target.setup()


@pytest.mark.parametrize(
    "endpoint",
    ["https://my-acs.unitedstates.communication.azure.com", "https://127.0.0.1:48443/",
     "https://acs.contoso-stack.local:4443"],
)  # fmt: skip
def test_an_endpoint_may_name_a_port(azure_env, monkeypatch, endpoint):
    """A private cloud's (and the sandbox's) endpoint carries a port; the kit keeps it."""
    monkeypatch.setenv("ACS_ENDPOINT", endpoint)
    assert target.setup().acs_endpoint == endpoint.rstrip("/") + "/"


def test_an_unknown_target_is_named(azure_env, monkeypatch):
    monkeypatch.setenv("KIT_TARGET", "cloud")
    with pytest.raises(KitConfigError, match="^KIT_TARGET must be 'sandbox' or 'azure'"):
        target.setup()
