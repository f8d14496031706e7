"""Loopback-only networking for every Python process of a notebook test run.

The notebook tests put this folder on PYTHONPATH, so Python loads it at start-up in the nbval
process, the Jupyter kernel, the sandbox it starts, and the ``az`` stand-in the SDK runs. Any
connection or name lookup beyond loopback is refused and written to the file named by
``KIT_LOOPBACK_GUARD_LOG``, which the test reads afterwards: an SDK that swallows the error
still leaves its trace there.
"""

import ipaddress
import os
import socket

_LOG = os.environ.get("KIT_LOOPBACK_GUARD_LOG")


def _loopback(host):
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(what):
    with open(_LOG, "a") as log:
        log.write(f"{os.getpid()} {what}\n")
    raise OSError(f"loopback guard: {what} refused (sandbox mode must stay on 127.0.0.1)")


if _LOG:
    _connect, _connect_ex, _getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            _refuse(f"connect to {address!r}")
        return _connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            _refuse(f"connect to {address!r}")
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if not _loopback(name):
            _refuse(f"DNS lookup of {name!r}")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
