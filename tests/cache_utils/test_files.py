"""get_latest_cache_filename, save_cache, read_cache, list_caches, cache_dates and prune."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import pickle
import stat
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from cache_utils import (
    CacheFile,
    CorruptCacheError,
    cache_dates,
    get_latest_cache_filename,
    list_caches,
    prune,
    read_cache,
    save_cache,
)


def touch(directory: Path, *names: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_bytes(b"x")


def make_temp(directory: Path, name: str, age_seconds: float) -> Path:
    """A temp file as a killed writer leaves it, with its mtime `age_seconds` in the past."""
    path = directory / name
    path.write_bytes(b"partial")
    past = time.time() - age_seconds
    os.utime(path, (past, past))
    return path


# --- get_latest_cache_filename ------------------------------------------------------------


def test_latest_picks_newest_of_exact_prefix(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "sales_20240101.pkl.gz",
        "sales_20240103.pkl.gz",
        "sales_20240102.pkl.gz",
        "sales_eu_20240301.pkl.gz",  # another prefix that starts with 'sales_'
        "salesx_20240401.pkl.gz",
        "xsales_20240401.pkl.gz",
    )
    assert get_latest_cache_filename("sales", str(tmp_path)) == str(tmp_path / "sales_20240103.pkl.gz")
    assert get_latest_cache_filename("sales_eu", str(tmp_path)) == str(
        tmp_path / "sales_eu_20240301.pkl.gz"
    )


def test_sales_never_picks_sales_eu(tmp_path: Path) -> None:
    touch(tmp_path, "sales_eu_20240101.pkl.gz")
    assert get_latest_cache_filename("sales", str(tmp_path)) is None


def test_latest_ignores_names_that_are_not_cache_files(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "sales_20230101.pkl.gz",
        "sales_20241301.pkl.gz",  # month 13
        "sales_20240230.pkl.gz",  # 30 February
        "sales_99999999.pkl.gz",
        "sales_latest.pkl.gz",
        "sales_2024010.pkl.gz",
        "sales_202401011.pkl.gz",
        "sales_20250101.pkl",
        "sales_20250101.pkl.gz.bak",
        ".sales_20250101.pkl.gz.k2j3h4.tmp",  # half-written temp file
    )
    (tmp_path / "sales_20250102.pkl.gz").mkdir()  # a directory named like a cache file
    assert get_latest_cache_filename("sales", str(tmp_path)) == str(tmp_path / "sales_20230101.pkl.gz")
    assert cache_dates("sales", str(tmp_path)) == [dt.date(2023, 1, 1)]


def test_latest_in_missing_directory_is_none(tmp_path: Path) -> None:
    assert get_latest_cache_filename("sales", str(tmp_path / "nowhere")) is None
    assert cache_dates("sales", str(tmp_path / "nowhere")) == []
    assert list_caches(str(tmp_path / "nowhere")) == []


def test_latest_default_directory_is_the_current_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    touch(tmp_path, "sales_20240105.pkl.gz")
    assert get_latest_cache_filename("sales") == "sales_20240105.pkl.gz"


def test_latest_on_or_before_bound(tmp_path: Path) -> None:
    touch(tmp_path, "p_20240105.pkl.gz", "p_20240110.pkl.gz", "p_20240301.pkl.gz")
    d = str(tmp_path)
    assert get_latest_cache_filename("p", d, dt.date(2024, 1, 10)) == str(tmp_path / "p_20240110.pkl.gz")
    assert get_latest_cache_filename("p", d, "2024-01-09") == str(tmp_path / "p_20240105.pkl.gz")
    assert get_latest_cache_filename("p", d, on_or_before="20240228") == str(tmp_path / "p_20240110.pkl.gz")
    assert get_latest_cache_filename("p", d, pd.Timestamp("2024-01-04")) is None
    assert cache_dates("p", d, on_or_before="2024-01-10") == [dt.date(2024, 1, 10), dt.date(2024, 1, 5)]


def test_latest_in_a_file_instead_of_a_directory_names_it(tmp_path: Path) -> None:
    not_dir = tmp_path / "plain_file"
    not_dir.write_text("x")
    with pytest.raises(NotADirectoryError, match="plain_file"):
        get_latest_cache_filename("sales", str(not_dir))


# --- save_cache ---------------------------------------------------------------------------


def test_save_returns_the_path_and_creates_the_directory(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    path = save_cache({"x": 1}, "sales", dt.date(2024, 1, 15), str(target))
    assert path == str(target / "sales_20240115.pkl.gz")
    assert os.path.isfile(path)
    assert read_cache("sales", "2024-01-15", str(target)) == {"x": 1}


def test_save_default_directory_is_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert save_cache([1, 2], "sales", "2024-01-15") == os.path.join("data", "sales_20240115.pkl.gz")
    assert (tmp_path / "data" / "sales_20240115.pkl.gz").is_file()


def test_saved_file_is_owner_only_by_default(tmp_path: Path) -> None:
    path = save_cache({"secret": 1}, "sales", "2024-01-15", str(tmp_path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_file_mode_option(tmp_path: Path) -> None:
    path = save_cache({"shared": 1}, "sales", "2024-01-15", str(tmp_path), file_mode=0o644)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_saved_file_is_standard_gzip(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": range(1000), "b": [f"s{i}" for i in range(1000)]})
    path = save_cache({"frame": frame, "n": 3}, "sales", "2024-01-15", str(tmp_path))
    result = subprocess.run(["gzip", "-t", path], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = pd.read_pickle(path)
    pd.testing.assert_frame_equal(loaded["frame"], frame)
    with gzip.open(path, "rb") as f:
        assert pickle.load(f)["n"] == 3


def test_signed_file_is_still_standard_gzip(tmp_path: Path) -> None:
    path = save_cache({"n": 3}, "sales", "2024-01-15", str(tmp_path), signing_key="k")
    assert subprocess.run(["gzip", "-t", path]).returncode == 0
    assert pd.read_pickle(path) == {"n": 3}
    assert read_cache("sales", "2024-01-15", str(tmp_path), signing_key="k") == {"n": 3}


def test_save_overwrites_atomically_and_leaves_no_temp_file(tmp_path: Path) -> None:
    save_cache({"v": 1}, "sales", "2024-01-15", str(tmp_path))
    before = os.stat(tmp_path / "sales_20240115.pkl.gz").st_ino
    save_cache({"v": 2}, "sales", "2024-01-15", str(tmp_path))
    # A new inode renamed over the old one: a reader holding the old file keeps a whole file.
    assert os.stat(tmp_path / "sales_20240115.pkl.gz").st_ino != before
    assert read_cache("sales", "2024-01-15", str(tmp_path)) == {"v": 2}
    assert sorted(os.listdir(tmp_path)) == ["sales_20240115.pkl.gz"]


class Unpicklable:
    def __reduce__(self) -> tuple[object, ...]:
        raise RuntimeError("cannot pickle this")


def test_failed_save_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    save_cache({"v": 1}, "sales", "2024-01-15", str(tmp_path))
    with pytest.raises(RuntimeError, match="cannot pickle this"):
        save_cache({"v": Unpicklable()}, "sales", "2024-01-15", str(tmp_path))
    assert os.listdir(tmp_path) == ["sales_20240115.pkl.gz"]
    assert read_cache("sales", "2024-01-15", str(tmp_path)) == {"v": 1}


@pytest.mark.parametrize("value", [threading.Lock(), lambda: 1, {"nested": [threading.Lock()]}],
                         ids=["lock", "lambda", "nested"])
def test_unpicklable_data_is_a_pickling_error_naming_type_and_file(tmp_path: Path, value: object) -> None:
    save_cache({"v": 1}, "sales", "2024-01-15", str(tmp_path))
    with pytest.raises(pickle.PicklingError,
                       match=rf"cannot pickle \S*{type(value).__qualname__} for sales_20240115\.pkl\.gz: "):
        save_cache(value, "sales", "2024-01-15", str(tmp_path))
    assert os.listdir(tmp_path) == ["sales_20240115.pkl.gz"]
    assert read_cache("sales", "2024-01-15", str(tmp_path)) == {"v": 1}


def test_save_into_a_file_instead_of_a_directory_names_it(tmp_path: Path) -> None:
    not_dir = tmp_path / "plain_file"
    not_dir.write_text("keep me")
    with pytest.raises(NotADirectoryError, match="plain_file"):
        save_cache({}, "sales", "2024-01-15", str(not_dir))
    assert not_dir.read_text() == "keep me"


def test_save_sweeps_old_temp_files_of_its_prefix_only(tmp_path: Path) -> None:
    old = make_temp(tmp_path, ".sales_20240110.pkl.gz.abc123.tmp", age_seconds=2 * 3600)
    fresh = make_temp(tmp_path, ".sales_20240111.pkl.gz.def456.tmp", age_seconds=60)
    other = make_temp(tmp_path, ".sales_eu_20240110.pkl.gz.ghi789.tmp", age_seconds=2 * 3600)
    assert get_latest_cache_filename("sales", str(tmp_path)) is None  # temps are never listed
    save_cache({"v": 1}, "sales", "2024-01-15", str(tmp_path))
    assert not old.exists()
    assert fresh.exists()  # may belong to a writer that is still running
    assert other.exists()  # another prefix's writer


def test_save_accepts_pathlike_directory(tmp_path: Path) -> None:
    path = save_cache(1, "sales", "2024-01-15", tmp_path)  # type: ignore[arg-type]
    assert path == str(tmp_path / "sales_20240115.pkl.gz")


def test_save_with_bad_level_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="level"):
        save_cache({}, "sales", "2024-01-15", str(tmp_path), level=9)
    assert os.listdir(tmp_path) == []


# --- read_cache, list_caches, prune -------------------------------------------------------


def test_read_cache_is_exact_no_fallback(tmp_path: Path) -> None:
    save_cache({"v": 1}, "sales", "2024-01-14", str(tmp_path))
    with pytest.raises(FileNotFoundError):
        read_cache("sales", "2024-01-15", str(tmp_path))
    (tmp_path / "sales_20240113.pkl.gz").write_bytes(b"not gzip")
    with pytest.raises(CorruptCacheError, match="sales_20240113"):
        read_cache("sales", "2024-01-13", str(tmp_path))


def test_list_caches(tmp_path: Path) -> None:
    save_cache({"v": 1}, "b", "2024-01-02", str(tmp_path))
    save_cache({"v": 1}, "a", "2024-01-03", str(tmp_path))
    save_cache({"v": 1}, "a", "2024-01-01", str(tmp_path))
    touch(tmp_path, "a_latest.pkl.gz", "a_20241301.pkl.gz", ".a_20240101.pkl.gz.x.tmp")
    files = list_caches(str(tmp_path))
    assert [(c.prefix, c.date) for c in files] == [
        ("a", dt.date(2024, 1, 1)),
        ("a", dt.date(2024, 1, 3)),
        ("b", dt.date(2024, 1, 2)),
    ]
    assert all(isinstance(c, CacheFile) and c.size == os.path.getsize(c.path) for c in files)
    assert [c.date for c in list_caches(str(tmp_path), "b")] == [dt.date(2024, 1, 2)]


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    for day in range(1, 6):
        save_cache({"d": day}, "p", dt.date(2024, 1, day), str(tmp_path))
    save_cache({}, "p_eu", "2024-01-01", str(tmp_path))
    stale_temp = make_temp(tmp_path, ".p_20240106.pkl.gz.zz.tmp", age_seconds=7200)
    d = str(tmp_path)
    would = prune("p", 2, d, dry_run=True)
    assert sorted(would) == sorted(
        [str(tmp_path / f"p_2024010{i}.pkl.gz") for i in (1, 2, 3)] + [str(stale_temp)]
    )
    assert len(os.listdir(tmp_path)) == 7  # dry run deleted nothing
    removed = prune("p", 2, d)
    assert sorted(removed) == sorted(would)
    assert sorted(os.listdir(tmp_path)) == ["p_20240104.pkl.gz", "p_20240105.pkl.gz", "p_eu_20240101.pkl.gz"]
    assert prune("p", 2, d) == []


@pytest.mark.parametrize(("keep", "error"), [
    (-1, ValueError), (0, ValueError), (1.5, TypeError), ("2", TypeError), (True, TypeError),
    (None, TypeError),
])
def test_prune_bad_keep_names_it(keep: object, error: type[Exception], tmp_path: Path) -> None:
    save_cache({}, "p", "2024-01-01", str(tmp_path))
    with pytest.raises(error, match=repr(keep)):
        prune("p", keep, str(tmp_path))  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == ["p_20240101.pkl.gz"]


@pytest.mark.parametrize("signing_key", [None, "k"])
def test_write_cache_reports_its_size_and_cache_exists_sees_it(tmp_path: Path,
                                                                signing_key: str | None) -> None:
    from cache_utils import CacheFile, cache_exists, write_cache

    written = write_cache({"v": list(range(1000))}, "w", "2024-01-02", str(tmp_path), signing_key=signing_key)
    path = tmp_path / "w_20240102.pkl.gz"
    assert written == CacheFile("w", dt.date(2024, 1, 2), str(path), path.stat().st_size)
    assert cache_exists("w", "2024-01-02", str(tmp_path))
    assert not cache_exists("w", "2024-01-03", str(tmp_path))
    os.mkfifo(tmp_path / "w_20240103.pkl.gz")  # only files count
    assert not cache_exists("w", "2024-01-03", str(tmp_path))
