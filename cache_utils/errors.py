"""Exceptions raised by cache_utils."""

from __future__ import annotations


class CacheError(Exception):
    """Base class of every cache_utils error."""


class CacheNotFoundError(CacheError, RuntimeError):
    """No usable cache file exists (a RuntimeError, as the original API raised).

    Args:
        message: The error message.
        prefix: The cache prefix looked for (kept as `.prefix`).
        directory: The directory searched (kept as `.directory`).
    """

    def __init__(self, message: str, *, prefix: str = "", directory: str = "") -> None:
        super().__init__(message)
        self.prefix = prefix
        self.directory = directory


class CorruptCacheError(CacheError):
    """A cache file exists but cannot be trusted: bad gzip, bad pickle, bad or missing signature.

    Args:
        path: Path of the file (kept as `.path`).
        reason: What is wrong with it (kept as `.reason`).
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"corrupt cache file {path}: {reason}")
        self.path = path
        self.reason = reason


# Raised while a store is read when the store failed (file gone, access refused, connection lost,
# timed out): the file is not known to be corrupt, so these pass through as they are, never as
# CorruptCacheError (which would have a good file skipped as damaged).
STORE_FAILURES: tuple[type[OSError], ...] = (
    FileNotFoundError, PermissionError, ConnectionError, TimeoutError,
)
