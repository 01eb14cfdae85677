"""Bounded HTTP for the alert backends: at most `MAX_ANSWER` bytes of any answer are read, no read
waits past the sending thread's deadline (set by `sending`), and webhook redirects are followed only
within the configured origin (its headers carry credentials).

Both urllib (the webhook) and urllib3 (under opsgenie-sdk) build their responses with
`http.client.HTTPResponse`: the bound is a subclass of it, so it sits below both.
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .validation import shown_url

# Bytes read of any answer of an alert API, status line and headers included: the answers we
# need are a few hundred bytes of JSON; an endless or huge one is cut here, never buffered.
MAX_ANSWER = 64 * 1024


class AnswerTooLongError(OSError):
    """An alert API's answer went past `MAX_ANSWER` bytes: it is not read further."""


# The sending thread's deadline (see `sending.call_bounded`): every read of an answer waits at
# most until then, so the thread ends with its caller's wait even when the answer never ends.
_bounds = threading.local()


def clock() -> float:
    """Monotonic seconds that follow real time, also under freezegun (which freezes
    time.monotonic; clock_gettime is left alone)."""
    if hasattr(time, "clock_gettime"):
        return time.clock_gettime(time.CLOCK_MONOTONIC)
    return time.monotonic()  # pragma: no cover - platforms without clock_gettime


def set_deadline(deadline: float) -> None:
    """Every answer read on this thread from now on ends by `deadline` (a `clock()` value)."""
    _bounds.deadline = deadline


class _BoundedSocketReader(io.RawIOBase):
    """The raw reader of an answer: at most `MAX_ANSWER` bytes, and no read waits past the sending
    thread's deadline (the socket timeout of each read is cut to the time left)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._left = MAX_ANSWER
        self._deadline: float | None = getattr(_bounds, "deadline", None)
        self._timeout = sock.gettimeout()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            raise AnswerTooLongError(f"the answer is longer than {MAX_ANSWER} bytes: not read further")
        if self._deadline is not None:
            left = self._deadline - clock()
            if left <= 0:
                raise TimeoutError("the answer did not end within the alert timeout: not read further")
            self._sock.settimeout(left if self._timeout is None else min(self._timeout, left))
        with memoryview(buffer) as view:
            count: int | None = self._raw.readinto(view[: self._left])
        self._left -= count or 0
        return count or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


class BoundedHTTPResponse(http.client.HTTPResponse):
    """http.client's response reading through `_BoundedSocketReader`."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self.fp.close()  # the unbounded reader made by super(); the socket stays open
        self.fp = io.BufferedReader(_BoundedSocketReader(sock))


class _BoundedHTTPConnection(http.client.HTTPConnection):
    response_class = BoundedHTTPResponse


class _BoundedHTTPSConnection(http.client.HTTPSConnection):
    response_class = BoundedHTTPResponse


def bound_sdk_answers(api_client: Any) -> None:
    """Make opsgenie-sdk's urllib3 pools read answers through `BoundedHTTPResponse`: the SDK reads
    every body whole (also with `_preload_content=False`), so the bound sits below it."""
    import urllib3
    from urllib3.connection import HTTPConnection, HTTPSConnection

    class Connection(HTTPConnection):
        response_class = BoundedHTTPResponse

    class SecureConnection(HTTPSConnection):
        response_class = BoundedHTTPResponse

    class Pool(urllib3.HTTPConnectionPool):
        ConnectionCls = Connection

    class SecurePool(urllib3.HTTPSConnectionPool):
        ConnectionCls = SecureConnection

    manager = api_client.rest_client.pool_manager
    manager.clear()
    manager.pool_classes_by_scheme = {"http": Pool, "https": SecurePool}


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of `url`, the port defaulted: what a redirect must keep."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


class SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to the webhook's own origin (scheme, host and port): its headers
    carry credentials, and urllib would resend them to any host, and from https to http."""

    def __init__(self, url: str) -> None:
        self.origin = _origin(url)

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if _origin(newurl) != self.origin:
            scheme, host, port = self.origin
            raise urllib.error.HTTPError(
                req.full_url, code,
                f"redirect to {shown_url(newurl)[:200]!r} not followed: the webhook's headers are only "
                f"sent to {scheme}://{host}:{port}; configure the URL it redirects to", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _BoundedHTTPHandler(urllib.request.HTTPHandler):
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(_BoundedHTTPConnection, req, **kwargs)


class _BoundedHTTPSHandler(urllib.request.HTTPSHandler):
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(_BoundedHTTPSConnection, req, **kwargs)


def bounded_opener(url: str) -> urllib.request.OpenerDirector:
    """A urllib opener for `url`: redirects only within its origin, answers read through the bound."""
    return urllib.request.build_opener(
        SameOriginRedirects(url), _BoundedHTTPHandler(), _BoundedHTTPSHandler())
