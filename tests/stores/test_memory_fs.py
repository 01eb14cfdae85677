"""Caches on fsspec's memory:// file system: the generic (no prefix listing) path of FsspecStore."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import pytest
from freezegun import freeze_time

from cache_utils import (
    CorruptCacheError,
    get_latest_cache_filename,
    list_caches,
    load_cache,
    load_latest_cache,
    prune,
    read_cache,
    save_cache,
)
from cache_utils.stores import FsspecStore, get_store


@pytest.fixture
def url() -> Iterator[str]:
    """A fresh memory:// directory, removed afterwards (the memory file system is process-wide)."""
    root = f"memory://caches-{uuid.uuid4().hex[:12]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_save_list_latest_read_prune(url: str) -> None:
    for day in ("2024-01-02", "2024-01-05", "2024-01-09"):
        assert save_cache({"day": day}, "foo", day, url) == f"{url}/foo_{day.replace('-', '')}.pkl.gz"
    save_cache("x", "foobar", "2024-01-20", url)
    fs = fsspec.filesystem("memory")
    for junk in ("foo_20240130.pkl.gz.bak", "foo_20241399.pkl.gz", "sub/foo_20240131.pkl.gz"):
        fs.pipe_file(f"{url}/{junk}", b"junk")

    store = get_store(url)
    assert isinstance(store, FsspecStore) and not store.object_store  # the generic listing path
    assert get_latest_cache_filename("foo", url) == f"{url}/foo_20240109.pkl.gz"
    assert get_latest_cache_filename("foo", url, dt.date(2024, 1, 8)) == f"{url}/foo_20240105.pkl.gz"
    assert get_latest_cache_filename("foo", url, "2024-01-01") is None
    assert read_cache("foo", "2024-01-05", url) == {"day": "2024-01-05"}
    hit, _ = load_latest_cache("foo", "2024-01-07", url)
    assert hit is not None and hit.date == dt.date(2024, 1, 5)
    assert [(c.prefix, c.date.day) for c in list_caches(url)] == [
        ("foo", 2), ("foo", 5), ("foo", 9), ("foobar", 20)
    ]
    assert prune("foo", 1, url, dry_run=True) == [f"{url}/foo_20240105.pkl.gz", f"{url}/foo_20240102.pkl.gz"]
    assert prune("foo", 1, url) == [f"{url}/foo_20240105.pkl.gz", f"{url}/foo_20240102.pkl.gz"]
    assert [c.date.day for c in list_caches(url, "foo")] == [9]


def test_missing_directory_is_no_data(url: str) -> None:
    assert get_latest_cache_filename("foo", url) is None
    assert list_caches(url) == []
    with pytest.raises(FileNotFoundError, match="foo_20240101"):
        read_cache("foo", "2024-01-01", url)
    with freeze_time("2024-01-01 12:00:00"):
        data, _ = load_cache("foo", "08:00", url, allow_no_data=True, tz="UTC")
        assert data == {}


def test_failed_write_leaves_nothing(url: str) -> None:
    save_cache("good", "p", "2024-01-01", url)

    class Boom:
        def __reduce__(self) -> Any:
            raise RuntimeError("cannot pickle this")

    with pytest.raises(RuntimeError):
        save_cache(["x" * 10_000, Boom()], "p", "2024-01-01", url)
    with pytest.raises(RuntimeError):
        save_cache(["x" * 10_000, Boom()], "p", "2024-01-02", url)
    assert [c.date.day for c in list_caches(url)] == [1]
    assert read_cache("p", "2024-01-01", url) == "good"


def test_readers_get_independent_files(url: str) -> None:
    save_cache(list(range(100)), "p", "2024-01-01", url)
    store = get_store(url)
    a, b = store.open_read("p_20240101.pkl.gz"), store.open_read("p_20240101.pkl.gz")
    assert a.read(5) == b.read(5)  # a shared position would make the second read differ
    a.close()
    b.close()
    assert read_cache("p", "2024-01-01", url) == list(range(100))


def test_signed_and_tampered(url: str) -> None:
    save_cache({"k": 1}, "s", "2024-01-01", url, signing_key="key")
    assert read_cache("s", "2024-01-01", url, signing_key="key") == {"k": 1}
    fs = fsspec.filesystem("memory")
    blob = bytearray(fs.cat_file(f"{url}/s_20240101.pkl.gz"))
    blob[-10] ^= 1
    fs.pipe_file(f"{url}/s_20240101.pkl.gz", bytes(blob))
    with pytest.raises(CorruptCacheError):
        read_cache("s", "2024-01-01", url, signing_key="key")


def test_write_cache_size_is_the_objects_size(url: str) -> None:
    from cache_utils import cache_exists, write_cache

    written = write_cache({"v": 1}, "sized", "2024-01-02", url)
    [listed] = list_caches(url, "sized")
    assert written.size == listed.size > 0 and written.path == listed.path
    assert cache_exists("sized", "2024-01-02", url) and not cache_exists("sized", "2024-01-01", url)
