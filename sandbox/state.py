"""The state folder's health: secrets written whole, damage found before anything is served,
and ``reset`` able to repair whatever it finds.

A sandbox that starts on a damaged secret or store fails *open* (an empty control secret matched
an empty header) or fails later with a traceback far from its cause. So every piece is checked
when the server starts, and each problem becomes one sentence naming the file and the one command
that fixes it (:data:`FIX`). ``python -m sandbox reset`` calls :func:`repair`, which sets aside
what cannot be read and makes it anew.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import time
from pathlib import Path

from sandbox import world
from sandbox.config import Settings, StateError
from sandbox.store import Store

FIX = "python -m sandbox reset"
SECRET_MIN_LENGTH = 32  # token_urlsafe(32) gives 43 characters
_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]+")


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file owner-only and whole: a crash or a full disk leaves the old file or none,
    never an empty or half-written one (an empty secret used to open the control API)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def secret_problem(value: str) -> str | None:
    """Why this control secret must not be used, or None when it is sound."""
    if not value:
        return "is empty"
    if len(value) < SECRET_MIN_LENGTH:
        return f"is too short ({len(value)} characters, at least {SECRET_MIN_LENGTH} needed)"
    if not _SECRET_SHAPE.fullmatch(value):
        return "holds characters a generated secret never has"
    return None


def read_secret(settings: Settings) -> str:
    """The control secret; made on first use. A damaged one stops the start: refusing is safe,
    while guessing (or reusing an empty file) could open the control API to everyone."""
    path = settings.secret_file
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        value = secrets.token_urlsafe(32)
        write_atomic(path, value.encode())
        return value
    except OSError as e:
        raise StateError(
            f"The control secret {path} cannot be read ({e.strerror}); fix it with: {FIX}"
        ) from None
    with os.fdopen(fd, "rb") as f:
        raw = f.read(4096)
    try:
        value = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        value = "\0"
    problem = secret_problem(value)
    if problem:
        raise StateError(f"The control secret {path} {problem}; make a new one with: {FIX}")
    return value


def _probe_folder(folder: Path) -> None:
    probe = folder / f".write-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as e:
        raise StateError(
            f"The state folder {folder} is not writable ({e.strerror}); give your user write "
            f"access to it (chmod u+rwx {folder}) or choose another with SANDBOX_STATE_DIR."
        ) from None


def open_store(settings: Settings) -> Store:
    """The state folder's store, checked (readable, writable, every document whole) and seeded
    on first use. Any problem is a :class:`StateError` with its remedy."""
    settings.ensure_state_dir()
    _probe_folder(settings.state_dir)
    path = settings.db_file
    store = None
    try:
        store = Store(path)
        store.check()
    except (sqlite3.Error, ValueError) as e:
        if store is not None:
            store.close()
        if "readonly" in str(e) or "read-only" in str(e):
            raise StateError(
                f"The store {path} is read-only, so nothing could be saved; give your user write "
                f"access to it (chmod u+rw {path}*)."
            ) from None
        raise StateError(f"The store {path} is damaged ({e}); {_LOSES} {FIX}") from None
    if store.get("tenant", world.TENANT_ID) is None:
        world.seed(store)
    return store


_LOSES = "a new one (new keys and secrets for the seeded world) is made with:"


def _set_aside(path: Path, stamp: str) -> Path | None:
    if not path.exists():
        return None
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    os.replace(path, target)
    return target


def repair(settings: Settings) -> list[str]:
    """Set aside every damaged piece of state so that the next start makes it anew; what was done,
    one line each. Sound pieces are kept (the same keys keep issued tokens verifiable)."""
    from sandbox import pki

    settings.ensure_state_dir()
    _probe_folder(settings.state_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    done: list[str] = []
    try:
        read_secret(settings)
    except StateError:
        settings.secret_file.unlink()
        read_secret(settings)
        done.append(f"made a new control secret ({settings.secret_file.name})")
    for name in pki.damaged_files(settings.state_dir):
        moved = _set_aside(settings.state_dir / name, stamp)
        if moved:
            done.append(f"set aside the damaged {name} as {moved.name}; a new one is made")
    try:
        open_store(settings).close()
    except StateError:
        for suffix in ("", "-wal", "-shm"):
            moved = _set_aside(Path(f"{settings.db_file}{suffix}"), stamp)
            if moved and not suffix:
                done.append(f"set aside the damaged store as {moved.name}; a new one is seeded")
        open_store(settings).close()
    settings.instance_file.unlink(missing_ok=True)
    return done
