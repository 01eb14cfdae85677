"""What the file functions and `CacheDir` return: `CacheFile` (one file), `CacheHit` (data found,
with where it came from) and `Skipped` (a file passed over while looking for data)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from .naming import DateLike, to_date


@dataclass(frozen=True)
class CacheFile:
    """One cache file: its prefix, date, path and size in bytes, and its content fingerprint and
    owner when known (`write_cache`, `verify_cache`; `cache_fingerprint` reads the fingerprint only,
    `cache_owner` the owner only; `list_caches` does not read files).

    Attributes:
        prefix: File name prefix.
        date: Day in the file name.
        path: Full path or URL of the file.
        size: Size of the file in bytes.
        fingerprint: CRC32 and length of the pickle as 16 hex digits; None when not read.
            Not compared by `==`.
        owner: Who wrote the file (`write_cache(..., owner=...)`); None when the file records no
            owner or it was not read. Not compared by `==`.
    """

    prefix: str
    date: dt.date
    path: str
    size: int
    # Not compared: the same file found by list_caches (which reads no file) equals the one written.
    fingerprint: str | None = field(default=None, compare=False)
    owner: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Skipped:
    """A file passed over while looking for data: its path and why.

    Attributes:
        path: Path of the file skipped.
        reason: Why it was skipped (what made it untrustworthy, or unreadable).
        kind: "corrupt" (it cannot be trusted) or "unreadable" (this user may not read it).
    """

    path: str
    reason: str
    kind: str = "corrupt"  # or "unreadable": a local file this user may not read


@dataclass(frozen=True)
class CacheHit:
    """What `load_latest_cache` found: the data, its date and path, and what it skipped.

    Attributes:
        data: The unpickled data.
        date: Day of the file loaded.
        path: Path of the file loaded.
        skipped: Newer files passed over before it, newest first.
        owner: Who wrote the file, as recorded by `write_cache(..., owner=...)`; None when it
            records no owner.
    """

    data: Any
    date: dt.date
    path: str
    skipped: tuple[Skipped, ...] = ()
    owner: str | None = None

    def age_days(self, today: DateLike) -> int:
        """Days between this file's date and `today` (0 when fresh).

        Args:
            today: The reference day (date, datetime or date string); None means today, local time.
        """
        return (to_date(today) - self.date).days
