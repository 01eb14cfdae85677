"""pytest fixtures for the moto S3 server (tests/conftest.py offers them to every test)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.s3_server import FAKE_ENV, MotoS3, start_moto


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """One moto server for the whole session."""
    saved = {k: os.environ.get(k) for k in FAKE_ENV}
    moto = start_moto()
    yield moto
    moto.server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> MotoS3:
    """The session's moto server, with the fake credentials in this test's environment."""
    for k, v in FAKE_ENV.items():
        monkeypatch.setenv(k, v)
    return moto_s3


@pytest.fixture
def bucket(s3: MotoS3) -> str:
    """A fresh, empty bucket for this test."""
    return s3.new_bucket()
