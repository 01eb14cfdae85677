"""Which calendar day a Dagster output or input belongs to, and which cache prefix it uses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster import InputContext, OutputContext

from cache_utils.naming import validate_prefix
from cache_utils.timing import resolve_zone

PREFIX_METADATA_KEY = "cache_prefix"
# The scheduler stores the tick time in a hidden run tag; the public name is kept as a fallback.
try:
    from dagster._core.storage.tags import SCHEDULED_EXECUTION_TIME_TAG
except ImportError:  # pragma: no cover - only if dagster moves the constant
    SCHEDULED_EXECUTION_TIME_TAG = ".dagster/scheduled_execution_time"
SCHEDULED_TAGS = (SCHEDULED_EXECUTION_TIME_TAG, "dagster/scheduled_execution_time")


class CachePartitionError(ValueError):
    """A partition that cannot be mapped to a cache file (static partitions, bad keys)."""


def zone(name: str) -> dt.tzinfo:
    """The tzinfo for an IANA zone name (clear ValueError naming a bad one)."""
    tz = resolve_zone(name)
    assert tz is not None
    return tz


def prefix_for(asset_key: dg.AssetKey, metadata: Mapping[str, Any] | None) -> str:
    """`cache_prefix` from definition metadata, else the asset key path joined with "__"."""
    override = (metadata or {}).get(PREFIX_METADATA_KEY)
    if override is not None:
        value = getattr(override, "value", override)  # a MetadataValue wraps the text
        return validate_prefix(value)
    return validate_prefix("__".join(asset_key.path))


def _time_dimension(partitions_def: dg.PartitionsDefinition) -> tuple[str | None, Any]:
    """(dimension name or None, time-window partitions definition) for a time-based definition."""
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return None, partitions_def
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        for dim in partitions_def.partitions_defs:
            if isinstance(dim.partitions_def, dg.TimeWindowPartitionsDefinition):
                return dim.name, dim.partitions_def
    raise CachePartitionError(
        f"{type(partitions_def).__name__} has no time dimension: dated cache files need a daily "
        "(time-window) partition or a multi-partition with a time dimension, so each partition "
        "maps to one day; static partitions would overwrite each other's file"
    )


def partition_file(
    partitions_def: dg.PartitionsDefinition, key: str | dg.MultiPartitionKey, base_prefix: str
) -> tuple[str, dt.date]:
    """(prefix, date) of one partition: its window's start date; other dimensions of a
    multi-partition join the prefix as `<prefix>__<key>` so they never share a file."""
    dim_name, time_def = _time_dimension(partitions_def)
    prefix = base_prefix
    time_key = str(key)
    if dim_name is not None:
        by_dim = key.keys_by_dimension if isinstance(key, dg.MultiPartitionKey) else None
        if by_dim is None:
            by_dim = partitions_def.get_partition_key_from_str(str(key)).keys_by_dimension  # type: ignore[attr-defined]
        time_key = by_dim[dim_name]
        others = [by_dim[d] for d in sorted(by_dim) if d != dim_name]
        prefix = validate_prefix("__".join([base_prefix, *others]))
    try:
        start = time_def.time_window_for_partition_key(time_key).start
    except Exception as e:
        raise CachePartitionError(f"invalid partition key {time_key!r} for {time_def}: {e}") from e
    return prefix, start.date()


def run_tags(context: InputContext | OutputContext) -> Mapping[str, str]:
    """The run's tags, or {} outside a run (contexts built for unit tests)."""
    try:
        return context.step_context.dagster_run.tags
    except Exception:  # noqa: BLE001 - no step context: built with build_*_context
        return {}


def run_date(context: InputContext | OutputContext, tz: dt.tzinfo) -> tuple[dt.date, str]:
    """The day an unpartitioned output belongs to: the schedule tick's date, else today in tz."""
    tags = run_tags(context)
    for tag in SCHEDULED_TAGS:
        text = tags.get(tag)
        if text:
            when = dt.datetime.fromisoformat(text)
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            return when.astimezone(tz).date(), "scheduled execution time"
    return dt.datetime.now(tz).date(), "today"


def run_partition_date(context: InputContext) -> dt.date | None:
    """The (last) day of the run's time partition(s), or None for a run without one."""
    try:
        step = context.step_context
        pdef = step.run_partitions_def
        if pdef is None or not step.has_partitions:
            return None
        key = step.partition_key_range.end
        return partition_file(pdef, key, "x")[1]
    except Exception:  # noqa: BLE001 - no step context, or partitions without a time dimension
        return None
