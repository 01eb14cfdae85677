"""`build_cache_refresh_schedule`: run the refresh daily at cb_time unless today's file exists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster import DefaultScheduleStatus, RunRequest, ScheduleDefinition, SkipReason

from cache_utils import cache_exists
from cache_utils.integration import TimeType

from .refresh import (
    cron_for,
    partitions_at_tick,
    refresh_arguments,
    refresh_request,
    refresh_target,
    storage_options_arg,
)


def build_cache_refresh_schedule(
    *,
    prefix: str,
    cb_time: TimeType,
    job: Any = None,
    target: Any = None,
    directory: str = "data",
    timezone: str = "UTC",
    name: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    partitions_def: dg.TimeWindowPartitionsDefinition | None = None,
    default_status: DefaultScheduleStatus = DefaultScheduleStatus.STOPPED,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
) -> ScheduleDefinition:
    """A daily schedule at cb_time in `timezone` that skips when today's file already exists and
    otherwise requests the refresh.

    A partitioned job is asked for the partition whose window contains the tick (today's day, this
    hour, this week or month, a daily window with an hour offset), and the tick skips when that
    partition's file (as `DatedCacheIOManager` names it) exists.

    Args:
        prefix: Cache file prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        cb_time: Daily time today's data is due: a `datetime.time` or "HH:MM" / "HH:MM:SS".
        job: The job that refreshes the cache (give exactly one of `job` and `target`).
        target: What to run instead of a job (assets or an asset selection).
        directory: Local directory or fsspec URL of the cache files.
        timezone: IANA zone of `cb_time` and of "today".
        name: Schedule name; None means `refresh_<prefix>_schedule`.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.
        partitions_def: Time-window partitions (`end_offset=1`) to request the partition containing
            the tick of; None: the job's own, if any.
        default_status: Whether the schedule starts running or stopped.
        tags: Tags added to each run requested.
        description: Schedule description; None gives one naming the prefix and time.

    Raises:
        DagsterInvalidDefinitionError: A bad argument, named in the message.
    """
    cb, tz, pdef = refresh_arguments(
        "build_cache_refresh_schedule", prefix, cb_time, timezone, job, target, partitions_def
    )

    def evaluate(context: dg.ScheduleEvaluationContext) -> RunRequest | SkipReason:
        when = context.scheduled_execution_time or dt.datetime.now(tz)
        day = when.astimezone(tz).date()
        target = refresh_target(prefix, partitions_at_tick(context, pdef, schedule.job_name), when, tz)
        if target is None:
            return SkipReason(f"no partition contains {when.isoformat()}: before the partitions' start")
        if cache_exists(target.file_prefix, target.file_day, directory,
                        storage_options=storage_options_arg(storage_options)):
            return SkipReason(f"{target.file_prefix} cache for {target.file_day.isoformat()} already exists "
                              f"in {directory}")
        return refresh_request(prefix, day, target, tags=tags)

    schedule = ScheduleDefinition(
        name=name or f"refresh_{prefix}_schedule",
        cron_schedule=cron_for(cb),
        execution_timezone=timezone,
        job=job,
        target=target,
        execution_fn=evaluate,
        default_status=default_status,
        description=description or f"Refreshes the {prefix} cache daily at {cb:%H:%M} {timezone}.",
    )
    return schedule
