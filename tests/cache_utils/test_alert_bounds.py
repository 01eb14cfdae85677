"""Alert sending stays bounded and keeps its credentials (issue 18, items 4 and 5).

Item 4: urllib followed a webhook's redirect to any host, resending its headers (`Authorization`
included), and from https to http. Two real loopback servers: the one redirected to must never see
the headers (scheme, host and port make the origin: another port is another origin).

Item 5: an alert API that answers 200 and streams forever was read into memory forever by the
sending thread, one more thread per alert. A real loopback server streams (or trickles) an endless
body and counts the bytes it could send: after the alert timeout, the sending threads have ended and
the server saw the client hang up after a bounded number of bytes. OpsGenie, JSM Operations (both
through opsgenie-sdk and urllib3) and the webhook (urllib).
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cache_utils import Alert, WebhookAlerter, send_alert
from tests.support.alert_backends import BackendCase, backend, clean_alert_env

USED_FIXTURES = (backend, clean_alert_env)  # pytest finds fixtures by module name

SECRET_HEADERS = {"Authorization": "Bearer webhook-token-123", "X-Api-Key": "api-key-456"}
# What loopback socket buffers can hold once a client stops reading: well below this.
SOCKET_BUFFERS = 16 * 2**20


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Server:
    """A loopback HTTP server: `redirect` answers every request with that status and Location;
    `stream` answers 200 with an endless body ("fast" chunks or a "trickle" of single bytes)."""

    redirect: tuple[int, str] | None = None
    stream: str | None = None
    seen: list[Seen] = field(default_factory=list)
    sent: int = 0
    hung_up: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                fake.seen.append(Seen(self.command, self.path, dict(self.headers)))
                if fake.redirect is not None:
                    self.send_response(fake.redirect[0])
                    self.send_header("Location", fake.redirect[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif fake.stream is not None:
                    self.close_connection = True
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self._endless()
                else:
                    body = b'{"result": "ok"}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def _endless(self) -> None:
                chunk = b"[" + b" " * 65535 if fake.stream == "fast" else b" "
                try:
                    self.wfile.write(b'{"result": ')
                    while not fake.stop.is_set():
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        fake.sent += len(chunk)
                        # ~30 MB/s or 20 B/s: endless either way, without flooding the machine
                        time.sleep(0.002 if fake.stream == "fast" else 0.05)
                except OSError:
                    fake.hung_up.set()  # the client closed its end: it stopped reading

            do_GET = do_POST = _handle  # noqa: N815 - http.server's naming

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for server in made:
        server.close()


def _serve(made: list[Server], **kw: Any) -> Server:
    server = Server(**kw)
    made.append(server)
    return server


# --- item 4: redirects --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_webhook_redirect_to_another_port_never_gets_the_headers(servers: list[Server], status: int) -> None:
    other = _serve(servers)
    first = _serve(servers, redirect=(status, f"{other.url}/collect?x=1"))
    alerter = WebhookAlerter(f"{first.url}/hook", timeout=2, headers=SECRET_HEADERS)
    assert send_alert(Alert("stale", "cache_utils:prices"), alerter) is False
    assert [s.path for s in first.seen] == ["/hook"]
    assert first.seen[0].headers["Authorization"] == SECRET_HEADERS["Authorization"]  # the control
    assert other.seen == []  # never reached: neither the credentials nor the alert went there


def test_webhook_redirect_to_another_host_name_is_refused(servers: list[Server]) -> None:
    """localhost and 127.0.0.1 are the same machine but not the same origin: refused too."""
    server = _serve(servers)
    server.redirect = (302, f"http://localhost:{server.port}/other")
    alerter = WebhookAlerter(f"{server.url}/hook", timeout=2, headers=SECRET_HEADERS)
    assert send_alert(Alert("stale", "cache_utils:prices"), alerter) is False
    assert [s.path for s in server.seen] == ["/hook"]


def test_redirect_from_https_to_http_is_never_followed() -> None:
    """Same host and port, only the scheme drops to http: still refused (the handler urllib calls)."""
    from cache_utils.alerts.transport import SameOriginRedirects

    handler = SameOriginRedirects("https://alerts.example.com/hook")
    request = urllib.request.Request("https://alerts.example.com/hook", data=b"{}", method="POST",
                                     headers=SECRET_HEADERS)
    for target in ("http://alerts.example.com/hook", "http://alerts.example.com:443/hook",
                   "https://alerts.example.com:8443/hook", "https://evil.example.com/hook"):
        with pytest.raises(urllib.error.HTTPError, match="not followed"):
            handler.redirect_request(request, None, 302, "Found", {}, target)
    followed = handler.redirect_request(request, None, 302, "Found", {}, "https://alerts.example.com:443/v2")
    assert followed is not None and followed.full_url == "https://alerts.example.com:443/v2"


# --- item 5: endless answers --------------------------------------------------------------------


def _sending_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """The alert threads started since `before` (one another test left behind is not this test's)."""
    return [t for t in threading.enumerate() if t.name.startswith("cache-utils-") and t not in before]


def _assert_stopped_reading(server: Server, before: set[threading.Thread]) -> None:
    until = time.monotonic() + 10  # a bound, not a timing: today's code reads as long as the server sends
    for thread in _sending_threads(before):
        thread.join(max(0.0, until - time.monotonic()))
    assert _sending_threads(before) == [], "an alert thread is still reading the endless answer"
    assert server.hung_up.wait(10), "the client never closed the connection"
    assert server.sent < SOCKET_BUFFERS, server.sent


@pytest.mark.parametrize("stream", ["fast", "trickle"])
def test_endless_answer_is_cut_opsgenie_and_jsm(servers: list[Server], backend: BackendCase,
                                                stream: str) -> None:
    before = set(threading.enumerate())
    server = _serve(servers, stream=stream)
    alerter = backend.alerter(server.url + backend.prefix, timeout=1)
    for i in range(3):  # each alert used to add a thread reading forever
        assert send_alert(Alert("stale", f"cache_utils:endless{i}"), alerter) is False
    _assert_stopped_reading(server, before)


@pytest.mark.parametrize("stream", ["fast", "trickle"])
def test_endless_answer_is_cut_webhook(servers: list[Server], stream: str) -> None:
    before = set(threading.enumerate())
    server = _serve(servers, stream=stream)
    alerter = WebhookAlerter(f"{server.url}/hook", timeout=1, headers=SECRET_HEADERS)
    for i in range(3):
        # A 200 is an accepted alert, however long the body (only a little of it is read).
        assert send_alert(Alert("stale", f"cache_utils:endless{i}"), alerter) is (stream == "fast")
    _assert_stopped_reading(server, before)


# --- item 6: alert storms -----------------------------------------------------------------------


def test_a_thousand_loads_of_one_missing_cache_send_one_create(
    tmp_path: Any, backend: BackendCase, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """1,000 `load_cache` calls on a missing cache sent 1,000 creates. Now: one per alias and title
    within the window (default 15 min); the rest are counted, and the next create sent says how
    many were held back. A close is a change of state and goes through, and so does the create
    after it; once the window has passed (freezegun moves the clock) the problem is sent again."""
    import pandas  # noqa: F401 - before the first freeze_time (pandas 3 segfaults otherwise)
    from freezegun import freeze_time

    from cache_utils import load_cache, save_cache
    from cache_utils.alerts import DEFAULT_DEDUPE_WINDOW, suppressed_alerts

    caplog.set_level(logging.WARNING, logger="cache_utils.alerts")
    d = str(tmp_path)
    with backend.server() as server, freeze_time("2024-01-15 12:00:00", tz_offset=0) as clock:
        backend.set_env(monkeypatch, server.url)
        for _ in range(1000):
            assert load_cache("sales", "09:00", d, allow_no_data=True, tz="UTC")[0] == {}
        assert len(server.creates()) == 1
        assert suppressed_alerts("cache_utils:sales") == 999 and suppressed_alerts() == 999
        assert len([r for r in caplog.records if r.getMessage().startswith("ALERT")]) == 1  # no log storm
        # Another prefix is another alias: not held back by the first one.
        load_cache("orders", "09:00", d, allow_no_data=True, tz="UTC")
        assert len(server.creates()) == 2

        save_cache({"v": 15}, "sales", "2024-01-15", d)
        assert load_cache("sales", "09:00", d, tz="UTC")[0] == {"v": 15}
        assert len(server.closes()) == 1  # the close goes through
        (tmp_path / "sales_20240115.pkl.gz").unlink()
        load_cache("sales", "09:00", d, allow_no_data=True, tz="UTC")
        assert len(server.creates()) == 3  # and the create after it: a new alert

        load_cache("sales", "09:00", d, allow_no_data=True, tz="UTC")
        assert len(server.creates()) == 3
        clock.tick(DEFAULT_DEDUPE_WINDOW + 1)
        load_cache("sales", "09:00", d, allow_no_data=True, tz="UTC")
        creates = server.creates()
        assert len(creates) == 4  # the window has passed: sent again, with the count held back
        assert creates[-1].body["details"]["repeats_not_sent"] == "1"
        assert "1 repeats were not sent" in caplog.records[-1].getMessage()
    assert DEFAULT_DEDUPE_WINDOW == 15 * 60


def test_dedupe_window_is_configurable(tmp_path: Any, backend: BackendCase,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import cache_utils
    from cache_utils import load_cache
    from cache_utils.alerts import DEDUPE_WINDOW_ENV, dedupe_window

    d = str(tmp_path)
    with backend.server() as server:
        backend.configure(server.url)
        cache_utils.configure_alerts(backend.alerter(server.url), dedupe_window=0)  # off: every create
        for _ in range(3):
            load_cache("sales", "09:00", d, allow_no_data=True)
        assert len(server.creates()) == 3
        monkeypatch.setenv(DEDUPE_WINDOW_ENV, "0")
        backend.set_env(monkeypatch, server.url)
        cache_utils.configure_alerts()  # from the environment: 0 again
        assert dedupe_window() == 0
        load_cache("sales", "09:00", d, allow_no_data=True)
        assert len(server.creates()) == 4
        monkeypatch.setenv(DEDUPE_WINDOW_ENV, "an hour")  # malformed: warned once, the default used
        assert dedupe_window() == 900
    for bad in (-1, float("nan"), 8 * 86400):
        with pytest.raises(ValueError, match="dedupe_window"):
            cache_utils.configure_alerts(dedupe_window=bad)
    with pytest.raises(TypeError, match="dedupe_window"):
        cache_utils.configure_alerts(dedupe_window="900")  # type: ignore[arg-type]
