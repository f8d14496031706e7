"""Compare a live sandbox answer with the recorded facts of a real Azure response.

Fixtures keep facts (status, codes, texts, field names and types), not whole recordings, so the
comparison is exact where it matters to a learner or a client and silent on volatile values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load(service: str) -> list[tuple[str, dict[str, Any]]]:
    """Every fixture of one service folder, as (file name, fixture), sorted by name."""
    return [
        (path.name, json.loads(path.read_text(encoding="utf-8")))
        for path in sorted((HERE / service).glob("*.json"))
    ]


def _walk(doc: Any, dotted: str) -> Any:
    for part in dotted.split(".") if dotted else []:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise KeyError(dotted)
    return doc


def _types(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _types(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_types(v) for v in doc[:1]]
    return type(doc).__name__


def fill(text: Any, values: dict[str, str]) -> Any:
    """The recorded text with ``{placeholder}`` parts replaced by this run's values."""
    if not isinstance(text, str):
        return text
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def differences(
    fixture: dict[str, Any], status: int, body: Any, values: dict[str, str] | None = None
) -> list[str]:
    """What differs between the sandbox's answer and the recorded one (empty when it conforms)."""
    values = values or {}
    recorded = fixture["response"]
    found: list[str] = []
    for item in fixture["compare"]:
        if item == "status":
            if status != recorded["status"]:
                found.append(f"status: sandbox {status}, Azure {recorded['status']}")
            continue
        if item.startswith("types:"):
            path = item[len("types:") :]
            ours, theirs = _types(_walk(body, path)), _types(_walk(recorded["body"], path))
            if ours != theirs:
                found.append(f"types of {path or 'body'}: sandbox {ours}, Azure {theirs}")
            continue
        if item.endswith(".*"):
            path = item[:-2]
            try:
                ours = sorted(_walk(body, path))
            except KeyError:
                found.append(f"{path}: missing in the sandbox's answer")
                continue
            theirs = sorted(_walk(recorded["body"], path))
            if ours != theirs:
                found.append(f"fields of {path or 'body'}: sandbox {ours}, Azure {theirs}")
            continue
        try:
            ours = _walk(body, item)
        except KeyError:
            found.append(f"{item}: missing in the sandbox's answer")
            continue
        theirs = fill(_walk(recorded["body"], item), values)
        if ours != theirs:
            found.append(f"{item}: sandbox {ours!r}, Azure {theirs!r}")
    return found


def assert_conforms(
    name: str,
    fixture: dict[str, Any],
    status: int,
    body: Any,
    values: dict[str, str] | None = None,
) -> None:
    found = differences(fixture, status, body, values)
    assert not found, f"{name} ({fixture['source']}):\n  " + "\n  ".join(found)
