"""Clocks at the edges: `check_refresh(now=...)` naive or aware against the zone in force, and the
end of the calendar (9999-12-31) in `load_cache`, `check_refresh` and `next_callback`
(issue 18, items 12 and 15)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd  # noqa: F401 - imported before freezegun runs (pandas issue 64023)
import pytest
from freezegun import freeze_time

from cache_utils import check_refresh, load_cache, next_callback, parse_cb_time, save_cache

UTC = dt.UTC
NY = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
END = dt.datetime.max  # 9999-12-31 23:59:59.999999


# --- now= against the zone ----------------------------------------------------------------------


def test_a_naive_now_with_a_zone_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"check_refresh: now=2024-01-15T09:00:00 is naive but days and "
                       r"times are in zone America/New_York: pass an aware now, e\.g\. "
                       r"datetime\.now\(ZoneInfo\('America/New_York'\)\)"):
        check_refresh("sales", "08:00", str(tmp_path), tz="America/New_York", now=dt.datetime(2024, 1, 15, 9))
    aware_cb = dt.time(8, tzinfo=NY)  # cb_time's own zone is in force just the same
    with pytest.raises(ValueError, match="now=2024-01-15T09:00:00 is naive"):
        check_refresh("sales", aware_cb, str(tmp_path), now=dt.datetime(2024, 1, 15, 9))


def test_an_aware_now_without_a_zone_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"check_refresh: now=2024-01-15T09:00:00\+00:00 is aware but no "
                       r"zone is set, so days and times are naive local time: pass tz= \(e\.g\. tz='UTC'\)"):
        check_refresh("sales", "08:00", str(tmp_path), now=dt.datetime(2024, 1, 15, 9, tzinfo=UTC))


def test_now_must_be_a_datetime(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="check_refresh: now must be a datetime, got date"):
        check_refresh("sales", "08:00", str(tmp_path), now=dt.date(2024, 1, 15))  # type: ignore[arg-type]


def test_an_aware_now_in_another_zone_is_read_in_the_zone_in_force(tmp_path: Path) -> None:
    """03:00 UTC on the 16th is still the 15th in New York, whose file is there: as load_cache at
    that instant would see it, nothing is due."""
    save_cache(1, "sales", "2024-01-15", str(tmp_path))
    check = check_refresh("sales", "08:00", str(tmp_path), tz="America/New_York",
                          now=dt.datetime(2024, 1, 16, 3, tzinfo=UTC))
    assert (check.day, check.due) == (dt.date(2024, 1, 15), False)
    assert check.now == dt.datetime(2024, 1, 15, 22, tzinfo=NY)
    with freeze_time("2024-01-16 03:00:00"):
        assert load_cache("sales", "08:00", str(tmp_path), tz="America/New_York")[1] == check.next_check


@pytest.mark.parametrize(
    "cursor", [dt.datetime(2024, 1, 15, 9, 15), dt.datetime(2024, 1, 15, 14, 15, tzinfo=UTC)]
)
def test_a_cursor_stored_naive_or_in_another_zone_still_works(cursor: dt.datetime, tmp_path: Path) -> None:
    """A sensor's cursor (`not_before`) written before its zone setting changed: read as a wall time
    in the zone (naive) or converted to it (aware), never a comparison error."""
    now = dt.datetime(2024, 1, 15, 9, 10, tzinfo=NY)
    early = check_refresh("sales", "08:00", str(tmp_path), tz=NY, now=now, not_before=cursor)
    assert (early.due, early.next_check) == (False, None)
    later = check_refresh("sales", "08:00", str(tmp_path), tz=NY, now=now + dt.timedelta(minutes=5),
                          not_before=cursor)
    assert later.due


# --- the end of the calendar ---------------------------------------------------------------------


@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York", "Asia/Tokyo"])
def test_load_cache_on_the_last_day_there_is(tz: str | None, tmp_path: Path) -> None:
    zone = None if tz is None else ZoneInfo(tz)
    end = END if zone is None else END.replace(tzinfo=zone)
    with freeze_time("9999-12-31 12:00:00"):
        save_cache({"last": True}, "sales", "9999-12-31", str(tmp_path))
        data, when = load_cache("sales", "08:00", str(tmp_path), tz=tz)
        assert data == {"last": True}
        assert when == end  # tomorrow at 08:00 does not exist: the calendar's last instant
        check = check_refresh("sales", "08:00", str(tmp_path), tz=tz)
        assert (check.day, check.due, check.next_check) == (dt.date(9999, 12, 31), False, end)


@pytest.mark.parametrize("tz", ["UTC", None])
def test_a_retry_that_would_fall_after_the_last_day(tz: str | None, tmp_path: Path) -> None:
    """23:50 on 9999-12-31, today's file missing after cb_time: a retry 15 minutes later would be
    past the end, so the next look is the calendar's end."""
    zone = None if tz is None else ZoneInfo(tz)
    save_cache({"older": True}, "sales", "9999-12-30", str(tmp_path))
    with freeze_time("9999-12-31 23:50:00"):
        data, when = load_cache("sales", "08:00", str(tmp_path), tz=tz)
        assert data == {"older": True}
        assert when == (END if zone is None else END.replace(tzinfo=zone))
        check = check_refresh("sales", "08:00", str(tmp_path), tz=tz)
        assert check.due and check.next_check == when


def test_a_due_time_whose_utc_instant_is_past_the_year_9999(tmp_path: Path) -> None:
    """23:30 in New York on 9999-12-31 is 04:30 UTC in the year 10000: it exists as a wall time and
    is returned as such; after it, the next retry is the calendar's end."""
    save_cache({"older": True}, "sales", "9999-12-30", str(tmp_path))
    with freeze_time("9999-12-31 12:00:00"):  # 07:00 in New York
        data, when = load_cache("sales", "23:30", str(tmp_path), tz=NY)
        assert data == {"older": True}
        assert when == dt.datetime(9999, 12, 31, 23, 30, tzinfo=NY)
        assert check_refresh("sales", "23:30", str(tmp_path), tz=NY).next_check == when
    late = dt.datetime(9999, 12, 31, 23, 50, tzinfo=NY)
    assert next_callback(parse_cb_time("23:30"), NY, False, now=late) == END.replace(tzinfo=NY)
    check = check_refresh("sales", "23:30", str(tmp_path), tz=NY, now=late)
    assert check.due and check.next_check == END.replace(tzinfo=NY)
