"""Dagster sensors: the cache refresh sensor, and the run-failure sensor that pages OpsGenie /
JSM Operations (like dagster-slack's; `make_alert_on_run_failure_sensor`, first named
`make_opsgenie_on_run_failure_sensor`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, get_args

import dagster as dg
from dagster import (
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    SensorDefinition,
    SkipReason,
)

from cache_utils import cache_exists, check_refresh
from cache_utils.integration import DEFAULT_RETRY_INTERVAL, AlertPriority, TimeType, parse_retry_interval

from .refresh import (
    partitions_at_tick,
    refresh_arguments,
    refresh_request,
    refresh_target,
    storage_options_arg,
)
from .resources import AlertResource
from .rules import definition_errors


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

    The cursor is `cache_utils.next_callback` (what `load_cache` returns as its next callback),
    as `cache_utils.check_refresh` decides: the sensor does nothing before it, and stops for the
    day once today's file exists. Run keys are `<prefix>:<day>:<UTC time>`, unique even in a
    repeated (fall-back) hour.

    Args:
        prefix: Cache file prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        cb_time: Daily time today's data is due: a `datetime.time` or "HH:MM" / "HH:MM:SS".
        job: The job that refreshes the cache (give exactly one of `job` and `target`).
        target: What to run instead of a job (assets or an asset selection).
        directory: Local directory or fsspec URL of the cache files.
        timezone: IANA zone of `cb_time` and of "today".
        retry_interval: Wait between requests once cb_time has passed: a timedelta or seconds.
        name: Sensor name; None means `refresh_<prefix>_sensor`.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.
        partitions_def: Time-window partitions (`end_offset=1`) to request the partition containing
            the check's time of (the hour, week or month too), skipping once its file exists; None:
            the job's own, if any.
        minimum_interval_seconds: Seconds between evaluations.
        default_status: Whether the sensor starts running or stopped.
        tags: Tags added to each run requested.

    Raises:
        DagsterInvalidDefinitionError: A bad argument, named in the message.
    """
    cb, tz, pdef = refresh_arguments(
        "build_cache_refresh_sensor", prefix, cb_time, timezone, job, target, partitions_def
    )
    with definition_errors("build_cache_refresh_sensor"):
        interval = parse_retry_interval(retry_interval)
    options = storage_options_arg(storage_options)

    def evaluate(context: dg.SensorEvaluationContext) -> RunRequest | SkipReason:
        check = check_refresh(
            prefix, cb, directory, tz=tz, retry_interval=interval, storage_options=options,
            not_before=dt.datetime.fromisoformat(context.cursor) if context.cursor else None,
        )
        if check.next_check is not None:
            context.update_cursor(check.next_check.isoformat())
        if not check.due:
            return SkipReason(check.reason)
        request_pdef = partitions_at_tick(context, pdef, sensor.job_name if sensor.has_jobs else None)
        target = refresh_target(prefix, request_pdef, check.now, tz)
        if target is None:
            return SkipReason(f"no partition contains {check.now.isoformat()}: before the partitions' start")
        # check_refresh looked at today's file; an hour slot's, week's or month's file is another one.
        other = (target.file_prefix, target.file_day) != (prefix, check.day)
        if other and cache_exists(target.file_prefix, target.file_day, directory, storage_options=options):
            return SkipReason(f"{target.file_prefix} cache for {target.file_day.isoformat()} (partition "
                              f"{target.partition_key}) exists")
        # UTC in the key: a local wall time repeats in the fall-back hour, and a repeated run key
        # makes Dagster drop the retry.
        at = check.now.astimezone(dt.UTC)
        return refresh_request(prefix, check.day, target, suffix=f":{at:%Y%m%dT%H%M%SZ}", tags=tags)

    sensor = SensorDefinition(
        name=name or f"refresh_{prefix}_sensor",
        evaluation_fn=evaluate,
        minimum_interval_seconds=minimum_interval_seconds,
        job=job,
        target=target,
        default_status=default_status,
        description=f"After {cb:%H:%M} {timezone}, requests the {prefix} refresh every "
        f"{duration_words(interval)} until today's file exists.",
    )
    return sensor


def duration_words(delta: dt.timedelta) -> str:
    """A wait in words: "15 minutes", "1 hour 30 minutes", "45 seconds" (not "0:15:00")."""
    total = int(delta.total_seconds())
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return " ".join(parts) or "0 seconds"


def default_message(context: RunFailureSensorContext) -> str:
    """`Dagster run failed: <job>`, the default alert message."""
    return f'Dagster job "{context.dagster_run.job_name}" failed'


def default_alias(context: RunFailureSensorContext) -> str:
    """One open alert per failing job: repeated failures bump its count instead of paging again."""
    return f"dagster_cache:run_failure:{context.dagster_run.job_name}"


def _description(context: RunFailureSensorContext, base_url: str | None) -> str:
    run = context.dagster_run
    lines = [f"Run {run.run_id} of job {run.job_name} failed."]
    if context.failure_event.message:
        lines.append(f"Error: {context.failure_event.message}")
    if base_url:
        lines.append(f"Run: {base_url.rstrip('/')}/runs/{run.run_id}")
    return "\n".join(lines)


def make_alert_on_run_failure_sensor(
    *,
    opsgenie: AlertResource | None = None,
    name: str | None = None,
    monitored_jobs: Sequence[Any] | None = None,
    monitor_all_code_locations: bool = False,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    message_fn: Callable[[RunFailureSensorContext], str] = default_message,
    alias_fn: Callable[[RunFailureSensorContext], str] = default_alias,
    priority: AlertPriority | None = None,
    tags: Sequence[str] = (),
    webserver_base_url: str | None = None,
    minimum_interval_seconds: int | None = None,
) -> SensorDefinition:
    """A run failure sensor that opens an alert per failing job, in OpsGenie or, with
    `AlertResource(backend="jsm")`, in Jira Service Management Operations.
    `make_opsgenie_on_run_failure_sensor` is the same function under its first name (hence the
    parameter, resource key and default sensor name "opsgenie", kept so existing code locations,
    and the sensors' history, stay as they are).

    Pass `opsgenie=` (an AlertResource), or leave it out and bind one in Definitions under
    the resource key "opsgenie".

    Args:
        opsgenie: The resource to alert through; None uses the one bound under "opsgenie".
        name: Sensor name; None means "opsgenie_on_run_failure".
        monitored_jobs: Jobs to watch; None means every job of the code location.
        monitor_all_code_locations: Watch the jobs of every code location.
        default_status: Whether the sensor starts running or stopped.
        message_fn: Alert message from the failure context.
        alias_fn: Alert alias from the failure context (one open alert per alias).
        priority: "P1" to "P5"; None means the resource's priority.
        tags: Tags added to each alert, after "dagster".
        webserver_base_url: Dagster UI URL, to link the failed run in the alert; None: no link.
        minimum_interval_seconds: Seconds between evaluations; None: Dagster's default.

    Raises:
        DagsterInvalidDefinitionError: A bad argument, named in the message.
    """
    if priority is not None and priority not in get_args(AlertPriority):
        raise dg.DagsterInvalidDefinitionError(
            f"make_alert_on_run_failure_sensor: priority must be one of {get_args(AlertPriority)}, "
            f"got {priority!r}"
        )
    decorate = dg.run_failure_sensor(
        name=name or "opsgenie_on_run_failure",
        monitored_jobs=monitored_jobs,
        monitor_all_code_locations=monitor_all_code_locations,
        default_status=default_status,
        minimum_interval_seconds=minimum_interval_seconds,
        description="Opens an OpsGenie / JSM Operations alert when a monitored run fails.",
    )

    def alert(context: RunFailureSensorContext, resource: AlertResource) -> None:
        run = context.dagster_run
        sent = resource.create_alert(
            message_fn(context),
            alias_fn(context),
            description=_description(context, webserver_base_url),
            priority=priority,
            tags=("dagster", *tags),
            details={"run_id": run.run_id, "job_name": run.job_name},
            source="dagster",
        )
        context.log.info(f"{resource.service} alert for failed run {run.run_id}: "
                         f"{'sent' if sent else 'not sent'}")

    if opsgenie is not None:
        configured = opsgenie

        def with_given(context: RunFailureSensorContext) -> None:
            alert(context, configured)

        return decorate(with_given)

    def with_bound(context: RunFailureSensorContext, opsgenie: AlertResource) -> None:
        alert(context, opsgenie)

    return decorate(with_bound)


# The first name of `make_alert_on_run_failure_sensor`, from when it served OpsGenie only.
make_opsgenie_on_run_failure_sensor = make_alert_on_run_failure_sensor
