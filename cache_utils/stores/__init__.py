"""Where cache files live: a local directory (fast path) or an fsspec URL, behind one small interface.

`FsspecStore` loads on first use: fsspec is heavy and `import cache_utils` must stay light.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .base import (
    STALE_TEMP_SECONDS,
    Entry,
    NotARegularFileError,
    ObjectChangedError,
    Store,
    StoreReadError,
    UnreadableFileError,
    stale_temp_names,
    sweep_temp_files,
)
from .local import LocalStore

if TYPE_CHECKING:
    from .fsspec import FsspecStore

__all__ = [
    "STALE_TEMP_SECONDS",
    "Entry",
    "FsspecStore",
    "LocalStore",
    "NotARegularFileError",
    "ObjectChangedError",
    "Store",
    "StoreReadError",
    "UnreadableFileError",
    "get_store",
    "is_url",
    "stale_temp_names",
    "sweep_temp_files",
]


def is_url(directory: str) -> bool:
    """True for fsspec URLs such as `s3://bucket/dir` (but `file://` maps to a local path).

    Args:
        directory: A directory setting: local path or URL.
    """
    return "://" in directory and not directory.startswith("file://")


def get_store(
    directory: str | os.PathLike[str],
    storage_options: dict[str, Any] | None = None,
    file_mode: int | None = None,
) -> Store:
    """The store for a local directory or an fsspec URL. `file_mode` (permission bits of files
    written) applies to local directories only: an object store's access is the bucket's policy."""
    if not isinstance(directory, str | os.PathLike):
        raise TypeError(
            f"directory must be a str or path, got {type(directory).__name__}: {directory!r}"
        )
    directory = os.fspath(directory)
    if "\0" in directory:
        raise ValueError(f"invalid directory {directory!r}: contains NUL")
    if is_url(directory):
        from .fsspec import FsspecStore

        return FsspecStore(directory, storage_options or {})
    if directory.startswith("file://"):
        directory = directory[len("file://") :]
    return LocalStore(directory, file_mode=file_mode)


def __getattr__(name: str) -> Any:
    """`FsspecStore`, imported on first access."""
    if name == "FsspecStore":
        from .fsspec import FsspecStore

        return FsspecStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
