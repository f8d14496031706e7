"""Issue 2/4 figures: the ACS data plane through the real SDKs with a managed identity.

* ``create_user_and_token`` and a one-recipient ``send``, each against the sandbox and against a
  bare Starlette endpoint on the same uvicorn/TLS stack that answers a canned body (goal: the
  sandbox within 1.3x of bare);
* sends per second with 50 concurrent async clients, sandbox and bare.

The bare server (benchmarks/_common.py) runs in its own process, like the sandbox, so neither
shares the client's GIL.
The managed-identity token is fetched once and cached by the credential, so the figures are the
data-plane calls themselves (HMAC-free: bearer verification, RBAC, store, request log).

Run: .venv/bin/python -m benchmarks.acs_bench [--runs 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from typing import Any

from benchmarks._common import report, start_bare, throwaway_sandbox, timed_pair
from sandbox import client, world
from sandbox.config import Settings


def _grant_vm_identity(settings, doc) -> str:  # noqa: ANN001
    """As the developer: enable vm-tutorial's identity and give it Contributor on the resource."""
    from azure.identity import DeviceCodeCredential
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    def approve(uri: str, code: str, expires_on) -> None:  # noqa: ANN001
        client.control(settings, "POST", f"/_sandbox/device-codes/{code}/approve")

    dev = DeviceCodeCredential(
        client_id=world.AZURE_CLI_CLIENT_ID,
        tenant_id=world.TENANT_ID,
        authority=doc["https_url"],
        disable_instance_discovery=True,
        prompt_callback=approve,
    )
    arm = {
        "base_url": doc["arm_url"],
        "credential_scopes": ["https://management.azure.com/.default"],
    }
    vm = (
        ResourceManagementClient(dev, world.SUBSCRIPTION_ID, **arm)
        .resources.begin_update_by_id(
            world.host_resource_id("vm-tutorial"),
            {"identity": {"type": "SystemAssigned"}},
            api_version="2024-07-01",
        )
        .result()
    )
    principal = vm.identity.principal_id
    AuthorizationManagementClient(dev, world.SUBSCRIPTION_ID, **arm).role_assignments.create(
        world.ACS_RESOURCE_ID,
        str(uuid.uuid4()),
        {
            "role_definition_id": world.role_definition_id(world.CONTRIBUTOR_ROLE_ID),
            "principal_id": principal,
            "principal_type": "ServicePrincipal",
        },
    )
    return principal


def _throughput(endpoint: str, clients: int, per_client: int) -> float:
    from azure.communication.sms.aio import SmsClient
    from azure.identity.aio import ManagedIdentityCredential

    async def main() -> float:
        async with ManagedIdentityCredential() as cred:
            await cred.get_token("https://communication.azure.com//.default")
            sms_clients = [SmsClient(endpoint, cred) for _ in range(clients)]
            for c in sms_clients:  # open each client's connection before timing
                await c.send("+18005550100", "+14255550101", "warm-up")

            async def one(c, i: int) -> None:  # noqa: ANN001
                for n in range(per_client):
                    [r] = await c.send("+18005550100", f"+1206555{i:04d}", f"m{n}")
                    assert r.successful

            t0 = time.perf_counter()
            await asyncio.gather(*(one(c, i) for i, c in enumerate(sms_clients)))
            elapsed = time.perf_counter() - t0
            for c in sms_clients:
                await c.close()
            return clients * per_client / elapsed

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--per-client", type=int, default=20)
    args = parser.parse_args()
    with throwaway_sandbox() as (settings, doc):
        _measure(args, settings, doc)


def _measure(args: argparse.Namespace, settings: Settings, doc: dict[str, Any]) -> None:
    from azure.communication.identity import CommunicationIdentityClient
    from azure.communication.sms import SmsClient
    from azure.identity import ManagedIdentityCredential

    bare_url, stop_bare = start_bare(str(settings.state_dir))
    bare_url += "/"
    try:
        for name in (
            "IDENTITY_ENDPOINT",
            "IDENTITY_HEADER",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
        ):
            os.environ.pop(name, None)
        os.environ.update(REQUESTS_CA_BUNDLE=doc["ca_bundle"], SSL_CERT_FILE=doc["ca_bundle"])
        _grant_vm_identity(settings, doc)
        os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = f"{doc['mi_url']}/hosts/vm-tutorial"
        # Rate limits would throttle a load test (200 SMS/min per toll-free number).
        client.control(settings, "POST", "/_sandbox/faults/unlimited", {})

        cred = ManagedIdentityCredential()  # one credential: its token is cached, as in an app
        clients = {
            label: (CommunicationIdentityClient(endpoint, cred), SmsClient(endpoint, cred))
            for label, endpoint in (("sandbox", doc["acs_endpoint"]), ("bare", bare_url))
        }
        operations = {
            "create_user_and_token": lambda c: c[0].create_user_and_token(["voip"]),
            "send": lambda c: c[1].send("+18005550100", "+14255550101", "bench"),
        }
        for op, call in operations.items():
            # Interleaved, one call each in turn: the machine's load (other processes on a small
            # box) then weighs on both sides alike.
            samples = timed_pair(
                lambda f=call: f(clients["sandbox"]), lambda f=call: f(clients["bare"]), args.runs
            )
            sandboxed = report(f"{op}, MI, sandbox", samples[0])
            bare = report(f"{op}, MI, bare endpoint (same stack)", samples[1])
            print(f"{'ratio sandbox / bare, ' + op + ' (goal <= 1.3)':55} {sandboxed / bare:8.2f}x")
        for label, endpoint in (("sandbox", doc["acs_endpoint"]), ("bare", bare_url)):
            rate = _throughput(endpoint, args.clients, args.per_client)
            print(f"{f'sends/s, {args.clients} concurrent async clients, {label}':55} {rate:8.0f}")
    finally:
        stop_bare()


if __name__ == "__main__":
    main()
