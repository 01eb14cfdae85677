"""Callback times: parsing `cb_time`, time zones, and Dagster's daylight-saving rule."""

from __future__ import annotations

import datetime as dt
import re

from ._numbers import is_number

TimeType = dt.time | str
ZoneLike = dt.tzinfo | str | None

DEFAULT_RETRY_INTERVAL = dt.timedelta(minutes=15)
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$", re.ASCII)
_UTC = dt.UTC
_ZERO = dt.timedelta(0)


def parse_cb_time(cb_time: object) -> dt.time:
    """Accept a `datetime.time` (naive or aware) or an "HH:MM" / "HH:MM:SS" string.

    Args:
        cb_time: The value to parse.

    Raises:
        ValueError: A string that is not a valid "HH:MM" / "HH:MM:SS" time.
        TypeError: Neither a `datetime.time` nor a string.
    """
    if isinstance(cb_time, dt.time):
        return cb_time
    if isinstance(cb_time, str):
        match = _TIME_RE.match(cb_time.strip())
        if match:
            hour, minute, second = (int(g) if g else 0 for g in match.groups())
            try:
                return dt.time(hour, minute, second)
            except ValueError as e:
                raise ValueError(f"invalid cb_time {cb_time!r}: {e}") from e
    expected = f"invalid cb_time {cb_time!r}: expected a datetime.time or a string 'HH:MM' or 'HH:MM:SS'"
    if isinstance(cb_time, str):
        raise ValueError(expected)
    raise TypeError(f"{expected}, got {type(cb_time).__name__}")


def resolve_zone(tz: ZoneLike) -> dt.tzinfo | None:
    """A tzinfo from a tzinfo or an IANA zone name such as "Europe/London"; None stays None.

    Args:
        tz: A tzinfo, an IANA zone name, or None.

    Raises:
        ValueError: An unknown zone name.
        TypeError: Neither a tzinfo, a str nor None.
    """
    if tz is None or isinstance(tz, dt.tzinfo):
        return tz
    if isinstance(tz, str):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(
                f"unknown time zone {tz!r}: use an IANA name such as 'Europe/London'"
            ) from e
    raise TypeError(f"time zone must be a tzinfo or an IANA name, got {type(tz).__name__}: {tz!r}")


def zone_of(cb_time: dt.time, tz: ZoneLike = None) -> dt.tzinfo | None:
    """The zone results are expressed in: `tz` if given, else cb_time's own tzinfo (or naive)."""
    return resolve_zone(tz) if tz is not None else cb_time.tzinfo


def now_in(zone: dt.tzinfo | None) -> dt.datetime:
    """The current time, aware in `zone`, or naive local time when zone is None."""
    return dt.datetime.now() if zone is None else in_zone(dt.datetime.now(_UTC), zone)


def as_now(now: object, zone: dt.tzinfo | None, caller: str) -> dt.datetime:
    """A caller's `now` in the form the zone calls for: aware and expressed in `zone` when one is
    set (the same day and wall times `load_cache` would see), naive local time when none is.

    Args:
        now: The datetime given as `now`.
        zone: The zone in force (`tz=`, else cb_time's zone); None means naive local time.
        caller: The function name, for the error message.

    Raises:
        TypeError: `now` is not a datetime.
        ValueError: `now` is naive while a zone is set, or aware while none is.
    """
    if not isinstance(now, dt.datetime):
        raise TypeError(f"{caller}: now must be a datetime, got {type(now).__name__}: {now!r}")
    if zone is None and now.tzinfo is not None:
        raise ValueError(
            f"{caller}: now={now.isoformat()} is aware but no zone is set, so days and times are "
            f"naive local time: pass tz= (e.g. tz='UTC') or an aware cb_time, or a naive now"
        )
    if zone is not None and now.tzinfo is None:
        raise ValueError(
            f"{caller}: now={now.isoformat()} is naive but days and times are in zone {zone}: pass an "
            f"aware now, e.g. datetime.now(ZoneInfo('{zone}'))"
        )
    return now if zone is None or now.tzinfo is zone else in_zone(now, zone)


def as_zoned(value: dt.datetime, zone: dt.tzinfo | None) -> dt.datetime:
    """A stored time (a sensor's cursor) in the form of the zone in force, even if the zone
    changed since it was stored: a naive value read as a wall time in `zone`, an aware one
    converted to `zone`, or to naive local time when there is no zone."""
    if zone is None:
        return value if value.tzinfo is None else value.astimezone().replace(tzinfo=None)
    if value.tzinfo is None:
        return value.replace(tzinfo=zone)
    return value if value.tzinfo is zone else in_zone(value, zone)


def in_zone(instant: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """An aware instant expressed in `zone`, with `fold` set right in a repeated hour."""
    # Same as instant.astimezone(zone), which freezegun's FakeDatetime (used by every test
    # here and by callers' tests) overrides and loses `fold`, shifting fall-back times by an hour.
    return zone.fromutc(instant.astimezone(_UTC).replace(tzinfo=zone))


def at_time(day: dt.date, cb_time: dt.time, zone: dt.tzinfo | None) -> dt.datetime:
    """`day` at `cb_time` in `zone`, resolving DST like Dagster's schedules.

    A wall time skipped by a spring-forward change becomes the end of the gap (02:30 in
    New York becomes 03:00 EDT); one repeated by a fall-back change is the later instance.

    Args:
        day: The day.
        cb_time: The wall time; its own tzinfo is ignored.
        zone: The zone; None gives a naive datetime.
    """
    naive = dt.datetime.combine(day, cb_time.replace(tzinfo=None))
    if zone is None:
        return naive
    later = naive.replace(tzinfo=zone, fold=1)
    try:
        round_trip = in_zone(later, zone)
    except OverflowError:  # 9999-12-31 late in a zone west of UTC: no UTC instant, and no DST change
        return later
    if round_trip.replace(tzinfo=None) == naive:
        return round_trip
    return _end_of_gap(naive, zone)


def _end_of_gap(naive: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The instant the clocks jumped forward over `naive` (a wall time that does not exist)."""
    # Read the missing wall time with the offsets in force a day before and a day after: the two
    # instants bracket the transition. (Not fold=0/1: dateutil zones give both the same offset.)
    day = dt.timedelta(days=1)
    lo, hi = sorted(
        (naive - ((naive + shift).replace(tzinfo=zone).utcoffset() or dt.timedelta(0))).replace(
            tzinfo=_UTC
        )
        for shift in (-day, day)
    )
    before = lo.astimezone(zone).utcoffset()
    while hi - lo > dt.timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return in_zone(hi.replace(microsecond=0), zone)


def next_callback(
    cb_time: dt.time,
    zone: dt.tzinfo | None,
    have_today: bool,
    now: dt.datetime | None = None,
    retry_interval: dt.timedelta = DEFAULT_RETRY_INTERVAL,
) -> dt.datetime:
    """When to look again: tomorrow at cb_time once today's data is in, else today at cb_time
    while that is ahead, else `now + retry_interval`.

    The calendar ends on 9999-12-31: a time that would fall after it is `CALENDAR_END`
    (9999-12-31 23:59:59.999999, in `zone` when one is given), so a caller never gets an
    OverflowError and simply waits past the last day there is.

    Args:
        cb_time: Daily time the data is due (wall time in `zone`).
        zone: Zone of the result; None means naive local time.
        have_today: Whether today's data is already in.
        now: The current time; None means now in `zone`.
        retry_interval: Wait once cb_time has passed (elapsed time, not wall-clock).
    """
    now = now or now_in(zone)
    today = now.date()
    try:
        if have_today:
            return at_time(today + dt.timedelta(days=1), cb_time, zone)
        due = at_time(today, cb_time, zone)
        if not reached(now, due):
            return due
        if zone is None:
            return now + retry_interval
        return in_zone(now.astimezone(_UTC) + retry_interval, zone)  # elapsed, not wall-clock, time
    except OverflowError:
        return calendar_end(zone)


CALENDAR_END = dt.datetime.max  # 9999-12-31 23:59:59.999999: Python's datetimes end there


def calendar_end(zone: dt.tzinfo | None) -> dt.datetime:
    """The last wall time there is (`CALENDAR_END`), in `zone`; naive when zone is None."""
    return CALENDAR_END if zone is None else CALENDAR_END.replace(tzinfo=zone)


def reached(now: dt.datetime, when: dt.datetime) -> bool:
    """Whether `now` is at or after `when`, as instants."""
    # Aware datetimes sharing a tzinfo compare by wall time and ignore `fold`, so in a
    # repeated hour 01:45 EDT would count as after 01:30 EST: compare the offsets too. (Not by
    # converting both to UTC: 9999-12-31 evening west of UTC has no UTC datetime.)
    if now.tzinfo is None or when.tzinfo is None:
        return now >= when
    wall = now.replace(tzinfo=None) - when.replace(tzinfo=None)
    return wall >= (now.utcoffset() or _ZERO) - (when.utcoffset() or _ZERO)


def parse_retry_interval(value: object) -> dt.timedelta:
    """A positive timedelta from a timedelta or a number of seconds (TypeError, ValueError).

    Args:
        value: A timedelta or a number of seconds.

    Raises:
        TypeError: Neither a timedelta nor a number (bools refused).
        ValueError: Zero or negative.
    """
    if isinstance(value, dt.timedelta):
        interval = value
    elif is_number(value):
        interval = dt.timedelta(seconds=value)
    else:
        raise TypeError(f"retry_interval must be a timedelta or seconds, got {value!r}")
    if interval <= dt.timedelta(0):
        raise ValueError(f"retry_interval must be positive, got {value!r}")
    return interval
