"""Shared fixtures: a clean in-memory cache, alert configuration, and the fake OpsGenie server."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import cache_utils
from benchmarks.opsgenie_fake import TEST_API_KEY, FakeOpsGenie
from cache_utils import InMemoryCache
from cache_utils.alerts import API_KEY_ENV, API_URL_ENV


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees another's alert config, signing key or in-memory entries."""
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    monkeypatch.delenv(API_URL_ENV, raising=False)
    monkeypatch.delenv("CACHE_UTILS_SIGNING_KEY", raising=False)
    for name in ("JSM_OPS_API_KEY", "JSM_OPS_API_URL", "CACHE_UTILS_ALERT_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    cache_utils.configure_alerts()
    InMemoryCache.clear()
    yield
    cache_utils.configure_alerts()
    InMemoryCache.clear()


@pytest.fixture
def opsgenie(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpsGenie]:
    """A recording OpsGenie-like server; the library is pointed at it through the environment."""
    with FakeOpsGenie() as server:
        monkeypatch.setenv(API_KEY_ENV, TEST_API_KEY)
        monkeypatch.setenv(API_URL_ENV, server.url)
        yield server


@pytest.fixture
def caplog_warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING)
    return caplog
