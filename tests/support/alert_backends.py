"""The alert backends the alert test suites run against: OpsGenie, and Jira Service
Management Operations served under its path prefix. Import the fixtures into a test module:

    from tests.support.alert_backends import BackendCase, alert_server, backend, clean_alert_env
    USED_FIXTURES = (alert_server, backend, clean_alert_env)  # else ruff calls parameters F811

`backend` is parametrized over both: a test that takes it (or `alert_server`) runs twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import cache_utils
from cache_utils import Alert, JsmOpsAlerter, OpsGenieAlerter
from cache_utils.alerts import (
    API_KEY_ENV,
    API_URL_ENV,
    JSM_API_KEY_ENV,
    JSM_API_URL_ENV,
    TIMEOUT_ENV,
    Alerter,
)
from tests.support.opsgenie_fake import TEST_API_KEY, FakeOpsGenie

JSM_PREFIX = "/jsm/ops/integration"  # https://api.atlassian.com/jsm/ops/integration


@dataclass(frozen=True)
class BackendCase:
    """One backend: its name, alerter class, environment variables and the fake's path prefix."""

    name: str
    cls: type[OpsGenieAlerter]
    key_env: str
    url_env: str
    prefix: str

    def server(self, mode: str = "ok", **kw: Any) -> FakeOpsGenie:
        """A fake of this backend's API (`og.url` includes the prefix)."""
        return FakeOpsGenie(mode, prefix=self.prefix, **kw)

    def path(self, path: str) -> str:
        """The request path this backend's server receives for an API path such as /v2/alerts."""
        return self.prefix + path

    def alerter(self, url: str, key: str = TEST_API_KEY, **kw: Any) -> OpsGenieAlerter:
        return self.cls(key, url, **kw)

    def configure(self, url: str, key: str = TEST_API_KEY, timeout: float = 5.0) -> Alerter | None:
        """`configure_alerts` for this backend, as a user would call it."""
        return cache_utils.configure_alerts(api_key=key, api_url=url, timeout=timeout, backend=self.name)

    def set_env(
        self, monkeypatch: pytest.MonkeyPatch, url: str | None, key: str | None = TEST_API_KEY
    ) -> None:
        """Point the library at `url` through this backend's environment variables."""
        if key is not None:
            monkeypatch.setenv(self.key_env, key)
        if url is not None:
            monkeypatch.setenv(self.url_env, url)

    def resource(self, url: str, key: str = TEST_API_KEY, **kw: Any) -> Any:
        from dagster_cache import OpsGenieResource

        return OpsGenieResource(backend=self.name, api_key=key, api_url=url, **kw)

    def patch_configure(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make `cache_utils.configure_alerts(api_key=...)` build this backend, for shared helpers
        such as `tests.support.scenarios.measure_alert_bound` that configure OpsGenie by key and URL."""
        real = cache_utils.configure_alerts

        def configure(alerter: Alerter | None = None, **kw: Any) -> Alerter | None:
            if kw.get("api_key") is not None:
                kw.setdefault("backend", self.name)
            return real(alerter, **kw)

        monkeypatch.setattr(cache_utils, "configure_alerts", configure)


class RecordingAlerter(Alerter):
    """A backend of one's own (a real `Alerter`) that keeps what it is asked to send; `priority`,
    if given, is its default for alerts that set none."""

    timeout = 5.0

    def __init__(self, priority: Any = None) -> None:
        if priority is not None:
            self.priority = priority
        self.created: list[Alert] = []
        self.closed: list[str] = []

    def create(self, alert: Alert) -> None:
        self.created.append(alert)

    def close(self, alias: str, note: str = "") -> None:
        self.closed.append(alias)


OPSGENIE = BackendCase("opsgenie", OpsGenieAlerter, API_KEY_ENV, API_URL_ENV, "")
JSM = BackendCase("jsm", JsmOpsAlerter, JSM_API_KEY_ENV, JSM_API_URL_ENV, JSM_PREFIX)
BACKENDS = [OPSGENIE, JSM]


@pytest.fixture(autouse=True)
def clean_alert_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """conftest clears the OpsGenie variables; clear the JSM ones and the timeout too."""
    for name in (JSM_API_KEY_ENV, JSM_API_URL_ENV, TIMEOUT_ENV):
        monkeypatch.delenv(name, raising=False)
    cache_utils.configure_alerts()


@pytest.fixture(params=BACKENDS, ids=lambda case: case.name)
def backend(request: pytest.FixtureRequest) -> BackendCase:
    return request.param


@pytest.fixture
def alert_server(backend: BackendCase, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpsGenie]:
    """A recording fake of `backend`'s API; the library is pointed at it through that backend's
    environment variables (OPSGENIE_API_KEY/URL or JSM_OPS_API_KEY/URL)."""
    with backend.server() as server:
        backend.set_env(monkeypatch, server.url)
        yield server
    assert server.unexpected() == [], [r.path for r in server.unexpected()]  # nothing left the prefix
