"""Shared pieces of the benchmark scripts: a throwaway sandbox, the bare reference server,
interleaved timing and the report line.

The "bare endpoint" is a Starlette app on the same uvicorn stack, in its own process like the
sandbox, that answers every route with a canned body and checks nothing: the ratio sandbox/bare
shows what the sandbox's real work (signature checks, RBAC, the store, the request log) costs on
top of the HTTP stack itself.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sandbox import client, world
from sandbox.config import Settings

CANNED: dict[str, tuple[int, dict[str, Any]]] = {
    "/identities": (
        201,
        {
            "identity": {
                "id": f"8:acs:{world.ACS_IMMUTABLE_ID}_00000000-0000-0000-0000-000000000000"
            },
            "accessToken": {"token": "x.y.z", "expiresOn": "2030-01-01T00:00:00.0000000+00:00"},
        },
    ),
    "/sms": (
        202,
        {
            "value": [
                {
                    "to": "+14255550101",
                    "messageId": "Outgoing_20300101000000" + str(uuid.UUID(int=0)),
                    "httpStatusCode": 202,
                    "repeatabilityResult": "accepted",
                    "successful": True,
                }
            ]
        },
    ),
    "/metadata/identity/oauth2/token": (
        200,
        {
            "access_token": "x.y.z",
            "expires_in": "3600",
            "expires_on": "1900000000",
            "resource": "https://communication.azure.com/",
            "token_type": "Bearer",
        },
    ),
}


@contextmanager
def throwaway_sandbox(start: bool = True) -> Iterator[tuple[Settings, dict[str, Any] | None]]:
    """A sandbox on free ports in a temporary state folder, stopped and removed afterwards even
    when the benchmark fails half-way; yields (settings, status document, or None unstarted)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    settings = Settings(state_dir=folder, https_port=0, mi_port=0)
    try:
        yield settings, client.start(settings) if start else None
    finally:
        client.stop(settings)
        shutil.rmtree(folder, ignore_errors=True)


def serve_bare(port: int, state_dir: str | None) -> None:
    """The reference server (run in a child process): canned answers, TLS when given a state
    folder (the sandbox's own certificate), plain HTTP otherwise."""
    import ssl

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from sandbox import pki

    def canned(path: str) -> Route:
        status, body = CANNED[path]

        async def answer(request: Request) -> JSONResponse:
            await request.body()
            return JSONResponse(body, status_code=status)

        return Route(path, answer, methods=["GET", "POST"])

    tls = {}
    if state_dir:
        tls = {
            "ssl_certfile": str(Path(state_dir) / pki.SERVER_CERT_FILE),
            "ssl_keyfile": str(Path(state_dir) / pki.SERVER_KEY_FILE),
            "ssl_version": ssl.PROTOCOL_TLS_SERVER,
        }
    app = Starlette(routes=[canned(path) for path in CANNED])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        **tls,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_bare(state_dir: str | None = None) -> tuple[str, Callable[[], None]]:
    """Start the bare server in its own process; returns (base url, stop)."""
    port = _free_port()
    args = [sys.executable, "-m", "benchmarks._common", str(port)] + (
        [state_dir] if state_dir else []
    )
    proc = subprocess.Popen(args)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return f"{'https' if state_dir else 'http'}://127.0.0.1:{port}", stop
        except OSError:
            time.sleep(0.05)
    stop()
    raise SystemExit("the bare server did not start")


def timed_pair(
    a: Callable[[], Any], b: Callable[[], Any], runs: int, warmup: int = 10
) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` alternately, so that load from anything else on the machine weighs on
    both sides alike; (samples of a, samples of b) in seconds."""
    for _ in range(warmup):
        a()
        b()
    out: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for fn, samples in ((a, out[0]), (b, out[1])):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
    return out


def report(name: str, samples: list[float]) -> float:
    med = statistics.median(samples)
    p95 = sorted(samples)[int(len(samples) * 0.95) - 1]
    print(f"{name:55} median {med * 1000:8.2f} ms   p95 {p95 * 1000:8.2f} ms   n={len(samples)}")
    return med


if __name__ == "__main__":
    serve_bare(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)
