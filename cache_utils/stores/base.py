"""What every store offers: the `Store` protocol, its `Entry`, the sweep of orphaned temp files, and
reading one whole version of an object that a writer may replace meanwhile."""

from __future__ import annotations

import contextlib
import errno
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Protocol, TypeVar

STALE_TEMP_SECONDS = 3600.0  # a temp file this old belongs to a writer that died
# A read that finds its object replaced half-way starts again from the start, up to this many
# attempts in all. One retry is enough for a daily refresh; a writer rewriting the object in a loop
# can land twice within one large read (seen under the stress test), so two retries, then an error
# (never yesterday's data while today's exists). At most 3 whole reads: bounded.
READ_ATTEMPTS = 3

log = logging.getLogger("cache_utils")
T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


@dataclass(frozen=True)
class Entry:
    """A file in a cache directory."""

    name: str
    size: int
    mtime: float


class Store(Protocol):
    """What the library needs from a place that holds cache files."""

    directory: str

    def path(self, name: str) -> str: ...
    def stamps(self, prefix: str, on_or_before: str | None = None) -> list[str]: ...
    def entries(self) -> Iterator[Entry]: ...
    def prefix_entries(self, start: str) -> list[Entry]: ...
    def open_read(self, name: str) -> IO[bytes]: ...
    def write_atomic(self, name: str, write: Callable[[IO[bytes]], None]) -> None: ...
    def remove(self, name: str) -> None: ...
    def exists(self, name: str) -> bool: ...
    def temp_entries(self, prefix: str | None = None) -> list[Entry]: ...


class NotARegularFileError(OSError):
    """A cache file's name is taken by a FIFO, a device, a socket or a directory."""


class UnreadableFileError(PermissionError):
    """A local cache file this process may not read (its mode, owner or ACL): skipped by loaders
    like a corrupt file. Not raised when the directory itself cannot be searched (that is a plain
    PermissionError naming the directory), nor by object stores (where it means credentials)."""

    reason = "not readable by this user (permission denied): check its mode and owner"


class ObjectChangedError(OSError):
    """The object was replaced while being read: the bytes read so far belong to an older version.
    Not corruption: the read must start again from the start (`read_one_version` does)."""


class StoreReadError(OSError):
    """A store failed to deliver bytes of a file (an error answer, an invalid request): says nothing
    about the file itself, which must not be taken for corrupt."""


def _in_chain(error: BaseException, kind: type[E]) -> E | None:
    """The `kind` exception behind `error` (itself, or in its chain of causes), if any: readers
    such as the serializer wrap what a file raises."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def read_one_version(path: str, read: Callable[[], T]) -> T:
    """`read()` (which opens and reads one file), again from the start when the object was
    replaced during it, up to READ_ATTEMPTS in all. Then ObjectChangedError, never a mix of
    versions and never "corrupt": the file is fine, it only keeps changing. A store failure met
    while reading comes out as itself (StoreReadError), not as the reader's "corrupt file"."""
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            return read()
        except Exception as e:
            if _in_chain(e, ObjectChangedError) is None:
                failed = _in_chain(e, StoreReadError)
                if failed is None or failed is e:
                    raise
                raise failed from e
            if attempt == READ_ATTEMPTS:
                raise ObjectChangedError(
                    errno.EAGAIN,
                    f"{path} was replaced while being read, {READ_ATTEMPTS} times in a row; "
                    "retry when its writer is done",
                    path,
                ) from e
            log.info("%s was replaced while being read; reading the new version from the start", path)
    raise AssertionError("unreachable")  # pragma: no cover


def sweep_temp_files(
    store: Store, prefix: str | None = None, older_than: float = STALE_TEMP_SECONDS
) -> list[str]:
    """Delete temp files orphaned by killed writers (older than `older_than` seconds)."""
    removed = []
    for name in stale_temp_names(store, prefix, older_than):
        with contextlib.suppress(FileNotFoundError):
            store.remove(name)
            removed.append(store.path(name))
    return removed


def stale_temp_names(
    store: Store, prefix: str | None = None, older_than: float = STALE_TEMP_SECONDS
) -> list[str]:
    """Names of the temp files orphaned by killed writers: older than `older_than` seconds."""
    cutoff = time.time() - older_than
    return [entry.name for entry in store.temp_entries(prefix) if entry.mtime <= cutoff]
