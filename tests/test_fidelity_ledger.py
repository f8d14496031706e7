"""The fidelity ledger (sandbox/FIDELITY.md) is complete and honest about itself.

Every row names a source (or says it has none and why we chose), and a test that exists; every
conformance fixture backs a row; every error code a committed notebook shows has a row. A
behaviour a learner sees without a ledger row is what this file catches.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LEDGER = REPO / "sandbox" / "FIDELITY.md"
FIXTURES = REPO / "tests" / "conformance"
HEADER = ["behaviour", "azure", "source", "sandbox", "match", "test"]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def ledger_rows() -> list[dict[str, str]]:
    """Rows of every table whose header is the ledger's, with the section each sits in."""
    rows, section, columns = [], "", None
    for line in LEDGER.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section, columns = line[3:].strip(), None
        elif line.startswith("|"):
            cells = _cells(line)
            if [c.lower() for c in cells] == HEADER:
                columns = HEADER
            elif columns and not set("".join(cells)) <= set("-: "):
                rows.append(dict(zip(columns, cells, strict=False), section=section))
        else:
            columns = None if line.strip() else columns
    return rows


ROWS = ledger_rows()


def test_the_ledger_has_rows_in_every_section():
    sections = {r["section"] for r in ROWS}
    assert len(ROWS) >= 60, len(ROWS)
    for heading in re.findall(r"^## (.+)$", LEDGER.read_text(encoding="utf-8"), re.M):
        assert heading.strip() in sections, f"no rows under '{heading}'"


TEST_REF = re.compile(r"(?:tests/)?((?:\w+/)*test_\w+\.py)(?:::(\w+))?")
FIXTURE_REF = re.compile(r"(?:tests/)?conformance/(\w+/[\w.-]+\.json)")


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["behaviour"][:60])
def test_each_row_is_whole(row):
    assert all(row.get(k) for k in HEADER), f"empty column in: {row}"
    own = "no Azure counterpart" in row["section"]  # the sandbox's own life cycle: n/a allowed
    assert row["match"][:1] in {"=", "≈", "≠"} or (own and row["match"] == "n/a"), row["match"]
    if row["source"].lower().startswith("none") and row["azure"] != "no counterpart":
        reason = (row["source"] + row["sandbox"] + row["match"]).lower()
        assert "because" in reason or "our choice" in reason, row
    tests = TEST_REF.findall(row["test"])
    fixtures = FIXTURE_REF.findall(row["test"])
    assert tests or fixtures, f"row names no test: {row['behaviour']}"
    for path, name in tests:
        text = (REPO / "tests" / path).read_text(encoding="utf-8")
        if name:
            assert re.search(rf"def {name}\b", text), f"{path}::{name} does not exist"
    for name in fixtures:
        assert (FIXTURES / name).is_file(), f"no fixture {name}"


def test_every_conformance_fixture_backs_a_row_and_says_where_it_came_from():
    ledger = LEDGER.read_text(encoding="utf-8")
    fixtures = sorted(FIXTURES.glob("*/*.json"))
    assert fixtures, "no conformance fixtures"
    for path in fixtures:
        fixture = json.loads(path.read_text(encoding="utf-8"))
        assert fixture["source"] and fixture["kind"] in {"recording", "spec", "docs", "issue"}
        assert fixture["compare"], path.name
        assert path.stem in ledger, f"{path.name} is not named in the ledger"


def _notebook_text() -> str:
    parts = []
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            for out in cell.get("outputs", []):
                data = out.get("data", {})
                for value in (out.get("text"), data.get("text/plain"), data.get("text/html")):
                    parts.append("".join(value) if isinstance(value, list) else value or "")
                parts.append(f"{out.get('ename', '')}: {out.get('evalue', '')}")
    return "\n".join(parts)


def test_every_error_code_a_notebook_shows_has_a_row():
    shown = _notebook_text()
    codes = set(re.findall(r"\bCode: ([A-Za-z_]+)", shown))
    codes |= set(re.findall(r"\bAADSTS\d+", shown))
    codes |= set(re.findall(r"""["']error["']: ["']([a-z_]+)["']""", shown))
    ledger = LEDGER.read_text(encoding="utf-8")
    missing = sorted(c for c in codes if c not in ledger)
    assert not missing, f"notebooks show these codes with no ledger row: {missing}"
