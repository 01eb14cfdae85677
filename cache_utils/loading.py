"""`load_cache`: today's file, else the newest good earlier one, and when to look again; and
`check_refresh`, the decision a refresh job takes from the same rule. The loading functions are
one-line wrappers over `CacheDir` (`cache_utils.cachedir`), which holds the logic."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .alerts import Alerter
from .cachedir import CacheDir, StorageOptions
from .format.signing import SigningKeys
from .naming import DateLike, validate_prefix
from .records import CacheHit, Skipped
from .timing import (
    DEFAULT_RETRY_INTERVAL,
    TimeType,
    ZoneLike,
    as_now,
    as_zoned,
    at_time,
    next_callback,
    now_in,
    parse_cb_time,
    parse_retry_interval,
    reached,
    zone_of,
)

__all__ = ["CacheHit", "RefreshCheck", "Skipped", "check_refresh", "load_cache", "load_latest_cache",
           "read_cache_hit"]


def load_latest_cache(
    prefix: str,
    on_or_before: DateLike = None,
    directory: str = "data",
    *,
    signing_key: SigningKeys | None = None,
    storage_options: StorageOptions | None = None,
) -> tuple[CacheHit | None, tuple[Skipped, ...]]:
    """Load the file for `on_or_before` (today when None), else the newest good older one.

    Corrupt files, and local files this user may not read, are skipped and reported; a file that
    vanishes between listing and reading is a miss. A directory that can be listed but not
    searched raises PermissionError naming it.

    Args:
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        on_or_before: Day wanted (date, datetime or date string); None means today, local time.
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        signing_key: Key to verify signatures with, or a list of keys any of which may have signed
            the file; None uses `CACHE_UTILS_SIGNING_KEY` (and `..._FALLBACKS`) when set.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.

    Returns:
        (the `CacheHit`, or None when no file loads; every file skipped).
    """
    return CacheDir(directory, storage_options=storage_options, signing_key=signing_key).latest(
        prefix, on_or_before)


def read_cache_hit(
    prefix: str,
    the_date: DateLike = None,
    directory: str = "data",
    *,
    signing_key: SigningKeys | None = None,
    storage_options: StorageOptions | None = None,
) -> CacheHit:
    """`read_cache` (one file exactly, no fallback) that returns a `CacheHit`: the data with the
    file's date, path and recorded owner, all from one opening of the file (on an object store, no
    request beyond what `read_cache` makes).

    Args:
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        the_date: Day of the file (date, datetime or date string); None means today, local time.
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        signing_key: Key to verify signatures with; None uses `CACHE_UTILS_SIGNING_KEY` when set.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.

    Raises:
        FileNotFoundError: The file does not exist.
        CorruptCacheError: The file cannot be trusted (bad signature, owner record, gzip stream or
            pickle).
    """
    return CacheDir(directory, storage_options=storage_options, signing_key=signing_key).read_hit(
        prefix, the_date)


def load_cache(
    prefix: str,
    cb_time: TimeType,
    directory: str = "data",
    allow_no_data: bool = False,
    alias: str | None = None,
    *,
    tz: ZoneLike = None,
    retry_interval: dt.timedelta | float = DEFAULT_RETRY_INTERVAL,
    signing_key: SigningKeys | None = None,
    storage_options: StorageOptions | None = None,
    alerter: Alerter | None = None,
) -> tuple[Any, dt.datetime]:
    """Load today's cache, else the newest earlier one; return (data, next_callback).

    next_callback is tomorrow at cb_time when today's file loaded; otherwise today at cb_time
    while that is ahead, else now + retry_interval (default 15 minutes). Times are naive local
    unless cb_time is aware or `tz` is given. With no file at all: ({}, next_callback) when
    allow_no_data, else CacheNotFoundError. Missing, stale and corrupt data raise alerts under
    `alias` (default "cache_utils:<prefix>"); today's data loading again closes the alert.

    Args:
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        cb_time: Daily time today's file is due: a `datetime.time` or "HH:MM" / "HH:MM:SS".
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        allow_no_data: Return `({}, next_callback)` instead of raising when no file loads.
        alias: Alert alias; None means `"cache_utils:<prefix>"`.
        tz: Zone of today and of the times returned (tzinfo or IANA name); None: cb_time's own
            zone, else naive local time.
        retry_interval: Wait between looks once cb_time has passed: a timedelta or seconds.
        signing_key: Key to verify signatures with, or a list of keys any of which may have signed
            the file; None uses `CACHE_UTILS_SIGNING_KEY` (and `..._FALLBACKS`) when set.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.
        alerter: Alert backend; None uses the configured or environment one (`get_alerter`);
            `NullAlerter()` sends none.

    Returns:
        (data, next_callback): the data loaded and when to call again.

    Raises:
        CacheNotFoundError: No file loads and `allow_no_data` is False.
    """
    return CacheDir(directory, storage_options=storage_options, signing_key=signing_key).load(
        prefix, cb_time, allow_no_data, alias, tz=tz, retry_interval=retry_interval, alerter=alerter)


@dataclass(frozen=True)
class RefreshCheck:
    """One look at a daily cache by a refresh job: whether to refresh now and when to look next.

    Attributes:
        now: When the look was taken, in the check's zone.
        day: The day checked (`now`'s date).
        due: Whether a refresh should run now.
        next_check: When to look next; None when the earlier plan stands (a retry is not yet due).
        reason: One line saying why, for logs and skip reasons.
    """

    now: dt.datetime
    day: dt.date
    due: bool
    next_check: dt.datetime | None
    reason: str


def check_refresh(
    prefix: str,
    cb_time: TimeType,
    directory: str = "data",
    *,
    tz: ZoneLike = None,
    not_before: dt.datetime | None = None,
    retry_interval: dt.timedelta | float = DEFAULT_RETRY_INTERVAL,
    storage_options: StorageOptions | None = None,
    now: dt.datetime | None = None,
) -> RefreshCheck:
    """The refresh decision `load_cache`'s next callback implies, for a sensor polling `prefix`.

    Once today's file exists nothing is due until tomorrow's cb_time. Before today's cb_time
    nothing is due. After it, a refresh is due at most every `retry_interval`: pass the previous
    `next_check` back as `not_before`. Days and times are in `tz` (cb_time's own zone when None).

    Args:
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        cb_time: Daily time today's file is due: a `datetime.time` or "HH:MM" / "HH:MM:SS".
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        tz: Zone of days and times (tzinfo or IANA name); None: cb_time's own zone, else naive local.
        not_before: The previous check's `next_check`: no retry is due before it. None: no limit.
            A naive value is a wall time in the zone; an aware one is converted to it (a cursor
            stored before the zone setting changed still works).
        retry_interval: Wait between looks once cb_time has passed: a timedelta or seconds.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.
        now: The current time (for tests); None means now in the zone. Like `load_cache`'s own
            clock, it must be aware when a zone is in force (`tz=` or an aware cb_time; it is
            converted to that zone, so the day is the zone's) and naive local time otherwise.

    Raises:
        ValueError: `now` is naive while a zone is in force, or aware while none is (the message
            says what to pass); a bad prefix, cb_time, zone or retry_interval.
        TypeError: `now` is not a datetime; a value of the wrong type.
    """
    prefix = validate_prefix(prefix)
    cb = parse_cb_time(cb_time)
    zone = zone_of(cb, tz)
    interval = parse_retry_interval(retry_interval)
    # fold set right in a repeated hour, and the zone's day, as load_cache has them
    now = now_in(zone) if now is None else as_now(now, zone, "check_refresh")
    if not_before is not None:
        not_before = as_zoned(not_before, zone)
    day = now.date()
    if CacheDir(directory, storage_options=storage_options).exists(prefix, day):
        tomorrow = next_callback(cb, zone, True, now=now, retry_interval=interval)
        return RefreshCheck(now, day, False, tomorrow, f"{prefix} cache for {day.isoformat()} exists")
    # Instants, not wall times: in a repeated DST hour 01:45 EDT comes before 01:30 EST.
    if not_before is not None and not reached(now, not_before):
        return RefreshCheck(now, day, False, None, f"{prefix}: next check at {not_before.isoformat()}")
    # Before cb_time this is today's cb_time; after it, now + retry_interval.
    when = next_callback(cb, zone, False, now=now, retry_interval=interval)
    if not reached(now, at_time(day, cb, zone)):
        return RefreshCheck(now, day, False, when, f"{prefix}: not due before {when.isoformat()}")
    return RefreshCheck(now, day, True, when, f"{prefix} cache for {day.isoformat()} is missing")
