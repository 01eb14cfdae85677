"""A loopback URL where nothing listens, for tests of refused connections (alerts and stores)."""

from __future__ import annotations

import functools
import socket


@functools.cache
def _refusing_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound for the whole session, never listening
    return sock


def refused_url() -> str:
    """A loopback URL where nothing listens: connections are refused at once. This process holds
    its port bound (never listening) for the session, so no server (another test's, another
    process's) can be given it meanwhile, as it could once a probe socket was closed."""
    return f"http://127.0.0.1:{_refusing_socket().getsockname()[1]}"
