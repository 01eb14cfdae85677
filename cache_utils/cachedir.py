"""`CacheDir`: one directory of date-stamped cache files, as one object.

`CacheDir(directory, storage_options=..., signing_key=...)` holds what every file operation needs
(where the files are, how to reach the store, which keys sign and verify) so that each call names
only the prefix and the day, as python-diskcache's `Cache` does. It holds the logic of saving,
reading, the today-else-latest fallback with its alerts, listing, verifying and pruning; the
module-level functions (`save_cache`, `load_cache`, `list_caches`...) are one-line wrappers over it
that keep their original names, parameters and defaults.
"""

from __future__ import annotations

import builtins
import datetime as dt
import errno
import logging
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, Literal, TypeVar

from ._numbers import is_whole
from .alerts import Alerter, cache_alert, default_alias, resolve_alert, send_alert
from .errors import CacheNotFoundError, CorruptCacheError
from .format.layout import owner_payload
from .format.serializer import DEFAULT_LEVEL, GzipPickleSerializer
from .format.signing import SigningKeys, coerce_keys, signing_keys_from_env
from .naming import DateLike, date_stamp, file_name, parse_file_name, to_date, validate_prefix
from .records import CacheFile, CacheHit, Skipped
from .stores import (
    STALE_TEMP_SECONDS,
    NotARegularFileError,
    Store,
    UnreadableFileError,
    get_store,
    is_url,
    stale_temp_names,
    sweep_temp_files,
)
from .stores.base import read_one_version
from .timing import (
    DEFAULT_RETRY_INTERVAL,
    TimeType,
    ZoneLike,
    at_time,
    next_callback,
    now_in,
    parse_cb_time,
    parse_retry_interval,
    reached,
    resolve_zone,
    zone_of,
)

log = logging.getLogger("cache_utils")

StorageOptions = dict[str, Any]
# What `read_many` yields per (prefix, day): the file found (None when none) and the files skipped.
ReadResult = tuple[CacheHit | None, tuple[Skipped, ...]]
# Reads in flight for `read_many` on an object store when `max_workers` is None.
T = TypeVar("T")
R = TypeVar("R")
DEFAULT_READ_WORKERS = 8


def serializer_for(
    signing_key: SigningKeys | None = None, level: int = DEFAULT_LEVEL
) -> GzipPickleSerializer:
    """The serializer for explicit signing keys (one, or a list: the first signs, all verify),
    else `CACHE_UTILS_SIGNING_KEY` and `CACHE_UTILS_SIGNING_KEY_FALLBACKS`, else unsigned."""
    keys = coerce_keys(signing_key) or signing_keys_from_env()
    return GzipPickleSerializer(level=level, signing_key=keys or None)


class CacheDir:
    """A directory (local path or fsspec URL) of `<prefix>_<YYYYMMDD>.pkl.gz` files.

    The store is opened on first use and kept; signing keys given as None are read from
    `CACHE_UTILS_SIGNING_KEY` (and `..._FALLBACKS`) at each call, as the module-level functions do.

    Args:
        directory: Local directory or fsspec URL such as `s3://bucket/dir`; "" is the current
            directory.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.
        signing_key: Key to sign files with and verify them by, or a list of keys (the first signs,
            all verify); None uses `CACHE_UTILS_SIGNING_KEY`, else files are unsigned.
        file_mode: Permission bits of files written to a local directory; None means 0o600 (owner
            only). Object stores have no file modes (access is the bucket's policy): ignored there.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] = "data",
        *,
        storage_options: StorageOptions | None = None,
        signing_key: SigningKeys | None = None,
        file_mode: int | None = None,
    ) -> None:
        self.directory = directory
        self.storage_options = storage_options
        self.signing_key = signing_key
        self.file_mode = file_mode
        self._store: Store | None = None

    def __repr__(self) -> str:
        return f"CacheDir({os.fspath(self.directory)!r})"  # never the options: they may hold secrets

    @property
    def store(self) -> Store:
        """The store behind the directory, opened on first use (a bad directory raises here)."""
        if self._store is None:
            self._store = get_store(self.directory, self.storage_options, file_mode=self.file_mode)
        return self._store

    def _serializer(self, level: int = DEFAULT_LEVEL) -> GzipPickleSerializer:
        return serializer_for(self.signing_key, level)

    # --- writing -------------------------------------------------------------------------------------

    def save(self, data: Any, prefix: str, the_date: DateLike = None, *, level: int = DEFAULT_LEVEL) -> str:
        """Atomically write `data` as `<prefix>_<YYYYMMDD>.pkl.gz`; return the path (`save_cache`)."""
        return self.write(data, prefix, the_date, level=level).path

    def write(
        self, data: Any, prefix: str, the_date: DateLike = None, *, level: int = DEFAULT_LEVEL,
        owner: str | None = None,
    ) -> CacheFile:
        """`save`, returning the `CacheFile` written, fingerprint and owner included (`write_cache`).

        Args:
            data: The value to save; anything picklable.
            prefix: File name prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
            the_date: Day of the file (date, datetime or date string); None means today, local time.
            level: ISA-L gzip compression level, 0 (fastest) to 3.
            owner: Who writes the file (free text, 1 to 1024 bytes of UTF-8), recorded in its first
                gzip header and read back by `owner`; None records none.
        """
        prefix = validate_prefix(prefix)
        day = to_date(the_date)
        if owner is not None:
            owner_payload(owner)  # a bad owner is refused before anything is written
        serializer = self._serializer(level)
        store = self.store
        name = file_name(prefix, date_stamp(day))
        path = store.path(name)
        written: list[tuple[int, str]] = []

        def write(f: Any) -> None:
            fingerprint = serializer.dump(data, f, name, owner)
            written.append((f.tell(), fingerprint))  # dump leaves the position at the end of what it wrote

        try:
            store.write_atomic(name, write)
        except OSError as e:
            message = f"could not save cache {path}: {e.strerror or e}"
            raise type(e)(e.errno, message, e.filename or path) from e
        try:
            sweep_temp_files(store, prefix)
        except OSError as e:  # housekeeping must not fail a save that succeeded
            log.debug("could not sweep temp files in %s: %s", self.directory, e)
        size, fingerprint = written[-1]
        return CacheFile(prefix, day, path, size, fingerprint, owner)

    # --- one file ------------------------------------------------------------------------------------

    def exists(self, prefix: str, the_date: DateLike = None) -> bool:
        """Whether the file of `prefix` for a day (today when None) exists; content not checked."""
        prefix = validate_prefix(prefix)
        return self.store.exists(file_name(prefix, date_stamp(the_date)))

    def read(self, prefix: str, the_date: DateLike = None) -> Any:
        """Load one file exactly, no fallback (`read_cache`): FileNotFoundError when absent,
        CorruptCacheError when it cannot be trusted."""
        prefix = validate_prefix(prefix)
        store = self.store
        return _read(store, file_name(prefix, date_stamp(the_date)), self._serializer(), owner=False)[0]

    def read_hit(self, prefix: str, the_date: DateLike = None) -> CacheHit:
        """`read` returning a `CacheHit`: the data with the file's date, path and recorded owner, all
        from one opening of the file (`read_cache_hit`)."""
        validate_prefix(prefix)
        day = to_date(the_date)
        store = self.store
        name = file_name(prefix, date_stamp(day))
        data, owner = _read(store, name, self._serializer())
        return CacheHit(data, day, store.path(name), (), owner)

    def verify(self, prefix: str, the_date: DateLike = None) -> CacheFile:
        """Check one file without unpickling it: its signature and its gzip stream to the end
        (`verify_cache`). Returns its `CacheFile`, fingerprint and owner included."""
        return self._inspect(prefix, the_date, self._serializer())

    def fingerprint(self, prefix: str, the_date: DateLike = None) -> CacheFile:
        """One file's `CacheFile` with its content fingerprint, read from the file's end without
        inflating it (`cache_fingerprint`)."""
        return self._inspect(prefix, the_date, None)

    def _inspect(self, prefix: str, the_date: DateLike, verifier: GzipPickleSerializer | None) -> CacheFile:
        prefix = validate_prefix(prefix)
        day = to_date(the_date)
        store = self.store
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

    def owner(self, prefix: str, the_date: DateLike = None) -> str | None:
        """Who wrote one file, as `write(..., owner=...)` recorded it; None when it records none
        (`cache_owner`). One small read of the first header; nothing inflated or unpickled."""
        validate_prefix(prefix)
        store = self.store
        name = file_name(prefix, date_stamp(the_date))
        with _open(store, name) as f:
            return self._serializer().owner(f, store.path(name))

    # --- finding -------------------------------------------------------------------------------------

    def dates(self, prefix: str, on_or_before: DateLike = None) -> builtins.list[dt.date]:
        """Days that have a file of `prefix` (on or before a day, if given), newest first."""
        prefix = validate_prefix(prefix)
        bound = None if on_or_before is None else date_stamp(on_or_before)
        return [to_date(s) for s in self.store.stamps(prefix, bound)]

    def latest_path(self, prefix: str, on_or_before: DateLike = None) -> str | None:
        """Path of the newest file of `prefix` (on or before a day; None: no bound, later-dated
        files count too), or None (`get_latest_cache_filename`). The file is not read."""
        prefix = validate_prefix(prefix)
        bound = None if on_or_before is None else date_stamp(on_or_before)
        store = self.store
        stamps = store.stamps(prefix, bound)
        return store.path(file_name(prefix, stamps[0])) if stamps else None

    def list(self, prefix: str | None = None) -> builtins.list[CacheFile]:
        """Every cache file (of one prefix, if given), by prefix then date; no file is read."""
        if prefix is not None:
            prefix = validate_prefix(prefix)
        store = self.store
        # Object stores list `<prefix>_*` alone, not the whole directory.
        entries = store.entries() if prefix is None else store.prefix_entries(prefix + "_")
        found = []
        for entry in entries:
            parsed = parse_file_name(entry.name, prefix)
            if parsed is not None:
                found.append(CacheFile(parsed[0], parsed[1], store.path(entry.name), entry.size))
        return sorted(found, key=lambda c: (c.prefix, c.date))

    # --- loading with fallback -----------------------------------------------------------------------

    def latest(self, prefix: str, on_or_before: DateLike = None) -> ReadResult:
        """The file for `on_or_before` (today when None), else the newest good older one
        (`load_latest_cache`): (the `CacheHit`, or None when no file loads; every file skipped).
        Corrupt and unreadable files are skipped and reported."""
        given, prefix = prefix, validate_prefix(prefix)
        return _load_latest(self.store, prefix, to_date(on_or_before), self._serializer(), given)

    def load(
        self,
        prefix: str,
        cb_time: TimeType,
        allow_no_data: bool = False,
        alias: str | None = None,
        *,
        tz: ZoneLike = None,
        retry_interval: dt.timedelta | float = DEFAULT_RETRY_INTERVAL,
        alerter: Alerter | None = None,
    ) -> tuple[Any, dt.datetime]:
        """Today's file, else the newest good earlier one, and when to look again: (data,
        next_callback), with `load_cache`'s alerts and its parameters (see there)."""
        given, prefix = prefix, validate_prefix(prefix)
        cb = parse_cb_time(cb_time)
        zone = zone_of(cb, tz)
        interval = parse_retry_interval(retry_interval)
        store = self.store
        serializer = self._serializer()
        alias = alias or default_alias(prefix)

        now = now_in(zone)
        today = now.date()
        hit, skipped = _load_latest(store, prefix, today, serializer, given)
        fresh = hit is not None and hit.date == today
        when = next_callback(cb, zone, fresh, now=now, retry_interval=interval)

        problems = [f"skipped {s.kind} file {s.path}: {s.reason}" for s in skipped]
        details = {"prefix": prefix, "directory": store.directory, "today": today.isoformat()}
        if hit is None:
            message = f"no cache data for {prefix!r} in {store.directory!r}"
            send_alert(cache_alert("missing", prefix, "\n".join(problems), title=message, alias=alias,
                                   details=details), alerter)
            if allow_no_data:
                return {}, when
            raise CacheNotFoundError(
                f"{message}{' (' + '; '.join(problems) + ')' if problems else ''}",
                prefix=prefix,
                directory=store.directory,
            )
        if fresh:  # today's file loaded at the first attempt, so nothing was skipped
            resolve_alert(alias, f"today's cache {hit.path} loaded", alerter)
            return hit.data, when
        stale = reached(now, at_time(today, cb, zone))
        if stale:
            problems.insert(0, f"today's file is missing after {cb.strftime('%H:%M:%S')}; using "
                               f"{hit.path} from {hit.date.isoformat()}")
        if problems:
            details.update(used=hit.path, age_days=str(hit.age_days(today)))
            kind: Literal["stale", "corrupt"] = "stale" if stale else "corrupt"
            send_alert(cache_alert(kind, prefix, "\n".join(problems), alias=alias, details=details),
                       alerter)
        return hit.data, when

    def read_many(
        self,
        items: Iterable[tuple[str, DateLike]],
        *,
        fallback: bool = False,
        max_workers: int | None = None,
        thread_name_prefix: str = "cache_utils-read",
    ) -> Generator[ReadResult, None, None]:
        """Read several (prefix, day) files, yielding (hit, skipped) for each in the order given.

        Without `fallback` each file is read exactly (`read_hit`): (None, ()) when it is missing;
        a corrupt file raises at its turn. With `fallback`, `latest(prefix, day)` for each.

        Up to `max_workers` reads are in flight at once on a `concurrent.futures` pool. None (the
        default) means up to 8 on an object store (a URL directory) and one file after another
        on a local directory, where a pool measured no faster (big files already inflate on
        several threads) and up to 1.9x slower for small files (benchmarks/bench_range_loads.py).
        A failed read is raised at its item's turn; closing the generator early (or any failure)
        drops the queued reads, and reads in flight finish first, bounded by the store's timeouts;
        an interrupt (Ctrl-C, a run's termination) does not wait for them.

        Args:
            items: (prefix, day) pairs.
            fallback: Take the newest good earlier file when a day's file is missing or corrupt.
            max_workers: Reads in flight at most (a whole number >= 1); None: see above.
            thread_name_prefix: Names of the pool's threads (as in thread dumps).
        """
        if max_workers is not None and (not is_whole(max_workers) or max_workers < 1):
            raise ValueError(f"max_workers must be a whole number >= 1 or None, got {max_workers!r}")
        targets = [(prefix, to_date(day)) for prefix, day in items]

        def one(prefix: str, day: dt.date) -> ReadResult:
            if fallback:
                return self.latest(prefix, day)
            try:
                return self.read_hit(prefix, day), ()
            except FileNotFoundError:
                return None, ()

        if max_workers is None:
            max_workers = DEFAULT_READ_WORKERS if is_url(os.fspath(self.directory)) else 1
        if min(max_workers, len(targets)) > 1:
            self.store  # noqa: B018 - opened once here, not raced by the workers
        yield from map_in_order(lambda t: one(*t), targets, max_workers, thread_name_prefix)

    # --- housekeeping --------------------------------------------------------------------------------

    def prune(
        self,
        prefix: str,
        keep: int | None = None,
        *,
        dry_run: bool = False,
        temp_older_than: float = STALE_TEMP_SECONDS,
        tz: ZoneLike = None,
        older_than: DateLike = None,
        spare: Iterable[DateLike] = (),
        on_delete: Callable[[str, int], object] | None = None,
    ) -> builtins.list[str]:
        """Delete old files of `prefix` and its orphaned temp files; return the paths deleted (or
        that would be, with `dry_run`). The rules are `prune`'s (see there); never unpickles.

        Args:
            on_delete: Called after each file is deleted with its path and how many files this
                prune means to delete in all (for a progress bar). Also called for the file a
                KeyboardInterrupt lands on when that file is gone, so a caller that records what
                it is told knows exactly what was deleted.
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
        store = self.store
        serializer = self._serializer()
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
        doomed += stale_temp_names(store, prefix, temp_older_than)
        if dry_run:
            return [store.path(n) for n in doomed]
        return _delete(store, doomed, on_delete)


def _delete(store: Store, names: list[str], on_delete: Callable[[str, int], object] | None) -> list[str]:
    """Remove `names` one by one; a name already gone (another prune) is passed over."""
    removed: list[str] = []

    def deleted(name: str) -> None:
        removed.append(store.path(name))
        if on_delete is not None:
            on_delete(store.path(name), len(names))

    current = None  # the file being deleted, until it is reported
    try:
        for name in names:
            current = name
            try:
                store.remove(name)
            except FileNotFoundError:
                current = None
                continue
            current = None
            deleted(name)
    except KeyboardInterrupt:
        # Ctrl-C between the delete and its report: whether the file is gone decides.
        if current is not None and not store.exists(current):
            deleted(current)
        raise
    return removed


def _load_latest(
    store: Store, prefix: str, day: dt.date, serializer: GzipPickleSerializer, given: str = ""
) -> ReadResult:
    """The newest good file of `prefix` (NFC) on or before `day`. When none is found and the
    caller spelled the prefix differently (`given`, e.g. NFD), files an earlier release wrote
    under that spelling are looked for too, with a warning to rename them."""
    hit, skipped = _search(store, prefix, day, serializer)
    if hit is None and given and given != prefix:
        hit, more = _search(store, given, day, serializer)
        skipped += more
        if hit is not None:
            nfc_path = store.path(file_name(prefix, date_stamp(hit.date)))
            log.warning("loaded %s, written under a non-NFC spelling of prefix %r by an earlier "
                        "release: rename it to %s", hit.path, prefix, nfc_path)
    return hit, skipped


def _search(store: Store, prefix: str, day: dt.date, serializer: GzipPickleSerializer) -> ReadResult:
    skipped: list[Skipped] = []
    target = date_stamp(day)

    def attempt(stamp: str) -> CacheHit | None:
        name = file_name(prefix, stamp)
        try:
            data, owner = _read(store, name, serializer)
        except FileNotFoundError:
            return None
        except CorruptCacheError as e:
            log.warning("skipping %s", e)
            skipped.append(Skipped(e.path, e.reason))
            return None
        except UnreadableFileError as e:  # mode 000, or another user's 0600 file: skipped the same way
            log.warning("skipping unreadable cache file %s: %s", e.filename, e.reason)
            skipped.append(Skipped(str(e.filename), e.reason, "unreadable"))
            return None
        return CacheHit(data, to_date(stamp), store.path(name), tuple(skipped), owner)

    hit = attempt(target)  # the common case needs no directory listing
    if hit is None:
        for stamp in store.stamps(prefix, target):
            if stamp != target and (hit := attempt(stamp)) is not None:
                break
    return hit, tuple(skipped)


def _read(
    store: Store, name: str, serializer: GzipPickleSerializer, owner: bool = True
) -> tuple[Any, str | None]:
    """One file's data and (with `owner`) the owner recorded in it, read from the same open file:
    no second request to an object store (its first bytes are read again from the file's buffer).
    A directory in the file's place counts as corrupt."""
    path = store.path(name)

    def read() -> tuple[Any, str | None]:
        with _open(store, name) as f:
            recorded = None
            if owner:
                recorded = serializer.owner(f, path)
                f.seek(0)
            return serializer.load(f, path), recorded

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


def map_in_order(
    fn: Callable[[T], R], items: Sequence[T], workers: int, thread_name_prefix: str = "cache_utils-read",
) -> Iterator[R]:
    """`fn(item)` of each item, yielded in the items' order: one after another with one worker,
    else on a `concurrent.futures` pool with at most `workers` calls in flight. A call's error is
    raised at its item's turn, as the one-after-another loop would raise it; closing the generator
    early (or any failure) drops the queued calls, and those in flight finish first (bounded by the
    store's timeouts); an interrupt (Ctrl-C, a run's termination) does not wait for them.

    Args:
        fn: What to do with one item (a read).
        items: The items, in the order their results are wanted.
        workers: Calls in flight at most.
        thread_name_prefix: Names of the pool's threads (as in thread dumps).
    """
    workers = min(workers, len(items))
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name_prefix)
    wait = True
    try:
        futures = [pool.submit(fn, item) for item in items]
        for future in futures:
            yield future.result()
    except BaseException as e:
        wait = isinstance(e, Exception | GeneratorExit)
        raise
    finally:
        pool.shutdown(wait=wait, cancel_futures=True)
