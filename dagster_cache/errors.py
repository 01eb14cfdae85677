"""Errors raised by the Dagster layer."""

from __future__ import annotations

from cache_utils import CacheError


class CachePartitionError(CacheError, ValueError):
    """A partition that cannot be mapped to a cache file (static partitions, bad keys, clashes)."""
