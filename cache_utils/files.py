"""Saving, finding, reading, listing and pruning date-stamped cache files."""

from __future__ import annotations

import datetime as dt
import errno
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from ._numbers import is_whole
from .errors import CorruptCacheError
from .format.layout import owner_payload
from .format.serializer import DEFAULT_LEVEL, GzipPickleSerializer
from .format.signing import SigningKeys, coerce_keys, signing_keys_from_env
from .naming import DateLike, date_stamp, file_name, parse_file_name, to_date, validate_prefix
from .stores import (
    STALE_TEMP_SECONDS,
    NotARegularFileError,
    Store,
    UnreadableFileError,
    get_store,
    sweep_temp_files,
)
from .stores.base import read_one_version
from .timing import ZoneLike, resolve_zone

log = logging.getLogger("cache_utils")

StorageOptions = dict[str, Any]


def serializer_for(
    signing_key: SigningKeys | None = None, level: int = DEFAULT_LEVEL
) -> GzipPickleSerializer:
    """The serializer for explicit signing keys (one, or a list: the first signs, all verify),
    else `CACHE_UTILS_SIGNING_KEY` and `CACHE_UTILS_SIGNING_KEY_FALLBACKS`, else unsigned."""
    keys = coerce_keys(signing_key) or signing_keys_from_env()
    return GzipPickleSerializer(level=level, signing_key=keys or None)


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
    return write_cache(data, prefix, the_date, directory, signing_key=signing_key, level=level,
                       file_mode=file_mode, storage_options=storage_options).path


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
    prefix = validate_prefix(prefix)
    day = to_date(the_date)
    if owner is not None:
        owner_payload(owner)  # a bad owner is refused before anything is written
    serializer = serializer_for(signing_key, level)
    store = get_store(directory, storage_options, file_mode=file_mode)
    name = file_name(prefix, date_stamp(day))
    path = store.path(name)
    written: list[tuple[int, str]] = []

    def write(f: Any) -> None:
        fingerprint = serializer.dump(data, f, name, owner)
        written.append((f.tell(), fingerprint))  # dump leaves the position at the end of what it wrote

    try:
        store.write_atomic(name, write)
    except OSError as e:
        raise type(e)(e.errno, f"could not save cache {path}: {e.strerror or e}", e.filename or path) from e
    try:
        sweep_temp_files(store, prefix)
    except OSError as e:  # housekeeping must not fail a save that succeeded
        log.debug("could not sweep temp files in %s: %s", directory, e)
    size, fingerprint = written[-1]
    return CacheFile(prefix, day, path, size, fingerprint, owner)


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
    prefix = validate_prefix(prefix)
    return get_store(directory, storage_options).exists(file_name(prefix, date_stamp(the_date)))


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
    prefix = validate_prefix(prefix)
    bound = None if on_or_before is None else date_stamp(on_or_before)
    store = get_store(directory, storage_options)
    stamps = store.stamps(prefix, bound)
    return store.path(file_name(prefix, stamps[0])) if stamps else None


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
    prefix = validate_prefix(prefix)
    bound = None if on_or_before is None else date_stamp(on_or_before)
    store = get_store(directory, storage_options)
    return [to_date(s) for s in store.stamps(prefix, bound)]


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
    prefix = validate_prefix(prefix)
    store = get_store(directory, storage_options)
    return read_file(store, file_name(prefix, date_stamp(the_date)), serializer_for(signing_key))


def read_file(store: Store, name: str, serializer: GzipPickleSerializer) -> Any:
    """Open and verify one file of a store. A directory in its place counts as corrupt."""
    path = store.path(name)

    def read() -> Any:
        with _open(store, name) as f:
            return serializer.load(f, path)

    return read_one_version(path, read)


def read_owned_file(store: Store, name: str, serializer: GzipPickleSerializer) -> tuple[Any, str | None]:
    """`read_file` and the owner recorded in the file, read from the same open file: no second
    request to an object store (its first bytes are read again from the file's buffer)."""
    path = store.path(name)

    def read() -> tuple[Any, str | None]:
        with _open(store, name) as f:
            owner = serializer.owner(f, path)
            f.seek(0)
            return serializer.load(f, path), owner

    return read_one_version(path, read)


def _open(store: Store, name: str) -> IO[bytes]:
    """A store's file for reading: FileNotFoundError when absent; CorruptCacheError when a
    directory, a FIFO, a device or a symlink loop stands in its place."""
    path = store.path(name)
    try:
        return store.open_read(name)
    except IsADirectoryError as e:
        raise CorruptCacheError(path, "is a directory") from e
    except NotARegularFileError as e:
        raise CorruptCacheError(path, e.strerror or "not a regular file") from e
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        raise CorruptCacheError(path, "is a symlink loop") from e


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
    return _inspect(prefix, the_date, directory, storage_options, serializer_for(signing_key))


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
    return _inspect(prefix, the_date, directory, storage_options, None)


def _inspect(
    prefix: str, the_date: DateLike, directory: str, storage_options: StorageOptions | None,
    verifier: GzipPickleSerializer | None,
) -> CacheFile:
    """One file's `CacheFile` with its fingerprint; with a `verifier`, also checked to the end."""
    prefix = validate_prefix(prefix)
    day = to_date(the_date)
    store = get_store(directory, storage_options)
    name = file_name(prefix, date_stamp(day))
    path = store.path(name)

    def read() -> tuple[int, str, str | None]:
        owner = None
        with _open(store, name) as f:
            fingerprint = GzipPickleSerializer.fingerprint(f, path)
            size = f.seek(0, 2)
            if verifier is not None:
                f.seek(0)
                owner = verifier.owner(f, path)
                f.seek(0)
                verifier.verify(f, path)
        return size, fingerprint, owner

    size, fingerprint, owner = read_one_version(path, read)
    return CacheFile(prefix, day, path, size, fingerprint, owner)


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
    validate_prefix(prefix)
    store = get_store(directory, storage_options)
    name = file_name(prefix, date_stamp(the_date))
    with _open(store, name) as f:
        return serializer_for(signing_key).owner(f, store.path(name))


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
    if prefix is not None:
        prefix = validate_prefix(prefix)
    store = get_store(directory, storage_options)
    return sorted(_cache_files(store, prefix), key=lambda c: (c.prefix, c.date))


def _cache_files(store: Store, prefix: str | None) -> Iterator[CacheFile]:
    # Object stores list `<prefix>_*` alone, not the whole directory.
    for entry in store.entries() if prefix is None else store.prefix_entries(prefix + "_"):
        parsed = parse_file_name(entry.name, prefix)
        if parsed is not None:
            yield CacheFile(parsed[0], parsed[1], store.path(entry.name), entry.size)


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

    Raises:
        TypeError: `keep` is not a whole number, or neither `keep` nor `older_than` is given.
        ValueError: `keep` is below 1, or a date is invalid.
    """
    prefix = validate_prefix(prefix)
    if keep is None and older_than is None:
        raise TypeError("prune needs keep (how many of the newest files to keep, a whole number >= 1) "
                        "or older_than (delete files dated before this day), or both; got keep=None "
                        "and older_than=None")
    if keep is not None and not is_whole(keep):
        raise TypeError(f"keep must be a whole number >= 1, got {type(keep).__name__}: {keep!r}")
    if keep is not None and keep < 1:
        raise ValueError(f"keep must be a whole number >= 1, got {keep!r}")
    oldest = None if older_than is None else date_stamp(older_than)
    spared = {date_stamp(d) for d in spare}
    store = get_store(directory, storage_options)
    serializer = serializer_for(signing_key)
    stamps = store.stamps(prefix, date_stamp(None, resolve_zone(tz)))  # newest first
    # Stamps are YYYYMMDD, so comparing them as text compares the days.
    keeps = [i < (keep or 0) or (oldest is not None and s >= oldest) or s in spared
             for i, s in enumerate(stamps)]
    kept = [file_name(prefix, s) for s, k in zip(stamps, keeps, strict=True) if k]
    doomed = [file_name(prefix, s) for s, k in zip(stamps, keeps, strict=True) if not k]
    if not any(_sound(store, name, serializer) for name in kept):
        good = next((name for name in doomed if _sound(store, name, serializer)), None)
        if good is not None:
            log.warning("keeping %s: the newer files of %s do not load", store.path(good), prefix)
            doomed.remove(good)
    if dry_run:
        cutoff = time.time() - temp_older_than
        stale = [e.name for e in store.temp_entries(prefix) if e.mtime <= cutoff]
        return [store.path(n) for n in doomed + stale]
    removed = []
    for name in doomed:
        try:
            store.remove(name)
        except FileNotFoundError:
            continue
        removed.append(store.path(name))
    return removed + sweep_temp_files(store, prefix, temp_older_than)


def _sound(store: Store, name: str, serializer: GzipPickleSerializer) -> bool:
    """Whether a file would load, checked without unpickling it (see `prune`): a broken pickle in a
    whole gzip stream is not sound."""
    path = store.path(name)
    try:
        with _open(store, name) as f:
            serializer.verify(f, path, pickle_opcodes=True)
    except (CorruptCacheError, FileNotFoundError):
        return False
    except UnreadableFileError as e:  # not this user's to read: it cannot count as the kept file
        log.warning("skipping unreadable cache file %s: %s", e.filename, e.reason)
        return False
    return True
