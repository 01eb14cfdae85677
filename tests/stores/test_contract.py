"""The store contract: what every cache directory does, on local disk, memory://, S3, GCS and Azure."""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd  # noqa: F401  (imported before the first freeze_time: pandas#64023)
import pytest
from freezegun import freeze_time

from cache_utils import (
    CacheNotFoundError,
    CorruptCacheError,
    cache_dates,
    cache_exists,
    cache_filename,
    get_latest_cache_filename,
    list_caches,
    load_cache,
    load_latest_cache,
    prune,
    read_cache,
    save_cache,
    verify_cache,
    write_cache,
)
from cache_utils.stores import FsspecStore, LocalStore, get_store
from tests.stores.conftest import StoreCase
from tests.support.alert_backends import RecordingAlerter
from tests.support.emulators import azurite_connection_string
from tests.support.s3_server import silent_endpoint

KEY = "contract-signing-key"
GZIP_MAGIC = b"\x1f\x8b"


def _put(store: StoreCase, path: str, data: bytes) -> None:
    """Write raw bytes at `path` (a name under the store), as another tool would."""
    fs = store.fs()
    if not store.cloud:  # object stores have no directories to make
        fs.makedirs(fs._parent(path), exist_ok=True)
    fs.pipe_file(path, data)


def test_the_url_picks_its_store(store: StoreCase) -> None:
    """A plain path is local disk; memory:// takes FsspecStore's generic path (no prefix listing),
    the clouds its object-store path (from test_memory_fs.py's test_save_list_latest_read_prune)."""
    picked = get_store(store.url, store.options)
    if store.kind == "local":
        assert isinstance(picked, LocalStore)
    else:
        assert isinstance(picked, FsspecStore) and picked.object_store == store.cloud


def test_get_store_dispatch(tmp_path: Path) -> None:
    """file:// and plain paths are local disk; every other URL is an fsspec store (no server needed)."""
    assert isinstance(get_store(f"file://{tmp_path}"), LocalStore)
    assert get_store(f"file://{tmp_path}").directory == str(tmp_path)
    assert cache_filename("p", "2024-01-02", directory="s3://b/c") == "s3://b/c/p_20240102.pkl.gz"
    assert isinstance(get_store(str(tmp_path)), LocalStore)
    assert isinstance(get_store("memory://x"), FsspecStore)


def test_save_then_read_round_trips(store: StoreCase, spool_dir: Path) -> None:
    value = {"rows": list(range(1000)), "name": "prices"}
    path = save_cache(value, "prices", "2024-01-05", store.url, **store.kw())
    assert path == f"{store.url}/prices_20240105.pkl.gz"
    assert read_cache("prices", "2024-01-05", store.url, **store.kw()) == value
    assert store.names() == ["prices_20240105.pkl.gz"]  # one object: no temp or spool left behind
    # The local spool of a URL save is gone too (test_spool_cleanup.py's memory:// test, test_s3.py's
    # test_save_writes_one_object_and_reads_back), and the object is a plain gzip file anyone can read.
    assert list(spool_dir.iterdir()) == []
    assert store.fs().cat_file(path)[:2] == GZIP_MAGIC


def test_listing_sees_only_its_prefix_and_dates(store: StoreCase) -> None:
    """Only `<prefix>_<YYYYMMDD>.pkl.gz` directly in the directory counts: other datasets, backups,
    bad dates, subdirectories and files outside the directory are ignored (with the assertions of
    test_s3.py's test_latest_with_fallback_ignores_other_names and test_memory_fs.py's
    test_save_list_latest_read_prune)."""
    url, kw = f"{store.url}/c", store.kw()  # one level down, so a file can lie just outside it
    for day in ("2024-01-02", "2024-01-05", "2024-01-09"):
        assert save_cache(day, "prices", day, url, **kw) == f"{url}/prices_{day.replace('-', '')}.pkl.gz"
    save_cache("other", "prices_eu", "2024-01-20", url, **kw)
    for junk in ("prices_20240130.pkl.gz.bak", "prices_20240131.pkl.gz/inner", "prices_2024013.pkl.gz",
                 "prices_20241399.pkl.gz", "prices_x0240125.pkl.gz", "sub/prices_20240129.pkl.gz"):
        _put(store, f"{url}/{junk}", b"junk")
    _put(store, f"{store.url}/prices_20240128.pkl.gz", b"outside the dir")

    assert cache_dates("prices", url, **kw) == [
        dt.date(2024, 1, 9), dt.date(2024, 1, 5), dt.date(2024, 1, 2)]
    assert get_latest_cache_filename("prices", url, **kw) == f"{url}/prices_20240109.pkl.gz"
    assert get_latest_cache_filename("prices", url, "2024-01-08", **kw) == f"{url}/prices_20240105.pkl.gz"
    assert get_latest_cache_filename("prices", url, dt.date(2024, 1, 8), **kw) == (
        f"{url}/prices_20240105.pkl.gz")
    assert get_latest_cache_filename("prices", url, "2024-01-01", **kw) is None
    assert get_latest_cache_filename("prices", url, dt.date(2024, 1, 1), **kw) is None
    assert get_latest_cache_filename("nothing", url, **kw) is None
    assert read_cache("prices", "2024-01-05", url, **kw) == "2024-01-05"
    hit, skipped = load_latest_cache("prices", "2024-01-07", url, **kw)
    assert hit is not None and hit.data == "2024-01-05" and hit.date == dt.date(2024, 1, 5)
    assert hit.path == f"{url}/prices_20240105.pkl.gz" and skipped == ()
    assert [(f.prefix, f.date) for f in list_caches(url, "prices_eu", **kw)] == [
        ("prices_eu", dt.date(2024, 1, 20))]
    assert [(f.prefix, f.date.isoformat()) for f in list_caches(url, **kw)] == [
        ("prices", "2024-01-02"), ("prices", "2024-01-05"), ("prices", "2024-01-09"),
        ("prices_eu", "2024-01-20")]


def test_a_long_lived_process_sees_new_files(store: StoreCase) -> None:
    """No stale listings: files another process writes or deletes after a listing are seen at once
    (test_s3.py's test_long_lived_process_sees_new_files, there with boto3 as the other writer)."""
    url, kw = store.url, store.kw()
    save_cache(1, "p", "2024-01-01", url, **kw)
    assert get_latest_cache_filename("p", url, **kw) == f"{url}/p_20240101.pkl.gz"
    assert len(list_caches(url, **kw)) == 1
    other = store.fs(fresh=True)  # another writer: not this process's file system instance
    other.pipe_file(f"{url}/p_20240102.pkl.gz", other.cat_file(f"{url}/p_20240101.pkl.gz"))
    assert get_latest_cache_filename("p", url, **kw) == f"{url}/p_20240102.pkl.gz"
    assert len(list_caches(url, **kw)) == 2
    assert read_cache("p", "2024-01-02", url, **kw) == 1
    other.rm_file(f"{url}/p_20240102.pkl.gz")
    assert get_latest_cache_filename("p", url, **kw) == f"{url}/p_20240101.pkl.gz"
    with pytest.raises(FileNotFoundError, match="p_20240102"):
        read_cache("p", "2024-01-02", url, **kw)


def test_a_missing_directory_is_no_data(store: StoreCase) -> None:
    """A directory nothing was written to (in an existing bucket) is "no data yet", not an error
    (test_memory_fs.py's test_missing_directory_is_no_data, test_s3.py's
    test_load_cache_no_data_in_existing_bucket)."""
    url, kw = f"{store.url}/empty", store.kw()
    assert get_latest_cache_filename("prices", url, **kw) is None
    assert list_caches(url, **kw) == []
    with pytest.raises(FileNotFoundError, match="prices_20240101"):
        read_cache("prices", "2024-01-01", url, **kw)
    with freeze_time("2024-01-01 12:00:00"):
        data, _ = load_cache("prices", "08:00", url, allow_no_data=True, tz="UTC", alerter=RecordingAlerter(),
                             **kw)
        assert data == {}
        with pytest.raises(CacheNotFoundError, match=re.escape(url)):
            load_cache("prices", "08:00", url, tz="UTC", alerter=RecordingAlerter(), **kw)
    assert store.names() == []  # looking wrote nothing


def test_load_falls_back_to_the_latest_day(store: StoreCase) -> None:
    """With test_s3.py's test_load_cache_today_fallback_and_alerts: the fallback raises an alert naming
    the file served, and today's file, once there, closes it and moves the next look to tomorrow."""
    alerter = RecordingAlerter()
    save_cache("monday", "prices", "2024-01-08", store.url, **store.kw())
    now = dt.datetime(2024, 1, 10, 7, 0, tzinfo=dt.UTC)
    with freeze_time("2024-01-10 07:00"):
        data, next_cb = load_cache("prices", "06:00", store.url, tz="UTC", alerter=alerter, **store.kw())
    assert data == "monday"
    assert now < next_cb < now + dt.timedelta(hours=2)  # today's is missing: look again soon, not tomorrow
    assert next_cb == now + dt.timedelta(minutes=15)  # the default retry interval
    assert [a.alias for a in alerter.created] == ["cache_utils:prices"]
    assert "prices_20240108.pkl.gz" in alerter.created[0].description
    assert alerter.closed == []
    save_cache("wednesday", "prices", "2024-01-10", store.url, **store.kw())
    with freeze_time("2024-01-10 07:15"):
        data, next_cb = load_cache("prices", "06:00", store.url, tz="UTC", alerter=alerter, **store.kw())
    assert data == "wednesday"
    assert next_cb == dt.datetime(2024, 1, 11, 6, 0, tzinfo=dt.UTC)  # tomorrow at cb_time
    assert alerter.closed == ["cache_utils:prices"]


def test_prune_keeps_the_newest_and_dry_run_deletes_nothing(store: StoreCase) -> None:
    """Newest first, the dry run's list is what the real run deletes, other datasets untouched
    (test_s3.py's test_prune_and_dry_run, test_memory_fs.py's test_save_list_latest_read_prune)."""
    for day in ("2024-01-02", "2024-01-05", "2024-01-09"):
        save_cache(day, "prices", day, store.url, **store.kw())
    save_cache(0, "q", "2024-01-01", store.url, **store.kw())  # another dataset
    planned = prune("prices", 1, store.url, dry_run=True, **store.kw())
    assert planned == [f"{store.url}/prices_20240105.pkl.gz", f"{store.url}/prices_20240102.pkl.gz"]
    assert len(store.names()) == 4
    assert prune("prices", 1, store.url, **store.kw()) == planned
    assert store.names() == ["prices_20240109.pkl.gz", "q_20240101.pkl.gz"]


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
    """With test_s3.py's test_signed_files_on_s3 and test_memory_fs.py's test_signed_and_tampered: a
    tampered newest file is skipped for the older one and reported; a signed file copied under
    another date is refused (the name is signed too)."""
    url, kw, fs = store.url, store.kw(), store.fs()
    save_cache({"a": 1}, "prices", "2024-01-05", url, signing_key=KEY, **kw)
    save_cache({"a": 0}, "prices", "2024-01-04", url, signing_key=KEY, **kw)
    assert read_cache("prices", "2024-01-05", url, signing_key=KEY, **kw) == {"a": 1}
    with pytest.raises(CorruptCacheError, match="signature"):
        read_cache("prices", "2024-01-05", url, signing_key="another-key", **kw)
    save_cache({"a": 2}, "prices", "2024-01-06", url, **kw)  # unsigned
    with pytest.raises(CorruptCacheError):
        read_cache("prices", "2024-01-06", url, signing_key=KEY, **kw)

    newest = f"{url}/prices_20240105.pkl.gz"
    good = fs.cat_file(newest)
    for at, mask in ((-10, 0x01), (-12, 0xFF)):  # one bit, one byte, near the end
        blob = bytearray(good)
        blob[at] ^= mask
        fs.pipe_file(newest, bytes(blob))
        with pytest.raises(CorruptCacheError):
            read_cache("prices", "2024-01-05", url, signing_key=KEY, **kw)
    hit, skipped = load_latest_cache("prices", "2024-01-05", url, signing_key=KEY, **kw)
    assert hit is not None and hit.data == {"a": 0}
    assert [s.path for s in skipped] == [newest]
    fs.copy(f"{url}/prices_20240104.pkl.gz", f"{url}/prices_20240107.pkl.gz")
    with pytest.raises(CorruptCacheError, match="signature"):
        read_cache("prices", "2024-01-07", url, signing_key=KEY, **kw)


def test_a_failed_save_keeps_the_old_file_and_leaves_nothing(store: StoreCase, spool_dir: Path) -> None:
    """A value that cannot be pickled, midway through: the old file stays, no new one, no temp
    object, no spool (test_memory_fs.py's test_failed_write_leaves_nothing, test_s3.py's
    test_failed_write_leaves_old_object_and_no_spool)."""
    save_cache("good", "p", "2024-01-01", store.url, **store.kw())

    class Boom:
        def __reduce__(self) -> Any:
            raise RuntimeError("cannot pickle this")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_cache(["x" * 10_000, Boom()], "p", "2024-01-01", store.url, **store.kw())
    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_cache(["x" * 10_000, Boom()], "p", "2024-01-02", store.url, **store.kw())
    assert store.names() == ["p_20240101.pkl.gz"]
    assert [c.date.day for c in list_caches(store.url, **store.kw())] == [1]
    assert read_cache("p", "2024-01-01", store.url, **store.kw()) == "good"
    assert list(spool_dir.iterdir()) == []


def test_write_cache_size_is_the_objects_size(store: StoreCase) -> None:
    """(From test_memory_fs.py.)"""
    written = write_cache({"v": 1}, "sized", "2024-01-02", store.url, **store.kw())
    [listed] = list_caches(store.url, "sized", **store.kw())
    assert written.size == listed.size > 0 and written.path == listed.path
    assert cache_exists("sized", "2024-01-02", store.url, **store.kw())
    assert not cache_exists("sized", "2024-01-01", store.url, **store.kw())


def test_readers_get_independent_files(store: StoreCase) -> None:
    """Two open reads of one file do not share a position (fsspec's memory:// once handed out one
    shared file object; from test_memory_fs.py)."""
    save_cache(list(range(100)), "p", "2024-01-01", store.url, **store.kw())
    opened = get_store(store.url, store.options)
    a, b = opened.open_read("p_20240101.pkl.gz"), opened.open_read("p_20240101.pkl.gz")
    assert a.read(5) == b.read(5)  # a shared position would make the second read differ
    a.close()
    b.close()
    assert read_cache("p", "2024-01-01", store.url, **store.kw()) == list(range(100))


def test_the_bucket_root_is_a_directory(store: StoreCase) -> None:
    """`scheme://bucket` (and with a trailing slash) holds caches at the bucket's top level
    (test_s3.py's test_bucket_root_url)."""
    if not store.cloud:
        pytest.skip(f"{store.kind}: no bucket")
    root = f"{store.url.split('://', 1)[0]}://{store.bucket}"
    save_cache(1, "p", "2024-02-01", root, **store.kw())
    fs = store.fs()
    fs.invalidate_cache()
    assert [p.split("/", 1)[1] for p in fs.find(store.bucket)] == ["p_20240201.pkl.gz"]
    assert get_latest_cache_filename("p", f"{root}/", **store.kw()) == f"{root}/p_20240201.pkl.gz"


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
    """Every entry point names the missing bucket (with test_s3.py's test_missing_bucket_is_a_clear_error)."""
    if not store.cloud:  # a missing directory is only "no data yet"
        assert cache_dates("prices", os.path.join(store.url, "nope"), **store.kw()) == []
        return
    url, kw = store.missing_bucket_url(), store.kw()
    for call in (
        lambda: get_latest_cache_filename("p", url, **kw),
        lambda: list_caches(url, **kw),
        lambda: save_cache(1, "p", "2024-01-01", url, **kw),
        lambda: load_latest_cache("p", "2024-01-01", url, **kw),
        lambda: load_cache("prices", "06:00", url, **kw),
        lambda: load_cache("p", "08:00", url, allow_no_data=True, tz="UTC", alerter=RecordingAlerter(), **kw),
    ):
        with pytest.raises(FileNotFoundError, match=url.split("://", 1)[1].split("/", 1)[0]):
            call()


def test_bad_credentials_name_what_to_set_and_never_the_secret(store: StoreCase) -> None:
    if store.bad_credentials is None:
        why = "the emulator accepts any" if store.cloud else "a file system takes none"
        pytest.skip(f"{store.kind}: no credentials to get wrong ({why})")
    options = store.bad_credentials()
    with store.checking_credentials(), pytest.raises(PermissionError) as info:
        save_cache({"a": 1}, "prices", "2024-01-05", store.url, storage_options=options)
    message = str(info.value)
    assert "credential" in message.lower()
    for secret in ("wrong-secret-value", "V3Jvbmcga2V5"):
        assert secret not in message


# One-second request bounds per cloud: the bound a silent endpoint meets is the configured one.
SHORT_TIMEOUTS: dict[str, dict[str, Any]] = {
    "s3": {"config_kwargs": {"connect_timeout": 1, "read_timeout": 1, "retries": {"max_attempts": 1}}},
    "gcs": {"requests_timeout": 1},
    "azure": {"connection_timeout": 1, "read_timeout": 1},
}


@pytest.mark.timeout(30)
def test_a_silent_endpoint_fails_within_the_configured_bound(store: StoreCase) -> None:
    _load_from_a_silent_endpoint(store, SHORT_TIMEOUTS.get(store.kind, {}))


@pytest.mark.slow  # waits out the default bound: 3 attempts x (5 s + 20 s) = 75 s on S3 and Azure
@pytest.mark.timeout(120)
def test_a_silent_endpoint_fails_within_the_default_bound(store: StoreCase) -> None:
    _load_from_a_silent_endpoint(store, {})


def _load_from_a_silent_endpoint(store: StoreCase, timeouts: dict[str, Any]) -> None:
    if not store.cloud:
        pytest.skip(f"{store.kind}: no endpoint")
    with silent_endpoint() as url:
        options = {**(store.options or {}), **timeouts}
        if store.kind == "azure":
            options["connection_string"] = azurite_connection_string(url)
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
