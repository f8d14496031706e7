"""The one module that owns persistence.

Every service keeps its state as JSON documents, grouped by *kind* (``principal``, ``host``,
``role_assignment``...), in one SQLite file in the state folder. Documents rather than tables
because the emulated resources are themselves JSON and their shapes grow with each issue; SQLite
because it survives a killed process and needs nothing installed.

Calls are short and synchronous. The server runs one event loop, but Starlette may run blocking
work in a thread pool, so a lock serialises access; ``transaction()`` groups a read-modify-write.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOG_LIMIT = 5000  # request-log entries kept; older ones are dropped

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    body TEXT NOT NULL,
    seq  INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS log (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL
);
"""


class Store:
    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._depth = 0
        self._seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM docs").fetchone()[0]

    def check(self) -> None:
        """Prove the store is whole and writable before anything is served: SQLite's own
        consistency check, every document's JSON, and a real write (a read-only file otherwise
        opens fine and fails on the first request). Raises ``sqlite3.Error`` or ``ValueError``."""
        with self._lock:
            verdict = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(verdict)
            bad = self._db.execute(
                "SELECT kind, key FROM docs WHERE NOT json_valid(body) LIMIT 1"
            ).fetchone()
            if bad:
                raise ValueError(f"the {bad[0]} document '{bad[1]}' is not valid JSON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            self._db.execute(f"PRAGMA user_version = {int(version)}")  # a write: fails read-only

    @property
    def version(self) -> int:
        """Grows with every document written (caches compare it to know they are stale)."""
        return self._seq

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """All-or-nothing group of writes; nests (inner blocks join the outer one)."""
        with self._lock:
            if self._depth == 0:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("COMMIT")

    # -- documents ---------------------------------------------------------------------------

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM docs WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, kind: str, key: str, doc: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            self._db.execute(
                "INSERT INTO docs (kind, key, body, seq) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body",
                (kind, key, json.dumps(doc), self._seq),
            )
        return doc

    def insert(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        """Add a document only if the key is new; False when it already exists."""
        with self._lock:
            self._seq += 1
            cur = self._db.execute(
                "INSERT OR IGNORE INTO docs (kind, key, body, seq) VALUES (?, ?, ?, ?)",
                (kind, key, json.dumps(doc), self._seq),
            )
        return cur.rowcount == 1

    def delete(self, kind: str, key: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM docs WHERE kind = ? AND key = ?", (kind, key))
        return cur.rowcount == 1

    def list(
        self, kind: str, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """Documents of one kind in insertion order, optionally filtered."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM docs WHERE kind = ? ORDER BY seq", (kind,)
            ).fetchall()
        docs = [json.loads(r[0]) for r in rows]
        return [d for d in docs if where(d)] if where else docs

    def count(self, kind: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM docs WHERE kind = ?", (kind,)).fetchone()[
                0
            ]

    def wipe(self) -> None:
        """Forget every document and the request log (used by reset, before re-seeding)."""
        with self._lock:
            self._db.execute("DELETE FROM docs")
            self._db.execute("DELETE FROM log")

    # -- request log -------------------------------------------------------------------------

    def log_append(self, entry: dict[str, Any]) -> int:
        with self._lock:
            cur = self._db.execute("INSERT INTO log (body) VALUES (?)", (json.dumps(entry),))
            row_id = cur.lastrowid
            if row_id % 100 == 0:
                self._db.execute("DELETE FROM log WHERE id <= ?", (row_id - LOG_LIMIT,))
        return row_id

    def log_since(self, after_id: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, body FROM log WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()
        return [{"id": i, **json.loads(b)} for i, b in rows]

    def log_last_id(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COALESCE(MAX(id), 0) FROM log").fetchone()[0]
