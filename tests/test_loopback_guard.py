"""The guard every test relies on: nothing leaves 127.0.0.1, in this process or a child."""

from __future__ import annotations

import socket

import pytest


def test_the_test_session_refuses_names_and_addresses_beyond_loopback(socket_guard):
    # Refused before any lookup or packet: the guard sits in front of the resolver and connect.
    with pytest.raises(AssertionError, match="only 127.0.0.1 is allowed"):
        socket.create_connection(("login.microsoftonline.com", 443), timeout=1)
    with pytest.raises(AssertionError, match="only 127.0.0.1 is allowed"):
        socket.socket().connect(("169.254.169.254", 80))
    assert socket_guard == [
        "DNS lookup of 'login.microsoftonline.com'",
        "connect to ('169.254.169.254', 80)",
    ]
    socket_guard.clear()  # expected here; the guard would fail the test otherwise


def test_loopback_is_allowed(sandbox):
    socket.create_connection(("127.0.0.1", sandbox["https_port"]), timeout=2).close()
