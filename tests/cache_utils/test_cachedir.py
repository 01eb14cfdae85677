"""`CacheDir`: one object per directory (issue 20, item 3). The module-level file functions are
one-line wrappers over it with their original names, parameters and defaults; `read_many` reads
several files at once on object stores; `prune`'s `on_delete` reports each deletion."""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from freezegun import freeze_time

import cache_utils
from cache_utils import (
    CacheDir,
    CacheFile,
    CorruptCacheError,
    cache_dates,
    cache_exists,
    cache_fingerprint,
    files,
    get_latest_cache_filename,
    list_caches,
    load_cache,
    load_latest_cache,
    loading,
    prune,
    read_cache,
    save_cache,
    verify_cache,
    write_cache,
)
from cache_utils.stores import FsspecStore, LocalStore

WRAPPERS = {
    files: ["save_cache", "write_cache", "cache_exists", "get_latest_cache_filename", "cache_dates",
            "read_cache", "verify_cache", "cache_fingerprint", "cache_owner", "list_caches", "prune"],
    loading: ["load_latest_cache", "read_cache_hit", "load_cache"],
}


@pytest.fixture
def url() -> Iterator[str]:
    """A fresh memory:// directory, removed afterwards (the memory file system is process-wide)."""
    root = f"memory://cachedir-{uuid.uuid4().hex[:12]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, names in WRAPPERS.items() for n in names])
def test_each_module_function_is_one_call_on_a_cache_dir(module: Any, name: str) -> None:
    """The body (after the docstring) is one `return CacheDir(...).method(...)`: no logic of its own."""
    tree = ast.parse(inspect.getsource(getattr(module, name)))
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    body = function.body[1:]  # after the docstring
    assert len(body) == 1 and isinstance(body[0], ast.Return)
    call = body[0].value
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
    made = call.func.value
    assert isinstance(made, ast.Call) and isinstance(made.func, ast.Name) and made.func.id == "CacheDir"


def _defaults(function: Any) -> dict[str, Any]:
    return {n: p.default for n, p in inspect.signature(function).parameters.items()}


def test_the_seed_api_keeps_its_parameters_and_defaults() -> None:
    empty = inspect.Parameter.empty
    assert list(_defaults(cache_utils.cache_filename).items()) == [
        ("prefix", empty), ("the_date", None), ("keep_date_as_string", False), ("directory", "data")]
    assert list(_defaults(get_latest_cache_filename).items())[:2] == [("prefix", empty), ("directory", "")]
    assert list(_defaults(load_cache).items())[:5] == [
        ("prefix", empty), ("cb_time", empty), ("directory", "data"), ("allow_no_data", False),
        ("alias", None)]
    assert list(_defaults(load_latest_cache).items())[:3] == [
        ("prefix", empty), ("on_or_before", None), ("directory", "data")]
    assert list(_defaults(list_caches).items())[:2] == [("directory", "data"), ("prefix", None)]


def test_a_cache_dir_does_what_the_functions_do(tmp_path: Path) -> None:
    where = str(tmp_path)
    cache = CacheDir(where)
    written = cache.write({"a": 1}, "sales", "2024-01-15", owner="job")
    assert written == CacheFile("sales", dt.date(2024, 1, 15), str(tmp_path / "sales_20240115.pkl.gz"),
                                written.size)
    assert cache.save({"a": 2}, "sales", "2024-01-16") == save_cache({"a": 2}, "sales", "2024-01-16", where)
    assert cache.read("sales", "2024-01-15") == read_cache("sales", "2024-01-15", where) == {"a": 1}
    assert cache.exists("sales", "2024-01-15") and cache_exists("sales", "2024-01-15", where)
    assert not cache.exists("sales", "2024-01-17")
    assert cache.dates("sales") == cache_dates("sales", where) == [dt.date(2024, 1, 16), dt.date(2024, 1, 15)]
    assert cache.latest_path("sales") == get_latest_cache_filename("sales", where)
    assert cache.list() == list_caches(where) and len(cache.list("sales")) == 2
    assert cache.verify("sales", "2024-01-15").fingerprint == written.fingerprint
    assert cache.fingerprint("sales", "2024-01-15") == cache_fingerprint("sales", "2024-01-15", where)
    assert cache.owner("sales", "2024-01-15") == "job"
    assert cache.read_hit("sales", "2024-01-15").owner == "job"
    hit, skipped = cache.latest("sales", "2024-01-20")
    assert hit is not None and hit.data == {"a": 2} and skipped == ()
    assert cache.latest("sales", "2024-01-20") == load_latest_cache("sales", "2024-01-20", where)
    with freeze_time("2024-01-16 10:00"):
        data, when = cache.load("sales", "09:00", alerter=cache_utils.NullAlerter())
    assert data == {"a": 2} and when == dt.datetime(2024, 1, 17, 9, 0)
    with freeze_time("2024-01-20 10:00"):
        assert cache.prune("sales", 1, dry_run=True) == prune("sales", 1, where, dry_run=True)
        assert cache.prune("sales", 1) == [str(tmp_path / "sales_20240115.pkl.gz")]
    assert cache.dates("sales") == [dt.date(2024, 1, 16)]


def test_signing_keys_and_options_are_given_once(tmp_path: Path) -> None:
    signed = CacheDir(tmp_path, signing_key=b"k" * 32)
    signed.save([1], "sales", "2024-01-15")
    assert signed.read("sales", "2024-01-15") == [1]
    assert verify_cache("sales", "2024-01-15", str(tmp_path), signing_key=b"k" * 32).size > 0
    with pytest.raises(CorruptCacheError):
        CacheDir(tmp_path, signing_key=b"other" * 8).read("sales", "2024-01-15")


def test_repr_never_shows_storage_options(url: str) -> None:
    cache = CacheDir(url, storage_options={"secret": "hunter2"})
    assert "hunter2" not in repr(cache) and url in repr(cache)


def test_file_mode_applies_to_local_files_and_is_not_kept_on_object_stores(tmp_path: Path, url: str) -> None:
    path = CacheDir(tmp_path, file_mode=0o644).save(1, "sales", "2024-01-15")
    assert os.stat(path).st_mode & 0o777 == 0o644
    local = CacheDir(tmp_path, file_mode=0o640).store
    assert isinstance(local, LocalStore) and local.file_mode == 0o640
    remote = CacheDir(url, file_mode=0o644)
    assert isinstance(remote.store, FsspecStore) and not hasattr(remote.store, "file_mode")
    assert save_cache(1, "sales", "2024-01-15", url, file_mode=0o644) == f"{url}/sales_20240115.pkl.gz"


# --- read_many -----------------------------------------------------------------------------------------

READ_BY: list[str] = []  # names of the threads that unpickled a `_Traced`
MEET: list[threading.Barrier] = []  # when set, the first two unpickles wait for each other


def _traced(value: int) -> int:
    READ_BY.append(threading.current_thread().name)
    if MEET and len(READ_BY) <= 2:  # two reads in flight at once, or a BrokenBarrierError in 10 s
        MEET[0].wait(timeout=10)
    return value


class _Traced:
    """A value whose unpickling records the reading thread (pickle calls `_traced` on load)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return _traced, (self.value,)


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_read_many_reads_in_order_on_a_pool_for_object_stores_only(
    kind: str, tmp_path: Path, url: str
) -> None:
    cache = CacheDir(str(tmp_path) if kind == "local" else url)
    days = [dt.date(2024, 1, d) for d in range(1, 11)]
    for day in days:
        if day.day != 5:
            cache.save(_Traced(day.day), "sales", day)
    READ_BY.clear()
    if kind == "memory":  # a memory read is so quick that one worker could otherwise take them all
        MEET.append(threading.Barrier(2))
    try:
        exact = list(cache.read_many([("sales", d) for d in days]))  # the default: 8 on a URL, 1 locally
    finally:
        MEET.clear()
    assert [None if hit is None else hit.data for hit, _ in exact] == [1, 2, 3, 4, None, 6, 7, 8, 9, 10]
    assert [hit.date for hit, _ in exact if hit is not None] == [d for d in days if d.day != 5]
    if kind == "local":  # one after another, on the caller's thread
        assert set(READ_BY) == {threading.current_thread().name}
    else:
        assert all(name.startswith("cache_utils-read") for name in READ_BY) and len(set(READ_BY)) > 1
    filled = list(cache.read_many([("sales", d) for d in days], fallback=True, max_workers=4))
    assert [hit.date.day for hit, _ in filled if hit is not None] == [1, 2, 3, 4, 4, 6, 7, 8, 9, 10]
    READ_BY.clear()  # a caller may ask for a pool on a local directory too (benchmarks do)
    assert [hit.data for hit, _ in cache.read_many([("sales", d) for d in days[:4]], max_workers=2)
            if hit is not None] == [1, 2, 3, 4]
    assert all(name.startswith("cache_utils-read") for name in READ_BY)


def test_read_many_raises_a_corrupt_file_at_its_turn(url: str) -> None:
    cache = CacheDir(url)
    for day in (1, 2, 3):
        cache.save(day, "sales", f"2024-01-0{day}")
    fsspec.filesystem("memory").pipe_file(f"{url}/sales_20240102.pkl.gz", b"not gzip")
    reads = cache.read_many([("sales", f"2024-01-0{d}") for d in (1, 2, 3)], max_workers=3)
    first, _ = next(reads)
    assert first is not None and first.data == 1
    with pytest.raises(CorruptCacheError, match="sales_20240102"):
        next(reads)
    hit, skipped = list(cache.read_many([("sales", "2024-01-02")], fallback=True))[0]
    assert hit is not None and hit.data == 1 and skipped[0].path.endswith("sales_20240102.pkl.gz")


@pytest.mark.parametrize("bad", [0, True, 1.5, "2"])
def test_read_many_refuses_a_bad_worker_count(bad: Any, url: str) -> None:
    with pytest.raises(ValueError, match="max_workers"):
        list(CacheDir(url).read_many([("sales", "2024-01-01")], max_workers=bad))


# --- prune's on_delete -------------------------------------------------------------------------------


def test_prune_reports_each_deletion_with_the_planned_total(tmp_path: Path) -> None:
    for day in range(1, 8):
        save_cache(day, "sales", f"2024-01-0{day}", str(tmp_path))
    told: list[tuple[str, int]] = []
    with freeze_time("2024-01-10"):
        assert prune("sales", 3, str(tmp_path), dry_run=True, on_delete=lambda p, n: told.append((p, n)))
        assert told == []  # a dry run deletes nothing
        removed = prune("sales", 3, str(tmp_path), on_delete=lambda p, n: told.append((p, n)))
    assert [p for p, _ in told] == removed and len(removed) == 4
    assert {n for _, n in told} == {4}
    assert cache_dates("sales", str(tmp_path)) == [dt.date(2024, 1, d) for d in (7, 6, 5)]


def test_an_interrupt_in_on_delete_leaves_an_exact_record(tmp_path: Path) -> None:
    for day in range(1, 8):
        save_cache(day, "sales", f"2024-01-0{day}", str(tmp_path))
    told: list[str] = []

    def stop_after_two(path: str, planned: int) -> None:
        told.append(path)
        if len(told) == 2:
            raise KeyboardInterrupt

    with freeze_time("2024-01-10"), pytest.raises(KeyboardInterrupt):
        CacheDir(tmp_path).prune("sales", 3, on_delete=stop_after_two)
    left = {p.name for p in tmp_path.iterdir()}
    assert len(told) == 2 and all(os.path.basename(p) not in left for p in told)
    assert len(left) == 5


def test_write_cache_and_write_return_the_same_record(tmp_path: Path) -> None:
    a = write_cache([1], "sales", "2024-01-15", str(tmp_path))
    b = CacheDir(tmp_path).write([1], "sales", "2024-01-15")
    assert a == b and a.fingerprint == b.fingerprint
