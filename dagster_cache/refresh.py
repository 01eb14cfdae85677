"""What the refresh schedule and sensor share: checked arguments, partitions and run requests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster import RunRequest

from cache_utils import TimeType, parse_cb_time, validate_prefix

from .dates import zone


def cron_for(cb_time: dt.time) -> str:
    """The daily cron expression for cb_time (minute precision, as cron has)."""
    return f"{cb_time.minute} {cb_time.hour} * * *"


def storage_options_arg(storage_options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The storage options as cache_utils takes them: a dict, or None for none."""
    return dict(storage_options or {}) or None


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
    """The checked arguments the refresh schedule and sensor share: (cb_time, zone, partitions).
    Any mistake is a DagsterInvalidDefinitionError naming the bad value."""
    if (job is None) == (target is None):
        raise dg.DagsterInvalidDefinitionError(f"{builder} needs exactly one of job= or target=")
    try:
        validate_prefix(prefix)
        cb = parse_cb_time(cb_time)
        tz = zone(timezone)
    except (TypeError, ValueError) as e:
        raise dg.DagsterInvalidDefinitionError(f"{builder}: {e}") from e
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
