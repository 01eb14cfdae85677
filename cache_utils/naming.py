"""Cache file names: `<prefix>_<YYYYMMDD>.pkl.gz`, prefix validation, date parsing, and picking
cache and temp file names out of a directory listing."""

from __future__ import annotations

import datetime as dt
import os
import re
import unicodedata
from collections.abc import Iterable

SUFFIX = ".pkl.gz"
TEMP_SUFFIX = ".tmp"  # a writer's temp file: `.<file name>.<8 random>.tmp`
DATE_FORMAT = "%Y%m%d"
_DATE_DIGITS = 8
_FORBIDDEN = frozenset("/\\*?[]\0")
NAME_MAX = 255  # bytes in a file name on ext4, xfs, btrfs, APFS, NTFS (UTF-16 units)
# The longest prefix whose temp file, `.<prefix>_<YYYYMMDD>.pkl.gz.XXXXXXXX.tmp`, fits in NAME_MAX.
MAX_PREFIX_BYTES = NAME_MAX - len("._YYYYMMDD.pkl.gz.XXXXXXXX.tmp")

DateLike = dt.date | dt.datetime | str | None
_DEFAULT_A = dt.datetime(2001, 1, 1)
_DEFAULT_B = dt.datetime(2002, 2, 2)


def validate_prefix(prefix: object) -> str:
    """Return `prefix` in Unicode NFC form if it is a usable cache prefix, else raise
    TypeError/ValueError naming it.

    Every function that takes a prefix normalizes it to NFC, the form macOS, most keyboards and
    the web produce: "café" typed as one code point or as "e" and a combining accent (NFD) names
    the same files, whichever spelling wrote or reads them.

    Args:
        prefix: The value to check.

    Returns:
        The prefix, NFC-normalized.

    Raises:
        TypeError: `prefix` is not a str.
        ValueError: It is empty, too long for a file name, holds a lone surrogate (no file name
            can), or holds a path separator, a glob character, NUL, '..' or a leading '.'.
    """
    if not isinstance(prefix, str):
        raise TypeError(f"cache prefix must be a str, got {type(prefix).__name__}: {prefix!r}")
    if not prefix:
        raise ValueError("cache prefix must not be empty")
    prefix = unicodedata.normalize("NFC", prefix)
    try:
        # surrogateescape: a name read from a directory in an undecodable encoding round-trips.
        size = len(prefix.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError as e:
        raise ValueError(
            f"invalid cache prefix {prefix!r}: {prefix[e.start]!r} at position {e.start} is a lone "
            f"surrogate, which no file name can hold (a str decoded wrongly, or cut inside a UTF-16 "
            f"pair?): pass the text it stands for"
        ) from e
    if size > MAX_PREFIX_BYTES:
        raise ValueError(
            f"cache prefix {prefix[:40]!r}... is {size} bytes long: at most {MAX_PREFIX_BYTES} fit, "
            f"since its temp file name '.<prefix>_<YYYYMMDD>.pkl.gz.<8 random>.tmp' must stay within "
            f"the {NAME_MAX}-byte file name limit"
        )
    bad = sorted(_FORBIDDEN.intersection(prefix))
    if bad or ".." in prefix or prefix.startswith(".") or os.sep in prefix:
        what = f"characters {''.join(bad)!r} are" if bad else "'..' or a leading '.' is"
        raise ValueError(
            f"invalid cache prefix {prefix!r}: {what} not allowed (no path separators, "
            f"glob characters * ? [ ], NUL, '..' or leading '.')"
        )
    return prefix


def to_date(the_date: DateLike = None, tz: dt.tzinfo | None = None) -> dt.date:
    """Turn a date, datetime, pandas Timestamp or date string into a `date`; None means today in `tz`."""
    if the_date is None:
        return dt.datetime.now(tz).date()
    if type(the_date).__name__ == "NaTType":  # pandas.NaT passes for a datetime but has no date
        raise ValueError(f"invalid date {the_date!r}: not a time (NaT) does not name a day")
    if isinstance(the_date, dt.datetime):  # includes pandas.Timestamp
        if tz is not None and the_date.tzinfo is not None:
            the_date = the_date.astimezone(tz)
        return the_date.date()
    if isinstance(the_date, dt.date):
        return the_date
    if isinstance(the_date, str):
        return _parse_date_string(the_date)
    if type(the_date).__name__ == "datetime64":  # numpy scalar, without importing numpy
        return _parse_date_string(str(the_date)[:10])
    raise TypeError(
        f"the_date must be a date, datetime, pandas.Timestamp, date string or None, "
        f"got {type(the_date).__name__}: {the_date!r}"
    )


def _parse_date_string(text: str) -> dt.date:
    stripped = text.strip()
    if "\0" in stripped or ".." in stripped or "\\" in stripped:  # dateutil would skip them
        raise ValueError(f"could not parse date {text!r}: it holds NUL, '..' or a backslash")
    if len(stripped) == _DATE_DIGITS and stripped.isdigit():
        try:
            return dt.datetime.strptime(stripped, DATE_FORMAT).date()
        except ValueError as e:
            raise ValueError(f"invalid date {text!r}: {e}") from e
    from dateutil import parser

    try:
        # Parsed against two different defaults: a part taken from the default (a year, month or
        # day the text does not give, as in "2024-01", "Jan" or "09:00") shows up as a difference.
        first: dt.date = parser.parse(stripped, default=_DEFAULT_A).date()
        second = parser.parse(stripped, default=_DEFAULT_B).date()
    except (ValueError, OverflowError, TypeError) as e:
        raise ValueError(
            f"could not parse date {text!r}: use a date, datetime or a string such as "
            f"'2024-01-15', '20240115' or '15 Jan 2024'"
        ) from e
    if first != second:
        raise ValueError(
            f"date {text!r} does not name a day (year, month and day): use e.g. '2024-01-15'"
        )
    if f"{first.year:04d}" not in stripped:  # '15 Jan 60', '240115': the century would be a guess
        raise ValueError(f"date {text!r} has no four-digit year: use e.g. '2024-01-15' or '20240115'")
    return first


def date_stamp(the_date: DateLike = None, tz: dt.tzinfo | None = None) -> str:
    """The `YYYYMMDD` stamp of a date-like value."""
    day = to_date(the_date, tz)
    # strftime("%Y") does not pad years before 1000 on glibc ("50101"): such a file would never be listed.
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def file_name(prefix: str, stamp: str) -> str:
    """Base name of a cache file: `<prefix>_<stamp>.pkl.gz`."""
    return f"{prefix}_{stamp}{SUFFIX}"


def join(directory: str, name: str) -> str:
    """Join a directory (local path or URL) and a file name."""
    if not directory:
        return name
    if "://" in directory:
        return directory.rstrip("/") + "/" + name
    return os.path.join(directory, name)


def cache_filename(
    prefix: str,
    the_date: DateLike = None,
    keep_date_as_string: bool = False,
    directory: str = "data",
) -> str:
    """Return `{directory}/{prefix}_{YYYYMMDD}.pkl.gz` for a date (today when None).

    Args:
        prefix: File name prefix.
        the_date: Day of the file (date, datetime or date string); None means today, local time.
        keep_date_as_string: Put a str `the_date` in the name as given (e.g. a glob `*`), unparsed.
        directory: Local directory or URL; "" gives the bare file name.
    """
    prefix = validate_prefix(prefix)
    directory = os.fspath(directory)
    if keep_date_as_string and isinstance(the_date, str):
        if "/" in the_date or "\\" in the_date or "\0" in the_date:
            raise ValueError(f"invalid date pattern {the_date!r}: no path separators allowed")
        stamp = the_date
    else:
        stamp = date_stamp(the_date)
    return join(directory, file_name(prefix, stamp))


def parse_file_name(name: str, prefix: str | None = None) -> tuple[str, dt.date] | None:
    """Split `<prefix>_<YYYYMMDD>.pkl.gz` into (prefix, date); None for any other name.

    Args:
        name: A base file name (no directory).
        prefix: Accept only this prefix; None accepts any.
    """
    if not name.endswith(SUFFIX):
        return None
    stem = name[: -len(SUFFIX)]
    if prefix is not None and (
        len(stem) != len(prefix) + 1 + _DATE_DIGITS or not stem.startswith(prefix)
    ):
        return None
    head, sep, stamp = stem.rpartition("_")
    if not sep or not head or len(stamp) != _DATE_DIGITS or not stamp.isdigit():
        return None
    if prefix is not None and head != prefix:
        return None
    day = stamp_to_date(stamp)
    return None if day is None else (head, day)


def stamp_to_date(stamp: str) -> dt.date | None:
    """Date of an 8-digit stamp, or None when it is not a real calendar date."""
    if not stamp.isascii():  # str.isdigit accepts non-ASCII digits
        return None
    try:
        return dt.date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8]))
    except ValueError:
        return None


def matching_stamps(names: Iterable[str], prefix: str, on_or_before: str | None = None) -> list[str]:
    """Stamps of the names that are exactly `<prefix>_<YYYYMMDD>.pkl.gz` for a real date, newest first."""
    names = list(names)
    joined = "\0".join(names)
    if joined.count("\0") > max(len(names) - 1, 0):  # a name holding a NUL is no cache name: drop it
        joined = "\0".join(n for n in names if "\0" not in n)
    # One regex pass in C instead of a Python loop per name (bench_io times listing a large directory).
    pattern = "\0" + re.escape(prefix) + "_" + _STAMP_RE + re.escape(SUFFIX) + "(?=\0)"
    found = re.findall(pattern, "\0" + joined + "\0")
    if on_or_before is not None:
        found = [s for s in found if s <= on_or_before]
    found.sort(reverse=True)
    return found


# A real calendar date as YYYYMMDD: any day but 29 February in years 0001-9999, or 29 February
# in a leap year (divisible by 4, and not by 100 unless by 400).
_STAMP_RE = (
    "((?!0000)(?:[0-9]{4}(?:(?:0[1-9]|1[0-2])(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])(?:29|30)"
    "|(?:0[13578]|1[02])31)|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
    "0229))"
)


def is_temp_name(name: str, prefix: str | None = None) -> bool:
    """Whether `name` is a temp file left by a store's `write_atomic` (for `prefix`, when given)."""
    if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
        return False
    if prefix is None:
        return SUFFIX + "." in name
    head = "." + prefix + "_"
    stamp = name[len(head) : len(head) + 8]
    return (
        name.startswith(head)
        and stamp.isdigit()
        and name[len(head) + 8 :].startswith(SUFFIX + ".")
    )
