"""A Function app site's behaviour: its keys, its route table, and the worker that runs it.

Azure Functions answers an HTTP trigger at ``https://{defaultHostName}/api/{route}``. The host,
not the function, decides who may call (the ``code`` query parameter or ``x-functions-key``
header against the site's keys, for auth level ``function``), which function a path reaches
(404 when none), and what a crash looks like (500 with no body; the traceback goes to the logs).
The sandbox does the same around a worker process per site (sandbox/functions/worker.py).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import personas, pki, world
from sandbox.store import Store

log = logging.getLogger("sandbox")

APP_DIR = Path(__file__).resolve().parents[2] / "apps" / "func-tutorial"
ROUTE_PREFIX = "api"  # host.json extensions.http.routePrefix, default "api"
START_TIMEOUT = 60.0  # seconds for a worker to import the app
CALL_TIMEOUT = 230.0  # Azure's front end ends any HTTP-triggered call after 230 s


def site_url_host(https_url: str, name: str) -> str:
    """The site's ``defaultHostName`` on the sandbox: the HTTPS listener's authority and the
    site's path, so ``https://{defaultHostName}/api/{route}`` reaches it with no DNS (our
    choice, see sandbox/FIDELITY.md "Function app")."""
    return f"{https_url.split('://', 1)[1]}/sites/{name}"


def default_app_settings(https_url: str) -> dict[str, str]:
    """The settings a seeded site starts with, as a deployed func-tutorial would have them."""
    return {
        "FUNCTIONS_EXTENSION_VERSION": "~4",
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "ACS_ENDPOINT": f"{https_url}/",
        "SMS_FROM_NUMBER": world.SENDER_NUMBERS[0],
    }


def app_settings(host: dict[str, Any], https_url: str) -> dict[str, str]:
    found = host.get("app_settings")
    return dict(found) if isinstance(found, dict) else default_app_settings(https_url)


def site_keys(store: Store, host: dict[str, Any]) -> dict[str, Any]:
    """The site's keys (made on first use, kept in its document): the master key and the host's
    function keys (``default``), the ones ``host/default/listkeys`` returns."""
    keys = host.get("function_keys")
    if not keys:
        keys = {"master": _new_key(), "host": {"default": _new_key()}}
        host["function_keys"] = keys
        store.put("host", host["name"], host)
    return keys


def _new_key() -> str:
    # Random URL-safe text (the length and alphabet are our choice; Azure's keys look alike).
    return base64.urlsafe_b64encode(secrets.token_bytes(40)).decode().rstrip("=") + "=="


def key_allows(store: Store, host: dict[str, Any], level: str, given: str) -> bool:
    """Whether ``given`` opens a function at its auth level: anonymous needs nothing; function
    takes the master key or a host key (per-function keys the sandbox does not make); admin
    only the master key."""
    if level == "anonymous":
        return True
    if not given:
        return False
    keys = site_keys(store, host)
    valid = [keys["master"], *(keys["host"].values() if level == "function" else ())]
    return any(hmac.compare_digest(given.encode(), k.encode()) for k in valid)


def _route_regex(template: str) -> re.Pattern[str]:
    """An ASP.NET-style route template (``users/{id}``, ``{id:int}``, ``{*rest}``, ``{id?}``) as a
    case-insensitive regex whose groups are the route parameters."""
    out, pos = [], 0
    for m in re.finditer(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\??)\}", template):
        out.append(re.escape(template[pos : m.start()]))
        body = ".*" if m.group(1) else "[^/]+"
        out.append(f"(?P<{m.group(2)}>{body}){'?' if m.group(3) else ''}")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out).strip("/"), re.I)


def match(functions: dict[str, Any], route: str, method: str) -> tuple[str, dict] | None:
    """(function name, route parameters) for a path under /api and a method, or None."""
    route = route.strip("/")
    for name, fn in functions.items():
        m = _route_regex(fn["route"]).fullmatch(route)
        if m and (not fn["methods"] or method.upper() in fn["methods"]):
            return name, {k: v for k, v in m.groupdict().items() if v is not None}
    return None


class WorkerFailed(Exception):
    """The worker could not start, died, or overran; the site answers 500."""


@dataclass
class Worker:
    """One running worker process and the environment it was started with."""

    env: dict[str, str]
    identity: str  # the site's identity when started: a change restarts the app
    process: asyncio.subprocess.Process
    functions: dict[str, Any]
    started_ms: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    async def start(cls, env: dict[str, str], identity: str) -> Worker:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sandbox.functions.worker",
            str(APP_DIR),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(APP_DIR),
            limit=8 * 1024 * 1024,
        )
        try:
            hello = await _read(process, START_TIMEOUT)
        except WorkerFailed:
            _kill(process)
            raise
        if "functions" not in hello:
            _kill(process)
            raise WorkerFailed(f"the app did not load:\n{hello.get('error', hello)}")
        ms = (time.perf_counter() - started) * 1000
        log.warning("function worker pid %s started in %.0f ms", process.pid, ms)
        return cls(env, identity, process, hello["functions"], ms)

    async def call(self, message: dict[str, Any]) -> dict[str, Any]:
        async with self.lock:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            await self.process.stdin.drain()
            return await _read(self.process, CALL_TIMEOUT)

    def stop(self) -> None:
        _kill(self.process)


async def _read(process: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout)
    except (asyncio.TimeoutError, ValueError) as e:
        _kill(process)
        raise WorkerFailed(f"the worker did not answer ({type(e).__name__})") from None
    if not line:
        raise WorkerFailed(f"the worker exited (status {process.returncode})")
    return json.loads(line)


def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()


class FunctionHosts:
    """Every site's worker in this sandbox: started on a site's first request, restarted when
    its environment changes (Azure restarts an app when its settings or identity change), and
    stopped with the sandbox."""

    def __init__(self) -> None:
        self.workers: dict[str, Worker] = {}
        self._starting = asyncio.Lock()

    async def worker(self, host: dict[str, Any], env: dict[str, str]) -> Worker:
        """The site's running worker, started anew when its settings or its identity changed
        (a re-enabled identity is a new principal: an old process would hold its tokens)."""
        name, identity = host["name"], json.dumps(host.get("identity"), sort_keys=True)
        async with self._starting:
            current = self.workers.get(name)
            stale = current and (current.env, current.identity) != (env, identity)
            if current and (stale or current.process.returncode is not None):
                current.stop()
                current = None
            if current is None:
                current = await Worker.start(env, identity)
                self.workers[name] = current
            return current

    def forget(self, name: str) -> None:
        found = self.workers.pop(name, None)
        if found:
            found.stop()

    async def stop_all(self) -> None:
        """Stop every worker and wait until each has ended (the sandbox's stop returns after)."""
        stopping = [self.workers.pop(name) for name in list(self.workers)]
        for worker in stopping:
            worker.stop()
        for worker in stopping:
            try:
                await asyncio.wait_for(worker.process.wait(), 5)
            except asyncio.TimeoutError:
                log.error("function worker pid %s did not end", worker.process.pid)


def worker_env(
    host: dict[str, Any], settings: dict[str, str], mi_url: str, state_dir: Path
) -> dict[str, str]:
    """A site's environment, as App Service gives its app: the app settings, the identity
    endpoint and header (only while an identity is enabled), the site's name. Two more that
    public Azure needs no setting for: trust in the sandbox's CA, and the IMDS probe pointed at
    the sandbox (so an app without an identity fails there, never at 169.254.169.254)."""
    env = {
        "PATH": os.defpath,
        "HOME": str(APP_DIR),
        "WEBSITE_SITE_NAME": host["name"],
        **personas.host_environment(str(state_dir / pki.CA_FILE), mi_url, host["name"]),
        **settings,
    }
    if str(host.get("identity", {}).get("type", "None")).lower() != "none":
        env["IDENTITY_ENDPOINT"] = f"{mi_url}/hosts/{host['name']}/msi/token"
        env["IDENTITY_HEADER"] = host["identity_header"]
    return env | personas.harness_variables()
