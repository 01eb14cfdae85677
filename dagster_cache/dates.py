"""Which calendar day (and partition slot) a Dagster output or input maps to."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster import InputContext, OutputContext

from cache_utils.integration import resolve_zone, validate_prefix

from .compat import SCHEDULED_EXECUTION_TIME_TAG
from .context import step_of
from .errors import CachePartitionError

# The scheduler stores the tick time in a hidden run tag; the public name is kept as a fallback.
SCHEDULED_TAGS = (SCHEDULED_EXECUTION_TIME_TAG, "dagster/scheduled_execution_time")


def zone(name: str) -> dt.tzinfo:
    """The tzinfo for an IANA zone name (clear ValueError naming a bad one)."""
    tz = resolve_zone(name)
    assert tz is not None
    return tz


def time_dimension(partitions_def: dg.PartitionsDefinition) -> tuple[str | None, Any]:
    """(dimension name or None, time-window partitions definition) for a time-based definition."""
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return None, partitions_def
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        for dim in partitions_def.partitions_defs:
            if isinstance(dim.partitions_def, dg.TimeWindowPartitionsDefinition):
                return dim.name, dim.partitions_def
    raise CachePartitionError(
        f"{type(partitions_def).__name__} has no time dimension: this needs a daily (time-window) "
        "partition or a multi-partition with a time dimension, so each partition maps to one day"
    )


def has_time_dimension(partitions_def: dg.PartitionsDefinition) -> bool:
    """Whether partitions map to days (time-window, or multi with a time dimension); False for
    static, dynamic and multi-partitions without one, whose keys are each their own daily series."""
    try:
        time_dimension(partitions_def)
    except CachePartitionError:
        return False
    return True


def key_prefix(
    partitions_def: dg.PartitionsDefinition, key: str | dg.MultiPartitionKey, base_prefix: str
) -> str:
    """The prefix of one key of partitions without a time dimension: `<base>__<key>` (a
    multi-partition's keys in dimension-name order, `<base>__<k1>__<k2>`). Each key is its own daily
    series, dated by the run's day like an unpartitioned asset. A key that cannot be part of a file
    name (a path separator, a glob character, '..', too long: `cache_utils.validate_prefix`) is
    refused, naming the key; keys are never encoded, so the file name shows the key as it is."""
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        by_dim = key.keys_by_dimension if isinstance(key, dg.MultiPartitionKey) else \
            partitions_def.get_partition_key_from_str(str(key)).keys_by_dimension
        parts = [by_dim[d] for d in sorted(by_dim)]
    else:
        parts = [str(key)]
    try:
        return validate_prefix("__".join([base_prefix, *parts]))
    except ValueError as e:
        raise CachePartitionError(
            f"partition key {str(key)!r} cannot name a cache file ({base_prefix}__<key>): {e}. Use keys "
            "made of letters, digits, '-', '_' and spaces (no '/', '*', '?', '[', ']', '..')"
        ) from e


def is_sub_daily(time_def: dg.TimeWindowPartitionsDefinition) -> bool:
    """Whether windows can start more than once a day (hourly, every 15 minutes, twice a day...):
    true unless the cron's minute and hour are single numbers."""
    minute, hour = time_def.cron_schedule.split()[:2]
    return not (minute.isdigit() and hour.isdigit())


def slot(start: dt.datetime) -> str:
    """The time-of-day part of a sub-daily partition's prefix: `HHMM` of its window's start, plus
    its UTC offset (`0100-0500`) in the second pass of a repeated DST hour, as Dagster's key has."""
    text = f"{start.hour:02d}{start.minute:02d}"
    if start.tzinfo is not None and start.utcoffset() != start.replace(fold=0).utcoffset():
        text += start.strftime("%z")
    return text


def partition_file(
    partitions_def: dg.PartitionsDefinition, key: str | dg.MultiPartitionKey, base_prefix: str
) -> tuple[str, dt.date]:
    """(prefix, date) of one partition's file, dated by its window's start.

    The other dimension of a multi-partition joins the prefix as `<prefix>__<key>`, and a sub-daily
    window its start time as `<prefix>__<HHMM>`, so no two partitions ever share a file."""
    dim_name, time_def = time_dimension(partitions_def)
    parts = [base_prefix]
    time_key = str(key)
    if dim_name is not None:
        by_dim = key.keys_by_dimension if isinstance(key, dg.MultiPartitionKey) else None
        if by_dim is None:
            by_dim = partitions_def.get_partition_key_from_str(str(key)).keys_by_dimension  # type: ignore[attr-defined]
        time_key = by_dim[dim_name]
        parts += [by_dim[d] for d in sorted(by_dim) if d != dim_name]
    try:
        start = time_def.time_window_for_partition_key(time_key).start
    except Exception as e:
        raise CachePartitionError(f"invalid partition key {time_key!r} for {time_def}: {e}") from e
    if is_sub_daily(time_def):
        parts.append(slot(start))
    try:
        return validate_prefix("__".join(parts)), start.date()
    except ValueError as e:
        raise CachePartitionError(f"partition {str(key)!r} cannot name a cache file: {e}") from e


def run_tags(context: InputContext | OutputContext) -> Mapping[str, str]:
    """The run's tags, or {} outside a run (contexts built for unit tests)."""
    step = step_of(context)
    return step.dagster_run.tags if step is not None else {}


def run_date(context: InputContext | OutputContext, tz: dt.tzinfo) -> tuple[dt.date, str]:
    """The day of a run without a time partition: the schedule tick's date, else today in tz."""
    tags = run_tags(context)
    for tag in SCHEDULED_TAGS:
        text = tags.get(tag)
        if text:
            when = dt.datetime.fromisoformat(text)
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            return when.astimezone(tz).date(), "scheduled execution time"
    return dt.datetime.now(tz).date(), "today"


def run_partition(context: InputContext | OutputContext) -> tuple[Any, str] | None:
    """(partitions definition, key) of the run's time partition (the last of a range), or None
    for a run without one (unpartitioned, or static/dynamic partitions only)."""
    step = step_of(context)
    if step is None:
        return None
    try:
        pdef = step.run_partitions_def
        has = pdef is not None and step.has_partitions
    except Exception:  # noqa: BLE001 - partitions Dagster cannot resolve for this step: as none
        return None
    if not has or pdef is None:
        return None
    try:
        time_dimension(pdef)
    except CachePartitionError:
        return None
    return pdef, step.partition_key_range.end


def unpartitioned_file(
    context: InputContext | OutputContext, base_prefix: str, is_asset: bool, tz: dt.tzinfo
) -> tuple[str, dt.date, str]:
    """(prefix, day, why) of an unpartitioned output, the same when it is written and read back.

    In a run for a time partition it is that partition's day; an op output also takes the run's
    other dimension and sub-daily slot, so concurrent runs of one day never share a file.
    Elsewhere it is the schedule tick's day, else today."""
    found = run_partition(context)
    if found is None:
        day, why = run_date(context, tz)
        return base_prefix, day, why
    pdef, key = found
    prefix, day = partition_file(pdef, key, base_prefix)
    return (base_prefix if is_asset else prefix), day, f"the run's partition {key}"
