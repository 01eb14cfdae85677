"""`build_cache_refresh_schedule`: run the refresh daily at cb_time unless today's file exists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster import DefaultScheduleStatus, RunRequest, ScheduleDefinition, SkipReason

from cache_utils import TimeType, cache_exists

from .refresh import cron_for, partitions_at_tick, refresh_arguments, refresh_request, storage_options_arg


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
    otherwise requests the refresh (for today's partition when the job is daily-partitioned)."""
    cb, tz, pdef = refresh_arguments(
        "build_cache_refresh_schedule", prefix, cb_time, timezone, job, target, partitions_def
    )

    def evaluate(context: dg.ScheduleEvaluationContext) -> RunRequest | SkipReason:
        when = context.scheduled_execution_time or dt.datetime.now(tz)
        day = when.astimezone(tz).date()
        if cache_exists(prefix, day, directory, storage_options=storage_options_arg(storage_options)):
            return SkipReason(f"{prefix} cache for {day.isoformat()} already exists in {directory}")
        return refresh_request(prefix, day, partitions_at_tick(context, pdef, schedule.job_name), tags=tags)

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
