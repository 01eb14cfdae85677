"""The file functions of the original API and its later additions: saving, finding, reading,
listing and pruning date-stamped cache files. Each one is a one-line wrapper over `CacheDir`
(`cache_utils.cachedir`), which holds the logic; their names, parameters and defaults stay as they
were. (`data_fingerprint`, which needs no directory, is the file format's: re-exported here.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from .cachedir import CacheDir, StorageOptions
from .format.serializer import DEFAULT_LEVEL
from .format.signing import SigningKeys
from .format.writer import data_fingerprint
from .naming import DateLike
from .records import CacheFile
from .stores import STALE_TEMP_SECONDS
from .timing import ZoneLike

__all__ = [
    "CacheFile",
    "StorageOptions",
    "cache_dates",
    "cache_exists",
    "cache_fingerprint",
    "cache_owner",
    "data_fingerprint",
    "get_latest_cache_filename",
    "list_caches",
    "prune",
    "read_cache",
    "save_cache",
    "verify_cache",
    "write_cache",
]


def save_cache(
    data: Any,
    prefix: str,
    the_date: DateLike = None,
    directory: str = "data",
    *,
    signing_key: SigningKeys | None = None,
    level: int = DEFAULT_LEVEL,
    file_mode: int | None = None,
    storage_options: StorageOptions | None = None,
) -> str:
    """Atomically write `data` as `<directory>/<prefix>_<YYYYMMDD>.pkl.gz`; return the path.

    Args:
        data: The value to save; anything picklable.
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        the_date: Day of the file (date, datetime or date string); None means today, local time.
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        signing_key: Key to sign the file with (a list of keys: the first signs); None uses
            `CACHE_UTILS_SIGNING_KEY`, else the file is unsigned.
        level: ISA-L gzip compression level, 0 (fastest) to 3.
        file_mode: Permission bits of a local file; None means 0o600 (owner only).
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.

    Returns:
        The path written.
    """
    return CacheDir(directory, storage_options=storage_options, signing_key=signing_key,
                    file_mode=file_mode).save(data, prefix, the_date, level=level)


def write_cache(
    data: Any,
    prefix: str,
    the_date: DateLike = None,
    directory: str = "data",
    *,
    signing_key: SigningKeys | None = None,
    level: int = DEFAULT_LEVEL,
    file_mode: int | None = None,
    storage_options: StorageOptions | None = None,
    owner: str | None = None,
) -> CacheFile:
    """`save_cache`, returning the `CacheFile` written (its path, date, size in bytes and content
    fingerprint).

    Args:
        data: The value to save; anything picklable.
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        the_date: Day of the file (date, datetime or date string); None means today, local time.
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        signing_key: Key to sign the file with (a list of keys: the first signs); None uses
            `CACHE_UTILS_SIGNING_KEY`, else the file is unsigned.
        level: ISA-L gzip compression level, 0 (fastest) to 3.
        file_mode: Permission bits of a local file; None means 0o600 (owner only).
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.
        owner: Who writes the file (free text, 1 to 1024 bytes of UTF-8, e.g. the Dagster asset
            and partition), recorded in the file's first gzip header and read back cheaply by
            `cache_owner`; signed with the file when it is signed. None: no owner, as files written
            by `save_cache` and by earlier versions.

    Returns:
        The `CacheFile` written, fingerprint and owner included.
    """
    return CacheDir(directory, storage_options=storage_options, signing_key=signing_key,
                    file_mode=file_mode).write(data, prefix, the_date, level=level, owner=owner)


def cache_exists(
    prefix: str,
    the_date: DateLike = None,
    directory: str = "data",
    *,
    storage_options: StorageOptions | None = None,
) -> bool:
    """Whether `<directory>/<prefix>_<YYYYMMDD>.pkl.gz` exists as a file (content not checked).

    Args:
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        the_date: Day of the file (date, datetime or date string); None means today, local time.
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.
    """
    return CacheDir(directory, storage_options=storage_options).exists(prefix, the_date)


def get_latest_cache_filename(
    prefix: str,
    directory: str = "",
    on_or_before: DateLike = None,
    *,
    storage_options: StorageOptions | None = None,
) -> str | None:
    """Path of the newest `<prefix>_<YYYYMMDD>.pkl.gz` (on or before a date, if given), or None.

    Args:
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        directory: Local directory or fsspec URL; "" is the current directory.
        on_or_before: Latest day to consider; None means no bound (later-dated files count too).
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.
    """
    return CacheDir(directory, storage_options=storage_options).latest_path(prefix, on_or_before)


def cache_dates(
    prefix: str,
    directory: str = "data",
    on_or_before: DateLike = None,
    *,
    storage_options: StorageOptions | None = None,
) -> list[dt.date]:
    """Dates that have a cache file for `prefix`, newest first.

    Args:
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        on_or_before: Latest day to list; None means no bound.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.
    """
    return CacheDir(directory, storage_options=storage_options).dates(prefix, on_or_before)


def read_cache(
    prefix: str,
    the_date: DateLike = None,
    directory: str = "data",
    *,
    signing_key: SigningKeys | None = None,
    storage_options: StorageOptions | None = None,
) -> Any:
    """Load one cache file exactly (no fallback).

    Args:
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        the_date: Day of the file (date, datetime or date string); None means today, local time.
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        signing_key: Key to verify signatures with, or a list of keys any of which may have signed
            the file; None uses `CACHE_UTILS_SIGNING_KEY` (and `..._FALLBACKS`) when set.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.

    Returns:
        The unpickled data.

    Raises:
        FileNotFoundError: The file does not exist.
        CorruptCacheError: The file cannot be trusted (bad signature, gzip stream or pickle).
        PermissionError: This user may not read the file (`cache_utils.stores.UnreadableFileError`,
            which loaders skip), or may not search the directory.
    """
    return CacheDir(directory, storage_options=storage_options, signing_key=signing_key).read(
        prefix, the_date)


def verify_cache(
    prefix: str,
    the_date: DateLike = None,
    directory: str = "data",
    *,
    signing_key: SigningKeys | None = None,
    storage_options: StorageOptions | None = None,
) -> CacheFile:
    """Check one cache file without unpickling it: its signature (when a key is given or set in
    the environment) and its gzip stream to the end (CRC and length).

    Args:
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        the_date: Day of the file (date, datetime or date string); None means today, local time.
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        signing_key: Key to verify signatures with, or a list of keys any of which may have signed
            the file; None uses `CACHE_UTILS_SIGNING_KEY` (and `..._FALLBACKS`) when set.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.

    Returns:
        The file's `CacheFile`, fingerprint included.

    Raises:
        FileNotFoundError: The file does not exist.
        CorruptCacheError: The file cannot be trusted.
    """
    return CacheDir(directory, storage_options=storage_options, signing_key=signing_key).verify(
        prefix, the_date)


def cache_fingerprint(
    prefix: str,
    the_date: DateLike = None,
    directory: str = "data",
    *,
    storage_options: StorageOptions | None = None,
) -> CacheFile:
    """One file's `CacheFile` with its content fingerprint (CRC32 and length of the whole pickle),
    read from the file's end without inflating it: the 59-byte end member's index, or an older
    single-member file's 8-byte gzip trailer; one small read, even on S3.
    Equal fingerprints mean the same pickled bytes.

    Args:
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        the_date: Day of the file (date, datetime or date string); None means today, local time.
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.

    Raises:
        FileNotFoundError: The file does not exist.
        CorruptCacheError: The file is too short to hold a gzip trailer.
    """
    return CacheDir(directory, storage_options=storage_options).fingerprint(prefix, the_date)


def cache_owner(
    prefix: str,
    the_date: DateLike = None,
    directory: str = "data",
    *,
    signing_key: SigningKeys | None = None,
    storage_options: StorageOptions | None = None,
) -> str | None:
    """Who wrote one cache file, as recorded by `write_cache(..., owner=...)`: one small read of
    the file's first header (about 1 KiB at most), nothing inflated or unpickled.

    Args:
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        the_date: Day of the file (date, datetime or date string); None means today, local time.
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        signing_key: Key to check a signed file's owner record with; None uses
            `CACHE_UTILS_SIGNING_KEY` when set.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.

    Returns:
        The owner, or None when the file records none (written by `save_cache`, by an earlier
        version, or by another gzip writer).

    Raises:
        FileNotFoundError: The file does not exist.
        CorruptCacheError: The owner record is damaged, or (with a key) the file is unsigned or its
            owner record does not match its signature.
    """
    return CacheDir(directory, storage_options=storage_options, signing_key=signing_key).owner(
        prefix, the_date)


def list_caches(
    directory: str = "data",
    prefix: str | None = None,
    *,
    storage_options: StorageOptions | None = None,
) -> list[CacheFile]:
    """Every cache file in a directory (of one prefix, if given), by prefix then date.

    Args:
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        prefix: Only files of this prefix; None lists every prefix.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.
    """
    return CacheDir(directory, storage_options=storage_options).list(prefix)


def prune(
    prefix: str,
    keep: int | None = None,
    directory: str = "data",
    *,
    dry_run: bool = False,
    temp_older_than: float = STALE_TEMP_SECONDS,
    storage_options: StorageOptions | None = None,
    tz: ZoneLike = None,
    signing_key: SigningKeys | None = None,
    older_than: DateLike = None,
    spare: Iterable[DateLike] = (),
    on_delete: Callable[[str, int], object] | None = None,
) -> list[str]:
    """Delete old files of `prefix` dated on or before today (in `tz`; local time when None), and
    its orphaned temp files. Returns the paths deleted (or that would be, with `dry_run`).

    Which files go: with `keep`, all but the newest `keep`; with `older_than`, those dated before
    that day; with both, only those neither rule keeps (a file is kept when any rule keeps it).
    Files dated on a day in `spare` are always kept (a caller's fresh writes, e.g. a backfill of an
    old day).

    Never takes from `load_cache` what it would load: files dated after today are neither counted
    nor deleted, and when none of the kept files is sound, the newest older file that is sound is
    kept as well. Sound is checked without running the file (housekeeping never unpickles, so a
    malicious pickle in the directory is never executed): signature, every gzip member's CRC and
    length, and a walk of the pickle's opcodes with `pickletools` (a whole pickle and nothing after
    it). A pickle naming a class that no longer exists passes that check.

    Args:
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        keep: How many of the newest files dated up to today to keep (a whole number >= 1); None:
            no count rule (then `older_than` is required).
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        dry_run: Only return what would be deleted; delete nothing.
        temp_older_than: Age in seconds after which a temp file counts as orphaned.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.
        tz: Zone of "today" (tzinfo or IANA name); None means local time.
        signing_key: Key (or list of keys) to check kept files' signatures with; None uses
            `CACHE_UTILS_SIGNING_KEY` (and `..._FALLBACKS`) when set.
        older_than: Delete files dated before this day (date, datetime or date string); None: no
            date rule.
        spare: Days whose files are never deleted.
        on_delete: Called after each file is deleted with its path and how many files this prune
            means to delete in all (a progress bar's total); also for the file a KeyboardInterrupt
            lands on when it is gone, so that a caller recording the paths knows exactly what was
            deleted. Not called with `dry_run`.

    Raises:
        TypeError: `keep` is not a whole number, or neither `keep` nor `older_than` is given.
        ValueError: `keep` is below 1, or a date is invalid.
    """
    return CacheDir(directory, storage_options=storage_options, signing_key=signing_key).prune(
        prefix, keep, dry_run=dry_run, temp_older_than=temp_older_than, tz=tz, older_than=older_than,
        spare=spare, on_delete=on_delete)
