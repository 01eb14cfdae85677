"""A real S3 API server for tests: moto's ThreadedMotoServer on 127.0.0.1, plus helpers."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@dataclass
class MotoS3:
    """A running moto server: its endpoint and a boto3 client talking to it."""

    endpoint: str
    client: Any
    server: Any = field(repr=False)

    def options(self, **extra: Any) -> dict[str, Any]:
        """Storage options pointing s3fs at this server."""
        return {"endpoint_url": self.endpoint, **extra}

    def new_bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def set_auth(self, no_auth_actions: float) -> None:
        """Moto's documented switch: after `no_auth_actions` more requests, check IAM credentials."""
        req = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth", data=str(no_auth_actions).encode(), method="POST",
            headers={"Content-Type": "text/plain"},  # without it the body is parsed as a form
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            json.loads(resp.read())

    @contextmanager
    def auth_enforced(self) -> Iterator[None]:
        self.set_auth(0)
        try:
            yield
        finally:
            self.set_auth(float("inf"))


def start_moto() -> MotoS3:
    """Start moto on a free loopback port with fake credentials in the environment."""
    import boto3
    from moto.server import ThreadedMotoServer

    os.environ.update(FAKE_ENV)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return MotoS3(endpoint, client, server)


@contextmanager
def loopback_server(
    handle: Callable[[socket.socket, threading.Event], None],
) -> Iterator[tuple[str, threading.Event]]:
    """A TCP server on 127.0.0.1 running `handle(connection, stop)` in a thread per connection;
    yields (its http:// URL, the stop event). On exit: stop set, every socket closed."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.settimeout(0.2)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            conns.append(conn)
            threading.Thread(target=handle, args=(conn, stop), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", stop
    finally:
        stop.set()
        t.join(2)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()
        sock.close()


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """A loopback server that accepts connections and never answers (a hung store)."""
    with loopback_server(lambda conn, stop: None) as (url, _stop):
        yield url


@contextmanager
def trickling_endpoint() -> Iterator[tuple[str, threading.Event]]:
    """A loopback HTTP server that answers every request with a status line, then trickles one
    header byte every 0.3 s until stopped: a read timeout restarts at every byte, so only an
    overall deadline bounds the call."""

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        with contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Trickle: ")
            while not stop.wait(0.3):
                conn.sendall(b"a")

    with loopback_server(handle) as served:
        yield served


@contextmanager
def stalling_proxy(endpoint: str, stall_on: bytes) -> Iterator[str]:
    """A TCP proxy to `endpoint` that forwards everything until a request containing `stall_on`
    passes, then forwards nothing more on that connection (a store that hangs mid-way)."""
    host, port = endpoint.removeprefix("http://").split(":")
    upstreams: list[socket.socket] = []

    def pump(src: socket.socket, dst: socket.socket, watch: bool, stop: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set():
                data = src.recv(65536)
                if not data:
                    break
                if watch and stall_on in data:
                    stop.wait()  # swallow the request: the client waits for an answer that never comes
                    break
                dst.sendall(data)

    def handle(client: socket.socket, stop: threading.Event) -> None:
        upstream = socket.create_connection((host, int(port)))
        upstreams.append(upstream)
        threading.Thread(target=pump, args=(upstream, client, False, stop), daemon=True).start()
        pump(client, upstream, True, stop)

    try:
        with loopback_server(handle) as (url, _stop):
            yield url
    finally:
        for conn in upstreams:
            with contextlib.suppress(OSError):
                conn.close()


@dataclass
class ProxyStats:
    """What a `latency_proxy` saw: requests forwarded, and the most at once. A request counts as
    in flight from its first byte until the first byte of its answer (HTTP/1.1: one at a time
    per connection)."""

    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.max_in_flight = self.in_flight

    def _started(self, waiting: list[bool]) -> bool:
        """Count a connection's new request, unless one is already waiting there."""
        with self._lock:
            if waiting[0]:
                return False
            waiting[0] = True
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return True

    def _answered(self, waiting: list[bool]) -> None:
        with self._lock:
            if waiting[0]:
                waiting[0] = False
                self.in_flight -= 1


@contextmanager
def latency_proxy(endpoint: str, latency: float = 0.03) -> Iterator[tuple[str, ProxyStats]]:
    """A TCP proxy to `endpoint` that holds every request `latency` seconds before forwarding it
    (a store far away: each round trip costs at least that), and counts requests in flight.
    Connections are served concurrently, so concurrent requests wait concurrently. Yields
    (the proxy's http:// URL, its ProxyStats)."""
    host, port = endpoint.removeprefix("http://").split(":")
    upstreams: list[socket.socket] = []
    stats = ProxyStats()

    def handle(client: socket.socket, stop: threading.Event) -> None:
        upstream = socket.create_connection((host, int(port)))
        upstreams.append(upstream)
        waiting = [False]  # a request of this connection waits for its answer

        def answers() -> None:
            with contextlib.suppress(OSError):
                while data := upstream.recv(65536):
                    stats._answered(waiting)
                    client.sendall(data)
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_WR)

        threading.Thread(target=answers, daemon=True).start()
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                # Only a new request's first bytes are held; the rest of a body follows at once.
                if stats._started(waiting) and stop.wait(latency):
                    break
                upstream.sendall(data)
        stats._answered(waiting)
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)

    try:
        with loopback_server(handle) as (url, _stop):
            yield url, stats
    finally:
        for conn in upstreams:
            with contextlib.suppress(OSError):
                conn.close()
