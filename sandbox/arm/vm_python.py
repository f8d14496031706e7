"""A sandbox VM's warm Python: the SDKs imported once, one forked process per program.

A program sent through Run Command (helpers/hosts.py) is ``python - <<'…'`` in a shell script.
Started cold, Python spends most of a short program importing azure-identity and the ACS SDKs;
a real VM pays that too, but the sandbox's lessons run ten such programs in a notebook. So each
VM has one interpreter that has imported them, started with that VM's environment, and the VM's
``python`` is a small launcher that hands it the program: the interpreter forks, the child takes
the launcher's standard streams, environment and folder, and runs the program as ``python -``
would. What the program sees and prints is the same; only the import time is gone.

The child ends when the launcher ends (a killed script takes its program with it), and a
launcher that finds no warm interpreter runs the program cold, so nothing depends on it.
"""

from __future__ import annotations

import builtins
import json
import os
import signal
import socket
import struct
import sys
import threading
import traceback

PRELOAD = ("azure.identity", "azure.communication.identity", "azure.communication.sms")
_STATUS = struct.Struct("!i")


def launcher(socket_path: str, python: str) -> str:
    """The VM's ``python``: hand ``python -`` programs to the warm interpreter, else run cold."""
    return f"""#!{python} -IS
import json, os, socket, struct, sys
def cold():
    os.execv({python!r}, [{python!r}, *sys.argv[1:]])
if sys.argv[1:] != ["-"]:
    cold()
conn = socket.socket(socket.AF_UNIX)
try:
    conn.connect({socket_path!r})
except OSError:
    cold()
head = json.dumps({{"env": dict(os.environ), "cwd": os.getcwd()}}).encode()
socket.send_fds(conn, [struct.pack("!I", len(head)) + head], [0, 1, 2])
status = conn.recv(4)
sys.exit(struct.unpack("!i", status)[0] if len(status) == 4 else 1)
"""


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    (size,) = struct.unpack("!I", data[:4])
    while len(data) < 4 + size:
        more = conn.recv(1 << 20)
        if not more:
            raise ConnectionError("the launcher went away")
        data += more
    return json.loads(data[4 : 4 + size]), fds


def _run(conn: socket.socket, head: dict, fds: list[int]) -> None:
    """In the forked child: become ``python -`` with the launcher's streams, env and folder."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(head["env"])
    os.chdir(head["cwd"])
    sys.argv = ["-"]
    sys.path[0] = ""

    def launcher_gone() -> None:  # the script was killed: its program ends with it
        conn.recv(1)
        os._exit(137)

    threading.Thread(target=launcher_gone, daemon=True).start()
    status = 0
    try:
        code = compile(sys.stdin.read(), "<stdin>", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": builtins})  # noqa: S102
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            status = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            status = 1
    except BaseException:  # noqa: BLE001 - printed as `python -` prints an uncaught exception
        kind, error, tb = sys.exc_info()
        traceback.print_exception(kind, error, tb.tb_next if tb else None)  # from <stdin> on
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            pass
    try:
        conn.sendall(_STATUS.pack(status))
    finally:
        os._exit(status)


def _end_with_the_sandbox(sandbox_pid: int) -> None:
    """A stopped sandbox ends its VMs' interpreters; a killed one cannot, so each watches that
    its parent is still the sandbox that started it (a re-parented one has lost it) and ends."""
    import time

    while os.getppid() == sandbox_pid:
        time.sleep(0.5)
    os._exit(0)


def serve(socket_path: str, sandbox_pid: int) -> None:
    """Import the SDKs, then fork one child per launcher that connects, while ``sandbox_pid``
    lives (the sandbox passes its own: asked here, it may already be gone)."""
    import importlib

    threading.Thread(target=_end_with_the_sandbox, args=(sandbox_pid,), daemon=True).start()
    for name in PRELOAD:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    with socket.socket(socket.AF_UNIX) as server:
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        server.bind(socket_path)
        os.chmod(socket_path, 0o600)
        server.listen(8)
        while True:
            conn, _ = server.accept()
            try:
                head, fds = _receive(conn)
            except (OSError, ValueError, ConnectionError):
                conn.close()
                continue
            if os.fork() == 0:
                server.close()
                _run(conn, head, fds)
            conn.close()
            for fd in fds:
                os.close(fd)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
