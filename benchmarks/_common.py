"""Shared pieces of the benchmark scripts: a throwaway sandbox and a bare reference server.

The "bare endpoint" is a Starlette app on the same uvicorn stack that answers with a canned body
and checks nothing: the ratio sandbox/bare shows what the sandbox's real work (signature checks,
RBAC, the store, the request log) costs on top of the HTTP stack itself.
"""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from sandbox import client
from sandbox.config import Settings


def temp_settings() -> Settings:
    return Settings(
        state_dir=Path(tempfile.mkdtemp(prefix="bench-sandbox-")), https_port=0, mi_port=0
    )


def start_bare(app: Starlette, ssl: dict[str, str] | None = None) -> tuple[str, Callable[[], None]]:
    """Serve ``app`` in a background thread on a free loopback port; returns (url, stop)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", **(ssl or {})
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(5)

    scheme = "https" if ssl else "http"
    return f"{scheme}://127.0.0.1:{port}", stop


def timed(fn: Callable[[], Any], runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def report(name: str, samples: list[float]) -> float:
    med = statistics.median(samples)
    p95 = sorted(samples)[int(len(samples) * 0.95) - 1]
    print(f"{name:55} median {med * 1000:8.2f} ms   p95 {p95 * 1000:8.2f} ms   n={len(samples)}")
    return med


def sandbox_env(settings: Settings, persona: str) -> dict[str, str]:
    env = client.control(settings, "GET", f"/_sandbox/personas/{persona}")
    merged = dict(os.environ)
    for name in env["unset"]:
        merged.pop(name, None)
    merged.update(env["set"])
    return merged
