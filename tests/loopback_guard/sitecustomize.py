"""Loopback-only networking, for the tests' own process and every process they start.

``install(refuse)`` makes every connection or name lookup beyond loopback call ``refuse(what)``,
which must raise. The test session installs it in pytest_configure (tests/conftest.py). The
notebook tests also put this folder on PYTHONPATH, so Python loads it as ``sitecustomize`` at
start-up in the nbval process, the Jupyter kernel, the sandbox it starts and the ``az`` stand-in
the SDK runs; there each refusal is also written to the file named by
``KIT_LOOPBACK_GUARD_LOG``, which the test reads afterwards: an SDK that swallows the error still
leaves its trace there.
"""

import ipaddress
import os
import socket


def is_loopback(host):
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def install(refuse):
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo

    def check(sock, address):
        inet = sock.family in (socket.AF_INET, socket.AF_INET6)
        if inet and isinstance(address, tuple) and not is_loopback(address[0]):
            refuse(f"connect to {address!r}")

    def connect(self, address):
        check(self, address)
        return original_connect(self, address)

    def connect_ex(self, address):
        check(self, address)
        return original_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if not is_loopback(name):
            refuse(f"DNS lookup of {name!r}")
        return original_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo


def _log_and_refuse(what):
    with open(os.environ["KIT_LOOPBACK_GUARD_LOG"], "a") as log:
        log.write(f"{os.getpid()} {what}\n")
    raise OSError(f"loopback guard: {what} refused (sandbox mode must stay on 127.0.0.1)")


if os.environ.get("KIT_LOOPBACK_GUARD_LOG"):
    install(_log_and_refuse)
