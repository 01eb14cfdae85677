"""Saving, finding, reading, listing and pruning date-stamped cache files."""

from __future__ import annotations

import datetime as dt
import errno
import logging
import pickle
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from isal import isal_zlib

from .errors import CorruptCacheError
from .naming import DateLike, date_stamp, file_name, parse_file_name, to_date, validate_prefix
from .serialization import DEFAULT_LEVEL, PROTOCOL, GzipPickleSerializer, coerce_key, signing_key_from_env
from .stores import STALE_TEMP_SECONDS, NotARegularFileError, Store, get_store, sweep_temp_files
from .stores.base import read_one_version
from .timing import ZoneLike, resolve_zone

log = logging.getLogger("cache_utils")

StorageOptions = dict[str, Any]


def serializer_for(
    signing_key: str | bytes | None = None, level: int = DEFAULT_LEVEL
) -> GzipPickleSerializer:
    """The serializer for an explicit signing key, else `CACHE_UTILS_SIGNING_KEY`, else unsigned."""
    key = coerce_key(signing_key) or signing_key_from_env()
    return GzipPickleSerializer(level=level, signing_key=key)


def save_cache(
    data: Any,
    prefix: str,
    the_date: DateLike = None,
    directory: str = "data",
    *,
    signing_key: str | bytes | None = None,
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
        signing_key: Key to sign the file with; None uses `CACHE_UTILS_SIGNING_KEY`, else the file
            is unsigned.
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
    signing_key: str | bytes | None = None,
    level: int = DEFAULT_LEVEL,
    file_mode: int | None = None,
    storage_options: StorageOptions | None = None,
) -> CacheFile:
    """`save_cache`, returning the `CacheFile` written (its path, date, size in bytes and content
    fingerprint).

    Args:
        data: The value to save; anything picklable.
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        the_date: Day of the file (date, datetime or date string); None means today, local time.
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        signing_key: Key to sign the file with; None uses `CACHE_UTILS_SIGNING_KEY`, else the file
            is unsigned.
        level: ISA-L gzip compression level, 0 (fastest) to 3.
        file_mode: Permission bits of a local file; None means 0o600 (owner only).
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.

    Returns:
        The `CacheFile` written, fingerprint included.
    """
    validate_prefix(prefix)
    day = to_date(the_date)
    serializer = serializer_for(signing_key, level)
    store = get_store(directory, storage_options, file_mode=file_mode)
    name = file_name(prefix, date_stamp(day))
    path = store.path(name)
    written: list[tuple[int, str]] = []

    def write(f: Any) -> None:
        fingerprint = serializer.dump(data, f, name)
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
    return CacheFile(prefix, day, path, size, fingerprint)


class _CrcSink:
    """A write-only file that keeps only the CRC32 and length of what is written to it."""

    def __init__(self) -> None:
        self.crc = 0
        self.size = 0

    def write(self, data: Any) -> int:
        view = data.raw() if type(data) is pickle.PickleBuffer else memoryview(data)
        self.crc = isal_zlib.crc32(view, self.crc)
        self.size += view.nbytes
        return view.nbytes


def data_fingerprint(data: Any) -> str:
    """The content fingerprint `write_cache` records for `data`, without writing a file: one
    pickling pass into a CRC32 (nothing compressed), so a caller can know a value's fingerprint
    before it is saved. Raises what pickling raises.

    Args:
        data: The value to fingerprint; anything picklable.

    Returns:
        16 hex digits: the CRC32 and the length (mod 2**32) of the pickle.
    """
    sink = _CrcSink()
    pickle.dump(data, sink, protocol=PROTOCOL)
    return f"{sink.crc:08x}{sink.size & 0xFFFFFFFF:08x}"


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
    validate_prefix(prefix)
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
    validate_prefix(prefix)
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
    validate_prefix(prefix)
    bound = None if on_or_before is None else date_stamp(on_or_before)
    store = get_store(directory, storage_options)
    return [to_date(s) for s in store.stamps(prefix, bound)]


def read_cache(
    prefix: str,
    the_date: DateLike = None,
    directory: str = "data",
    *,
    signing_key: str | bytes | None = None,
    storage_options: StorageOptions | None = None,
) -> Any:
    """Load one cache file exactly (no fallback).

    Args:
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        the_date: Day of the file (date, datetime or date string); None means today, local time.
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        signing_key: Key to verify signatures with; None uses `CACHE_UTILS_SIGNING_KEY` when set.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.

    Returns:
        The unpickled data.

    Raises:
        FileNotFoundError: The file does not exist.
        CorruptCacheError: The file cannot be trusted (bad signature, gzip stream or pickle).
    """
    validate_prefix(prefix)
    store = get_store(directory, storage_options)
    return read_file(store, file_name(prefix, date_stamp(the_date)), serializer_for(signing_key))


def read_file(store: Store, name: str, serializer: GzipPickleSerializer) -> Any:
    """Open and verify one file of a store. A directory in its place counts as corrupt."""
    path = store.path(name)

    def read() -> Any:
        with _open(store, name) as f:
            return serializer.load(f, path)

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
    signing_key: str | bytes | None = None,
    storage_options: StorageOptions | None = None,
) -> CacheFile:
    """Check one cache file without unpickling it: its signature (when a key is given or set in
    the environment) and its gzip stream to the end (CRC and length).

    Args:
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        the_date: Day of the file (date, datetime or date string); None means today, local time.
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        signing_key: Key to verify signatures with; None uses `CACHE_UTILS_SIGNING_KEY` when set.
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
    validate_prefix(prefix)
    day = to_date(the_date)
    store = get_store(directory, storage_options)
    name = file_name(prefix, date_stamp(day))
    path = store.path(name)

    def read() -> tuple[int, str]:
        with _open(store, name) as f:
            fingerprint = GzipPickleSerializer.fingerprint(f, path)
            size = f.seek(0, 2)
            if verifier is not None:
                f.seek(0)
                verifier.verify(f, path)
        return size, fingerprint

    size, fingerprint = read_one_version(path, read)
    return CacheFile(prefix, day, path, size, fingerprint)


@dataclass(frozen=True)
class CacheFile:
    """One cache file: its prefix, date, path and size in bytes, and its content fingerprint when
    known (`write_cache`, `verify_cache`, `cache_fingerprint`; `list_caches` does not read files).

    Attributes:
        prefix: File name prefix.
        date: Day in the file name.
        path: Full path or URL of the file.
        size: Size of the file in bytes.
        fingerprint: CRC32 and length of the pickle as 16 hex digits; None when not read.
            Not compared by `==`.
    """

    prefix: str
    date: dt.date
    path: str
    size: int
    # Not compared: the same file found by list_caches (which reads no file) equals the one written.
    fingerprint: str | None = field(default=None, compare=False)


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
        validate_prefix(prefix)
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
    keep: int,
    directory: str = "data",
    *,
    dry_run: bool = False,
    temp_older_than: float = STALE_TEMP_SECONDS,
    storage_options: StorageOptions | None = None,
    tz: ZoneLike = None,
    signing_key: str | bytes | None = None,
) -> list[str]:
    """Delete all but the newest `keep` files of `prefix` dated on or before today (in `tz`; local
    time when None), and its orphaned temp files. Returns the paths deleted (or that would be,
    with `dry_run`).

    Never takes from `load_cache` what it would load: files dated after today are neither counted
    nor deleted, and when none of the kept files loads (as `load_cache` loads it: signature, gzip
    CRC, unpickling), the newest older file that does is kept as well.

    Args:
        prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        keep: How many of the newest files dated up to today to keep (a whole number >= 1).
        directory: Local directory or fsspec URL such as `s3://bucket/dir`.
        dry_run: Only return what would be deleted; delete nothing.
        temp_older_than: Age in seconds after which a temp file counts as orphaned.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.
        tz: Zone of "today" (tzinfo or IANA name); None means local time.
        signing_key: Key to check that kept files load; None uses `CACHE_UTILS_SIGNING_KEY` when set.

    Raises:
        TypeError: `keep` is not a whole number.
        ValueError: `keep` is below 1.
    """
    validate_prefix(prefix)
    if isinstance(keep, bool) or not isinstance(keep, int):
        raise TypeError(f"keep must be a whole number >= 1, got {type(keep).__name__}: {keep!r}")
    if keep < 1:
        raise ValueError(f"keep must be a whole number >= 1, got {keep!r}")
    store = get_store(directory, storage_options)
    serializer = serializer_for(signing_key)
    past = [file_name(prefix, s) for s in store.stamps(prefix, date_stamp(None, resolve_zone(tz)))]
    doomed = past[keep:]
    if not any(_loads(store, name, serializer) for name in past[:keep]):
        good = next((name for name in doomed if _loads(store, name, serializer)), None)
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


def _loads(store: Store, name: str, serializer: GzipPickleSerializer) -> bool:
    """Whether a file loads as `load_cache` would load it (a broken pickle in a whole gzip
    stream, or a class that no longer exists, does not)."""
    try:
        read_file(store, name, serializer)
    except (CorruptCacheError, FileNotFoundError):
        return False
    return True
