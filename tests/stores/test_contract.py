"""The store contract: what every cache directory does, on local disk, memory://, S3, GCS and Azure."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

import pandas as pd  # noqa: F401  (imported before the first freeze_time: pandas#64023)
import pytest
from freezegun import freeze_time

from cache_utils import (
    CorruptCacheError,
    cache_dates,
    get_latest_cache_filename,
    list_caches,
    load_cache,
    prune,
    read_cache,
    save_cache,
    verify_cache,
)
from tests.stores.conftest import StoreCase
from tests.support.s3_server import silent_endpoint

KEY = "contract-signing-key"


def test_save_then_read_round_trips(store: StoreCase) -> None:
    value = {"rows": list(range(1000)), "name": "prices"}
    path = save_cache(value, "prices", "2024-01-05", store.url, **store.kw())
    assert path == f"{store.url}/prices_20240105.pkl.gz"
    assert read_cache("prices", "2024-01-05", store.url, **store.kw()) == value
    assert store.names() == ["prices_20240105.pkl.gz"]  # one object: no temp or spool left behind


def test_listing_sees_only_its_prefix_and_dates(store: StoreCase) -> None:
    for day in ("2024-01-02", "2024-01-05", "2024-01-09"):
        save_cache(day, "prices", day, store.url, **store.kw())
    save_cache("other", "prices_eu", "2024-01-20", store.url, **store.kw())
    assert cache_dates("prices", store.url, **store.kw()) == [
        dt.date(2024, 1, 9), dt.date(2024, 1, 5), dt.date(2024, 1, 2)]
    assert get_latest_cache_filename("prices", store.url, "2024-01-08", **store.kw()) == (
        f"{store.url}/prices_20240105.pkl.gz")
    assert [(f.prefix, f.date) for f in list_caches(store.url, "prices_eu", **store.kw())] == [
        ("prices_eu", dt.date(2024, 1, 20))]


def test_load_falls_back_to_the_latest_day(store: StoreCase) -> None:
    save_cache("monday", "prices", "2024-01-08", store.url, **store.kw())
    with freeze_time("2024-01-10 07:00"):
        data, next_cb = load_cache("prices", "06:00", store.url, tz="UTC", **store.kw())
    assert data == "monday"
    now = dt.datetime(2024, 1, 10, 7, 0, tzinfo=dt.UTC)
    assert now < next_cb < now + dt.timedelta(hours=2)  # today's is missing: look again soon, not tomorrow


def test_prune_keeps_the_newest_and_dry_run_deletes_nothing(store: StoreCase) -> None:
    for day in ("2024-01-02", "2024-01-05", "2024-01-09"):
        save_cache(day, "prices", day, store.url, **store.kw())
    planned = prune("prices", 1, store.url, dry_run=True, **store.kw())
    assert sorted(os.path.basename(p) for p in planned) == [
        "prices_20240102.pkl.gz", "prices_20240105.pkl.gz"]
    assert len(store.names()) == 3
    prune("prices", 1, store.url, **store.kw())
    assert store.names() == ["prices_20240109.pkl.gz"]


def test_verify_accepts_a_good_file_and_refuses_a_damaged_one(store: StoreCase) -> None:
    save_cache(list(range(10_000)), "prices", "2024-01-05", store.url, **store.kw())
    assert verify_cache("prices", "2024-01-05", store.url, **store.kw()).size > 0
    fs = store.fs()
    path = f"{store.url}/prices_20240105.pkl.gz"
    raw = bytearray(fs.cat_file(path))
    raw[len(raw) // 2] ^= 0xFF
    fs.pipe_file(path, bytes(raw))
    with pytest.raises(CorruptCacheError, match="prices_20240105"):
        verify_cache("prices", "2024-01-05", store.url, **store.kw())


def test_signed_files_verify_and_refuse_tampering(store: StoreCase) -> None:
    save_cache({"a": 1}, "prices", "2024-01-05", store.url, signing_key=KEY, **store.kw())
    assert read_cache("prices", "2024-01-05", store.url, signing_key=KEY, **store.kw()) == {"a": 1}
    with pytest.raises(CorruptCacheError):
        read_cache("prices", "2024-01-05", store.url, signing_key="another-key", **store.kw())
    save_cache({"a": 2}, "prices", "2024-01-06", store.url, **store.kw())  # unsigned
    with pytest.raises(CorruptCacheError):
        read_cache("prices", "2024-01-06", store.url, signing_key=KEY, **store.kw())


def test_concurrent_writers_leave_one_whole_file(store: StoreCase) -> None:
    values = [list(range(i, i + 20_000)) for i in range(4)]
    errors: list[BaseException] = []

    def write(value: list[int]) -> None:
        try:
            for _ in range(3):
                save_cache(value, "prices", "2024-01-05", store.url, **store.kw())
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(v,)) for v in values]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert read_cache("prices", "2024-01-05", store.url, **store.kw()) in values
    assert store.names() == ["prices_20240105.pkl.gz"]


def test_a_read_during_overwrites_sees_one_whole_version(store: StoreCase) -> None:
    # Two versions of today's file, each over one member (2 MiB of pickle), so a read spans requests.
    versions = [os.urandom(3 << 20), os.urandom(3 << 20)]
    save_cache(versions[0], "prices", "2024-01-05", store.url, level=0, **store.kw())
    stop = threading.Event()

    def overwrite() -> None:
        i = 1
        while not stop.is_set():
            save_cache(versions[i % 2], "prices", "2024-01-05", store.url, level=0, **store.kw())
            i += 1

    writer = threading.Thread(target=overwrite)
    writer.start()
    try:
        seen = [read_cache("prices", "2024-01-05", store.url, **store.kw()) for _ in range(8)]
    finally:
        stop.set()
        writer.join(60)
    assert all(any(s == v for v in versions) for s in seen)


def test_a_missing_bucket_is_a_clear_error(store: StoreCase) -> None:
    if not store.cloud:  # a missing directory is only "no data yet"
        assert cache_dates("prices", os.path.join(store.url, "nope"), **store.kw()) == []
        return
    url = store.missing_bucket_url()
    with pytest.raises(FileNotFoundError, match=url.split("://", 1)[1].split("/", 1)[0]):
        load_cache("prices", "06:00", url, **store.kw())


def test_bad_credentials_name_what_to_set_and_never_the_secret(store: StoreCase) -> None:
    if store.bad_credentials is None:
        pytest.skip(f"{store.kind}: no credentials to get wrong (the emulator accepts any)")
    options = store.bad_credentials()
    with store.checking_credentials(), pytest.raises(PermissionError) as info:
        save_cache({"a": 1}, "prices", "2024-01-05", store.url, storage_options=options)
    message = str(info.value)
    assert "credential" in message.lower()
    for secret in ("wrong-secret-value", "V3Jvbmcga2V5"):
        assert secret not in message


@pytest.mark.timeout(120)
def test_a_silent_endpoint_fails_within_a_bound(store: StoreCase) -> None:
    if not store.cloud:
        pytest.skip(f"{store.kind}: no endpoint")
    with silent_endpoint() as url:
        options = dict(store.options or {})
        if store.kind == "azure":
            options["connection_string"] = options["connection_string"].replace(
                options["connection_string"].split("BlobEndpoint=")[1].split("/devstore")[0], url)
        else:
            options["endpoint_url"] = url
        with pytest.raises(OSError):  # within the timeout mark: the bound is the library's, not the test's
            load_cache("prices", "06:00", store.url, storage_options=options)


def test_nothing_written_is_executable_by_listing(store: StoreCase) -> None:
    """Housekeeping never unpickles: a planted pickle that would run code is listed, not run."""
    marker = f"/tmp/contract-{os.getpid()}-{time.monotonic_ns()}"

    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (open, (marker, "w"))

    save_cache(Boom(), "prices", "2024-01-05", store.url, **store.kw())
    save_cache("fine", "prices", "2024-01-06", store.url, **store.kw())
    assert len(list_caches(store.url, "prices", **store.kw())) == 2
    prune("prices", 1, store.url, dry_run=True, **store.kw())
    assert not os.path.exists(marker)
