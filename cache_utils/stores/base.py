"""What every store offers: the `Store` protocol, its `Entry` and the sweep of orphaned temp files."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Protocol

STALE_TEMP_SECONDS = 3600.0  # a temp file this old belongs to a writer that died


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


def sweep_temp_files(
    store: Store, prefix: str | None = None, older_than: float = STALE_TEMP_SECONDS
) -> list[str]:
    """Delete temp files orphaned by killed writers (older than `older_than` seconds)."""
    cutoff = time.time() - older_than
    removed = []
    for entry in store.temp_entries(prefix):
        if entry.mtime <= cutoff:
            with contextlib.suppress(FileNotFoundError):
                store.remove(entry.name)
                removed.append(store.path(entry.name))
    return removed
