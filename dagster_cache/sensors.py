"""`build_cache_refresh_sensor`: retry the refresh every retry interval until today's file exists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster import DefaultSensorStatus, RunRequest, SensorDefinition, SkipReason

from cache_utils.timing import (
    DEFAULT_RETRY_INTERVAL,
    TimeType,
    at_time,
    coerce_interval,
    next_callback,
    now_in,
    reached,
)

from .schedules import partitions_at_tick, refresh_arguments, refresh_request, todays_file_exists


def build_cache_refresh_sensor(
    *,
    prefix: str,
    cb_time: TimeType,
    job: Any = None,
    target: Any = None,
    directory: str = "data",
    timezone: str = "UTC",
    retry_interval: dt.timedelta | float = DEFAULT_RETRY_INTERVAL,
    name: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    partitions_def: dg.TimeWindowPartitionsDefinition | None = None,
    minimum_interval_seconds: int = 60,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    tags: Mapping[str, str] | None = None,
) -> SensorDefinition:
    """After cb_time, while today's file is missing, request the refresh every `retry_interval`.

    The cursor is `cache_utils.next_callback` (what `load_cache` returns as its next callback):
    the sensor does nothing before it, and stops for the day once today's file exists.
    """
    cb, tz, pdef = refresh_arguments(
        "build_cache_refresh_sensor", prefix, cb_time, timezone, job, target, partitions_def
    )
    interval = coerce_interval(retry_interval)

    def evaluate(context: dg.SensorEvaluationContext) -> RunRequest | SkipReason:
        now = now_in(tz)  # fold set right in a repeated hour, as load_cache has it
        day = now.date()
        if todays_file_exists(prefix, day, directory, storage_options):
            context.update_cursor(next_callback(cb, tz, True, now=now, retry_interval=interval).isoformat())
            return SkipReason(f"{prefix} cache for {day.isoformat()} exists")
        due = dt.datetime.fromisoformat(context.cursor) if context.cursor else None
        # Instants, not wall times: in a repeated DST hour 01:45 EDT comes before 01:30 EST.
        if due is not None and not reached(now, due):
            return SkipReason(f"{prefix}: next check at {due.isoformat()}")
        # Before cb_time this is today's cb_time; after it, now + retry_interval.
        when = next_callback(cb, tz, False, now=now, retry_interval=interval)
        context.update_cursor(when.isoformat())
        if not reached(now, at_time(day, cb, tz)):
            return SkipReason(f"{prefix}: not due before {when.isoformat()}")
        request_pdef = partitions_at_tick(context, pdef, sensor.job_name if sensor.has_jobs else None)
        return refresh_request(prefix, day, request_pdef, suffix=f":{now:%H%M%S}", tags=tags)

    sensor = SensorDefinition(
        name=name or f"refresh_{prefix}_sensor",
        evaluation_fn=evaluate,
        minimum_interval_seconds=minimum_interval_seconds,
        job=job,
        target=target,
        default_status=default_status,
        description=f"Retries the {prefix} refresh every {interval} after {cb:%H:%M} {timezone} "
        "until today's file exists.",
    )
    return sensor
