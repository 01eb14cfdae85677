"""Jira Service Management Operations next to OpsGenie: the real opsgenie-sdk under the
JSM path prefix, selection by configuration, Dagster, and `cache-utils alert-test`."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import dagster as dg
import pytest
from freezegun import freeze_time

import cache_utils
from cache_utils import (
    Alert,
    CacheNotFoundError,
    JsmOpsAlerter,
    OpsGenieAlerter,
    get_alerter,
    load_cache,
    resolve_alert,
    save_cache,
    send_alert,
)
from cache_utils.alerts import JSM_OPS_URL, OPSGENIE_US
from cache_utils.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main
from dagster_cache import DatedCacheIOManager, OpsGenieResource, make_opsgenie_on_run_failure_sensor
from tests.support.alert_backends import (
    JSM,
    JSM_PREFIX,
    OPSGENIE,
    BackendCase,
    alert_server,
    backend,
    clean_alert_env,
)
from tests.support.opsgenie_fake import TEST_API_KEY, FakeOpsGenie

USED_FIXTURES = (alert_server, backend, clean_alert_env)  # pytest finds fixtures by module name
pytestmark = pytest.mark.integration  # the real opsgenie-sdk over HTTP to the fake OpsGenie / JSM server
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)


def urls(server: FakeOpsGenie) -> list[str]:
    """Each request as the server saw it: method, path and query."""
    out = []
    for r in server.requests:
        query = "&".join(f"{k}={v}" for k, values in r.query.items() for v in values)
        out.append(f"{r.method} {r.path}{'?' + query if query else ''}")
    return out


# --- the SDK under the JSM prefix ---------------------------------------------------------------


def test_the_sdk_keeps_the_jsm_path_prefix() -> None:
    """opsgenie-sdk builds URLs as host + resource path: pointed at .../jsm/ops/integration, it
    sends exactly the JSM Operations requests, whether through OpsGenieAlerter or JsmOpsAlerter."""
    seen = {}
    for cls in (OpsGenieAlerter, JsmOpsAlerter):
        cache_utils.configure_alerts(dedupe_window=0)  # both creates reach the server
        with FakeOpsGenie(prefix=JSM_PREFIX, api_key=TEST_API_KEY) as server:
            alerter = cls(TEST_API_KEY, server.url, timeout=3)
            assert send_alert(Alert("stale", "cache_utils:sales", priority="P2"), alerter)
            assert send_alert(Alert("stale", "cache_utils:sales", priority="P2"), alerter)
            assert resolve_alert("cache_utils:sales", "today's data loaded", alerter)
            assert urls(server) == [
                "POST /jsm/ops/integration/v2/alerts",
                "POST /jsm/ops/integration/v2/alerts",
                "POST /jsm/ops/integration/v2/alerts/cache_utils%3Asales/close?identifierType=alias",
            ]
            assert {r.headers["Authorization"] for r in server.requests} == {f"GenieKey {TEST_API_KEY}"}
            assert server.alerts["cache_utils:sales"]["count"] == 2  # one alert, bumped
            assert server.open_aliases() == set()
            seen[cls] = [(r.path, r.query, r.body) for r in server.requests]
    assert seen[OpsGenieAlerter] == seen[JsmOpsAlerter]  # the same requests: JsmOpsAlerter is a name


def test_jsm_alerter_defaults() -> None:
    assert JsmOpsAlerter("k").api_url == JSM_OPS_URL == "https://api.atlassian.com/jsm/ops/integration"
    assert JsmOpsAlerter("k", JSM_OPS_URL + "/").api_url == JSM_OPS_URL
    assert OpsGenieAlerter("k").api_url == OPSGENIE_US
    assert issubclass(JsmOpsAlerter, OpsGenieAlerter)
    assert repr(JsmOpsAlerter("secret-k")) == (
        "JsmOpsAlerter(api_url='https://api.atlassian.com/jsm/ops/integration', api_key='***', timeout=5.0)"
    )
    assert {"opsgenie": OpsGenieAlerter, "jsm": JsmOpsAlerter} == cache_utils.alerts.ALERTER_CLASSES


def test_a_client_that_dropped_the_prefix_would_be_caught() -> None:
    """The fake answers 404 outside its prefix: the prefix tests cannot pass by accident."""
    with FakeOpsGenie(prefix=JSM_PREFIX) as server:
        wrong = server.url.removesuffix(JSM_PREFIX)
        assert send_alert(Alert("m", "a"), JsmOpsAlerter(TEST_API_KEY, wrong, timeout=2)) is False
        assert server.creates() == [] and [r.path for r in server.unexpected()] == ["/v2/alerts"]


# --- selected by configuration alone ------------------------------------------------------------


def test_environment_selects_the_backend(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("OPSGENIE_API_KEY", "og-key")
    assert type(get_alerter()) is OpsGenieAlerter and get_alerter().api_url == OPSGENIE_US
    monkeypatch.setenv("JSM_OPS_API_KEY", "jsm-key")  # the switch: one variable
    alerter = get_alerter()
    assert type(alerter) is JsmOpsAlerter and alerter.api_url == JSM_OPS_URL
    assert alerter.secrets() == ("jsm-key", "jsm-key")
    assert get_alerter() is alerter  # built once per setting
    assert "JSM_OPS_API_KEY is set: alerts go to JSM Operations" in caplog.text
    monkeypatch.setenv("JSM_OPS_API_URL", "http://127.0.0.1:9/jsm/ops/integration/")
    assert get_alerter().api_url == "http://127.0.0.1:9/jsm/ops/integration"
    monkeypatch.delenv("JSM_OPS_API_KEY")  # rolling back: OpsGenie again
    assert type(get_alerter()) is OpsGenieAlerter
    monkeypatch.delenv("OPSGENIE_API_KEY")
    assert get_alerter() is None


def test_switch_day_the_same_alias_opens_a_fresh_alert_in_jsm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An alert open in OpsGenie at the switch stays there; the same problem opens one in JSM (an
    alias is per account), and today's data closes the JSM one only."""
    d = str(tmp_path)
    save_cache({"v": 14}, "sales", "2024-01-14", d)
    with OPSGENIE.server() as og, JSM.server() as jsm, freeze_time("2024-01-15 14:00:00"):
        OPSGENIE.set_env(monkeypatch, og.url, "og-key")
        load_cache("sales", "09:00", d)
        JSM.set_env(monkeypatch, jsm.url, "jsm-key")
        load_cache("sales", "09:00", d)
        assert og.open_aliases() == jsm.open_aliases() == {"cache_utils:sales"}
        assert jsm.alerts["cache_utils:sales"]["count"] == 1
        save_cache({"v": 15}, "sales", "2024-01-15", d)
        load_cache("sales", "09:00", d)
        assert jsm.open_aliases() == set()
        assert og.open_aliases() == {"cache_utils:sales"}  # close it in Opsgenie by hand
        assert [r.headers["Authorization"] for r in jsm.requests] == ["GenieKey jsm-key"] * 2


# --- Dagster ----------------------------------------------------------------------------------------


def test_resource_backend_field(backend: BackendCase) -> None:
    res = OpsGenieResource(backend=backend.name, api_key="k")
    assert type(res.alerter()) is backend.cls
    assert res.alerter().api_url == {"opsgenie": OPSGENIE_US, "jsm": JSM_OPS_URL}[backend.name]
    assert OpsGenieResource(api_key="k").backend == "opsgenie"  # unchanged default
    with pytest.raises(Exception, match="jsm"):
        OpsGenieResource(backend="pagerduty", api_key="k")  # type: ignore[arg-type]


def test_resource_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not OpsGenieResource.from_env().enabled
    monkeypatch.setenv("OPSGENIE_API_KEY", "og-key")
    monkeypatch.setenv("OPSGENIE_API_URL", OPSGENIE_US.replace("api.", "api.eu."))
    res = OpsGenieResource.from_env(priority="P2", tags=["t"])
    assert (res.backend, res.api_url, res.priority, res.tags) == ("opsgenie", "https://api.eu.opsgenie.com",
                                                                  "P2", ["t"])
    monkeypatch.setenv("JSM_OPS_API_KEY", "jsm-key")
    monkeypatch.setenv("CACHE_UTILS_ALERT_TIMEOUT", "nan")
    res = OpsGenieResource.from_env()
    assert (res.backend, res.api_url, res.timeout) == ("jsm", "", 5.0)
    assert isinstance(res.api_key, dg.EnvVar) and res.api_key.env_var_name == "JSM_OPS_API_KEY"

    @dg.asset
    def probe(opsgenie: OpsGenieResource) -> None:
        alerter = opsgenie.alerter()
        assert type(alerter) is JsmOpsAlerter and alerter.secrets()[1] == "jsm-key"
        assert alerter.api_url == JSM_OPS_URL

    assert dg.materialize([probe], resources={"opsgenie": res}).success


def _failure_context(instance, sensor, resources=None):
    @dg.op
    def explode() -> None:
        raise ValueError("boom")

    @dg.job
    def nightly() -> None:
        explode()

    result = nightly.execute_in_process(instance=instance, raise_on_error=False)
    event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    return dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_instance=instance, dagster_run=result.dagster_run,
        dagster_event=event, resources=resources,
    ).for_run_failure()


@pytest.mark.parametrize("bound", [False, True], ids=["given", "bound"])
def test_run_failure_sensor_reaches_the_backend(backend: BackendCase, bound: bool) -> None:
    with backend.server(api_key=TEST_API_KEY) as server, dg.instance_for_test() as instance:
        res = backend.resource(server.url, timeout=3)
        sensor = make_opsgenie_on_run_failure_sensor(opsgenie=None if bound else res)
        sensor(_failure_context(instance, sensor, {"opsgenie": res} if bound else None))
        [create] = server.creates()
        assert create.path == backend.path("/v2/alerts")
        assert create.body["alias"] == "dagster_cache:run_failure:nightly"
        assert server.open_aliases() == {"dagster_cache:run_failure:nightly"}
        assert server.unexpected() == []


def test_io_manager_stale_alert_and_fresh_close_reach_the_backend(tmp_path: Path, backend) -> None:
    with backend.server(api_key=TEST_API_KEY) as server:
        io = DatedCacheIOManager(directory=str(tmp_path), opsgenie=backend.resource(server.url, timeout=3))
        save_cache("old", "s", "2024-01-10", str(tmp_path))
        ctx = dg.build_input_context(asset_key="s", partition_key="2024-01-12", asset_partitions_def=DAILY)
        assert io.load_input(ctx) == "old"
        assert server.open_aliases() == {"cache_utils:s"}
        assert server.creates()[0].body["details"]["age_days"] == "2"
        today = dt.datetime.now(dt.UTC).date().isoformat()
        io.handle_output(dg.build_output_context(asset_key="s", partition_key=today,
                                                 asset_partitions_def=DAILY), "fresh")
        assert server.open_aliases() == set()
        assert [unquote(r.path) for r in server.closes()] == [backend.path("/v2/alerts/cache_utils:s/close")]
        assert server.unexpected() == []


def test_io_manager_missing_alert_reaches_the_backend(tmp_path: Path, backend) -> None:
    with backend.server(api_key=TEST_API_KEY) as server:
        io = DatedCacheIOManager(directory=str(tmp_path), opsgenie=backend.resource(server.url, timeout=3))
        ctx = dg.build_input_context(asset_key="s", partition_key="2024-01-12", asset_partitions_def=DAILY)
        with pytest.raises(CacheNotFoundError):
            io.load_input(ctx)
        assert server.open_aliases() == {"cache_utils:s"}
        assert server.creates()[0].body["priority"] == "P2"
        assert server.creates()[0].path == backend.path("/v2/alerts")


def test_io_manager_bounded_when_the_backend_hangs_on_a_missing_load(tmp_path: Path, backend) -> None:
    with backend.server("hang") as server:
        io = DatedCacheIOManager(directory=str(tmp_path), opsgenie=backend.resource(server.url, timeout=1))
        ctx = dg.build_input_context(asset_key="s", partition_key="2024-01-12", asset_partitions_def=DAILY)
        start = time.monotonic()
        with pytest.raises(CacheNotFoundError):
            io.load_input(ctx)
        assert time.monotonic() - start < 1 + 2.0
        assert len(server.creates()) == 1


# --- cache-utils alert-test ----------------------------------------------------------------------


def _cli(capsys) -> tuple[str, str]:
    out, err = capsys.readouterr()
    return out, err


def test_alert_test_creates_and_closes(backend: BackendCase, monkeypatch, capsys) -> None:
    with backend.server(api_key=TEST_API_KEY) as server:
        backend.set_env(monkeypatch, server.url)
        assert main(["alert-test"]) == EXIT_OK
        assert urls(server) == [
            f"POST {backend.prefix}/v2/alerts",
            f"POST {backend.prefix}/v2/alerts/cache_utils%3Aalert-test/close?identifierType=alias",
        ]
        assert server.creates()[0].body["priority"] == "P5"
        assert server.open_aliases() == set()
        assert main(["alert-test", "--alias", "team:check"]) == EXIT_OK
        assert server.alerts["team:check"]["status"] == "closed"
    out, err = _cli(capsys)
    assert err == ""
    assert out.splitlines()[0] == (f"alert-test: created and closed 'cache_utils:alert-test' via "
                                   f"{backend.cls.__name__} at {server.url}")
    assert TEST_API_KEY not in out


@pytest.mark.parametrize("mode", ["500", "429", "nonjson", "hang", "wrong-key"])
def test_alert_test_fails_with_one_line(backend: BackendCase, monkeypatch, capsys, mode: str) -> None:
    key = TEST_API_KEY if mode == "wrong-key" else "the-right-key"
    with backend.server("ok" if mode == "wrong-key" else mode, api_key="the-right-key") as server:
        backend.set_env(monkeypatch, server.url, key)
        monkeypatch.setenv("CACHE_UTILS_ALERT_TIMEOUT", "1")
        start = time.monotonic()
        assert main(["alert-test"]) == EXIT_ERROR
        elapsed = time.monotonic() - start
        assert len(server.creates()) == 1 and server.closes() == []  # no retries, no close
    out, err = _cli(capsys)
    assert out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"cache-utils: alert-test: create via {backend.cls.__name__} at {server.url} ")
    # A hang ends at 1 s either way: our deadline or the SDK's read timeout, whichever fires first.
    expected = {"500": ("HTTP 500",), "429": ("HTTP 429",), "nonjson": ("JSONDecodeError",),
                "hang": ("did not finish within 1.0 s", "Read timed out"), "wrong-key": ("HTTP 401",)}[mode]
    assert any(text in err for text in expected), err
    assert elapsed < 1 + 2.0
    assert key not in err


class _CloseFails(FakeOpsGenie):
    def _answer(self, handler, rec):
        if rec.path.endswith("/close"):
            self._send(handler, 500, {"message": "down"})
            return
        super()._answer(handler, rec)


def test_alert_test_fails_when_the_close_fails(monkeypatch, capsys) -> None:
    with _CloseFails(prefix=JSM_PREFIX) as server:
        JSM.set_env(monkeypatch, server.url)
        assert main(["alert-test"]) == EXIT_ERROR
        assert server.open_aliases() == {"cache_utils:alert-test"}
    err = _cli(capsys)[1]
    assert len(err.splitlines()) == 1
    assert "created 'cache_utils:alert-test', but close via JsmOpsAlerter" in err
    assert "HTTP 500" in err and "close it by hand" in err


def test_alert_test_without_a_backend_is_a_usage_error(capsys) -> None:
    assert main(["alert-test"]) == EXIT_USAGE
    err = _cli(capsys)[1]
    assert err == ("cache-utils: alert-test: no alert backend configured: set JSM_OPS_API_KEY (JSM "
                   "Operations) or OPSGENIE_API_KEY (OpsGenie)\n")
    assert main(["alert-test", "--alias", " "]) == EXIT_USAGE


def test_alert_test_console_script(tmp_path: Path) -> None:
    """The installed command, in a fresh process, against the loopback JSM fake."""
    script = Path(sys.executable).parent / "cache-utils"
    with JSM.server(api_key=TEST_API_KEY) as server:
        env = {k: v for k, v in os.environ.items() if "OPSGENIE" not in k and "JSM_OPS" not in k}
        env.update(JSM_OPS_API_KEY=TEST_API_KEY + "\n", JSM_OPS_API_URL=server.url)
        result = subprocess.run([str(script), "alert-test"], capture_output=True, text=True, timeout=120,
                                env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert server.open_aliases() == set() and len(server.requests) == 2
        env["JSM_OPS_API_KEY"] = "wrong"
        result = subprocess.run([str(script), "alert-test"], capture_output=True, text=True, timeout=120,
                                env=env, cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "HTTP 401" in result.stderr
    assert "wrong" not in result.stderr


@pytest.mark.parametrize("setting,value,word", [
    ("JSM_OPS_API_KEY", "bad\nkey", "JSM_OPS_API_KEY"),
    ("JSM_OPS_API_URL", "not a url", "JSM_OPS_API_URL"),
])
def test_alert_test_names_an_unusable_setting_in_its_one_line(
    monkeypatch, capsys, setting: str, value: str, word: str
) -> None:
    JSM.set_env(monkeypatch, "http://127.0.0.1:9/jsm/ops/integration", "good-key")
    monkeypatch.setenv(setting, value)
    assert main(["alert-test"]) == EXIT_USAGE
    out, err = _cli(capsys)
    assert out == "" and len(err.splitlines()) == 1 and word in err and "alerts are only logged" in err
    assert "bad\nkey" not in err and "bad\\nkey" not in err


def test_alert_test_notes_a_bad_timeout_and_still_runs(monkeypatch, capsys) -> None:
    with JSM.server() as server:
        JSM.set_env(monkeypatch, server.url)
        monkeypatch.setenv("CACHE_UTILS_ALERT_TIMEOUT", "inf")
        assert main(["alert-test"]) == EXIT_OK
    out, err = _cli(capsys)
    assert err == "" and len(out.splitlines()) == 1
    assert "(note: ignoring CACHE_UTILS_ALERT_TIMEOUT='inf'" in out
