"""One store contract, every store: the `store` fixture is a fresh, empty cache directory on each of
local disk, fsspec's memory://, S3 (moto's server), GCS (fake-gcs-server) and Azure Blob (azurite),
all on 127.0.0.1. A test written against it runs on all five, the way fsspec's `tests/abstract`
runs one suite against every file system."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import cache_utils.stores.fsspec as fsspec_store
from tests.support.emulators import Azurite, FakeGcs, azurite_script, start_azurite, start_fake_gcs
from tests.support.s3_server import MotoS3

CLOUDS = ("s3", "gcs", "azure")
KINDS = ("local", "memory", *CLOUDS)


@dataclass
class StoreCase:
    """A fresh cache directory on one store: its URL and the storage options to reach it."""

    kind: str
    url: str
    options: dict[str, Any] | None
    bucket: str = ""
    # Storage options like `options` but with credentials the store refuses (clouds that check them).
    bad_credentials: Callable[[], dict[str, Any]] | None = field(default=None, repr=False)
    # Entered around a bad-credentials call: moto checks credentials only when told to.
    checking_credentials: Callable[[], AbstractContextManager[Any]] = field(
        default=contextlib.nullcontext, repr=False)

    @property
    def cloud(self) -> bool:
        return self.kind in CLOUDS

    def kw(self) -> dict[str, Any]:
        """Keyword arguments for the library's functions."""
        return {"storage_options": self.options} if self.options is not None else {}

    def fs(self, fresh: bool = False) -> Any:
        """The store's fsspec file system; `fresh`: a new instance, as another process would have
        (fsspec otherwise hands back one cached instance per set of options)."""
        import fsspec

        protocol = self.url.split("://", 1)[0] if "://" in self.url else "file"
        extra = {"skip_instance_cache": True} if fresh else {}
        if protocol == "gs":  # see FakeGcs.filesystem
            from gcsfs.core import GCSFileSystem

            return GCSFileSystem(**(self.options or {}), **extra)
        return fsspec.filesystem(protocol, **(self.options or {}), **extra)

    def names(self) -> list[str]:
        """Every object or file under the directory (temp and hidden ones included)."""
        fs = self.fs()
        base = fs._strip_protocol(self.url).rstrip("/")
        fs.invalidate_cache()
        try:
            found = fs.find(base)
        except FileNotFoundError:
            return []
        return sorted(p[len(base) + 1:] for p in found)

    def missing_bucket_url(self) -> str:
        return self.url.replace(self.bucket, f"missing-{uuid.uuid4().hex[:10]}", 1)


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temp dir, isolated, so spool files left behind would be seen, with the
    once-a-minute spool sweep's throttle reset (the next save sweeps)."""
    d = tmp_path / "systmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    monkeypatch.setattr(fsspec_store, "_last_sweep", [0.0])
    return d


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[FakeGcs]:
    server = start_fake_gcs()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    if azurite_script() is None and shutil.which("node") is None:
        pytest.skip("Azure Blob tests need Node.js for azurite (apt-get install nodejs npm; make install)")
    server = start_azurite()  # node is here: a missing azurite is an install error, not a skip
    yield server
    server.stop()


def _params() -> list[Any]:
    return [pytest.param(k, marks=pytest.mark.integration) if k in CLOUDS else k for k in KINDS]


@pytest.fixture(params=_params())
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreCase]:
    kind = request.param
    if kind == "local":
        yield StoreCase(kind, str(tmp_path / "caches"), None)
    elif kind == "memory":
        import fsspec

        url = f"memory://contract-{uuid.uuid4().hex[:12]}"
        yield StoreCase(kind, url, None)
        fs = fsspec.filesystem("memory")
        if fs.exists(url):
            fs.rm(url, recursive=True)
    elif kind == "s3":
        s3: MotoS3 = request.getfixturevalue("s3")
        bucket = s3.new_bucket()
        yield StoreCase(kind, f"s3://{bucket}/caches", s3.options(), bucket,
                        lambda: s3.options(key="AKIAWRONGWRONGWRONG", secret="wrong-secret-value"),
                        s3.auth_enforced)
    elif kind == "gcs":
        gcs: FakeGcs = request.getfixturevalue("fake_gcs")
        bucket = gcs.new_bucket()
        yield StoreCase(kind, f"gs://{bucket}/caches", gcs.options(), bucket)
    else:
        az: Azurite = request.getfixturevalue("azurite")
        bucket = az.new_bucket()
        wrong = "V3Jvbmcga2V5IGZvciB0aGUgdGVzdHMsIG5vdCBhIHJlYWwgb25lLg=="
        yield StoreCase(kind, f"az://{bucket}/caches", az.options(), bucket,
                        lambda: {"connection_string": az.connection_string(wrong)})
