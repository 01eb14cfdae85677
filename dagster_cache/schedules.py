"""`build_cache_refresh_schedule`: run the refresh daily at cb_time unless today's file exists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster import DefaultScheduleStatus, RunRequest, ScheduleDefinition, SkipReason

from cache_utils import TimeType, cache_exists, parse_cb_time, validate_prefix
from cache_utils.timing import cron_for

from .dates import zone


def todays_file_exists(
    prefix: str, day: dt.date, directory: str, storage_options: Mapping[str, Any] | None
) -> bool:
    """Whether `<directory>/<prefix>_<day>.pkl.gz` exists."""
    return cache_exists(prefix, day, directory, storage_options=dict(storage_options or {}) or None)


def job_partitions_def(job: Any, partitions_def: Any) -> dg.TimeWindowPartitionsDefinition | None:
    """The daily partitions to request: given explicitly, else the job's own; checked to contain
    today (a daily partition exists only once its day ends unless end_offset >= 1)."""
    pdef = partitions_def if partitions_def is not None else getattr(job, "partitions_def", None)
    if pdef is None:
        return None
    if not isinstance(pdef, dg.TimeWindowPartitionsDefinition):
        raise dg.DagsterInvalidDefinitionError(
            f"cache refresh needs a time-window (daily) partitions definition, got {pdef!r}"
        )
    if pdef.end_offset < 1:
        raise dg.DagsterInvalidDefinitionError(
            f"{pdef!r} has end_offset={pdef.end_offset}: today's partition does not exist until the "
            "day ends, but the cache file for today is written today. Use "
            "DailyPartitionsDefinition(..., end_offset=1)."
        )
    return pdef


def refresh_arguments(
    builder: str, prefix: str, cb_time: TimeType, timezone: str, job: Any, target: Any,
    partitions_def: dg.TimeWindowPartitionsDefinition | None,
) -> tuple[dt.time, dt.tzinfo, dg.TimeWindowPartitionsDefinition | None]:
    """The checked arguments the refresh schedule and sensor share: (cb_time, zone, partitions)."""
    validate_prefix(prefix)
    cb = parse_cb_time(cb_time)
    tz = zone(timezone)
    if (job is None) == (target is None):
        raise ValueError(f"{builder} needs exactly one of job= or target=")
    return cb, tz, job_partitions_def(job if job is not None else target, partitions_def)


def partitions_at_tick(
    context: Any, known: dg.TimeWindowPartitionsDefinition | None, job_name: str | None
) -> dg.TimeWindowPartitionsDefinition | None:
    """The partitions to request at a tick: known at build time, else the resolved job's own
    (asset jobs infer them from their assets, so only the repository knows)."""
    if known is not None or job_name is None:
        return known
    try:
        repository = context.repository_def
    except dg.DagsterInvariantViolationError:  # a context built without a repository
        return None
    if repository is None or not repository.has_job(job_name):
        return None
    return job_partitions_def(repository.get_job(job_name), None)


def partition_key_for(pdef: dg.TimeWindowPartitionsDefinition, day: dt.date) -> str:
    """The key of the partition whose window starts on `day` (in the partitions' own format)."""
    return dt.datetime.combine(day, dt.time()).strftime(pdef.fmt)


def refresh_request(
    prefix: str, day: dt.date, pdef: dg.TimeWindowPartitionsDefinition | None, suffix: str = "",
    tags: Mapping[str, str] | None = None,
) -> RunRequest:
    """The RunRequest refreshing `day`: run_key `<prefix>:<YYYY-MM-DD>` (plus a retry suffix)."""
    return RunRequest(
        run_key=f"{prefix}:{day.isoformat()}{suffix}",
        partition_key=partition_key_for(pdef, day) if pdef is not None else None,
        tags={"dagster_cache/prefix": prefix, "dagster_cache/date": day.isoformat(), **(tags or {})},
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
    otherwise requests the refresh (for today's partition when the job is daily-partitioned)."""
    cb, tz, pdef = refresh_arguments(
        "build_cache_refresh_schedule", prefix, cb_time, timezone, job, target, partitions_def
    )

    def evaluate(context: dg.ScheduleEvaluationContext) -> RunRequest | SkipReason:
        when = context.scheduled_execution_time or dt.datetime.now(tz)
        day = when.astimezone(tz).date()
        if todays_file_exists(prefix, day, directory, storage_options):
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
