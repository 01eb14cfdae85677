"""The OpsGenie / JSM Operations key and the signing key never appear in logs,
exception messages, reprs, or what the Dagster UI shows of the configuration, in any form: raw,
stripped, repr'd (`Invalid header value b'GenieKey ...\\n'`), JSON or percent-encoded."""

from __future__ import annotations

import json
import logging
import os
from urllib.parse import quote

import pytest
from freezegun import freeze_time

import cache_utils
from cache_utils import (
    Alert,
    Alerter,
    CacheNotFoundError,
    CorruptCacheError,
    GzipPickleSerializer,
    JsmOpsAlerter,
    OpsGenieAlerter,
    WebhookAlerter,
    load_cache,
    read_cache,
    save_cache,
    send_alert,
)
from cache_utils.alerts import redact
from tests.support.alert_backends import BackendCase, backend, clean_alert_env
from tests.support.loopback import refused_url
from tests.support.opsgenie_fake import FakeOpsGenie

USED_FIXTURES = (backend, clean_alert_env)  # pytest finds fixtures by module name

OG_KEY = "og-secret-5c0f2b9e1d"
SIGN_KEY = "sign-secret-8e41aa07"
SECRETS = (OG_KEY, SIGN_KEY)


def forms(secret: str) -> set[str]:
    """How a secret can appear in a message: raw, stripped, inside a str or bytes repr, JSON,
    percent-encoded."""
    out = set()
    for value in (secret, secret.strip()):
        out |= {value, repr(value)[1:-1], repr(value.encode())[2:-1], json.dumps(value)[1:-1],
                quote(value, safe="")}
    return out


def _assert_clean(text: str, secrets: tuple[str, ...] = SECRETS) -> None:
    for secret in secrets:
        for form in forms(secret):
            assert form not in text, (form, text[:2000])


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
    _assert_clean(repr(JsmOpsAlerter(OG_KEY + "\n")))
    _assert_clean(repr(cache_utils.configure_alerts(api_key=OG_KEY, backend="jsm")))
    serializer = GzipPickleSerializer(signing_key=SIGN_KEY)
    assert serializer.signs
    _assert_clean(repr(serializer))
    _assert_clean(repr(cache_utils.configure_alerts(api_key=OG_KEY)))


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["refused", "500", "429", "nonjson", "hang"])
def test_failed_alerts_and_loads_never_log_keys(tmp_path, caplog, monkeypatch, mode, backend):
    caplog.set_level(logging.DEBUG)  # every logger, every level: urllib3, the SDK, ours
    monkeypatch.setenv("CACHE_UTILS_SIGNING_KEY", SIGN_KEY)
    d = str(tmp_path)
    save_cache({"ok": 1}, "p", "2024-01-14", d)
    with open(os.path.join(d, "p_20240115.pkl.gz"), "wb") as f:
        f.write(b"unsigned and not gzip")
    server = None if mode == "refused" else backend.server(mode).__enter__()
    try:
        backend.configure(server.url if server else refused_url() + backend.prefix, OG_KEY, timeout=1)
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
    caplog.set_level(logging.DEBUG)
    alerter = WebhookAlerter(refused_url() + f"/hook?token={OG_KEY}", timeout=1,
                             headers={"Authorization": f"Bearer {SIGN_KEY}"})
    assert not send_alert(Alert("m", "a"), alerter)
    _assert_clean(repr(alerter).replace(OG_KEY, "") + _all_log_text(caplog))


# --- keys read with a trailing newline (as from a secret file), and every other form ------------


def test_redact_replaces_every_form_of_a_secret():
    key = "og-se'cret\n"
    text = " | ".join([
        f"raw {key}", f"repr {key!r}", f"bytes {('GenieKey ' + key).encode()!r}",
        f"json {json.dumps({'k': key})}", f"url ?k={quote(key, safe='')}", f"stripped {key.strip()}",
    ])
    out = redact(text, [key])
    _assert_clean(out, (key,))
    assert out.count("***") == 6, out


class _HeaderRejected(Alerter):
    """Fails the way http.client does for a key with a newline: the message holds a bytes repr."""

    timeout = 2.0

    def __init__(self, key: str) -> None:
        self.key = key

    def create(self, alert: Alert) -> None:
        raise ValueError(f"Invalid header value {('GenieKey ' + self.key).encode()!r}")

    def close(self, alias: str, note: str = "") -> None:
        raise ValueError(f"Invalid header value {('GenieKey ' + self.key).encode()!r}")

    def secrets(self) -> tuple[str, ...]:
        return (self.key,)


def test_repr_of_a_key_in_an_error_is_redacted(caplog, capfd):
    caplog.set_level(logging.DEBUG)
    assert send_alert(Alert("m", "a"), _HeaderRejected(OG_KEY + "\n")) is False
    assert "Invalid header value b'GenieKey ***'" in caplog.text
    _assert_clean(_all_log_text(caplog) + "".join(capfd.readouterr()))


@pytest.mark.integration
def test_key_with_a_trailing_newline_from_the_environment_is_stripped(
    tmp_path, caplog, capfd, monkeypatch, backend: BackendCase
):
    """A key read from a secret file ends in a newline: it is sent stripped, never logged."""
    caplog.set_level(logging.DEBUG)
    with backend.server("ok", api_key=OG_KEY) as server:
        backend.set_env(monkeypatch, server.url, OG_KEY + "\n")
        data, _ = load_cache("p", "09:00", str(tmp_path), allow_no_data=True)
        assert data == {}
        [create] = server.creates()
        assert create.headers["Authorization"] == f"GenieKey {OG_KEY}"
        assert server.open_aliases() == {"cache_utils:p"}
    assert "failed" not in caplog.text
    _assert_clean(_all_log_text(caplog) + "".join(capfd.readouterr()), (OG_KEY + "\n",))


@pytest.mark.integration
@pytest.mark.parametrize("bad", [OG_KEY[:6] + "\n" + OG_KEY[6:], OG_KEY + "\x1b", OG_KEY + "\u00e9",
                                 "Bearer " + OG_KEY],
                         ids=["inner-newline", "control", "non-ascii", "space"])
def test_key_that_cannot_be_sent_is_refused_without_echoing_it(
    tmp_path, caplog, capfd, monkeypatch, backend: BackendCase, bad: str
):
    caplog.set_level(logging.DEBUG)
    save_cache({"ok": 1}, "p", None, str(tmp_path))
    with backend.server() as server:
        backend.set_env(monkeypatch, server.url, bad)
        for _ in range(3):
            assert load_cache("p", "00:00", str(tmp_path))[0] == {"ok": 1}
            load_cache("q", "00:00", str(tmp_path), allow_no_data=True)
        assert server.requests == []
    warnings = [r.getMessage() for r in caplog.records if backend.key_env in r.getMessage()]
    assert len(warnings) == 1 and "not shown" in warnings[0], warnings  # reported once
    _assert_clean(_all_log_text(caplog) + "".join(capfd.readouterr()), (bad,))
    with pytest.raises(ValueError) as info:
        backend.cls(bad)
    _assert_clean(str(info.value), (bad,))


@pytest.mark.integration
def test_webhook_header_with_a_trailing_newline_is_stripped_and_never_logged(caplog, capfd):
    caplog.set_level(logging.DEBUG)
    with FakeOpsGenie() as server:
        hook = WebhookAlerter(server.url + "/hook", timeout=2,
                              headers={"Authorization": f"Bearer {SIGN_KEY}\n"})
        assert send_alert(Alert("m", "a"), hook) is True
        assert server.requests[0].headers["Authorization"] == f"Bearer {SIGN_KEY}"
    refused = WebhookAlerter(refused_url() + "/hook", timeout=1,
                             headers={"Authorization": f"Bearer {SIGN_KEY}\n"})
    assert send_alert(Alert("m", "a"), refused) is False
    assert "failed" in caplog.text
    with pytest.raises(ValueError, match="'X-Token'") as info:
        WebhookAlerter(server.url, headers={"X-Token": SIGN_KEY[:5] + "\n" + SIGN_KEY[5:]})
    _assert_clean(str(info.value), (SIGN_KEY[:5] + "\n" + SIGN_KEY[5:],))
    _assert_clean(_all_log_text(caplog) + "".join(capfd.readouterr()) + repr(hook),
                  (f"Bearer {SIGN_KEY}\n",))


# --- Dagster ------------------------------------------------------------------------------------


def _dagster_setup(tmp_path, monkeypatch, storage_options=None, backend=None):
    import dagster as dg

    from dagster_cache.io_manager import DatedCacheIOManager
    from dagster_cache.resources import OpsGenieResource

    key_env = backend.key_env if backend else "OPSGENIE_API_KEY"
    monkeypatch.setenv(key_env, OG_KEY + "\n")  # as read from a secret file
    monkeypatch.setenv("CACHE_UTILS_SIGNING_KEY", SIGN_KEY)
    opsgenie = OpsGenieResource(backend=backend.name if backend else "opsgenie",
                                api_key=dg.EnvVar(key_env), api_url=refused_url(), timeout=1)
    manager = DatedCacheIOManager(directory=str(tmp_path), opsgenie=opsgenie,
                                  signing_key=dg.EnvVar("CACHE_UTILS_SIGNING_KEY"),
                                  storage_options=storage_options or {})
    return dg, opsgenie, manager


def test_dagster_config_display_shows_env_var_names_only(tmp_path, monkeypatch, backend):
    """What the UI shows: the repository snapshot the webserver reads, and the resources' reprs."""
    dg, opsgenie, manager = _dagster_setup(tmp_path, monkeypatch, backend=backend)
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster_shared.serdes import serialize_value


    @dg.asset
    def prices() -> int:
        return 1

    defs = dg.Definitions(assets=[prices], resources={"io_manager": manager, "opsgenie": opsgenie})
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert backend.key_env in snapshot and "CACHE_UTILS_SIGNING_KEY" in snapshot
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


# --- a webhook URL's query token in an exception message (red-team round on the reliability fixes) -----


def test_webhook_url_token_is_not_shown_when_the_scheme_is_wrong() -> None:
    """The webhook alerter treats the URL's query values as secrets (its repr shows `?***`), but a URL
    refused for its scheme (a typo such as 'htps://') is echoed whole in the ValueError, token included.
    README: secrets never appear in any exception message."""
    token = "S3CRET-T0KEN-value"
    with pytest.raises(ValueError) as info:
        WebhookAlerter(f"htps://hooks.example.com/services/x?token={token}")
    assert token not in str(info.value), (
        f"the ValueError shows the webhook token: {info.value}; hide the query (and password) "
        f"as __repr__ does"
    )
