"""The emulators the cloud tests use start on their own port, even when another process takes the
port `free_port` picked before the emulator could bind it (a shared machine runs many servers)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.support import emulators

pytestmark = pytest.mark.integration  # starts fake-gcs-server


@pytest.fixture
def squatter() -> Iterator[int]:
    """A loopback port another process took: it accepts connections and answers nothing useful."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nno")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(sock.getsockname()[1])
    stop.set()
    thread.join(5)
    sock.close()


def test_an_emulator_whose_port_was_taken_starts_on_another(
    squatter: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = emulators.free_port
    picks = iter([squatter])
    monkeypatch.setattr(emulators, "free_port", lambda: next(picks, None) or real())
    gcs = emulators.start_fake_gcs()
    try:
        assert gcs.endpoint != f"http://127.0.0.1:{squatter}"
        assert gcs.process.poll() is None
        gcs.new_bucket()  # it is the emulator that answers there
    finally:
        gcs.stop()
