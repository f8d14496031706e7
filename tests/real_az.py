"""The real Azure CLI for tests: a pinned ``azure-cli`` in a cached venv, run against a sandbox.

The CLI is installed once per version with uv into ``~/.cache/acs-kit/az-<version>`` (reruns
skip the install; ``KIT_CACHE_DIR`` moves the cache). Every ``az`` process runs with its own
``AZURE_CONFIG_DIR``, telemetry off, the sandbox's CA trusted, a dead proxy for anything not on
loopback (the way the real-CLI review ran it) and the kit's loopback guard loaded as
``sitecustomize``, whose refusals are written to a log the tests assert is empty.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox import personas

AZ_VERSION = "2.91.0"  # the version the real-CLI review measured (reviews/real-az-cli-review)
UV_VERSION = "0.13.9"
REPO = Path(__file__).resolve().parent.parent
GUARD_DIR = REPO / "tests" / "loopback_guard"
DEAD_PROXY = "http://127.0.0.1:9"


def cache_dir() -> Path:
    return Path(os.environ.get("KIT_CACHE_DIR", Path.home() / ".cache" / "acs-kit"))


def _uv() -> str:
    """uv from PATH (the Makefile installs it), else a pinned copy in the cache."""
    found = shutil.which("uv")
    if found:
        return found
    venv = cache_dir() / f"uv-{UV_VERSION}"
    uv = venv / "bin" / "uv"
    if not uv.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", f"uv=={UV_VERSION}"], check=True
        )
    return str(uv)


def ensure_cli(version: str = AZ_VERSION) -> tuple[Path, float]:
    """(path of the real ``az``, seconds the install took: 0.0 when it was cached)."""
    target = cache_dir() / f"az-{version}"
    az = target / "bin" / "az"
    stamp = target / ".installed"
    if stamp.exists() and az.exists():
        return az, 0.0
    started = time.monotonic()
    shutil.rmtree(target, ignore_errors=True)  # a half-done install (no stamp) starts over
    uv = _uv()
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(target)], check=True)
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(target / "bin" / "python"),
            f"azure-cli=={version}",
        ],
        check=True,
    )
    stamp.write_text(version)
    return az, time.monotonic() - started


@dataclass
class Result:
    rc: int
    out: str
    err: str
    seconds: float

    def json(self) -> Any:
        return json.loads(self.out)


class RealAz:
    """Runs the real ``az`` in one configuration folder against one sandbox."""

    def __init__(self, az: Path, status: dict[str, Any], config_dir: Path, guard_log: Path):
        self.az = az
        self.status = status
        self.config_dir = config_dir
        self.guard_log = guard_log
        self.extra_env: dict[str, str] = {}
        self.timings: list[tuple[str, float]] = []

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in personas.CREDENTIAL_VARIABLES and not k.upper().startswith("AZURE_")
        }
        bundle = self.status["ca_bundle"]
        env.update(
            AZURE_CONFIG_DIR=str(self.config_dir),
            AZURE_EXTENSION_DIR=str(self.config_dir / "extensions"),
            AZURE_CORE_COLLECT_TELEMETRY="0",
            AZURE_CORE_NO_COLOR="1",
            REQUESTS_CA_BUNDLE=bundle,
            SSL_CERT_FILE=bundle,
            PYTHONPATH=str(GUARD_DIR),
            KIT_LOOPBACK_GUARD_LOG=str(self.guard_log),
        )
        for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            env[name] = DEAD_PROXY
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        env.update(self.extra_env)
        return env

    def __call__(self, *args: str, timeout: float = 120) -> Result:
        started = time.monotonic()
        done = subprocess.run(
            [str(self.az), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        took = time.monotonic() - started
        self.timings.append((" ".join(args[:3]), took))
        return Result(done.returncode, done.stdout, done.stderr, took)

    def ok(self, *args: str) -> Any:
        """Run, require success, and return the parsed JSON output (None when there is none)."""
        r = self(*args, "-o", "json")
        assert r.rc == 0, f"az {' '.join(args)} failed ({r.rc}):\n{r.err[-3000:]}"
        return json.loads(r.out) if r.out.strip() else None

    def refused(self, *args: str) -> str:
        """Run, require failure, and return its error output."""
        r = self(*args, "-o", "json")
        assert r.rc != 0, f"az {' '.join(args)} succeeded (rc 0), expected a refusal"
        return r.err

    def device_code_login(self, sandbox_cmd: list[str], *extra: str) -> Any:
        """``az login --use-device-code``; the sign-in is approved with ``sandbox approve``."""
        proc = subprocess.Popen(
            [str(self.az), "login", "--use-device-code", "-o", "json", *extra],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        assert proc.stderr is not None
        code = None
        seen = []
        for line in proc.stderr:  # the CLI prints the prompt, then waits for the approval
            seen.append(line)
            if "enter the code" in line:
                code = line.split("enter the code", 1)[1].split()[0]
                break
        assert code, "".join(seen)
        subprocess.run([*sandbox_cmd, "approve", code], check=True, capture_output=True)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, "".join(seen) + err
        return json.loads(out)


def persona_exports(sandbox_cmd: list[str], persona: str) -> dict[str, str]:
    """The variables ``python -m sandbox env --as PERSONA`` exports (its unset lines dropped)."""
    text = subprocess.run(
        [*sandbox_cmd, "env", "--as", persona], check=True, capture_output=True, text=True
    ).stdout
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line and not line.startswith("export PATH="):
            key, _, value = line[len("export ") :].partition("=")
            found[key] = shlex.split(value)[0] if value else ""
    return found
