"""No secret in any committed file, notebook outputs included.

The notebooks commit their outputs and the sandbox mints real tokens and keys, so one careless
``print(token)`` would publish a credential. This scans every git-tracked file (and every
notebook, tracked or not) for the shapes of the secrets this kit handles: JWTs, ACS access keys
and connection strings, client secrets and private keys. The scanner itself is tested on planted
secrets and on the redacted forms the helpers print, which must not count.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SKIP_PARTS = {".git", ".venv", "node_modules", "__pycache__", ".ruff_cache"}
MAX_BYTES = 5_000_000

_B64 = r"[A-Za-z0-9+/]"
PATTERNS: dict[str, re.Pattern[str]] = {
    # header.payload.signature, each base64url; both JSON parts start with '{"' = eyJ
    "JSON Web Token": re.compile(r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{16,}"),
    # ACS connection strings carry the key (88 base64 characters) after accesskey=; redacted
    # ones start with ****, and short made-up values in other tests' fixtures are not keys
    "ACS connection string with a key": re.compile(
        rf"accesskey\s*=\s*{_B64}{{40,}}={{0,2}}", re.IGNORECASE
    ),
    # a bare ACS access key: 64 random bytes in base64 (88 characters ending in ==)
    "ACS access key": re.compile(rf"(?<![A-Za-z0-9+/=]){_B64}{{86}}==(?![A-Za-z0-9+/=])"),
    # Entra client secrets look like 'abc8Q~....' (3 characters, a digit, 'Q~', 31+ more)
    "Entra client secret": re.compile(r"(?<![\w~.-])[\w.-]{3}\dQ~[\w~.-]{31,}"),
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----"),
}
# A value assigned to a secret-named setting that looks generated (letters and digits mixed).
_ASSIGNED = re.compile(
    r"(?i)\b(AZURE_CLIENT_SECRET|client_secret|AZURE_PASSWORD|sp_secret)\b"
    r"[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9_~.+/=-]{16,})"
)


def _looks_generated(value: str) -> bool:
    return bool(
        re.search(r"\d", value) and re.search(r"[a-z]", value) and re.search(r"[A-Z]", value)
    )


def find_secrets(text: str) -> list[tuple[str, str]]:
    """(kind, a short excerpt that does not repeat the secret) for each secret found."""
    found = []
    for kind, pattern in PATTERNS.items():
        for m in pattern.finditer(text):
            found.append((kind, m.group(0)[:12] + "…"))
    for m in _ASSIGNED.finditer(text):
        if _looks_generated(m.group(2)):
            found.append(("client secret or password", m.group(1) + "=…"))
    return found


def files_to_scan() -> list[Path]:
    """Git-tracked files plus every notebook; every file under the repo when git is missing."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
        ).stdout.decode()
        paths = {REPO / p for p in listed.split("\0") if p}
    except (OSError, subprocess.CalledProcessError):
        paths = {p for p in REPO.rglob("*") if not SKIP_PARTS & set(p.parts)}
    paths |= {
        p for p in (REPO / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    }
    return sorted(p for p in paths if p.is_file() and p.stat().st_size <= MAX_BYTES)


def test_no_committed_file_or_notebook_output_holds_a_secret():
    problems = []
    files = files_to_scan()
    assert any(p.name == "conftest.py" for p in files)  # the listing found the repository
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        for kind, excerpt in find_secrets(text):
            problems.append(f"{path.relative_to(REPO)}: {kind} ({excerpt})")
    assert problems == [], "secrets in the repository:\n" + "\n".join(problems)


# -- the scanner catches planted secrets --------------------------------------------------------


# Built at run time, so that this file itself holds no secret-shaped text for the scan above.
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


JWT = ".".join(
    [
        _b64url(json.dumps({"alg": "RS256", "kid": "abc"}).encode()),
        _b64url(json.dumps({"aud": "https://communication.azure.com"}).encode()),
        _b64url(bytes(range(200, 256))),
    ]
)
KEY = base64.b64encode(bytes(range(7, 71))).decode()  # 64 bytes, as ACS keys are: 88 characters
CLIENT_SECRET = "Abc8" + "Q~" + "dEfGhIjKlMnOpQrStUvWxYz0123456789"
PEM = "-----BEGIN " + "PRIVATE KEY-----"
PEM_RSA = "-----BEGIN RSA " + "PRIVATE KEY-----"
SECRET_VAR = "AZURE_CLIENT" + "_SECRET"


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("JSON Web Token", f"Authorization: Bearer {JWT}"),
        ("JSON Web Token", f'{{"text/plain": ["AccessToken(token=\'{JWT}\', expires_on=1)"]}}'),
        ("ACS connection string with a key", f"endpoint=https://x.communication.azure.com/;accesskey={KEY}"),
        ("ACS connection string with a key", f"ENDPOINT=https://a/;AccessKey = {KEY}"),
        ("ACS access key", f'"primaryKey": "{KEY}"'),
        ("Entra client secret", f"secret: {CLIENT_SECRET}"),
        ("private key", f"{PEM}\nMIIE..."),
        ("private key", PEM_RSA),
        ("client secret or password", f"{SECRET_VAR}={KEY[5:40].replace('/', 'x')}"),
        ("client secret or password", f'{{"{SECRET_VAR.lower()[6:]}": "{KEY[:30]}"}}'),
    ],
)  # fmt: skip
def test_a_planted_secret_is_found(kind, text):
    kinds = [k for k, _ in find_secrets(text)]
    assert any(k.startswith(kind) for k in kinds), kinds
    assert all(JWT not in excerpt and KEY not in excerpt for _, excerpt in find_secrets(text))


@pytest.mark.parametrize(
    "text",
    [
        "accesskey=****AbC=",  # what helpers.redact_secret prints
        "endpoint=https://x.communication.azure.com/;accesskey=<your key>",
        "header: alg=RS256, kid=abc; signature not shown",
        "eyJ0eXAi… (a token, cut)",
        "client_secret=os.environ['AZURE_CLIENT_SECRET']",
        "AZURE_CLIENT_SECRET=store_secrets_sp_secret_value",  # an identifier, not a secret
        "accesskey=c2VjcmV0LWtleS1ub3Q=",  # too short to be an ACS key (made-up test values)
        "-----BEGIN CERTIFICATE-----",
        "AAAA" * 40,  # long base64 (an image) is not an 88-character key
    ],
)
def test_redacted_and_placeholder_forms_are_not_secrets(text):
    assert find_secrets(text) == []
