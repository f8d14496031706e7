"""``python -m sandbox``: the command line for learners, facilitators, tests and scripts."""

from __future__ import annotations

import argparse
import json
import os
import sys
from urllib.parse import quote

from sandbox import client, personas
from sandbox.config import Settings, StateError


def _print_status(doc: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    print(f"sandbox running (pid {doc['pid']})")
    for key in ("https_url", "mi_url", "tenant_id", "acs_endpoint", "ca_file", "state_dir"):
        value = doc[key]
        if key == "mi_url":  # its path is the owner's secret; this text may land in a hub's log
            base, _, segment = value.rpartition("/")
            value = f"{base}/****{segment[-4:]}"
        print(f"  {key:15} {value}")


def cmd_start(settings: Settings, args: argparse.Namespace) -> int:
    _print_status(client.start(settings, fork=True), args.json)
    return 0


def cmd_stop(settings: Settings, args: argparse.Namespace) -> int:
    print("sandbox stopped" if client.stop(settings) else "sandbox was not running")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from sandbox.server import serve

    serve(settings)
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    doc = client.running_instance(settings)
    if doc is None:
        print("sandbox not running (start it with: python -m sandbox start)", file=sys.stderr)
        return 1
    _print_status(doc, args.json)
    return 0


def cmd_reset(settings: Settings, args: argparse.Namespace) -> int:
    """Back to the seeded world; also the one remedy for damaged state (see sandbox/state.py):
    whatever cannot be read is set aside and made anew, the rest is kept."""
    empty = getattr(args, "empty", False)
    done = "sandbox reset to the seeded world" + (" with an empty resource group" if empty else "")
    if client.running_instance(settings):
        client.control(settings, "POST", "/_sandbox/reset" + ("?empty=1" if empty else ""))
        print(done)
        return 0
    client.stop(settings)  # one that serves this folder but cannot be reached
    from sandbox.server import reset_world
    from sandbox.state import open_store, repair

    for line in repair(settings):
        print(line)
    store = open_store(settings)
    reset_world(settings, store, empty=empty)
    store.close()
    print(done)
    return 0


def cmd_env(settings: Settings, args: argparse.Namespace) -> int:
    client.start(settings, fork=True)
    env = client.control(settings, "GET", f"/_sandbox/personas/{quote(args.persona)}")
    usage = f'eval "$(python -m sandbox env --as {args.persona})"'
    print(f"# act as {args.persona} against the sandbox: {usage}")
    print("\n".join(personas.shell_lines(env)))
    return 0


def cmd_approve(settings: Settings, args: argparse.Namespace) -> int:
    from sandbox import world

    result = client.control(
        settings, "POST", f"/_sandbox/device-codes/{quote(args.code.strip())}/approve"
    )
    print(f"approved sign-in {args.code} as {result.get('user', world.DEVELOPER_UPN)}")
    return 0


def cmd_password(settings: Settings, args: argparse.Namespace) -> int:
    """The developer's sign-in password, for the device-code page (only its owner can read it)."""
    from sandbox import world
    from sandbox.state import open_store

    store = open_store(settings)
    print(f"user:     {world.DEVELOPER_UPN}")
    print(f"password: {world.installation_secrets(store)['developer_password']}")
    store.close()
    return 0


def cmd_log(settings: Settings, args: argparse.Namespace) -> int:
    entries = client.control(settings, "GET", "/_sandbox/log?limit=5000")["entries"][-args.last :]
    for e in entries:
        who = e.get("caller", "-")
        print(
            f"{e['id']:>6} {e['listener']:5} {e['method']:6} {e['status']} {e['path']}"
            f"  caller={who} credential={e.get('credential', '-')}"
            + (f"  reason={e['reason']}" if e.get("reason") else "")
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="A local stand-in for the Azure endpoints of the tutorial.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, helptext in (
        ("start", cmd_start, "start in the background (or reuse the running one)"),
        ("stop", cmd_stop, "stop the running sandbox"),
        ("serve", cmd_serve, "run in the foreground"),
        ("status", cmd_status, "show the running sandbox"),
        ("reset", cmd_reset, "return to the seeded world"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.set_defaults(func=func)
        if name in ("start", "status"):
            p.add_argument("--json", action="store_true", help="print the status as JSON")
        if name == "reset":
            p.add_argument(
                "--empty",
                action="store_true",
                help="leave the resource group empty (no ACS resource, VM or Function app), "
                "for rehearsing python -m helpers.provision",
            )
    p = sub.add_parser("env", help="print shell exports that make the SDKs act as a persona")
    p.add_argument("--as", dest="persona", required=True, choices=personas.PERSONAS)
    p.set_defaults(func=cmd_env)
    p = sub.add_parser("approve", help="approve a pending device-code sign-in as the developer")
    p.add_argument("code")
    p.set_defaults(func=cmd_approve)
    p = sub.add_parser("password", help="show the developer's sign-in name and password")
    p.set_defaults(func=cmd_password)
    p = sub.add_parser("log", help="print the latest entries of the request log")
    p.add_argument("--last", type=int, default=30)
    p.set_defaults(func=cmd_log)
    from sandbox.acs.cli_commands import add_commands as add_acs_commands

    add_acs_commands(sub)  # inbox, reply, fault
    from sandbox.azcloud import add_command as add_az_cloud

    add_az_cloud(sub)  # az-cloud: point a real Azure CLI at the sandbox
    return parser


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # files made in the state folder are private to their owner
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        return args.func(settings, args)
    except (client.SandboxError, StateError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(
            f"error: {e}. Check the ports (SANDBOX_HTTPS_PORT, SANDBOX_MI_PORT) "
            "and the state folder.",
            file=sys.stderr,
        )
        return 1
