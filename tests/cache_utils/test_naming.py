"""cache_filename, parse_file_name and prefix/date validation."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from freezegun import freeze_time

from cache_utils import (
    cache_exists,
    cache_filename,
    check_refresh,
    get_latest_cache_filename,
    list_caches,
    load_cache,
    prune,
    read_cache,
    save_cache,
)
from cache_utils.naming import parse_file_name, to_date, validate_prefix

DAY = "data/sales_20240115.pkl.gz"


@pytest.fixture
def local_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with an explicit local zone far from UTC, restored afterwards."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    "the_date",
    [
        dt.date(2024, 1, 15),
        dt.datetime(2024, 1, 15, 23, 59, 59),
        dt.datetime(2024, 1, 15, 0, 0, tzinfo=ZoneInfo("Asia/Tokyo")),
        dt.datetime(2024, 1, 15, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        pd.Timestamp("2024-01-15 10:00"),
        pd.Timestamp("2024-01-15 10:00", tz="Europe/London"),
        "2024-01-15",
        "20240115",
        "15 Jan 2024",
        "January 15, 2024",
    ],
    ids=repr,
)
def test_cache_filename_accepts_every_date_type(the_date: object) -> None:
    # An aware value keeps its own calendar date: it is not moved to another zone.
    assert cache_filename("sales", the_date) == DAY


def test_cache_filename_none_is_today(local_tz: None) -> None:
    with freeze_time("2024-01-15 12:00:00"):
        assert cache_filename("sales") == DAY
        assert cache_filename("sales", None) == DAY
    with freeze_time("2024-12-31 23:59:59"):
        assert cache_filename("sales") == "data/sales_20241231.pkl.gz"


def test_cache_filename_positional_signature_of_the_seed() -> None:
    assert cache_filename("sales", dt.date(2024, 1, 10), False, "caches") == os.path.join(
        "caches", "sales_20240110.pkl.gz"
    )


def test_keep_date_as_string_gives_a_glob_pattern() -> None:
    assert cache_filename("sales", "*", keep_date_as_string=True) == "data/sales_*.pkl.gz"
    assert cache_filename("sales", "2024*", True, "") == "sales_2024*.pkl.gz"
    # Without the flag the string is parsed as a date, so '*' is an error naming it.
    with pytest.raises(ValueError, match=r"'\*'"):
        cache_filename("sales", "*")
    # A non-string date is still formatted even with the flag.
    assert cache_filename("sales", dt.date(2024, 1, 15), keep_date_as_string=True) == DAY


def test_keep_date_as_string_refuses_path_separators() -> None:
    with pytest.raises(ValueError, match="x/y"):
        cache_filename("sales", "x/y", keep_date_as_string=True)


def test_directory_default_and_empty() -> None:
    assert cache_filename("sales", "2024-01-15") == DAY
    assert cache_filename("sales", "2024-01-15", directory="") == "sales_20240115.pkl.gz"
    assert cache_filename("sales", "2024-01-15", directory="/tmp/c") == "/tmp/c/sales_20240115.pkl.gz"


def test_directory_may_be_a_pathlike(tmp_path: os.PathLike[str]) -> None:
    assert cache_filename("sales", "2024-01-15", directory=tmp_path) == os.path.join(
        tmp_path, "sales_20240115.pkl.gz"
    )


BAD_PREFIXES = ["", "a/b", "..", "../etc", "a..b", "a*", "a?", "a[0]", "a]", "a\0b", ".hidden", "a\\b"]


@pytest.mark.parametrize("prefix", BAD_PREFIXES, ids=repr)
def test_bad_prefix_is_a_value_error_naming_it(prefix: str, tmp_path: os.PathLike[str]) -> None:
    shown = repr(prefix) if prefix else "empty"
    for call in (
        lambda: cache_filename(prefix, "2024-01-15"),
        lambda: validate_prefix(prefix),
        lambda: get_latest_cache_filename(prefix, str(tmp_path)),
        lambda: save_cache({}, prefix, "2024-01-15", str(tmp_path)),
        lambda: load_cache(prefix, "09:00", str(tmp_path), allow_no_data=True),
    ):
        with pytest.raises(ValueError) as info:
            call()
        assert shown in str(info.value)
    assert os.listdir(tmp_path) == []  # nothing half-written


@pytest.mark.parametrize("prefix", [None, 3, b"sales", ["sales"]], ids=repr)
def test_non_string_prefix_is_a_type_error_naming_it(prefix: object) -> None:
    with pytest.raises(TypeError, match=type(prefix).__name__):
        cache_filename(prefix, "2024-01-15")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a str"):
        save_cache({}, prefix, "2024-01-15")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["not a date", "20241301", "2024-02-30", "", "32 Jan 2024"])
def test_unparseable_date_names_the_value(text: str, tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(ValueError) as info:
        cache_filename("sales", text)
    assert repr(text) in str(info.value)
    with pytest.raises(ValueError, match=repr(text).replace("[", r"\[")):
        save_cache({}, "sales", text, str(tmp_path))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("value", [3.5, object(), [2024, 1, 15]], ids=lambda v: type(v).__name__)
def test_wrong_date_type_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match=type(value).__name__):
        cache_filename("sales", value)  # type: ignore[arg-type]


def test_unicode_and_underscored_prefixes_are_fine() -> None:
    assert cache_filename("ventes_été", "2024-01-15") == "data/ventes_été_20240115.pkl.gz"
    assert cache_filename("sales_eu", "2024-01-15") == "data/sales_eu_20240115.pkl.gz"


@pytest.mark.parametrize(
    ("name", "prefix", "expected"),
    [
        ("sales_20240115.pkl.gz", None, ("sales", dt.date(2024, 1, 15))),
        ("sales_eu_20240115.pkl.gz", None, ("sales_eu", dt.date(2024, 1, 15))),
        ("sales_20240115.pkl.gz", "sales", ("sales", dt.date(2024, 1, 15))),
        ("sales_eu_20240115.pkl.gz", "sales", None),
        ("sales_20241301.pkl.gz", None, None),
        ("sales_20240230.pkl.gz", "sales", None),
        ("sales_latest.pkl.gz", None, None),
        ("sales_2024011.pkl.gz", None, None),
        ("sales_202401150.pkl.gz", None, None),
        ("sales_20240115.pkl", None, None),
        ("sales_２０２４０１１５.pkl.gz", None, None),  # non-ASCII digits
        (".sales_20240115.pkl.gz.abc123.tmp", None, None),
        ("_20240115.pkl.gz", None, None),
    ],
)
def test_parse_file_name(name: str, prefix: str | None, expected: object) -> None:
    assert parse_file_name(name, prefix) == expected


# --- Unicode: lone surrogates and normalization (issue 18.15) ------------------------------------

LONE = "sales\ud800eu"  # a high surrogate with no pair: not encodable, not even with surrogateescape


@pytest.mark.parametrize(
    "call",
    [
        lambda d: save_cache(1, LONE, "2024-01-15", d),
        lambda d: load_cache(LONE, "08:00", d, allow_no_data=True),
        lambda d: read_cache(LONE, "2024-01-15", d),
        lambda d: cache_exists(LONE, "2024-01-15", d),
        lambda d: list_caches(d, LONE),
        lambda d: prune(LONE, 1, d),
        lambda d: cache_filename(LONE, "2024-01-15", directory=d),
        lambda d: check_refresh(LONE, "08:00", d),
    ],
)
def test_a_lone_surrogate_prefix_is_a_clear_value_error(call, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"invalid cache prefix 'sales\\ud800eu': '\\ud800' at position 5 "
                       r"is a lone surrogate, which no file name can hold"):
        call(str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_an_undecodable_byte_prefix_still_works(tmp_path: Path) -> None:
    """A name read from a non-UTF-8 directory ('\\udcff' stands for the byte 0xff) stays usable."""
    prefix = "sales\udcff"
    save_cache({"x": 1}, prefix, "2024-01-15", str(tmp_path))
    assert read_cache(prefix, "2024-01-15", str(tmp_path)) == {"x": 1}


NFC = "caf\u00e9_ventes"  # é as one code point
NFD = "cafe\u0301_ventes"  # e and a combining acute accent: the same text to a reader


def test_nfc_and_nfd_spellings_name_the_same_files(tmp_path: Path) -> None:
    d = str(tmp_path)
    assert validate_prefix(NFD) == NFC
    path = save_cache({"day": 14}, NFD, "2024-01-14", d)
    save_cache({"day": 15}, NFC, "2024-01-15", d)
    assert path == os.path.join(d, f"{NFC}_20240114.pkl.gz")  # written under the NFC name
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{NFC}_20240114.pkl.gz", f"{NFC}_20240115.pkl.gz"]
    today = os.path.join(d, f"{NFC}_20240115.pkl.gz")
    for spelling in (NFC, NFD):
        assert read_cache(spelling, "2024-01-14", d) == {"day": 14}
        assert cache_exists(spelling, "2024-01-15", d)
        assert [c.date for c in list_caches(d, spelling)] == [dt.date(2024, 1, 14), dt.date(2024, 1, 15)]
        assert cache_filename(spelling, "2024-01-15", directory=d) == today
        assert get_latest_cache_filename(spelling, d) == today
        with freeze_time("2024-01-15 09:00:00"):
            assert load_cache(spelling, "08:00", d)[0] == {"day": 15}
    with freeze_time("2024-01-15 09:00:00"):
        assert prune(NFD, 1, d) == [os.path.join(d, f"{NFC}_20240114.pkl.gz")]


def test_a_file_an_earlier_release_wrote_under_an_nfd_name_still_loads_by_that_spelling(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before normalization, save_cache(NFD) wrote an NFD-named file. Its callers, who still spell
    the prefix that way, keep loading it (with a warning saying to rename it); new saves go to NFC."""
    d = str(tmp_path)
    nfc_path = save_cache({"old": True}, NFC, "2024-01-14", d)
    legacy = os.path.join(d, f"{NFD}_20240114.pkl.gz")
    os.rename(nfc_path, legacy)  # as the earlier release named it
    with freeze_time("2024-01-15 09:00:00"):
        assert load_cache(NFD, "08:00", d)[0] == {"old": True}
    assert f"loaded {legacy}, written under a non-NFC spelling of prefix {NFC!r}" in caplog.text
    assert f"rename it to {nfc_path}" in caplog.text
    save_cache({"new": True}, NFD, "2024-01-15", d)
    with freeze_time("2024-01-15 09:00:00"):
        assert load_cache(NFD, "08:00", d)[0] == {"new": True}  # the NFC file wins once there


# --- a date must name a day: no part is taken from today (reliability round 2 and its red-team round)


@pytest.mark.parametrize("text", ["2024-01", "2024", "15", "Jan", "09:00", "15 Jan", "January 2024"])
def test_partial_date_strings_are_refused_naming_the_value(text: str) -> None:
    from cache_utils import cache_filename

    with freeze_time("2024-03-25 12:00:00"), pytest.raises(ValueError, match=f"'{text}' does not name a day"):
        cache_filename("p", text)


def test_nat_is_a_value_error_naming_it() -> None:
    from cache_utils import cache_filename

    with pytest.raises(ValueError, match="NaT"):
        cache_filename("p", pd.NaT)


def _parsed_in(year: int, text: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """to_date(text) in a process whose dateutil default parser was built in `year` (dateutil builds
    it at import, from time.localtime())."""
    from dateutil.parser import _parser

    with freeze_time(f"{year}-06-01 12:00:00"):
        fresh = _parser.parser()
    monkeypatch.setattr(_parser, "DEFAULTPARSER", fresh)
    try:
        return to_date(text)
    except ValueError as e:
        return e


@pytest.mark.parametrize("text", ["15 Jan 60", "01/15/60", "15.01.60"])
def test_two_digit_year_does_not_take_its_century_from_the_clock(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A date that does not name a day is a ValueError that names the value; no part of it is ever
    filled in from today. dateutil fills a two-digit year's century from the current year (a 100-year
    window around it), so the same string names 1960 in a process started in 2010 and 2060 in 2024:
    save_cache writes, and load_cache later misses, a file 100 years away."""
    old, new = _parsed_in(2010, text, monkeypatch), _parsed_in(2024, text, monkeypatch)
    if isinstance(old, ValueError) and isinstance(new, ValueError):
        assert text in str(new), f"the error for {text!r} does not name it: {new}"
        return
    assert old == new, (
        f"to_date({text!r}) is {old} when the process started in 2010 and {new} in 2024: the century "
        f"comes from the clock; refuse two-digit years with a ValueError naming the value"
    )


def test_six_digit_string_is_not_silently_read_as_day_month_year() -> None:
    """'240115' (a common YYMMDD stamp for 2024-01-15) is read by dateutil as 24 Jan 2015, with the
    century from the clock: a silent wrong day rather than a ValueError naming the value."""
    try:
        got = to_date("240115")
    except ValueError as e:
        assert "240115" in str(e), f"the error does not name the value: {e}"
        return
    assert got == pd.Timestamp("2024-01-15").date(), (
        f"to_date('240115') gave {got}: a 6-digit string is ambiguous (YYMMDD, DDMMYY) and its century "
        f"comes from the clock; refuse it with a ValueError naming the value"
    )


# --- the longest prefix (reliability round 2) ----------------------------------------------------------


def test_the_longest_prefix_whose_temp_name_fits_is_accepted_one_more_byte_refused(tmp_path: Path) -> None:
    from cache_utils.naming import MAX_PREFIX_BYTES

    fits = "p" * MAX_PREFIX_BYTES
    save_cache(1, fits, "2024-01-01", str(tmp_path))
    assert read_cache(fits, "2024-01-01", str(tmp_path)) == 1
    for too_long in ("p" * (MAX_PREFIX_BYTES + 1), "é" * 113):  # 226 bytes either way
        with pytest.raises(ValueError, match=rf"is 226 bytes long: at most {MAX_PREFIX_BYTES} fit"):
            save_cache(1, too_long, "2024-01-01", str(tmp_path))
    assert os.listdir(tmp_path) == [f"{fits}_20240101.pkl.gz"]
