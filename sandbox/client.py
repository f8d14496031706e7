"""Talking to a running sandbox from the command line: find it, start it, call its control API.

Used by ``python -m sandbox`` only. The notebook helpers do the same over HTTP on their own,
because they must never import the sandbox's internals.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.config import Settings

if TYPE_CHECKING:
    import ssl

# ssl and urllib are imported where used: ``start`` and ``stop`` need neither, and their import
# is a sizeable part of the time a command takes.

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class SandboxError(Exception):
    """Something a learner can act on; the message says what to do next."""


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    import ssl

    return ssl.create_default_context(cafile=str(settings.ca_file))


def running_instance(settings: Settings) -> dict[str, Any] | None:
    """The instance document of a sandbox that is up and answering, else None."""
    try:
        doc = json.loads(settings.instance_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if doc.get("pid") != server_pid(settings):  # not the process serving this folder now
        return None
    import urllib.request

    try:
        with urllib.request.urlopen(
            doc["https_url"] + "/_sandbox/health", timeout=2, context=_ssl_context(settings)
        ) as resp:
            return doc if resp.status == 200 else None
    except (OSError, ValueError):
        return None


def _attempt_log(settings: Settings, offset: int, lines: int = 15) -> str:
    """What the server wrote to its log during this start attempt: its one-sentence ``error:``
    line when it refused the state folder, else the attempt's last lines (never older runs')."""
    try:
        with open(settings.log_file, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    errors = [line[len("error: ") :] for line in text.splitlines() if line.startswith("error: ")]
    return errors[-1] if errors else "\n".join(text.splitlines()[-lines:])


def _open_private(path, flags: int) -> int:
    return os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW, 0o600)


def server_pid(settings: Settings) -> int | None:
    """The pid of the process serving this state folder, or None when none does.

    Proven, not guessed: the server holds an flock on ``server.lock`` while it lives, so a free
    lock means no server, whatever a stale ``instance.json`` says; a held one names its holder.
    """
    try:
        fd = os.open(settings.lock_file, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1  # held while the server writes its pid
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def start(settings: Settings, fork: bool = False) -> dict[str, Any]:
    """Start in the background and return once it answers; reuse one that already runs.

    ``fork=True`` (the command line) makes the server by forking this small process rather than
    starting a new interpreter: one interpreter start fewer, a sixth of a warm start. Library
    callers (tests, which run threads) get a fresh ``python -m sandbox serve`` instead.
    """
    settings.ensure_state_dir()
    lock = _open_private(settings.state_dir / "start.lock", os.O_WRONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = running_instance(settings)
        if found:
            return found
        if server_pid(settings) is not None:
            stop(settings)  # serves this folder but cannot be reached (instance.json damaged)
        return _spawn(settings, lock if fork else None)
    finally:
        os.close(lock)


def bytecode_cache() -> Path:
    """Per-user folder for the server's compiled modules (``XDG_CACHE_HOME``, as pip's cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "acs-mi-sandbox" / "pycache"


def _spawn(settings: Settings, fork_closing: int | None) -> dict[str, Any]:
    settings.instance_file.unlink(missing_ok=True)
    ready_r, ready_w = os.pipe()
    log_fd = _open_private(settings.log_file, os.O_WRONLY | os.O_APPEND)
    offset = os.fstat(log_fd).st_size
    try:
        if fork_closing is None:
            pid = _popen_server(settings, log_fd, ready_w)
        else:
            pid = _fork_server(settings, log_fd, ready_r, ready_w, fork_closing)
    finally:
        os.close(log_fd)
        os.close(ready_w)
    try:
        # The server writes a line to the pipe once both listeners answer; the pipe closes
        # without one if it exits first. No polling, so start returns the moment it is ready.
        ready, _, _ = select.select([ready_r], [], [], START_TIMEOUT)
        said = os.read(ready_r, 64) if ready else b""
    finally:
        os.close(ready_r)
    if said.startswith(b"ready"):
        try:
            doc = json.loads(settings.instance_file.read_text())
        except (OSError, ValueError):
            doc = {}
        if doc.get("pid") == pid:
            return doc
    if not ready:
        os.kill(pid, signal.SIGKILL)  # our own unreaped child: its pid cannot have been reused
        os.waitpid(pid, 0)
        raise SandboxError(
            f"The sandbox did not answer within {START_TIMEOUT:.0f} s; see {settings.log_file}."
        )
    os.waitpid(pid, 0)
    raise SandboxError("The sandbox did not start: " + _attempt_log(settings, offset))


def _popen_server(settings: Settings, log_fd: int, ready_w: int) -> int:
    env = dict(os.environ)
    env.update(
        SANDBOX_STATE_DIR=str(settings.state_dir),
        SANDBOX_BIND=settings.bind,
        SANDBOX_HTTPS_PORT=str(settings.https_port),
        SANDBOX_MI_PORT=str(settings.mi_port),
        SANDBOX_READY_FD=str(ready_w),
    )
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        # The environment turned bytecode writing off (to keep source folders clean): the
        # server compiles its modules once into the user's cache folder instead, as the command
        # line does (sandbox/__main__.py); compiling them on every start was a third of its time.
        env.setdefault("PYTHONPYCACHEPREFIX", str(bytecode_cache()))
    child = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve"],
        stdin=subprocess.DEVNULL,
        stdout=log_fd,
        stderr=log_fd,
        env=env,
        start_new_session=True,
        pass_fds=(ready_w,),
        umask=0o077,
    )
    child.returncode = 0  # reaped by _spawn with waitpid; keep Popen from reaping it too
    return child.pid


def _fork_server(settings: Settings, log_fd: int, ready_r: int, ready_w: int, lock: int) -> int:
    """Become the server in a forked child: a new session, stdin from /dev/null, output to the
    log, and none of the parent's descriptors it must not keep (the start lock above all)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setsid()
        os.close(lock)
        os.close(ready_r)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.environ["SANDBOX_READY_FD"] = str(ready_w)
        from sandbox.server import serve

        serve(settings)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def stop(settings: Settings) -> bool:
    """End the sandbox serving this state folder; False if none was running.

    Only the holder of ``server.lock`` is signalled, so a pid from a stale ``instance.json`` (a
    process that merely reused it) is never touched. On Linux the signal goes through a pidfd
    taken while the lock was seen held, which closes even the instant between checking and
    signalling. Returns once the server has let go of the lock: listeners and store closed.
    """
    pid = server_pid(settings)
    if pid is None or pid <= 0:
        if pid is None:
            settings.instance_file.unlink(missing_ok=True)
        return False
    try:
        send = _signaller(pid)
    except ProcessLookupError:
        return False
    try:
        if server_pid(settings) != pid:  # it ended (and the pid may be reused) in between
            return False
        send(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if server_pid(settings) is None:
                break
            time.sleep(0.002)
        else:
            send(signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        send(None)
    settings.instance_file.unlink(missing_ok=True)
    return True


def _signaller(pid: int):
    """A function that signals this process (``None`` releases it): a pidfd where the system
    has them (Linux), else the pid itself, still checked against the lock just before."""
    if not hasattr(os, "pidfd_open"):
        return lambda sig: os.kill(pid, sig) if sig is not None else None
    pidfd = os.pidfd_open(pid)

    def send(sig):
        if sig is None:
            os.close(pidfd)
        else:
            signal.pidfd_send_signal(pidfd, sig)

    return send


def control(
    settings: Settings, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Call the control API of the running sandbox with this user's secret."""
    import urllib.error
    import urllib.request

    doc = running_instance(settings)
    if doc is None:
        raise SandboxError("The sandbox is not running; start it with: python -m sandbox start")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(doc["https_url"] + path, data=data, method=method)
    req.add_header("X-Sandbox-Secret", settings.secret_file.read_text().strip())
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30, context=_ssl_context(settings)) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {e.code}"
        raise SandboxError(message) from None
