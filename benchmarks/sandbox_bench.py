"""Issue 1/4 figures: sandbox start-to-ready, and a managed-identity token through the SDK
against the sandbox versus against a bare endpoint on the same server stack.

Run: .venv/bin/python -m benchmarks.sandbox_bench
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import report, start_bare, throwaway_sandbox, timed_pair
from sandbox import client
from sandbox.config import Settings

RESOURCE = "https://communication.azure.com/.default"


def start_to_ready(runs: int = 15) -> None:
    with throwaway_sandbox(start=False) as (settings, _):
        env = dict(
            os.environ,
            SANDBOX_STATE_DIR=str(settings.state_dir),
            SANDBOX_HTTPS_PORT="0",
            SANDBOX_MI_PORT="0",
        )
        cmd = [sys.executable, "-m", "sandbox", "start"]
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        first = time.perf_counter() - t0
        print(f"{'first start (generates CA, keys, seeds the store)':55} {first * 1000:8.0f} ms")
        samples = []
        for _ in range(runs):
            client.stop(settings)
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            samples.append(time.perf_counter() - t0)
        report("start to ready (`python -m sandbox start`, existing state)", samples)


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
    start_to_ready()
    mi_token_ratio()
