"""Sandbox start-to-ready (first start and warm start) and stop, side by side with Azurite's
blob service start-to-ready in the same run (issue 9, item 6); and a managed-identity token
through the SDK against the sandbox versus a bare endpoint on the same server stack (issue 1/4).

Azurite comes from npm into a cache folder outside the repo (~/.cache/acs-kit-bench), once:
``npm install --prefix ~/.cache/acs-kit-bench azurite@3.37.0``; the benchmark installs it there
when it is missing. Ready means: the command returned (sandbox), or the port answered HTTP
(Azurite, polled every 5 ms).

Run: .venv/bin/python -m benchmarks.sandbox_bench [rounds]
"""

from __future__ import annotations

import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import _free_port, report, start_bare, throwaway_sandbox, timed_pair
from sandbox import client
from sandbox.config import Settings

RESOURCE = "https://communication.azure.com/.default"
AZURITE_VERSION = "3.37.0"
AZURITE_HOME = Path.home() / ".cache" / "acs-kit-bench"
AZURITE_BLOB = AZURITE_HOME / "node_modules" / ".bin" / "azurite-blob"


def _azurite() -> Path:
    if not AZURITE_BLOB.exists():
        AZURITE_HOME.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(AZURITE_HOME),
             f"azurite@{AZURITE_VERSION}"],
            check=True, capture_output=True,
        )  # fmt: skip
    return AZURITE_BLOB


def azurite_start_to_ready() -> float:
    """Seconds from launching azurite-blob (fresh location) to its first HTTP answer."""
    folder = tempfile.mkdtemp(prefix="bench-azurite-")
    port = _free_port()
    cmd = [str(_azurite()), "--silent", "--location", folder, "--blobHost", "127.0.0.1",
           "--blobPort", str(port)]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/")
                conn.getresponse().read()
                conn.close()
                return time.perf_counter() - t0
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("azurite-blob exited before answering") from None
                time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _cli(settings: Settings, *args: str) -> float:
    env = dict(os.environ, SANDBOX_STATE_DIR=str(settings.state_dir),
               SANDBOX_HTTPS_PORT="0", SANDBOX_MI_PORT="0")  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sandbox", *args], env=env, check=True,
                   capture_output=True)  # fmt: skip
    return time.perf_counter() - t0


def start_and_stop(rounds: int = 7) -> dict[str, float]:
    """Interleaved rounds of: Azurite, sandbox first start, warm start, stop (command line and
    in-process). Medians, and the ratios the issue sets goals for."""
    samples: dict[str, list[float]] = {
        k: [] for k in ("azurite", "cold", "warm", "stop", "stop_call")
    }
    for _ in range(rounds):
        samples["azurite"].append(azurite_start_to_ready())
        folder = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
        settings = Settings(state_dir=folder / "state", https_port=0, mi_port=0)
        try:
            samples["cold"].append(_cli(settings, "start"))  # makes CA, keys, seeds the store
            samples["stop"].append(_cli(settings, "stop"))
            samples["warm"].append(_cli(settings, "start"))
            client.running_instance(settings)  # a client connected, as a notebook would be
            t0 = time.perf_counter()
            client.stop(settings)
            samples["stop_call"].append(time.perf_counter() - t0)
        finally:
            client.stop(settings)
            shutil.rmtree(folder, ignore_errors=True)
    medians = {k: statistics.median(v) for k, v in samples.items()}
    labels = {
        "azurite": f"Azurite {AZURITE_VERSION} blob start to ready",
        "cold": "sandbox first start (`python -m sandbox start`, new folder)",
        "warm": "sandbox warm start (existing state folder)",
        "stop": "sandbox stop (`python -m sandbox stop`)",
        "stop_call": "sandbox stop (client.stop(), in process)",
    }
    for key, label in labels.items():
        report(label, samples[key])
    for key, goal in (("cold", "first start / Azurite (goal <= 0.5)"),
                      ("warm", "warm start / Azurite (goal <= 0.35)")):  # fmt: skip
        print(f"{'ratio ' + goal:55} {medians[key] / medians['azurite']:8.2f}x")
    return medians


def mi_token_ratio(runs: int = 200) -> None:
    with throwaway_sandbox() as (settings, doc):
        _mi_token_ratio(settings, doc, runs)


def _mi_token_ratio(settings: Settings, doc: dict[str, Any], runs: int) -> None:
    from azure.identity import ClientSecretCredential, ManagedIdentityCredential
    from azure.mgmt.resource.resources import ResourceManagementClient

    sp = client.control(settings, "GET", "/_sandbox/personas/service-principal")["set"]
    os.environ.update(REQUESTS_CA_BUNDLE=doc["ca_bundle"], SSL_CERT_FILE=doc["ca_bundle"])
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        os.environ.pop(name, None)
    sp_cred = ClientSecretCredential(
        doc["tenant_id"],
        sp["AZURE_CLIENT_ID"],
        sp["AZURE_CLIENT_SECRET"],
        authority=doc["authority_host"],
        disable_instance_discovery=True,
    )
    arm = ResourceManagementClient(
        sp_cred,
        doc["subscription_id"],
        base_url=doc["arm_url"],
        credential_scopes=["https://management.azure.com/.default"],
    )
    vm_id = (
        f"/subscriptions/{doc['subscription_id']}/resourceGroups/{doc['resource_group']}"
        "/providers/Microsoft.Compute/virtualMachines/vm-tutorial"
    )
    arm.resources.begin_update_by_id(
        vm_id, {"identity": {"type": "SystemAssigned"}}, api_version="2024-07-01"
    ).result()

    def fetch() -> None:
        # A new credential each time: MSAL would otherwise answer from its cache.
        ManagedIdentityCredential().get_token(RESOURCE)

    bare_url, stop = start_bare()
    hosts = {"sandbox": f"{doc['mi_url']}/hosts/vm-tutorial", "bare": bare_url}

    def via(side: str) -> Callable[[], None]:
        def call() -> None:
            os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = hosts[side]
            fetch()

        return call

    mark = client.control(settings, "GET", "/_sandbox/log?after=999999999")["last_id"]
    samples = timed_pair(via("sandbox"), via("bare"), runs)
    stop()
    served = client.control(settings, "GET", f"/_sandbox/log?after={mark}&limit=5000")["entries"]
    issued = [e for e in served if e["path"].endswith("/oauth2/token") and e["status"] == 200]
    assert len(issued) >= runs, f"only {len(issued)} token requests reached the sandbox"
    sandboxed = report("MI token via SDK, sandbox (IMDS style, vm-tutorial)", samples[0])
    bare_med = report("MI token via SDK, bare endpoint (same stack)", samples[1])
    print(f"{'ratio sandbox / bare (goal <= 1.3)':55} {sandboxed / bare_med:8.2f}x")


if __name__ == "__main__":
    start_and_stop(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
    mi_token_ratio()
