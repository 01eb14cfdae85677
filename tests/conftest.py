"""Shared fixtures: the fake OpsGenie server and the moto S3 server (`moto_s3`, `s3`, `bucket`), for
every subject folder. (Isolation of every test: the root conftest.py.)"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from cache_utils.alerts import API_KEY_ENV, API_URL_ENV
from tests.support.opsgenie_fake import TEST_API_KEY, FakeOpsGenie
from tests.support.s3_fixtures import bucket, moto_s3, s3  # noqa: F401 - fixtures for every folder


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
