"""A refusing, failing, garbled or silent alert server never stalls or breaks loading;
each failure is logged once; retried creates never open a second alert for one alias.

Every test runs for both backends: OpsGenie and JSM Operations (under its path prefix)."""

from __future__ import annotations

import logging
import os

import pytest
from freezegun import freeze_time

import cache_utils
from cache_utils import Alert, load_cache, save_cache, send_alert
from tests.support.alert_backends import alert_server, backend, clean_alert_env
from tests.support.loopback import refused_url
from tests.support.opsgenie_fake import TEST_API_KEY, FakeOpsGenie
from tests.support.scenarios import clock, measure_alert_bound

USED_FIXTURES = (alert_server, backend, clean_alert_env)  # pytest finds fixtures by module name
# Every test talks to a refusing, failing or silent HTTP server and waits out alert timeouts.
pytestmark = pytest.mark.integration

TIMEOUT = 1.0
SLACK = 2.0  # generous: proves "does not hang", not a speed claim
MODES = ["refused", "500", "429", "nonjson", "hang"]


@pytest.mark.parametrize("mode", MODES)
def test_load_cache_bounded_and_logs_once(tmp_path, mode, backend, monkeypatch):
    backend.patch_configure(monkeypatch)  # measure_alert_bound configures by key and URL
    if mode == "refused":
        result = measure_alert_bound(str(tmp_path), refused_url() + backend.prefix, TEST_API_KEY, TIMEOUT)
    else:
        with backend.server(mode) as server:
            result = measure_alert_bound(str(tmp_path), server.url, TEST_API_KEY, TIMEOUT)
            assert len(server.creates()) == 1  # no SDK retries: one POST per alert
            assert server.unexpected() == []
    assert result["alerter"].startswith(backend.cls.__name__ + "(")
    assert result["data_ok"]
    assert result["elapsed"] < TIMEOUT + SLACK, result
    assert result["failure_logs"] == 1, result["messages"]
    assert not any(TEST_API_KEY in m for m in result["messages"])


def test_ok_server_is_not_a_failure(tmp_path, backend, monkeypatch):
    backend.patch_configure(monkeypatch)
    with backend.server("ok") as server:
        result = measure_alert_bound(str(tmp_path), server.url, TEST_API_KEY, TIMEOUT)
        assert server.open_aliases() == {"cache_utils:alerted"}
    assert result["failure_logs"] == 0 and result["data_ok"]


def test_io_manager_bounded_when_opsgenie_hangs(tmp_path, backend):
    import dagster as dg
    from dagster._core.types.dagster_type import resolve_dagster_type

    from dagster_cache.io_manager import DatedCacheIOManager

    d = str(tmp_path)
    save_cache({"day": 14}, "prices", "2024-01-14", d)
    with backend.server("hang") as server:
        manager = DatedCacheIOManager(directory=d, opsgenie=backend.resource(server.url, timeout=TIMEOUT))
        context = dg.build_input_context(
            asset_key=dg.AssetKey("prices"), partition_key="2024-01-15",
            asset_partitions_def=dg.DailyPartitionsDefinition(start_date="2024-01-01"),
            dagster_type=resolve_dagster_type(object),
        )
        t0 = clock()
        assert manager.load_input(context) == {"day": 14}  # stale: alerts, and the alert hangs
        elapsed = clock() - t0
        assert len(server.creates()) == 1
    assert elapsed < TIMEOUT + SLACK


class _FlakyOpsGenie(FakeOpsGenie):
    """Answers 500 to the first create, then works: what makes a client retry."""

    def _answer(self, handler, rec):
        if self.mode == "flaky-once":
            self.mode = "ok"
            self._send(handler, 500, {"message": "try again"})
            return
        super()._answer(handler, rec)


def test_retried_create_opens_one_alert(tmp_path, backend):
    with _FlakyOpsGenie("flaky-once", prefix=backend.prefix) as server:
        alerter = backend.alerter(server.url, timeout=5, retries=2)
        assert send_alert(Alert("stale", "cache_utils:prices"), alerter)
        assert len(server.creates()) == 2  # the SDK retried after the 500
        assert server.open_aliases() == {"cache_utils:prices"}
        assert server.alerts["cache_utils:prices"]["count"] == 1


def test_repeated_stale_loads_keep_one_open_alert(tmp_path, alert_server):
    d = str(tmp_path)
    save_cache({"day": 14}, "prices", "2024-01-14", d)
    with freeze_time("2024-01-15 12:00:00"):
        for _ in range(3):
            data, _ = load_cache("prices", "09:00", d, tz="UTC")  # stale: 09:00 has passed
            assert data == {"day": 14}
    assert len(alert_server.creates()) == 1  # the repeats are held back in the process (dedupe window)
    assert cache_utils.alerts.suppressed_alerts("cache_utils:prices") == 2
    assert alert_server.open_aliases() == {"cache_utils:prices"}
    assert alert_server.alerts["cache_utils:prices"]["count"] == 1
    save_cache({"day": 15}, "prices", "2024-01-15", d)
    with freeze_time("2024-01-15 12:00:00"):
        assert load_cache("prices", "09:00", d, tz="UTC")[0] == {"day": 15}
    assert alert_server.open_aliases() == set()  # today's data closed it


def test_alert_timeout_from_environment_bounds_load(tmp_path, monkeypatch, caplog, backend):
    """`CACHE_UTILS_ALERT_TIMEOUT` configures the bound when the key comes from the environment."""
    d = str(tmp_path)
    save_cache({"day": 14}, "prices", "2024-01-14", d)
    with backend.server("hang") as server:
        backend.set_env(monkeypatch, server.url)
        monkeypatch.setenv("CACHE_UTILS_ALERT_TIMEOUT", "1")
        caplog.set_level(logging.WARNING, "cache_utils.alerts")
        with freeze_time("2024-01-15 12:00:00", tick=True):
            t0 = clock()
            assert load_cache("prices", "09:00", d, tz="UTC")[0] == {"day": 14}
            elapsed = clock() - t0
    assert elapsed < 1 + SLACK
    # Our deadline or the SDK's read timeout, both at 1 s, may end it first (a race under load).
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "did not finish" in m or "Read timed out" in m], messages
    assert cache_utils.get_alerter().timeout == 1.0
    assert type(cache_utils.get_alerter()) is backend.cls
    assert os.environ[backend.key_env] not in caplog.text
