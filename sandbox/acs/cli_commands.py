"""``python -m sandbox inbox | reply | fault``: the phones and the fault switches from a shell.

Kept beside the ACS routes they call; ``sandbox/cli.py`` only registers them.
"""

from __future__ import annotations

import argparse
import json
from urllib.parse import quote

from sandbox import client
from sandbox.config import Settings


def _value(text: str) -> object:
    """``3`` → 3, ``1.5`` → 1.5, ``a,b`` → ["a", "b"] (for list parameters), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text.split(",") if "," in text else text


def cmd_inbox(settings: Settings, args: argparse.Namespace) -> int:
    found = client.control(settings, "GET", f"/_sandbox/inbox/{quote(args.phone)}")
    print(f"{found['count']} message(s) for {found['phone']}")
    for m in found["messages"]:
        print(
            f"  {m['receivedTimestamp']}  from {m['from']}  [{m['segments']} seg]  {m['message']}"
        )
    return 0


def cmd_reply(settings: Settings, args: argparse.Namespace) -> int:
    body = {"message": args.text}
    if args.sender:
        body["from"] = args.sender
    result = client.control(settings, "POST", f"/_sandbox/phones/{quote(args.phone)}/reply", body)
    line = f"{result['from']} replied to {result['to']} ({result['messageId']})"
    if "optedOut" in result:
        line += "; now opted " + ("out" if result["optedOut"] else "in")
    print(line)
    return 0


def cmd_fault(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "set":
        if not args.name:
            print("error: fault set needs a NAME", flush=True)
            return 2
        params = {}
        for item in args.param or []:
            key, sep, value = item.partition("=")
            if not sep:
                print(f"error: --param takes key=value, got '{item}'")
                return 2
            params[key] = _value(value)
        result = client.control(settings, "POST", f"/_sandbox/faults/{quote(args.name)}", params)
        print(f"fault {result['name']} set: {json.dumps(result['params'])}")
    elif args.action == "clear":
        path = "/_sandbox/faults" + (f"/{quote(args.name)}" if args.name else "")
        client.control(settings, "DELETE", path)
        print(f"fault {args.name} cleared" if args.name else "all faults cleared")
    else:
        found = client.control(settings, "GET", "/_sandbox/faults")
        if not found["faults"]:
            print("no fault set")
        for name, params in found["faults"].items():
            print(f"  {name:18} {json.dumps(params)}")
        print("known: " + ", ".join(f"{n}({', '.join(p)})" for n, p in found["known"].items()))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inbox", help="show the SMS a phone has received")
    p.add_argument("phone", help="E.164 number, e.g. +14255550101")
    p.set_defaults(func=cmd_inbox)
    p = sub.add_parser("reply", help="text back from a phone (e.g. STOP, START)")
    p.add_argument("phone")
    p.add_argument("text")
    p.add_argument("--from", dest="sender", help="the resource's number to reply to")
    p.set_defaults(func=cmd_reply)
    p = sub.add_parser("fault", help="set, clear or list fault switches")
    p.add_argument("action", choices=("set", "clear", "list"))
    p.add_argument("name", nargs="?")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="repeatable")
    p.set_defaults(func=cmd_fault)
