"""The alert package's shape and model: `NullAlerter` (alerting off, unlike None, which means "the
configured backend"), the alerter's `priority` as the default of alerts that set none, and one
module per job in `cache_utils.alerts` (issue 20, item 1)."""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

import cache_utils
import cache_utils.alerts
from cache_utils import (
    Alert,
    Alerter,
    NullAlerter,
    WebhookAlerter,
    cache_alert,
    configure_alerts,
    get_alerter,
    load_cache,
    resolve_alert,
    save_cache,
    send_alert,
    send_test_alert,
)
from cache_utils.alerts import suppressed_alerts
from tests.support.alert_backends import BackendCase, RecordingAlerter, alert_server, backend, clean_alert_env
from tests.support.opsgenie_fake import FakeOpsGenie

USED_FIXTURES = (alert_server, backend, clean_alert_env)  # pytest finds fixtures by module name

PACKAGE = Path(cache_utils.alerts.__file__).parent


# --- NullAlerter -------------------------------------------------------------------------------


@pytest.mark.integration
def test_null_alerter_sends_nothing_where_none_means_the_configured_backend(
    tmp_path: Path, alert_server: FakeOpsGenie, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cache_utils.alerts")
    configure_alerts(dedupe_window=0)
    off = NullAlerter()
    assert load_cache("s", "09:00", str(tmp_path), allow_no_data=True, alerter=off)[0] == {}
    assert send_alert(Alert("m", "cache_utils:s"), off) is False
    assert resolve_alert("cache_utils:s", "", off) is False
    assert alert_server.requests == [] and caplog.records == [] and suppressed_alerts() == 0
    # the control: None is the backend the environment selects, which receives the alert
    assert load_cache("s", "09:00", str(tmp_path), allow_no_data=True, alerter=None)[0] == {}
    assert len(alert_server.creates()) == 1 and "ALERT [cache_utils:s]" in caplog.text


@pytest.mark.integration
def test_configure_alerts_with_a_null_alerter_turns_the_environment_off(
    tmp_path: Path, alert_server: FakeOpsGenie, backend: BackendCase
) -> None:
    assert type(get_alerter()) is backend.cls  # the environment selects the fake
    off = configure_alerts(NullAlerter("maintenance"))
    assert get_alerter() is off
    assert load_cache("s", "09:00", str(tmp_path), allow_no_data=True)[0] == {}
    ok, report = send_test_alert()
    assert not ok and report == "alerting is off (maintenance): nothing sent"
    assert alert_server.requests == []


def test_null_alerter_is_an_alerter_with_a_readable_repr() -> None:
    off = NullAlerter("no key")
    assert isinstance(off, Alerter) and off == NullAlerter("no key") and off != NullAlerter()
    assert repr(off) == "NullAlerter(reason='no key')"
    off.create(Alert("m", "a"))  # calling it directly does nothing either
    off.close("a")
    assert "NullAlerter" in cache_utils.__all__


# --- the alerter's priority: the default of alerts that set none --------------------------------


def test_an_alert_without_a_priority_gets_the_alerters() -> None:
    p4, p1 = RecordingAlerter("P4"), RecordingAlerter("P1")
    assert send_alert(Alert("m", "a1"), p4) and send_alert(Alert("m", "a2"), p1)
    assert send_alert(Alert("m", "a3", priority="P2"), p4)  # an explicit priority wins
    assert send_alert(Alert("m", "a4"), RecordingAlerter())  # an alerter left alone: P3, as before
    assert send_alert(Alert("m", "a5"), RecordingAlerter("P9"))  # a malformed one on a custom backend: P3
    sent = [a.priority for r in (p4, p1) for a in r.created]
    assert sent == ["P4", "P2", "P1"]
    assert Alert("m", "a").priority is None  # decided when sent


def test_cache_alerts_keep_p2_for_missing_data_and_take_the_alerters_otherwise(tmp_path: Path) -> None:
    assert cache_alert("missing", "s").priority == "P2"
    assert cache_alert("stale", "s").priority is None
    assert cache_alert("stale", "s", priority="P1").priority == "P1"
    p5 = RecordingAlerter("P5")
    d = str(tmp_path)
    with freeze_time("2024-01-15 14:00:00"):
        load_cache("s", "09:00", d, tz="UTC", allow_no_data=True, alerter=p5)  # missing
        save_cache({"v": 14}, "s", "2024-01-14", d)
        load_cache("s", "09:00", d, tz="UTC", alerter=p5)  # stale
    assert [(a.message.split()[0], a.priority) for a in p5.created] == [("no", "P2"), ("stale", "P5")]


@pytest.mark.integration
def test_the_alerters_priority_reaches_the_service(backend: BackendCase) -> None:
    with backend.server() as server:
        alerter = backend.alerter(server.url, priority="P4", timeout=3)
        assert send_alert(Alert("m", "a"), alerter) is True
        assert send_alert(Alert("m", "b", priority="P1"), alerter) is True
        assert [r.body["priority"] for r in server.creates()] == ["P4", "P1"]


@pytest.mark.integration
def test_the_webhooks_priority_is_the_default_too() -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        assert send_alert(Alert("m", "a"), WebhookAlerter(url, timeout=2, priority="P5")) is True
        assert send_alert(Alert("m", "b"), WebhookAlerter(url, timeout=2)) is True
    finally:
        server.shutdown()
        server.server_close()
    assert [b["priority"] for b in bodies] == ["P5", "P3"]
    with pytest.raises(ValueError, match="P0"):
        WebhookAlerter(url, priority="P0")  # type: ignore[arg-type]


# --- one module per job --------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_every_alerts_module_says_what_it_holds_and_stays_small(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert ast.get_docstring(ast.parse(text)), f"{path.name} has no opening docstring"
    assert len(text.splitlines()) <= 400, f"{path.name}: {len(text.splitlines())} lines"


def test_the_package_exports_what_the_module_did() -> None:
    assert [n for n in cache_utils.alerts.__all__ if not hasattr(cache_utils.alerts, n)] == []
    for name in ("Alert", "Alerter", "NullAlerter", "OpsGenieAlerter", "JsmOpsAlerter", "WebhookAlerter",
                 "ALERTER_CLASSES", "EnvAlertSettings", "env_alert_settings", "alerter_from_env",
                 "make_alerter", "service_name", "configure_alerts", "get_alerter", "send_alert",
                 "resolve_alert", "send_test_alert", "suppressed_alerts", "dedupe_window", "redact",
                 "secret_forms", "MAX_ANSWER", "DEFAULT_TIMEOUT", "API_KEY_ENV", "TIMEOUT_ENV"):
        assert name in cache_utils.alerts.__all__, name
    # still importable from the top for compatibility, though no longer in __all__
    assert cache_utils.make_alerter is cache_utils.alerts.make_alerter
    assert cache_utils.service_name("jsm") == "JSM Operations"
    assert cache_utils.env_alert_settings({}) is None


def test_the_helpers_live_on_the_objects_they_serve() -> None:
    from cache_utils import EnvAlertSettings, JsmOpsAlerter, OpsGenieAlerter

    settings = EnvAlertSettings.from_env({"JSM_OPS_API_KEY": "k", "JSM_OPS_API_URL": "http://127.0.0.1:9"})
    assert settings == cache_utils.alerts.env_alert_settings({"JSM_OPS_API_KEY": "k",
                                                              "JSM_OPS_API_URL": "http://127.0.0.1:9"})
    assert settings is not None and settings.api_url_env == "JSM_OPS_API_URL"
    assert OpsGenieAlerter.backend_class("jsm") is JsmOpsAlerter
    assert OpsGenieAlerter.backend_class("opsgenie").service == "OpsGenie"
    jsm = OpsGenieAlerter.for_backend("jsm", " k\n", priority="P2")
    assert type(jsm) is JsmOpsAlerter and jsm.priority == "P2" and jsm.secrets() == (" k\n", "k")
    with pytest.raises(ValueError, match="pagerduty"):
        OpsGenieAlerter.backend_class("pagerduty")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="api_url") as info:
        OpsGenieAlerter.for_backend("opsgenie", "sekrit-key", "sekrit-key")
    assert "sekrit-key" not in str(info.value)
