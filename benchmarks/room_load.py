"""Issue 4/4 figures: one sandbox serving a whole room at once.

Forty learners (processes, as forty kernels would be) start together at a barrier and each runs
the tutorial's full flow with the real SDKs against one sandbox:

1. ``token``: their credential gets a token for Communication Services. Learners alternate
   between the VM's managed identity (the IMDS endpoint) and the service principal (a client
   secret at the Entra token endpoint), as notebooks 3 to 5 do;
2. ``create_user_and_token``: the Identity API;
3. ``send_sms``: one SMS to the learner's own phone (a distinct E.164 number each);
4. ``read_inbox``: that phone's inbox through the control API, as the notebooks' inbox view does.

The rate limits stay on: a room shares one toll-free sender, 200 messages a minute, as on Azure.
Afterwards every inbox is counted: each learner's phone must hold exactly its own messages, so a
lost (or doubled) message shows. Loopback only; bounded in learners, rounds and time.

Run: .venv/bin/python -m benchmarks.room_load [--learners 40] [--rounds 1] [--timeout 180]
Exit status 1 if any call failed, a message was lost or a learner did not finish in time.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import time
import traceback
import uuid
from typing import Any
from urllib.parse import quote

from benchmarks._common import throwaway_sandbox
from helpers.sandbox_api import Control, apply_env
from sandbox import client

ACS_SCOPE = "https://communication.azure.com/.default"
SENDER = "+18005550100"
OPERATIONS = ("token", "create_user_and_token", "send_sms", "read_inbox")
KINDS = ("vm-tutorial", "service-principal")


def phone_of(learner: int) -> str:
    return f"+1206555{learner:04d}"


def _credential(kind: str) -> Any:
    from azure.identity import ClientSecretCredential, ManagedIdentityCredential

    if kind == "vm-tutorial":
        return ManagedIdentityCredential()
    return ClientSecretCredential(
        os.environ["AZURE_TENANT_ID"],
        os.environ["AZURE_CLIENT_ID"],
        os.environ["AZURE_CLIENT_SECRET"],
        authority=os.environ["AZURE_AUTHORITY_HOST"],
        disable_instance_discovery=True,
    )


def learner(
    index: int,
    kind: str,
    env: dict[str, str],
    doc: dict[str, Any],
    rounds: int,
    nonce: str,
    start: Any,
    results: Any,
) -> None:
    """One learner's kernel: own environment (persona), own clients, then the flow."""
    from azure.communication.identity import CommunicationIdentityClient
    from azure.communication.sms import SmsClient

    os.environ.clear()
    os.environ.update(env)
    out: dict[str, Any] = {"learner": index, "kind": kind, "times": [], "errors": []}
    phone = phone_of(index)
    try:
        credential = _credential(kind)
        identity = CommunicationIdentityClient(doc["acs_endpoint"], credential)
        sms = SmsClient(doc["acs_endpoint"], credential)
        control = Control(doc)
    except Exception:  # reported, counted as an error
        out["errors"].append(traceback.format_exc(limit=2))
        start.wait()
        results.put(out)
        return
    start.wait()
    out["began"] = time.monotonic()  # one clock for all processes: the room's wall time
    steps = {
        "token": lambda: credential.get_token(ACS_SCOPE),
        "create_user_and_token": lambda: identity.create_user_and_token(["chat"]),
        "send_sms": None,  # per round, below
        "read_inbox": lambda: control.call("GET", f"/_sandbox/inbox/{quote(phone)}"),
    }
    for n in range(rounds):
        text = f"room {nonce} learner {index} round {n}"
        steps["send_sms"] = lambda t=text: sms.send(from_=SENDER, to=phone, message=t)
        for op in OPERATIONS:
            t0 = time.perf_counter()
            try:
                value = steps[op]()
                if op == "send_sms" and not all(r.successful for r in value):
                    raise AssertionError(f"send refused: {[r.error_message for r in value]}")
                if op == "read_inbox" and text not in [m["message"] for m in value["messages"]]:
                    raise AssertionError(f"{phone}: the message of round {n} is not in the inbox")
            except Exception as e:  # every failure counts; the flow goes on
                out["errors"].append(f"{op}: {e.__class__.__name__}: {str(e)[:300]}")
            out["times"].append((op, time.perf_counter() - t0))
    out["ended"] = time.monotonic()
    results.put(out)


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (p50 of 40 samples is the 20th smallest, p95 the 38th)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _grant(settings: Any, doc: dict[str, Any]) -> None:
    """The state after notebook 2: the VM's identity on, with a data-plane role."""
    # One place sets this up for the benchmarks (the developer signs in by device code).
    from benchmarks.acs_bench import _grant_vm_identity

    _grant_vm_identity(settings, doc)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learners", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=1, help="full flows per learner")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds for the room")
    args = parser.parse_args()
    if not 1 <= args.learners <= 200 or not 1 <= args.rounds <= 5:
        parser.error("keep it bounded: 1-200 learners, 1-5 rounds")

    # Imported before forking, so that each learner's start-up is not part of its timings.
    import azure.communication.identity  # noqa: F401
    import azure.communication.sms  # noqa: F401
    import azure.identity  # noqa: F401

    with throwaway_sandbox() as (settings, doc):
        os.environ.update(REQUESTS_CA_BUNDLE=doc["ca_bundle"], SSL_CERT_FILE=doc["ca_bundle"])
        _grant(settings, doc)
        base = dict(os.environ)
        envs = {}
        for kind in KINDS:
            envs[kind] = dict(base)
            apply_env(envs[kind], client.control(settings, "GET", f"/_sandbox/personas/{kind}"))
        return run_room(args, doc, envs)


def run_room(args: argparse.Namespace, doc: dict[str, Any], envs: dict[str, dict]) -> int:
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(args.learners + 1)
    results = ctx.Queue()
    nonce = uuid.uuid4().hex[:8]
    procs = []
    for i in range(args.learners):
        kind = KINDS[i % len(KINDS)]
        proc = ctx.Process(
            target=learner,
            args=(i, kind, envs[kind], doc, args.rounds, nonce, start, results),
        )
        proc.start()
        procs.append(proc)
    start.wait(timeout=120)  # everyone has built their clients
    deadline = time.monotonic() + args.timeout
    reports = []
    while len(reports) < args.learners and time.monotonic() < deadline:
        try:
            reports.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
        except Exception:  # queue.Empty at the deadline
            break
    timed = [r for r in reports if "ended" in r]
    wall = max(r["ended"] for r in timed) - min(r["began"] for r in timed) if timed else 0.0
    for proc in procs:
        proc.join(timeout=max(0.1, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()

    control = Control(doc)
    delivered = control.call("GET", "/_sandbox/inbox")["phones"]
    expected = {phone_of(i): args.rounds for i in range(args.learners)}
    lost = sum(max(0, n - delivered.get(p, 0)) for p, n in expected.items())
    extra = sum(max(0, delivered.get(p, 0) - n) for p, n in expected.items())
    unfinished = args.learners - len(reports)
    errors = [e for r in reports for e in r["errors"]]

    by_op: dict[str, list[float]] = {op: [] for op in OPERATIONS}
    by_op.update({f"  token, {kind}": [] for kind in KINDS})
    flows: list[float] = []
    for r in reports:
        for op, seconds in r["times"]:
            by_op[op].append(seconds)
            if op == "token":
                by_op[f"  token, {r['kind']}"].append(seconds)
        total = sum(s for _, s in r["times"])
        flows.append(total / args.rounds)
    kinds = ", ".join(f"{sum(1 for r in reports if r['kind'] == k)} {k}" for k in KINDS)
    print(
        f"room load: {args.learners} learners x {args.rounds} flow(s) against one sandbox "
        f"({kinds}); {os.cpu_count()} CPUs"
    )
    print(f"{'operation':30} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}")
    for name, samples in [*by_op.items(), ("whole flow (per learner)", flows)]:
        if samples:
            print(
                f"{name:30} {len(samples):5d} {percentile(samples, 50) * 1000:9.1f} "
                f"{percentile(samples, 95) * 1000:9.1f} {max(samples) * 1000:9.1f}"
            )
    sent = args.learners * args.rounds
    print(f"room wall time {wall:.2f} s; messages sent {sent}, delivered {sum(delivered.values())}")
    print(f"errors {len(errors)}   lost messages {lost}   extra messages {extra}   "
          f"learners not finished {unfinished}")  # fmt: skip
    for e in errors[:10]:
        print("  error:", e.strip().splitlines()[-1])
    return 1 if errors or lost or extra or unfinished else 0


if __name__ == "__main__":
    raise SystemExit(main())
