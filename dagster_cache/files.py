"""The files `DatedCacheIOManager` writes and reads: `Target` (one file an output writes),
`Loaded` (which file an input came from, and how stale), the pickle probe run before a multi-file
write, the metadata of a written output and of a loaded input, and `read_many`, the one place a
range's files are read concurrently (so the library's own many-file read can replace it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster import MetadataValue, OutputContext

from cache_utils import CacheFile
from cache_utils.integration import map_in_order, parse_file_name

from .context import output_name
from .metadata import frame_metadata, row_count_metadata

# The written file's content fingerprint (gzip CRC32 and length), what `cache_data_version` gives.
FINGERPRINT_KEY = "dagster_cache/fingerprint"


@dataclass(frozen=True)
class Target:
    """One file an output writes: its partition key (None when unpartitioned), prefix, day, value."""

    key: str | None
    prefix: str
    day: dt.date
    value: Any


@dataclass(frozen=True)
class Loaded:
    """Which file an input came from and how many days older than wanted it is."""

    path: str
    date: dt.date
    wanted: dt.date
    wanted_corrupt: bool = False  # the wanted day's file exists but was skipped as corrupt

    @property
    def stale_days(self) -> int:
        return (self.wanted - self.date).days


def file_day(prefix: str, path: str) -> dt.date | None:
    """The day in a deleted cache file's name (None for a temp file `prune` swept)."""
    parsed = parse_file_name(path.rstrip("/").rsplit("/", 1)[-1], prefix)
    return parsed[1] if parsed is not None else None


class Discard:
    """A file that forgets what is written: pickling into it only proves the value pickles."""

    def write(self, data: Any) -> int:
        return len(data)


def not_picklable(context: OutputContext, value: Any, error: BaseException) -> Exception:
    return dg.DagsterInvariantViolationError(
        f"Object of type {type(value).__module__}.{type(value).__qualname__} returned by "
        f"{output_name(context)} is not picklable, so it cannot be cached: {error}. Return "
        "picklable data, or give this output another io_manager_key."
    )


def input_metadata(used: Loaded) -> dict[str, Any]:
    return {
        "path": MetadataValue.path(used.path),
        "dagster_cache/date_used": MetadataValue.text(used.date.isoformat()),
        "dagster_cache/date_wanted": MetadataValue.text(used.wanted.isoformat()),
        "dagster_cache/stale_days": MetadataValue.int(used.stale_days),
        "dagster_cache/fallback": MetadataValue.bool(used.stale_days > 0),
    }


def read_many(read: Callable[[Any], Any], targets: list[Any], workers: int) -> Iterator[Any]:
    """`read(target)` of each target, yielded in order, at most `workers` in flight: the library's
    ordered pool (`cache_utils.integration.map_in_order`, which `CacheDir.read_many` runs on too),
    with the manager's thread names."""
    return map_in_order(read, targets, workers, "dagster_cache-load")


def output_metadata(
    written: list[tuple[Target, CacheFile]], preview_rows: int, partitioned: bool,
) -> dict[str, Any]:
    """The metadata of an output's materialization: the file (path, prefix, day, size, fingerprint,
    frame preview) when one was written, the files (paths by key, days, sizes) when several were."""
    meta: dict[str, Any] = {"dagster_cache/written": True}
    if len(written) == 1:
        target, saved = written[0]
        meta.update({
            "path": MetadataValue.path(saved.path),
            "dagster_cache/prefix": target.prefix,
            "dagster_cache/date": MetadataValue.text(target.day.isoformat()),
        })
        if target.value is None:
            meta["dagster_cache/note"] = "output was None: written, so consumers receive None"
        meta["dagster_cache/size_bytes"] = MetadataValue.int(saved.size)
        meta[FINGERPRINT_KEY] = MetadataValue.text(saved.fingerprint or "")
        meta.update(frame_metadata(target.value, preview_rows, partitioned))
        return meta
    meta.update({
        "paths": MetadataValue.json({str(t.key): saved.path for t, saved in written}),
        "dagster_cache/dates": MetadataValue.json([t.day.isoformat() for t, _saved in written]),
        "dagster_cache/files_written": MetadataValue.int(len(written)),
        "dagster_cache/size_bytes": MetadataValue.int(sum(saved.size for _t, saved in written)),
        FINGERPRINT_KEY: MetadataValue.json({str(t.key): saved.fingerprint for t, saved in written}),
    })
    meta.update(row_count_metadata([t.value for t, _saved in written]))
    return meta
