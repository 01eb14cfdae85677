"""Guarantee 8: the OpsGenie key and the signing key never appear in logs, exception messages,
reprs, or what the Dagster UI shows of the configuration."""

from __future__ import annotations

import logging
import os

import pytest
from freezegun import freeze_time

import cache_utils
from cache_utils import (
    CacheNotFoundError,
    CorruptCacheError,
    GzipPickleSerializer,
    OpsGenieAlerter,
    load_cache,
    read_cache,
    save_cache,
)

from .opsgenie_fake import FakeOpsGenie, refused_url

OG_KEY = "og-secret-5c0f2b9e1d"
SIGN_KEY = "sign-secret-8e41aa07"
SECRETS = (OG_KEY, SIGN_KEY)


def _assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def _all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for r in caplog.records:
        parts.append(r.getMessage())
        if r.exc_info:
            parts.append(logging.Formatter().formatException(r.exc_info))
    return "\n".join(parts)


def test_reprs_hide_keys():
    _assert_clean(repr(OpsGenieAlerter(OG_KEY, "https://api.eu.opsgenie.com")))
    _assert_clean(str(OpsGenieAlerter(OG_KEY)))
    serializer = GzipPickleSerializer(signing_key=SIGN_KEY)
    assert serializer.signs
    _assert_clean(repr(serializer))
    _assert_clean(repr(cache_utils.configure_alerts(api_key=OG_KEY)))


@pytest.mark.parametrize("mode", ["refused", "500", "429", "nonjson", "hang"])
def test_failed_alerts_and_loads_never_log_keys(tmp_path, caplog, monkeypatch, mode):
    caplog.set_level(logging.DEBUG)  # every logger, every level: urllib3, the SDK, ours
    monkeypatch.setenv("CACHE_UTILS_SIGNING_KEY", SIGN_KEY)
    d = str(tmp_path)
    save_cache({"ok": 1}, "p", "2024-01-14", d)
    with open(os.path.join(d, "p_20240115.pkl.gz"), "wb") as f:
        f.write(b"unsigned and not gzip")
    server = None if mode == "refused" else FakeOpsGenie(mode).__enter__()
    try:
        cache_utils.configure_alerts(api_key=OG_KEY, api_url=server.url if server else refused_url(),
                                     timeout=1)
        with freeze_time("2024-01-15 12:00:00"):
            data, _ = load_cache("p", "09:00", d, tz="UTC")
            assert data == {"ok": 1}
            with pytest.raises(CacheNotFoundError) as info:
                load_cache("q", "09:00", d, tz="UTC")
        _assert_clean(str(info.value))
        if server is not None:  # the key did reach the server, in the header where it belongs
            assert server.creates()[0].headers["Authorization"] == f"GenieKey {OG_KEY}"
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    text = _all_log_text(caplog)
    assert "ALERT" in text and ("failed" in text or "did not finish" in text)
    _assert_clean(text)


def test_exception_messages_hide_signing_key(tmp_path):
    d = str(tmp_path)
    save_cache({"x": 1}, "p", "2024-01-15", d, signing_key="another key")
    with pytest.raises(CorruptCacheError) as info:
        read_cache("p", "2024-01-15", d, signing_key=SIGN_KEY)
    _assert_clean(str(info.value))
    _assert_clean(repr(info.value))
    with pytest.raises(TypeError) as bad:
        save_cache({"x": 1}, "p", "2024-01-15", d, signing_key=12345)
    assert "12345" not in str(bad.value)  # even a malformed key is not echoed


def test_webhook_header_secret_is_redacted_in_logs(caplog):
    from cache_utils import Alert, WebhookAlerter, send_alert

    caplog.set_level(logging.DEBUG)
    alerter = WebhookAlerter(refused_url() + f"/hook?token={OG_KEY}", timeout=1,
                             headers={"Authorization": f"Bearer {SIGN_KEY}"})
    assert not send_alert(Alert("m", "a"), alerter)
    _assert_clean(repr(alerter).replace(OG_KEY, "") + _all_log_text(caplog))


# --- Dagster ------------------------------------------------------------------------------------


def _dagster_setup(tmp_path, monkeypatch, storage_options=None):
    import dagster as dg

    from dagster_cache.io_manager import DatedCacheIOManager
    from dagster_cache.resources import OpsGenieResource

    monkeypatch.setenv("OPSGENIE_API_KEY", OG_KEY)
    monkeypatch.setenv("CACHE_UTILS_SIGNING_KEY", SIGN_KEY)
    opsgenie = OpsGenieResource(api_key=dg.EnvVar("OPSGENIE_API_KEY"), api_url=refused_url(), timeout=1)
    manager = DatedCacheIOManager(directory=str(tmp_path), opsgenie=opsgenie,
                                  signing_key=dg.EnvVar("CACHE_UTILS_SIGNING_KEY"),
                                  storage_options=storage_options or {})
    return dg, opsgenie, manager


def test_dagster_config_display_shows_env_var_names_only(tmp_path, monkeypatch):
    """What the UI shows: the repository snapshot the webserver reads, and the resources' reprs."""
    dg, opsgenie, manager = _dagster_setup(tmp_path, monkeypatch)
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster_shared.serdes import serialize_value


    @dg.asset
    def prices() -> int:
        return 1

    defs = dg.Definitions(assets=[prices], resources={"io_manager": manager, "opsgenie": opsgenie})
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert "OPSGENIE_API_KEY" in snapshot and "CACHE_UTILS_SIGNING_KEY" in snapshot
    _assert_clean(snapshot)
    _assert_clean(repr(opsgenie) + repr(manager))


def test_dagster_run_logs_and_resolved_reprs_hide_keys(tmp_path, monkeypatch, caplog):
    # storage_options may hold credentials: kept out of reprs too (plain config values are shown
    # in the UI as given, so credentials belong in EnvVar-backed fields).
    dg, opsgenie, manager = _dagster_setup(tmp_path, monkeypatch, {"key": SIGN_KEY})
    caplog.set_level(logging.DEBUG)
    seen: dict[str, str] = {}

    @dg.asset(required_resource_keys={"io_manager", "opsgenie"})
    def prices(context) -> dict:
        io = context.resources.io_manager
        assert io.signing_key == SIGN_KEY  # resolved inside the run...
        seen["reprs"] = repr(io) + repr(context.resources.opsgenie)  # ...but never displayed
        context.log.info(f"resources: {io!r}")
        return {"p": 1}

    result = dg.materialize([prices], resources={"io_manager": manager, "opsgenie": opsgenie})
    assert result.success
    assert read_cache("prices", None, str(tmp_path), signing_key=SIGN_KEY) == {"p": 1}
    events = "\n".join(str(e.message) + repr(e.event_specific_data) for e in result.all_events)
    _assert_clean(seen["reprs"])
    _assert_clean(events)
    _assert_clean(_all_log_text(caplog))
    _assert_clean(repr(result.dagster_run.run_config))
