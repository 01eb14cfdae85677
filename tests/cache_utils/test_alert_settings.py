"""A bad alert setting of any kind (timeout, key or URL) never breaks loading.

From the environment, a malformed timeout is reported once as a warning and the default (5 s) is
used; a malformed key or URL is reported once (the key never shown) and alerts are only logged.
In code, a bad setting is a ValueError when the alerter or resource is built, never at load time.
"""

from __future__ import annotations

import logging
import math
import threading
import time

import pytest
from freezegun import freeze_time

import cache_utils
from cache_utils import (
    Alert,
    Alerter,
    NullAlerter,
    OpsGenieAlerter,
    WebhookAlerter,
    load_cache,
    save_cache,
    send_alert,
)
from cache_utils.alerts import DEFAULT_TIMEOUT, TIMEOUT_ENV, get_alerter, resolve_alert
from tests.support.alert_backends import BackendCase, backend, clean_alert_env
from tests.support.opsgenie_fake import TEST_API_KEY

USED_FIXTURES = (backend, clean_alert_env)  # pytest finds fixtures by module name
NOON = "2024-01-15 12:00:00"  # after the 09:00 cb_time: yesterday's file is stale


def _stale_dir(tmp_path) -> str:
    d = str(tmp_path)
    save_cache({"day": 14}, "prices", "2024-01-14", d)
    return d


def _warnings(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and word in r.getMessage()]


BAD_TIMEOUTS = ["0", "-1", "nan", "inf", "-inf", "1e300", "301", "abc", "5s", "0x10"]


@pytest.mark.integration
@pytest.mark.parametrize("text", BAD_TIMEOUTS)
def test_bad_timeout_in_the_environment_is_one_warning_and_loading_goes_on(
    tmp_path, monkeypatch, caplog, backend: BackendCase, text: str
):
    caplog.set_level(logging.WARNING)
    d = _stale_dir(tmp_path)
    save_cache({"day": 15}, "fresh", "2024-01-15", d)
    with backend.server() as server:
        backend.set_env(monkeypatch, server.url)
        monkeypatch.setenv(TIMEOUT_ENV, text)
        with freeze_time(NOON):
            for _ in range(3):
                assert load_cache("prices", "09:00", d, tz="UTC")[0] == {"day": 14}  # stale: alerts
                assert load_cache("fresh", "09:00", d, tz="UTC")[0] == {"day": 15}  # fresh: closes
        assert len(server.creates()) == 1  # alerts still go out, with the default bound (repeats held back)
        assert server.open_aliases() == {"cache_utils:prices"}
    assert get_alerter().timeout == DEFAULT_TIMEOUT
    warnings = _warnings(caplog, TIMEOUT_ENV)
    assert len(warnings) == 1, warnings
    assert repr(text) in warnings[0] and "5 s" in warnings[0]


@pytest.mark.parametrize("text", ["1", " 2.5 ", "300"])
def test_good_timeouts_are_used(monkeypatch, caplog, backend: BackendCase, text: str):
    caplog.set_level(logging.WARNING)
    backend.set_env(monkeypatch, "http://127.0.0.1:9")
    monkeypatch.setenv(TIMEOUT_ENV, text)
    assert get_alerter().timeout == float(text)
    assert _warnings(caplog, TIMEOUT_ENV) == []


BAD_URLS = ["not a url", "ftp://alerts.example", "http://", "https://host:port", "api.opsgenie.com",
            "https://api.opsgenie.com/v2?x=1", "https://user:pw-secret@api.opsgenie.com",
            "https://api.opsgenie .com", "https://api.opsgenie.com\n/x"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_url_in_the_environment_is_one_warning_and_alerts_are_only_logged(
    tmp_path, monkeypatch, caplog, backend: BackendCase, url: str
):
    caplog.set_level(logging.DEBUG)
    d = _stale_dir(tmp_path)
    backend.set_env(monkeypatch, url)
    with freeze_time(NOON):
        for _ in range(3):
            assert load_cache("prices", "09:00", d, tz="UTC")[0] == {"day": 14}
        load_cache("missing", "09:00", d, tz="UTC", allow_no_data=True)
    assert get_alerter() is None
    warnings = _warnings(caplog, backend.url_env)
    assert len(warnings) == 1 and "alerts are only logged" in warnings[0], warnings
    assert "ALERT [cache_utils:prices]" in caplog.text
    assert TEST_API_KEY not in caplog.text and "pw-secret" not in caplog.text


@pytest.mark.parametrize("key", [" ", "\n", "\t\n"])
def test_blank_key_in_the_environment_means_no_alerts(tmp_path, monkeypatch, caplog, backend, key):
    caplog.set_level(logging.WARNING)
    backend.set_env(monkeypatch, "http://127.0.0.1:9", key)
    assert load_cache("x", "09:00", str(tmp_path), allow_no_data=True)[0] == {}
    assert get_alerter() is None
    assert len(_warnings(caplog, backend.key_env)) == 1


class _OddTimeout(Alerter):
    def __init__(self, timeout: object) -> None:
        self.timeout = timeout  # type: ignore[assignment]
        self.calls = 0

    def create(self, alert: Alert) -> None:
        self.calls += 1

    def close(self, alias: str, note: str = "") -> None:
        self.calls += 1


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, 1e300, "5", None, True])
def test_custom_backend_with_a_bad_timeout_never_raises(caplog, timeout):
    caplog.set_level(logging.WARNING)
    alerter = _OddTimeout(timeout)
    for _ in range(2):
        assert send_alert(Alert("m", "a"), alerter) is True
        assert resolve_alert("a", "", alerter) is True
    assert alerter.calls == 4
    assert len(_warnings(caplog, "_OddTimeout.timeout")) == 1


class _Hangs(Alerter):
    """Hangs for up to 60 s, or until `release` is set: the test releases it when done, so no
    alert thread of it outlives the test (later tests look at the threads alive)."""

    timeout = math.inf
    release = threading.Event()

    def create(self, alert: Alert) -> None:
        self.release.wait(60)

    def close(self, alias: str, note: str = "") -> None:
        self.release.wait(60)


def test_custom_backend_with_an_infinite_timeout_is_bounded_by_the_default(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_utils.alerts.sending, "DEFAULT_TIMEOUT", 0.5)  # where the wait is chosen
    _Hangs.release.clear()
    try:
        start = time.monotonic()
        assert load_cache("x", "09:00", str(tmp_path), allow_no_data=True, alerter=_Hangs())[0] == {}
        assert time.monotonic() - start < 3
    finally:
        _Hangs.release.set()


@pytest.mark.parametrize(("timeout", "error"), [
    (0, ValueError), (-1, ValueError), (math.nan, ValueError), (math.inf, ValueError),
    (1e300, ValueError), (301, ValueError), ("5", TypeError), (True, TypeError),
])
def test_bad_timeout_in_code_is_refused_when_configured_not_when_loading(backend, timeout, error):
    with pytest.raises(error, match="timeout"):
        backend.configure("http://127.0.0.1:9", timeout=timeout)
    with pytest.raises(error, match="timeout"):
        backend.alerter("http://127.0.0.1:9", timeout=timeout)
    with pytest.raises(error, match="timeout"):
        WebhookAlerter("http://127.0.0.1:9/hook", timeout=timeout)


@pytest.mark.parametrize(("retries", "error"), [
    (-1, ValueError), (11, ValueError), (True, TypeError), (1.5, TypeError), ("2", TypeError),
])
def test_bad_retries_are_refused(retries, error):
    with pytest.raises(error, match="retries"):
        OpsGenieAlerter("k", retries=retries)


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_url_in_code_is_refused_without_credentials(backend, url):
    with pytest.raises(ValueError, match="api_url") as info:
        backend.alerter(url)
    assert "pw-secret" not in str(info.value)


def test_configure_alerts_backend_needs_a_key():
    with pytest.raises(ValueError, match="JSM_OPS_API_KEY"):
        cache_utils.configure_alerts(backend="jsm")
    with pytest.raises(ValueError, match="backend"):
        cache_utils.configure_alerts(api_key="k", backend="pagerduty")  # type: ignore[arg-type]


# --- Dagster: the resource's settings -----------------------------------------------------------


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, 1e300, 301])
def test_resource_refuses_a_bad_timeout_when_built(timeout):
    from dagster_cache import OpsGenieResource

    with pytest.raises(Exception, match="timeout"):
        OpsGenieResource(api_key="k", timeout=timeout)


@pytest.mark.parametrize("key,url", [("a\nb", ""), ("k", "not a url"), ("k", "https://u:pw-secret@h")])
def test_resource_with_an_unusable_key_or_url_never_breaks_the_io_manager(
    tmp_path, caplog, backend: BackendCase, key: str, url: str
):
    import dagster as dg

    from dagster_cache import DatedCacheIOManager

    caplog.set_level(logging.WARNING)
    save_cache("old", "s", "2024-01-10", str(tmp_path))
    resource = backend.resource(url, key=key, timeout=1)
    assert isinstance(resource.alerter(), NullAlerter)  # off
    io = DatedCacheIOManager(directory=str(tmp_path), opsgenie=resource)
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)
    ctx = dg.build_input_context(asset_key="s", partition_key="2024-01-12", asset_partitions_def=daily)
    assert io.load_input(ctx) == "old"
    assert resource.create_alert("m", "a") is False and resource.close_alert("a") is False
    assert "alerts off" in caplog.text
    assert "a\nb" not in caplog.text and "'a\\nb'" not in caplog.text and "pw-secret" not in caplog.text
