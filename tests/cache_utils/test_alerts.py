"""Alerts from load_cache through the real opsgenie-sdk (against FakeOpsGenie) and a webhook.

The OpsGenie tests run for both backends: OpsGenie, and Jira Service Management
Operations served under /jsm/ops/integration, each configured through its own variables."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

import cache_utils
import cache_utils.integration
from cache_utils import (
    Alert,
    Alerter,
    CacheNotFoundError,
    OpsGenieAlerter,
    WebhookAlerter,
    configure_alerts,
    default_alias,
    get_alerter,
    load_cache,
    resolve_alert,
    save_cache,
    send_alert,
)
from tests.support.alert_backends import BackendCase, alert_server, backend, clean_alert_env
from tests.support.loopback import refused_url
from tests.support.opsgenie_fake import TEST_API_KEY, FakeOpsGenie

USED_FIXTURES = (alert_server, backend, clean_alert_env)  # pytest finds fixtures by module name
pytestmark = pytest.mark.integration  # the real opsgenie-sdk and webhooks over HTTP to local servers

MORNING = "2024-01-15 08:00:00"  # before the 09:00 cb_time
AFTERNOON = "2024-01-15 14:00:00"  # after it
SLACK = 3.0  # generous bound for "returns within the alert timeout" on a busy machine


def aliases(requests: list[Any]) -> list[str]:
    return [r.body["alias"] for r in requests]


# --- what load_cache alerts on ------------------------------------------------------------


def test_no_data_creates_an_alert(tmp_path: Path, alert_server: FakeOpsGenie) -> None:
    with freeze_time(MORNING):
        data, _ = load_cache("sales", "09:00", str(tmp_path), allow_no_data=True)
        with pytest.raises(CacheNotFoundError):
            load_cache("sales", "09:00", str(tmp_path))
    assert data == {}
    creates = alert_server.creates()
    assert aliases(creates) == ["cache_utils:sales"]  # the repeat is held back (dedupe window)
    body = creates[0].body
    assert "no cache data" in body["message"] and "'sales'" in body["message"]
    assert body["priority"] == "P2"
    assert body["details"]["prefix"] == "sales" and body["details"]["directory"] == str(tmp_path)
    assert creates[0].headers["Authorization"] == f"GenieKey {TEST_API_KEY}"
    assert alert_server.open_aliases() == {"cache_utils:sales"}
    assert alert_server.alerts["cache_utils:sales"]["count"] == 1


def test_stale_after_cb_time_creates_an_alert(tmp_path: Path, alert_server: FakeOpsGenie) -> None:
    save_cache({"v": 14}, "sales", "2024-01-14", str(tmp_path))
    with freeze_time(AFTERNOON):
        data, _ = load_cache("sales", "09:00", str(tmp_path))
    assert data == {"v": 14}
    [create] = alert_server.creates()
    assert create.body["alias"] == "cache_utils:sales"
    assert create.body["message"].startswith("stale cache data")
    assert "sales_20240114.pkl.gz" in create.body["description"]
    assert create.body["details"]["age_days"] == "1"


def test_no_alert_before_cb_time_when_yesterdays_data_is_used(
    tmp_path: Path, alert_server: FakeOpsGenie, caplog: pytest.LogCaptureFixture
) -> None:
    save_cache({"v": 14}, "sales", "2024-01-14", str(tmp_path))
    caplog.set_level(logging.WARNING)
    with freeze_time(MORNING):
        data, _ = load_cache("sales", "09:00", str(tmp_path))
    assert data == {"v": 14}
    assert alert_server.creates() == []
    assert "ALERT" not in caplog.text


def test_corrupt_file_skipped_creates_an_alert_even_before_cb_time(
    tmp_path: Path, alert_server: FakeOpsGenie
) -> None:
    save_cache({"v": 14}, "sales", "2024-01-14", str(tmp_path))
    (tmp_path / "sales_20240115.pkl.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with freeze_time(MORNING):
        data, _ = load_cache("sales", "09:00", str(tmp_path))
    assert data == {"v": 14}
    [create] = alert_server.creates()
    assert create.body["message"].startswith("corrupt cache data")
    assert "sales_20240115.pkl.gz" in create.body["description"]


def test_explicit_alias(tmp_path: Path, alert_server: FakeOpsGenie) -> None:
    assert default_alias("sales") == "cache_utils:sales"
    with freeze_time(MORNING):
        load_cache("sales", "09:00", str(tmp_path), allow_no_data=True, alias="team-sales-feed")
    assert aliases(alert_server.creates()) == ["team-sales-feed"]


def test_repeated_problems_leave_one_open_alert_and_todays_file_closes_it(
    tmp_path: Path, alert_server: FakeOpsGenie
) -> None:
    save_cache({"v": 14}, "sales", "2024-01-14", str(tmp_path))
    with freeze_time(AFTERNOON):
        for _ in range(3):
            load_cache("sales", "09:00", str(tmp_path))
        assert alert_server.open_aliases() == {"cache_utils:sales"}
        assert alert_server.alerts["cache_utils:sales"]["count"] == 1  # repeats held back in the process
        save_cache({"v": 15}, "sales", "2024-01-15", str(tmp_path))
        data, _ = load_cache("sales", "09:00", str(tmp_path))
        assert data == {"v": 15}
        assert alert_server.open_aliases() == set()
        [close] = alert_server.closes()
        assert close.query == {"identifierType": ["alias"]}
        # Fresh loads once the alert is closed do not call the server again.
        load_cache("sales", "09:00", str(tmp_path))
    assert len(alert_server.closes()) == 1


def test_first_fresh_load_in_a_process_closes_an_alert_left_by_another(
    tmp_path: Path, alert_server: FakeOpsGenie, backend: BackendCase
) -> None:
    save_cache({"v": 15}, "sales", "2024-01-15", str(tmp_path))
    with freeze_time(AFTERNOON):
        load_cache("sales", "09:00", str(tmp_path))
    assert [r.path for r in alert_server.closes()] == [backend.path("/v2/alerts/cache_utils%3Asales/close")]


def test_without_a_key_only_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
    backend: BackendCase,
) -> None:
    caplog.set_level(logging.WARNING)
    with backend.server() as server:
        backend.set_env(monkeypatch, server.url, key=None)  # the URL alone is not enough
        assert get_alerter() is None
        with freeze_time(MORNING):
            load_cache("sales", "09:00", str(tmp_path), allow_no_data=True)
        assert server.requests == []
    assert "ALERT [cache_utils:sales] no cache data for 'sales'" in caplog.text


def test_configure_alerts_with_a_key(tmp_path: Path, backend: BackendCase) -> None:
    with backend.server() as server:
        alerter = backend.configure(server.url, timeout=2)
        assert type(alerter) is backend.cls and get_alerter() is alerter
        assert TEST_API_KEY not in repr(alerter)
        with freeze_time(MORNING):
            load_cache("sales", "09:00", str(tmp_path), allow_no_data=True)
        assert aliases(server.creates()) == ["cache_utils:sales"]
        configure_alerts()  # back to the environment, which has no key here
        assert get_alerter() is None


def test_alerter_keyword_overrides_the_configuration(
    tmp_path: Path, alert_server: FakeOpsGenie, backend: BackendCase
) -> None:
    with backend.server() as other:
        alerter = backend.alerter(other.url, "other-key", timeout=2)
        with freeze_time(MORNING):
            load_cache("sales", "09:00", str(tmp_path), allow_no_data=True, alerter=alerter)
        assert len(other.creates()) == 1
    assert alert_server.creates() == []


# --- failures never break or stall loading, and never leak the key -------------------------


def test_server_that_never_answers_is_bounded_by_the_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, backend: BackendCase
) -> None:
    caplog.set_level(logging.WARNING)
    with backend.server("hang") as server:
        backend.configure(server.url, timeout=1)
        start = time.monotonic()  # real time: this test does not freeze the clock
        data, _ = load_cache("sales", "09:00", str(tmp_path), allow_no_data=True)
        elapsed = time.monotonic() - start
        assert data == {}
        assert elapsed < 1 + SLACK, elapsed
        assert len(server.requests) == 1  # one POST, no SDK retries
    # Our deadline or the SDK's read timeout, both at 1 s, may end it first (a race under load).
    assert "did not finish within 1.0 s" in caplog.text or "Read timed out" in caplog.text, caplog.text


def test_timeout_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    backend: BackendCase,
) -> None:
    caplog.set_level(logging.WARNING)
    with backend.server("hang") as server:
        backend.set_env(monkeypatch, server.url)
        monkeypatch.setenv("CACHE_UTILS_ALERT_TIMEOUT", "1")
        assert type(get_alerter()) is backend.cls and get_alerter().timeout == 1.0
        start = time.monotonic()
        data, _ = load_cache("sales", "09:00", str(tmp_path), allow_no_data=True)
        assert time.monotonic() - start < 1 + SLACK
        assert data == {}
        assert len(server.requests) == 1
    assert TEST_API_KEY not in caplog.text


@pytest.mark.parametrize("mode", ["500", "429", "nonjson", "refused", "hang"])
def test_failing_server_is_logged_without_the_key(
    mode: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, backend: BackendCase
) -> None:
    caplog.set_level(logging.DEBUG)
    with backend.server("ok" if mode == "refused" else mode) as server:
        url = refused_url() + backend.prefix if mode == "refused" else server.url
        backend.configure(url, timeout=1)
        start = time.monotonic()
        with pytest.raises(CacheNotFoundError) as info:
            load_cache("sales", "09:00", str(tmp_path))
        assert time.monotonic() - start < 1 + SLACK
        if mode != "refused":
            assert len(server.requests) == 1
    assert TEST_API_KEY not in str(info.value)
    assert TEST_API_KEY not in caplog.text
    assert f"via {backend.cls.__name__}" in caplog.text  # the failure itself is logged
    failures = [r for r in caplog.records
                if r.name == "cache_utils.alerts" and not r.getMessage().startswith("ALERT [")]
    assert len(failures) == 1, [r.getMessage() for r in failures]  # one warning, not one per retry
    for record in caplog.records:
        assert TEST_API_KEY not in record.getMessage()


def test_redaction_of_a_key_echoed_by_the_server(caplog: pytest.LogCaptureFixture) -> None:
    class Echoing(Alerter):
        timeout = 2.0

        def create(self, alert: Alert) -> None:
            raise RuntimeError(f"server said: bad key {TEST_API_KEY}")

        def close(self, alias: str, note: str = "") -> None:
            raise RuntimeError(TEST_API_KEY)

        def secrets(self) -> tuple[str, ...]:
            return (TEST_API_KEY,)

    caplog.set_level(logging.WARNING)
    assert send_alert(Alert("m", "a"), Echoing()) is False
    assert resolve_alert("a", "", Echoing()) is False
    assert "server said: bad key ***" in caplog.text
    assert TEST_API_KEY not in caplog.text


def test_alert_validation() -> None:
    with pytest.raises(ValueError, match="P9"):
        Alert("m", "a", priority="P9")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alias"):
        Alert("m", "")
    with pytest.raises(ValueError, match="api_key"):
        OpsGenieAlerter("")
    with pytest.raises(ValueError, match="-1"):
        OpsGenieAlerter("k", timeout=-1)
    with pytest.raises(ValueError, match="ftp://x"):
        WebhookAlerter("ftp://x")


def test_long_fields_are_cut_to_opsgenie_limits(alert_server: FakeOpsGenie) -> None:  # JSM keeps them
    alert = Alert("m" * 500, "a" * 600, tags=tuple(f"t{i}" * 30 for i in range(30)))
    assert send_alert(alert) is True
    body = alert_server.creates()[0].body
    assert len(body["message"]) == 130 and len(body["alias"]) == 512
    assert len(body["tags"]) == 20 and max(map(len, body["tags"])) <= 50


# --- WebhookAlerter -----------------------------------------------------------------------


class Hook:
    """A loopback HTTP server that records JSON POSTs (or hangs, with hang=True)."""

    def __init__(self, status: int = 200, hang: bool = False) -> None:
        self.posts: list[tuple[dict[str, str], Any]] = []
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.posts.append((dict(self.headers), json.loads(raw)))
                if hang:
                    hook.release.wait(60)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.stop()


def test_webhook_alerter_create_and_close(tmp_path: Path, hook: Hook) -> None:
    configure_alerts(WebhookAlerter(hook.url, headers={"Authorization": "Bearer hook-secret"}))
    with freeze_time(AFTERNOON):
        save_cache({"v": 14}, "sales", "2024-01-14", str(tmp_path))
        load_cache("sales", "09:00", str(tmp_path))
        save_cache({"v": 15}, "sales", "2024-01-15", str(tmp_path))
        load_cache("sales", "09:00", str(tmp_path))
    (headers, create), (_, close) = hook.posts
    assert headers["Authorization"] == "Bearer hook-secret"
    assert headers["Content-Type"] == "application/json"
    assert create["action"] == "create" and create["alias"] == "cache_utils:sales"
    assert create["message"].startswith("stale cache data")
    assert close == {"action": "close", "alias": "cache_utils:sales",
                     "note": f"today's cache {tmp_path / 'sales_20240115.pkl.gz'} loaded"}


def test_webhook_failure_is_logged_without_its_secret_header(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    failing = Hook(status=500)
    hanging = Hook(hang=True)
    try:
        for server in (failing, hanging):
            alerter = WebhookAlerter(server.url, timeout=1, headers={"X-Token": "hook-secret"})
            start = time.monotonic()
            data, _ = load_cache("sales", "09:00", str(tmp_path), allow_no_data=True, alerter=alerter)
            assert time.monotonic() - start < 1 + SLACK
            assert data == {} and len(server.posts) == 1
    finally:
        failing.stop()
        hanging.stop()
    assert "HTTP Error 500" in caplog.text
    assert "hook-secret" not in caplog.text


def test_public_names_exported() -> None:
    for name in ("Alert", "Alerter", "OpsGenieAlerter", "JsmOpsAlerter", "WebhookAlerter",
                 "configure_alerts", "get_alerter", "send_alert", "resolve_alert", "send_test_alert"):
        # The stable API, or the integrators' surface (docs/api-stability.md); importable either way.
        assert name in cache_utils.__all__ or name in cache_utils.integration.__all__
        assert getattr(cache_utils, name) is not None
