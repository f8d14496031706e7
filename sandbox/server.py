"""Running the sandbox process: bind, serve both listeners, announce readiness, stop at once.

Readiness is announced by writing ``instance.json`` (URLs, ports, pid) *after* both sockets are
listening, and by a byte on the pipe ``start`` passes in (``SANDBOX_READY_FD``), so ``start``
returns the moment the sandbox answers without polling. The serving process holds an ``flock``
on ``server.lock`` for its whole life: a second ``serve`` on the same folder refuses, and
``stop`` signals only the process that holds it (never one that merely reused a pid).

Stopping does not wait for idle keep-alive clients: every request's writes are committed before
its answer (SQLite WAL), so the listeners close, open connections are cut, and the store closes.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sandbox import world
from sandbox.config import Settings, StateError
from sandbox.state import open_store, read_secret, write_atomic

if TYPE_CHECKING:
    from sandbox.runtime import Sandbox

__all__ = ["open_store", "reset_world", "serve", "status_document"]

log = logging.getLogger("sandbox")

# A client has this long to send a request's headers (from connecting, or after the previous
# answer); idle keep-alive connections close after KEEP_ALIVE. Slow or silent clients then hold
# a socket for seconds, not forever, and never delay others (one event loop, no thread each).
HEADER_TIMEOUT = 10.0
KEEP_ALIVE = 5


def reset_world(settings: Settings, store, *, empty: bool = False) -> None:
    """Back to the seeded world (``empty``: its resource group empty). The developer is signed
    out too: ``reset`` revokes the refresh tokens, and a saved ``az`` sign-in that cannot
    refresh would fail later, far from its cause."""
    world.reset(store, empty=empty)
    shutil.rmtree(settings.azcli_dir, ignore_errors=True)


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto is TCP, and
    # accepted sockets inherit proto 0 otherwise; Nagle + delayed ACK then add ~40 ms per reply.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise StateError(
            f"Cannot listen on {host} port {port} ({e.strerror}); choose another port with "
            "SANDBOX_HTTPS_PORT / SANDBOX_MI_PORT (0 picks a free one)."
        ) from None
    sock.listen(256)
    return sock


def _http_protocol() -> type:
    """The HTTP protocol class (made late: uvicorn is a large import, done while the keys are
    prepared on another thread)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Http(H11Protocol):
        """uvicorn's HTTP/1.1 protocol with a deadline for each request's headers, which uvicorn
        lacks: its keep-alive timer stops at the first byte, so a client trickling headers (or one
        that connects and says nothing) held its socket for good."""

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            self._waiting_for = self.cycle
            self._header_timer = self.loop.call_later(HEADER_TIMEOUT, self._headers_too_slow)

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not self._waiting_for and self._header_timer is not None:
                self._header_timer.cancel()  # a request's headers arrived: the app has it now
                self._header_timer = None

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_timer()

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().connection_lost(exc)

    return Http


def _hold_lock(settings: Settings) -> int:
    """Take ``server.lock`` for this process's life, or refuse: one server per state folder."""
    fd = os.open(settings.lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    for _ in range(40):  # a `status` or `stop` may hold it shared for a moment to test it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            time.sleep(0.005)
    else:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StateError(
            f"Another sandbox (pid {holder}) already serves {settings.state_dir}; use it, or "
            "stop it first with: python -m sandbox stop"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def status_document(sandbox: Sandbox) -> dict[str, Any]:
    """The description of a running instance (``status --json``, ``instance.json``). No secret
    but ``mi_url``'s path segment, which only its owner sees: the file sits in the private state
    folder and ``/_sandbox/info`` needs the control secret."""
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
        "az_config_dir": str(sandbox.settings.azcli_dir),  # where the sandbox's `az` signs in
        "https_port": urlsplit(sandbox.https_url).port,
        "mi_port": urlsplit(sandbox.mi_url).port,
        "bind": sandbox.settings.bind,
    }


class _Keys(threading.Thread):
    """Keys and certificates made or loaded on a thread while the main thread imports the web
    stack: RSA key generation releases the GIL, so a first start pays for one, not both."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        from sandbox import personas, pki

        try:
            folder = self.settings.state_dir
            pki.ensure_pki(folder)
            personas.install_az_shim(folder)  # the developer persona's `az` (sandbox/azcli.py)
            self.tls = pki.server_context(folder)
            self.signing_key = pki.load_signing_key(folder)
        except BaseException as e:  # re-raised on the main thread by result()
            self.error = e

    def result(self) -> _Keys:
        self.join()
        if self.error is not None:
            raise self.error
        return self


async def _serve(settings: Settings, keys: _Keys) -> None:
    secret = read_secret(settings)
    store = open_store(settings)
    try:
        await _run(settings, store, secret, keys)
    finally:
        store.close()


async def _run(settings: Settings, store, secret: str, keys: _Keys) -> None:
    import uvicorn

    from sandbox.app import create_apps
    from sandbox.entra.tokens import TokenService
    from sandbox.runtime import Sandbox

    https_sock = _bind(settings.bind, settings.https_port)
    mi_sock = _bind(settings.bind, settings.mi_port)
    https_port, mi_port = https_sock.getsockname()[1], mi_sock.getsockname()[1]
    host = settings.bind if settings.bind not in ("0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    # The identity endpoints live under an unguessable path segment of this installation: the
    # plain-HTTP port is visible to every user of the machine, the segment only to its owner.
    mi_secret = world.installation_secrets(store)["mi_path"]
    https_url = f"https://{host}:{https_port}"
    mi_url = f"http://{host}:{mi_port}/{mi_secret}"

    keys.result()
    tls = keys.tls
    tokens = TokenService(keys.signing_key, https_url)
    sandbox = Sandbox(settings, store, tokens, https_url, mi_url, secret, mi_secret=mi_secret)
    https_app, mi_app = create_apps(sandbox)

    common = {"log_level": "warning", "access_log": False, "lifespan": "off", "ws": "none",
              "http": _http_protocol(), "timeout_keep_alive": KEEP_ALIVE}  # fmt: skip
    https_server = uvicorn.Server(
        uvicorn.Config(https_app, ssl_context_factory=lambda *_: tls, **common)
    )
    mi_server = uvicorn.Server(uvicorn.Config(mi_app, **common))
    servers = (https_server, mi_server)

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)

    for server, sock in ((https_server, https_sock), (mi_server, mi_sock)):
        server.config.load()
        server.lifespan = server.config.lifespan_class(server.config)
        await server.startup(sockets=[sock])
    ticks = [asyncio.create_task(s.main_loop()) for s in servers]  # Date header, once a second

    write_atomic(settings.instance_file, json.dumps(status_document(sandbox), indent=2).encode())
    _announce_ready()
    log.warning("sandbox ready: %s (identity endpoints on port %s)", https_url, mi_port)
    try:
        await stopping.wait()
    finally:
        await sandbox.function_hosts.stop_all()  # the sites' workers end with the sandbox
        if sandbox.run_commands is not None:  # and so do the VMs' programs
            await sandbox.run_commands.stop_all()
        for server in servers:
            server.should_exit = server.force_exit = True
            for listener in server.servers:
                listener.close()
            for connection in list(server.server_state.connections):
                connection.transport.abort()
        for sock in (https_sock, mi_sock):
            sock.close()
        for task in ticks:
            task.cancel()
        try:
            current = json.loads(settings.instance_file.read_text())
            if current.get("pid") == os.getpid():
                settings.instance_file.unlink()
        except (OSError, ValueError):
            pass


def _announce_ready() -> None:
    """One byte on the pipe ``start`` handed over, so it stops waiting at once."""
    fd = os.environ.pop("SANDBOX_READY_FD", None)
    if fd and fd.isdigit():
        try:
            os.write(int(fd), b"ready\n")
            os.close(int(fd))
        except OSError:
            pass


def serve(settings: Settings) -> None:
    """Run in the foreground until SIGINT/SIGTERM. A state folder that cannot be used is one
    sentence on stderr (``start`` shows it) and exit status 2, never a traceback."""
    os.umask(0o077)  # every file the sandbox makes is its owner's alone (the store holds secrets)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    try:
        settings.ensure_state_dir()
        lock = _hold_lock(settings)
        try:
            asyncio.run(_serve(settings, _Keys(settings)))
        finally:
            os.close(lock)  # releasing the lock tells a waiting ``stop`` that all is closed
    except StateError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
