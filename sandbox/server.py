"""Running the sandbox process: bind, serve both listeners, announce readiness, stop cleanly.

Readiness is announced by writing ``instance.json`` (URLs, ports, pid) *after* both sockets are
listening, so ``start`` can return the moment the sandbox answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import uvicorn

from sandbox import personas, pki, world
from sandbox.app import Sandbox, create_apps
from sandbox.config import Settings
from sandbox.entra.tokens import TokenService
from sandbox.store import Store

log = logging.getLogger("sandbox")


def read_or_make_secret(settings: Settings) -> str:
    """The control API's secret: a file only the owner can read, like Jupyter's token."""
    path = settings.secret_file
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value


def open_store(settings: Settings) -> Store:
    """The state folder's store, seeded on first use."""
    settings.ensure_state_dir()
    store = Store(settings.db_file)
    if store.get("tenant", world.TENANT_ID) is None:
        world.seed(store)
    return store


def reset_world(settings: Settings, store: Store) -> None:
    """Back to the seeded world. The developer is signed out too: ``reset`` revokes the refresh
    tokens, and a saved ``az`` sign-in that cannot refresh would fail later, far from its cause."""
    world.reset(store)
    shutil.rmtree(settings.azcli_dir, ignore_errors=True)


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto is TCP, and
    # accepted sockets inherit proto 0 otherwise; Nagle + delayed ACK then add ~40 ms per reply.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(256)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn server whose signals are handled once, for both listeners, by ``serve``."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def status_document(sandbox: Sandbox) -> dict[str, Any]:
    """The public description of a running instance (``status --json``); holds no secret."""
    acs = sandbox.store.get("acs_resource", world.ACS_NAME) or {}
    return {
        "pid": os.getpid(),
        "https_url": sandbox.https_url,
        "mi_url": sandbox.mi_url,
        "arm_url": sandbox.https_url,
        "authority_host": sandbox.https_url,
        "tenant_id": world.TENANT_ID,
        "subscription_id": world.SUBSCRIPTION_ID,
        "resource_group": world.RESOURCE_GROUP,
        "acs_endpoint": sandbox.https_url + "/",
        "acs_resource_id": world.ACS_RESOURCE_ID,
        "sender_numbers": acs.get("sender_numbers", world.SENDER_NUMBERS),
        "learner_phones": acs.get("learner_phones", world.LEARNER_PHONES),
        "ca_file": str(sandbox.settings.ca_file),
        "ca_bundle": str(sandbox.settings.bundle_file),
        "state_dir": str(sandbox.settings.state_dir),
        "https_port": urlsplit(sandbox.https_url).port,
        "mi_port": urlsplit(sandbox.mi_url).port,
        "bind": sandbox.settings.bind,
    }


async def _serve(settings: Settings) -> None:
    settings.ensure_state_dir()
    pki.ensure_pki(settings.state_dir)
    personas.install_az_shim(settings.state_dir)  # the developer persona's `az` (sandbox/azcli.py)
    store = open_store(settings)
    secret = read_or_make_secret(settings)

    https_sock = _bind(settings.bind, settings.https_port)
    mi_sock = _bind(settings.bind, settings.mi_port)
    https_port, mi_port = https_sock.getsockname()[1], mi_sock.getsockname()[1]
    host = settings.bind if settings.bind not in ("0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    https_url, mi_url = f"https://{host}:{https_port}", f"http://{host}:{mi_port}"

    tokens = TokenService(pki.load_signing_key(settings.state_dir), https_url)
    sandbox = Sandbox(settings, store, tokens, https_url, mi_url, secret)
    https_app, mi_app = create_apps(sandbox)

    # Idle keep-alive TLS clients (the SDKs pool connections) never answer close_notify; cap the
    # wait so that stop takes a moment, not the 10 s after which the CLI kills the process.
    common = {"log_level": "warning", "access_log": False, "lifespan": "off",
              "timeout_graceful_shutdown": 1}  # fmt: skip
    https_server = _Server(
        uvicorn.Config(
            https_app,
            ssl_certfile=str(settings.state_dir / pki.SERVER_CERT_FILE),
            ssl_keyfile=str(settings.state_dir / pki.SERVER_KEY_FILE),
            ssl_version=ssl.PROTOCOL_TLS_SERVER,
            **common,
        )
    )
    mi_server = _Server(uvicorn.Config(mi_app, **common))
    servers = (https_server, mi_server)

    loop = asyncio.get_running_loop()

    def stop() -> None:
        for s in servers:
            s.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)

    tasks = [
        asyncio.create_task(https_server.serve(sockets=[https_sock])),
        asyncio.create_task(mi_server.serve(sockets=[mi_sock])),
    ]
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.01)
    if all(s.started for s in servers):
        doc = status_document(sandbox)
        tmp = settings.instance_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, settings.instance_file)
        log.warning("sandbox ready: %s (identity endpoints %s)", https_url, mi_url)
    try:
        await asyncio.gather(*tasks)
    finally:
        stop()
        with contextlib.suppress(FileNotFoundError):
            current = json.loads(settings.instance_file.read_text())
            if current.get("pid") == os.getpid():
                settings.instance_file.unlink()
        store.close()


def serve(settings: Settings) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(settings))
