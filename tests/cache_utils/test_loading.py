"""load_cache and load_latest_cache: fallback, corrupt files, callbacks, zones and DST."""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import os
import pickle
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from dateutil import tz as dateutil_tz
from freezegun import freeze_time

from cache_utils import (
    DEFAULT_RETRY_INTERVAL,
    CacheNotFoundError,
    at_time,
    load_cache,
    load_latest_cache,
    parse_cb_time,
    save_cache,
)

UTC = dt.UTC
NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def local_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Naive-time tests run with an explicit local zone, restored afterwards."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def save_days(directory: Path, prefix: str, *days: str) -> None:
    for day in days:
        save_cache({"day": day}, prefix, day, str(directory))


# --- today's file, fallback, next_callback (naive local time) -----------------------------


def test_todays_file_loads_and_next_callback_is_tomorrow(tmp_path: Path, local_tz: None) -> None:
    save_days(tmp_path, "sales", "2024-01-14", "2024-01-15")
    with freeze_time("2024-01-15 10:00:00"):
        data, when = load_cache("sales", dt.time(9, 0), str(tmp_path))
    assert data == {"day": "2024-01-15"}
    assert when == dt.datetime(2024, 1, 16, 9, 0)
    assert when.tzinfo is None  # naive in, naive out


def test_todays_file_before_cb_time_still_gives_tomorrow(tmp_path: Path, local_tz: None) -> None:
    save_days(tmp_path, "sales", "2024-01-15")
    with freeze_time("2024-01-15 06:00:00"):
        _, when = load_cache("sales", "09:00", str(tmp_path))
    assert when == dt.datetime(2024, 1, 16, 9, 0)


def test_missing_today_falls_back_and_calls_back_at_cb_time(tmp_path: Path, local_tz: None) -> None:
    save_days(tmp_path, "sales", "2024-01-10", "2024-01-12")
    with freeze_time("2024-01-15 08:00:00"):
        data, when = load_cache("sales", dt.time(9, 30), str(tmp_path))
    assert data == {"day": "2024-01-12"}
    assert when == dt.datetime(2024, 1, 15, 9, 30)


def test_missing_today_after_cb_time_retries_after_interval(tmp_path: Path, local_tz: None) -> None:
    save_days(tmp_path, "sales", "2024-01-14")
    with freeze_time("2024-01-15 10:00:00"):
        data, when = load_cache("sales", "09:00", str(tmp_path))
        assert data == {"day": "2024-01-14"}
        assert when == dt.datetime(2024, 1, 15, 10, 0) + DEFAULT_RETRY_INTERVAL
        assert dt.timedelta(minutes=15) == DEFAULT_RETRY_INTERVAL
        _, when = load_cache("sales", "09:00", str(tmp_path), retry_interval=dt.timedelta(minutes=2))
        assert when == dt.datetime(2024, 1, 15, 10, 2)
        _, when = load_cache("sales", "09:00", str(tmp_path), retry_interval=30)
        assert when == dt.datetime(2024, 1, 15, 10, 0, 30)
        # exactly at cb_time counts as "passed"
    with freeze_time("2024-01-15 09:00:00"):
        _, when = load_cache("sales", "09:00", str(tmp_path))
        assert when == dt.datetime(2024, 1, 15, 9, 15)


@pytest.mark.parametrize("interval", [0, -5, dt.timedelta(0), "15m", None])
def test_bad_retry_interval_names_it(interval: object, tmp_path: Path) -> None:
    save_days(tmp_path, "sales", "2024-01-14")
    with pytest.raises((ValueError, TypeError), match="retry_interval"):
        load_cache("sales", "09:00", str(tmp_path), retry_interval=interval)  # type: ignore[arg-type]


def test_future_dated_files_are_never_used(tmp_path: Path, local_tz: None) -> None:
    save_days(tmp_path, "sales", "2024-01-13", "2024-01-16", "2025-01-01")
    with freeze_time("2024-01-15 08:00:00"):
        data, when = load_cache("sales", "09:00", str(tmp_path))
        assert data == {"day": "2024-01-13"}
        assert when == dt.datetime(2024, 1, 15, 9, 0)
        hit, _ = load_latest_cache("sales", directory=str(tmp_path))
        assert hit is not None and hit.date == dt.date(2024, 1, 13)


def test_only_future_files_means_no_data(tmp_path: Path) -> None:
    save_days(tmp_path, "sales", "2024-01-16")
    with freeze_time("2024-01-15 08:00:00"), pytest.raises(CacheNotFoundError):
        load_cache("sales", "09:00", str(tmp_path))


def test_other_prefixes_are_not_fallbacks(tmp_path: Path) -> None:
    save_days(tmp_path, "sales_eu", "2024-01-14")
    with freeze_time("2024-01-15 08:00:00"):
        data, _ = load_cache("sales", "09:00", str(tmp_path), allow_no_data=True)
    assert data == {}


# --- no data ------------------------------------------------------------------------------


def test_no_data_allowed_gives_empty_dict(tmp_path: Path, local_tz: None) -> None:
    with freeze_time("2024-01-15 08:00:00"):
        data, when = load_cache("sales", "09:00", str(tmp_path / "missing"), allow_no_data=True)
        assert data == {}
        assert when == dt.datetime(2024, 1, 15, 9, 0)
    with freeze_time("2024-01-15 12:00:00"):
        data, when = load_cache("sales", "09:00", str(tmp_path), allow_no_data=True)
        assert (data, when) == ({}, dt.datetime(2024, 1, 15, 12, 15))
    assert not (tmp_path / "missing").exists()  # loading never creates directories


def test_no_data_raises_cache_not_found_naming_prefix_and_directory(tmp_path: Path) -> None:
    with freeze_time("2024-01-15 08:00:00"), pytest.raises(CacheNotFoundError) as info:
        load_cache("sales", "09:00", str(tmp_path))
    assert isinstance(info.value, RuntimeError)  # code that caught the seed's RuntimeError still works
    assert "'sales'" in str(info.value) and str(tmp_path) in str(info.value)
    assert info.value.prefix == "sales" and info.value.directory == str(tmp_path)


def test_cache_not_found_is_caught_as_runtime_error(tmp_path: Path) -> None:
    with freeze_time("2024-01-15 08:00:00"):
        try:
            load_cache("sales", "09:00", str(tmp_path))
        except RuntimeError as e:
            caught = e
    assert type(caught) is CacheNotFoundError


def test_directory_that_is_a_file_names_it(tmp_path: Path) -> None:
    not_dir = tmp_path / "plain_file"
    not_dir.write_text("x")
    with freeze_time("2024-01-15 08:00:00"), pytest.raises(NotADirectoryError, match="plain_file"):
        load_cache("sales", "09:00", str(not_dir), allow_no_data=True)


# --- corrupt files ------------------------------------------------------------------------


def _good_bytes(tmp_path: Path) -> bytes:
    path = save_cache({"day": "good"}, "scratch", "2024-01-01", str(tmp_path / "scratch"))
    return Path(path).read_bytes()


CORRUPTIONS = {
    "zero_bytes": lambda good: b"",
    "truncated": lambda good: good[: len(good) // 2],
    "missing_trailer": lambda good: good[:-4],
    "trailing_garbage": lambda good: good + b"garbage",
    "not_gzip": lambda good: b"this is not a gzip file at all",
    "bad_pickle": lambda good: gzip.compress(b"not a pickle"),
    "truncated_pickle": lambda good: gzip.compress(pickle.dumps({"a": list(range(50))})[:-3]),
    "two_pickles": lambda good: gzip.compress(pickle.dumps(1) + pickle.dumps(2)),
    "bad_crc": lambda good: good[:-8] + bytes([good[-8] ^ 0xFF]) + good[-7:],
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_newest_file_is_skipped_with_a_warning(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, local_tz: None
) -> None:
    directory = tmp_path / "d"
    save_days(directory, "sales", "2024-01-13")
    bad = directory / "sales_20240115.pkl.gz"
    bad.write_bytes(CORRUPTIONS[kind](_good_bytes(tmp_path)))
    caplog.set_level(logging.WARNING)
    with freeze_time("2024-01-15 08:00:00"):
        data, when = load_cache("sales", "09:00", str(directory))
    assert data == {"day": "2024-01-13"}
    assert when == dt.datetime(2024, 1, 15, 9, 0)  # not fresh: look again at cb_time
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("skipping" in m and str(bad) in m for m in warnings), warnings
    assert any(m.startswith("ALERT [cache_utils:sales]") and str(bad) in m for m in warnings), warnings
    assert bad.exists()  # never deleted: it is evidence


def test_corrupt_older_fallback_is_skipped_too(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    save_days(tmp_path, "sales", "2024-01-10")
    (tmp_path / "sales_20240112.pkl.gz").write_bytes(b"")
    (tmp_path / "sales_20240114.pkl.gz").write_bytes(b"junk")
    with freeze_time("2024-01-15 08:00:00"):
        hit, skipped = load_latest_cache("sales", directory=str(tmp_path))
    assert hit is not None and hit.data == {"day": "2024-01-10"}
    assert [Path(s.path).name for s in skipped] == ["sales_20240114.pkl.gz", "sales_20240112.pkl.gz"]
    assert hit.skipped == skipped and hit.age_days("2024-01-15") == 5


def test_only_corrupt_files_raise_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "sales_20240114.pkl.gz").write_bytes(b"")
    with freeze_time("2024-01-15 08:00:00"):
        with pytest.raises(CacheNotFoundError, match="sales_20240114.pkl.gz"):
            load_cache("sales", "09:00", str(tmp_path))
        assert load_cache("sales", "09:00", str(tmp_path), allow_no_data=True)[0] == {}


def test_directory_named_like_todays_file_is_skipped(tmp_path: Path) -> None:
    save_days(tmp_path, "sales", "2024-01-14")
    (tmp_path / "sales_20240115.pkl.gz").mkdir()
    with freeze_time("2024-01-15 08:00:00"):
        data, _ = load_cache("sales", "09:00", str(tmp_path))
    assert data == {"day": "2024-01-14"}


def test_reads_files_written_by_pandas_to_pickle(tmp_path: Path) -> None:
    frame = pd.DataFrame({"sales": [100, 200, 300]})
    frame.to_pickle(tmp_path / "sales_20240115.pkl.gz")  # the seed's way: gzip level 9
    pd.to_pickle({"frame": frame}, tmp_path / "multi_20240115.pkl.gz")
    with freeze_time("2024-01-15 10:00:00"):
        data, when = load_cache("sales", "09:00", str(tmp_path))
        multi, _ = load_cache("multi", "09:00", str(tmp_path))
    pd.testing.assert_frame_equal(data, frame)
    pd.testing.assert_frame_equal(multi["frame"], frame)
    assert when == dt.datetime(2024, 1, 16, 9, 0)


def _pickle_of_vanished_class() -> bytes:
    module = types.ModuleType("cache_utils_test_gone")
    exec("class Thing:\n    def __init__(self):\n        self.v = 1\n", module.__dict__)
    sys.modules[module.__name__] = module
    try:
        return gzip.compress(pickle.dumps({"thing": module.Thing()}))
    finally:
        del sys.modules[module.__name__]


def test_vanished_class_is_corrupt_even_with_pandas_compat(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    save_days(tmp_path, "sales", "2024-01-14")
    (tmp_path / "sales_20240115.pkl.gz").write_bytes(_pickle_of_vanished_class())
    caplog.set_level(logging.WARNING)
    with freeze_time("2024-01-15 08:00:00"):
        data, _ = load_cache("sales", "09:00", str(tmp_path))
        hit, skipped = load_latest_cache("sales", directory=str(tmp_path))
    assert data == {"day": "2024-01-14"}
    assert "cache_utils_test_gone" in skipped[0].reason
    assert "pandas compatibility reader" in skipped[0].reason
    assert "cache_utils_test_gone" in caplog.text


def test_vanished_class_without_pandas_is_corrupt(tmp_path: Path) -> None:
    save_days(tmp_path, "sales", "2024-01-14")
    (tmp_path / "sales_20240115.pkl.gz").write_bytes(_pickle_of_vanished_class())
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["pandas"] = None  # pandas not installed: no compatibility reader
        from cache_utils import load_latest_cache
        hit, skipped = load_latest_cache("sales", "2024-01-15", {str(tmp_path)!r})
        assert hit.data == {{"day": "2024-01-14"}}, hit
        assert "cache_utils_test_gone" in skipped[0].reason, skipped
        assert "pandas compatibility" not in skipped[0].reason, skipped
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --- no directory listing for today's file --------------------------------------------------


def test_present_todays_file_needs_no_directory_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_days(tmp_path, "sales", "2024-01-14", "2024-01-15")

    def no_listing(*args: object, **kwargs: object) -> None:
        raise AssertionError("load_cache listed the directory")

    monkeypatch.setattr(os, "scandir", no_listing)
    monkeypatch.setattr(os, "listdir", no_listing)
    with freeze_time("2024-01-15 10:00:00"):
        data, _ = load_cache("sales", "09:00", str(tmp_path))
        assert data == {"day": "2024-01-15"}
        # The fallback path does list (proves the patch is in effect).
        with pytest.raises(AssertionError, match="listed"):
            load_cache("other", "09:00", str(tmp_path), allow_no_data=True)


# --- cb_time parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.time(9, 0), dt.time(9, 0)),
        ("09:00", dt.time(9, 0)),
        ("9:05", dt.time(9, 5)),
        ("17:30:15", dt.time(17, 30, 15)),
        (" 08:00 ", dt.time(8, 0)),
        (dt.time(9, 0, tzinfo=NY), dt.time(9, 0, tzinfo=NY)),
    ],
)
def test_parse_cb_time(value: object, expected: dt.time) -> None:
    assert parse_cb_time(value) == expected


@pytest.mark.parametrize(
    "value", ["9am", "25:00", "12:60", "12:00:61", "", "noon", 9, 9.5, None, dt.datetime(2024, 1, 1, 9)],
    ids=repr,
)
def test_bad_cb_time_says_what_was_expected(value: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError if isinstance(value, str) else TypeError) as info:
        load_cache("sales", value, str(tmp_path), allow_no_data=True)  # type: ignore[arg-type]
    message = str(info.value)
    assert repr(value) in message
    if not isinstance(value, str) or not value[:1].isdigit():
        assert "HH:MM" in message and "datetime.time" in message


def test_string_cb_time_with_seconds(tmp_path: Path, local_tz: None) -> None:
    save_days(tmp_path, "sales", "2024-01-15")
    with freeze_time("2024-01-15 10:00:00"):
        _, when = load_cache("sales", "09:15:30", str(tmp_path))
    assert when == dt.datetime(2024, 1, 16, 9, 15, 30)


# --- time zones -----------------------------------------------------------------------------


def test_aware_cb_time_gives_aware_results_in_its_zone(tmp_path: Path) -> None:
    save_days(tmp_path, "sales", "2024-01-15", "2024-01-16")
    # 03:00 UTC on the 16th is still the 15th in New York: the 16th's file is in the future there.
    with freeze_time(dt.datetime(2024, 1, 16, 3, 0, tzinfo=UTC)):
        data, when = load_cache("sales", dt.time(9, 0, tzinfo=NY), str(tmp_path))
    assert data == {"day": "2024-01-15"}
    assert when == dt.datetime(2024, 1, 16, 9, 0, tzinfo=NY)
    assert when.utcoffset() == dt.timedelta(hours=-5)


@pytest.mark.parametrize("tz", ["America/New_York", NY])
def test_tz_keyword(tz: object, tmp_path: Path) -> None:
    save_days(tmp_path, "sales", "2024-01-14")
    with freeze_time(dt.datetime(2024, 1, 15, 13, 0, tzinfo=UTC)):  # 08:00 in New York
        data, when = load_cache("sales", "09:00", str(tmp_path), tz=tz)
    assert data == {"day": "2024-01-14"}
    assert when == dt.datetime(2024, 1, 15, 9, 0, tzinfo=NY)
    assert when.tzinfo is not None and when.utcoffset() == dt.timedelta(hours=-5)


def test_tz_keyword_in_tokyo_sees_tomorrow(tmp_path: Path) -> None:
    save_days(tmp_path, "sales", "2024-01-15", "2024-01-16")
    with freeze_time(dt.datetime(2024, 1, 15, 20, 0, tzinfo=UTC)):  # 05:00 on the 16th in Tokyo
        data, when = load_cache("sales", "09:00", str(tmp_path), tz="Asia/Tokyo")
    assert data == {"day": "2024-01-16"}
    assert when == dt.datetime(2024, 1, 17, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", 5])
def test_bad_tz_names_it(tz: object, tmp_path: Path) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        load_cache("sales", "09:00", str(tmp_path), allow_no_data=True, tz=tz)  # type: ignore[arg-type]
    assert repr(tz) in str(info.value)


def test_retry_interval_is_elapsed_time_across_fall_back(tmp_path: Path) -> None:
    save_days(tmp_path, "sales", "2024-11-02")
    # 01:55 EDT on 3 Nov 2024; 15 minutes later it is 01:10 EST.
    with freeze_time(dt.datetime(2024, 11, 3, 5, 55, tzinfo=UTC)):
        _, when = load_cache("sales", "00:30", str(tmp_path), tz=NY)
    assert when.astimezone(UTC) == dt.datetime(2024, 11, 3, 6, 10, tzinfo=UTC)
    assert when.utcoffset() == dt.timedelta(hours=-5)


# --- daylight saving: Dagster's rule ----------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "cb", "expected_utc"),
    [
        # spring forward: the time does not exist -> end of the gap
        (NY, dt.date(2024, 3, 10), dt.time(2, 30), dt.datetime(2024, 3, 10, 7, 0, tzinfo=UTC)),
        (LONDON, dt.date(2024, 3, 31), dt.time(1, 30), dt.datetime(2024, 3, 31, 1, 0, tzinfo=UTC)),
        # fall back: the time happens twice -> the later instance
        (NY, dt.date(2024, 11, 3), dt.time(1, 30), dt.datetime(2024, 11, 3, 6, 30, tzinfo=UTC)),
        (LONDON, dt.date(2024, 10, 27), dt.time(1, 30), dt.datetime(2024, 10, 27, 1, 30, tzinfo=UTC)),
        # ordinary times on those days
        (NY, dt.date(2024, 3, 10), dt.time(9, 0), dt.datetime(2024, 3, 10, 13, 0, tzinfo=UTC)),
        (LONDON, dt.date(2024, 10, 27), dt.time(9, 0), dt.datetime(2024, 10, 27, 9, 0, tzinfo=UTC)),
    ],
)
def test_at_time_follows_dagster_dst_rule(
    zone: ZoneInfo, day: dt.date, cb: dt.time, expected_utc: dt.datetime
) -> None:
    result = at_time(day, cb, zone)
    assert result.astimezone(UTC) == expected_utc
    assert result.tzinfo is zone


def test_spring_forward_gap_in_load_cache(tmp_path: Path) -> None:
    save_days(tmp_path, "sales", "2024-03-09")
    # Today's present on the 9th: tomorrow's 02:30 does not exist in New York -> 03:00 EDT.
    with freeze_time(dt.datetime(2024, 3, 9, 17, 0, tzinfo=UTC)):
        _, when = load_cache("sales", "02:30", str(tmp_path), tz=NY)
    assert (when.hour, when.minute, when.utcoffset()) == (3, 0, dt.timedelta(hours=-4))
    # On the 10th at 01:00 EST with only yesterday's file: call back at 03:00 EDT.
    with freeze_time(dt.datetime(2024, 3, 10, 6, 0, tzinfo=UTC)):
        data, when = load_cache("sales", dt.time(2, 30), str(tmp_path), tz="America/New_York")
    assert data == {"day": "2024-03-09"}
    assert when.astimezone(UTC) == dt.datetime(2024, 3, 10, 7, 0, tzinfo=UTC)


def test_spring_forward_gap_london(tmp_path: Path) -> None:
    save_days(tmp_path, "sales", "2024-03-30")
    with freeze_time(dt.datetime(2024, 3, 30, 12, 0, tzinfo=UTC)):
        _, when = load_cache("sales", dt.time(1, 30, tzinfo=LONDON), str(tmp_path))
    assert (when.hour, when.minute, when.utcoffset()) == (2, 0, dt.timedelta(hours=1))


def test_fall_back_repeated_time_is_the_later_instance(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    save_days(tmp_path, "sales", "2024-11-02")
    caplog.set_level(logging.WARNING)
    with freeze_time(dt.datetime(2024, 11, 2, 16, 0, tzinfo=UTC)):
        _, when = load_cache("sales", "01:30", str(tmp_path), tz=NY)
    assert when.astimezone(UTC) == dt.datetime(2024, 11, 3, 6, 30, tzinfo=UTC)  # 01:30 EST
    # At 01:45 EDT (the first 01:45) the later 01:30 is still ahead: call back then.
    with freeze_time(dt.datetime(2024, 11, 3, 5, 45, tzinfo=UTC)):
        data, when = load_cache("sales", "01:30", str(tmp_path), tz=NY)
    assert data == {"day": "2024-11-02"}
    assert when.astimezone(UTC) == dt.datetime(2024, 11, 3, 6, 30, tzinfo=UTC)
    assert "ALERT" not in caplog.text  # cb_time has not passed yet: yesterday's data is fine
    # At 01:45 EST (the second 01:45) it has passed: stale, retry in 15 minutes of real time.
    with freeze_time(dt.datetime(2024, 11, 3, 6, 45, tzinfo=UTC)):
        _, when = load_cache("sales", "01:30", str(tmp_path), tz=NY)
    assert when.astimezone(UTC) == dt.datetime(2024, 11, 3, 7, 0, tzinfo=UTC)
    assert "stale cache data" in caplog.text


def test_fall_back_london(tmp_path: Path) -> None:
    save_days(tmp_path, "sales", "2024-10-26")
    with freeze_time(dt.datetime(2024, 10, 26, 12, 0, tzinfo=UTC)):
        _, when = load_cache("sales", "01:30", str(tmp_path), tz=LONDON)
    assert when.astimezone(UTC) == dt.datetime(2024, 10, 27, 1, 30, tzinfo=UTC)
    assert when.utcoffset() == dt.timedelta(0)


# --- load_latest_cache ------------------------------------------------------------------------


def test_load_latest_cache_on_or_before(tmp_path: Path) -> None:
    save_days(tmp_path, "sales", "2024-01-05", "2024-01-10", "2024-03-01")
    hit, skipped = load_latest_cache("sales", "2024-01-10", str(tmp_path))
    assert hit is not None and hit.date == dt.date(2024, 1, 10) and skipped == ()
    hit, _ = load_latest_cache("sales", dt.date(2024, 2, 1), str(tmp_path))
    assert hit is not None and hit.data == {"day": "2024-01-10"}  # never March's data
    hit, _ = load_latest_cache("sales", "2024-01-01", str(tmp_path))
    assert hit is None


@pytest.mark.parametrize("make_zone", [ZoneInfo, dateutil_tz.gettz], ids=["zoneinfo", "dateutil"])
def test_dst_rule_with_other_tzinfo_implementations(make_zone: object) -> None:
    ny = make_zone("America/New_York")  # type: ignore[operator]
    gap = at_time(dt.date(2024, 3, 10), dt.time(2, 30), ny)
    assert gap.astimezone(UTC) == dt.datetime(2024, 3, 10, 7, 0, tzinfo=UTC)  # 03:00 EDT
    twice = at_time(dt.date(2024, 11, 3), dt.time(1, 30), ny)
    assert twice.astimezone(UTC) == dt.datetime(2024, 11, 3, 6, 30, tzinfo=UTC)  # the later 01:30
    howe = make_zone("Australia/Lord_Howe")  # type: ignore[operator]
    half_hour_gap = at_time(dt.date(2024, 10, 6), dt.time(2, 15), howe)  # 02:00 -> 02:30
    assert half_hour_gap.astimezone(UTC) == dt.datetime(2024, 10, 5, 15, 30, tzinfo=UTC)
