"""What the refresh schedule and sensor share: checked arguments, partitions and run requests."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster import RunRequest

from cache_utils.integration import TimeType, parse_cb_time, validate_prefix

from .dates import partition_file, zone
from .rules import definition_errors, require_current_window


def cron_for(cb_time: dt.time) -> str:
    """The daily cron expression for cb_time (minute precision, as cron has)."""
    return f"{cb_time.minute} {cb_time.hour} * * *"


def storage_options_arg(storage_options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The storage options as cache_utils takes them: a dict, or None for none, with every
    `EnvVar("NAME")` in it (at any depth) replaced by the variable's value, read now. Dagster resolves
    an `EnvVar` only in a resource's top-level string fields; inside a dict field such as
    `storage_options` its config system hands over `{"env": "NAME"}` instead, and in plain Python
    arguments an `EnvVar` is just its name. Both would otherwise reach the cloud SDK as the
    credential itself."""
    return _resolve_env(dict(storage_options or {}), "storage_options") or None


def _resolve_env(value: Any, where: str) -> Any:
    name: str | None = None
    if isinstance(value, dg.EnvVar):
        name = str(value)
    elif isinstance(value, Mapping) and len(value) == 1 and isinstance(value.get("env"), str):
        name = value["env"]
    if name is not None:
        found = os.environ.get(name)
        if found is None:
            raise ValueError(
                f"{where} reads the environment variable {name!r}, which is not set: set it in the "
                "environment of every process that runs the job's steps"
            )
        return found
    if isinstance(value, Mapping):
        return {k: _resolve_env(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_resolve_env(v, f"{where}[{i}]") for i, v in enumerate(value))
    return value


def job_partitions_def(job: Any, partitions_def: Any) -> dg.TimeWindowPartitionsDefinition | None:
    """The time-window partitions to request: given explicitly, else the job's own; checked to have
    the partition containing the refresh time (a window exists only once it ends unless
    end_offset >= 1)."""
    pdef = partitions_def if partitions_def is not None else getattr(job, "partitions_def", None)
    if pdef is None:
        return None
    if not isinstance(pdef, dg.TimeWindowPartitionsDefinition):
        raise dg.DagsterInvalidDefinitionError(
            f"cache refresh needs a time-window (daily) partitions definition, got {pdef!r}"
        )
    require_current_window(pdef, repr(pdef), "the refresh writes it now")
    return pdef


def refresh_arguments(
    builder: str, prefix: str, cb_time: TimeType, timezone: str, job: Any, target: Any,
    partitions_def: dg.TimeWindowPartitionsDefinition | None,
) -> tuple[dt.time, dt.tzinfo, dg.TimeWindowPartitionsDefinition | None]:
    """The checked arguments the refresh schedule and sensor share: (cb_time, zone, partitions).
    Any mistake is a DagsterInvalidDefinitionError naming the bad value."""
    if (job is None) == (target is None):
        raise dg.DagsterInvalidDefinitionError(f"{builder} needs exactly one of job= or target=")
    with definition_errors(builder):
        validate_prefix(prefix)
        cb = parse_cb_time(cb_time)
        tz = zone(timezone)
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


@dataclass(frozen=True)
class RefreshTarget:
    """What a refresh at one instant produces: the partition requested (None: unpartitioned) and
    the (prefix, day) of the file the IO manager writes for it, whose existence ends the refresh."""

    partition_key: str | None
    file_prefix: str
    file_day: dt.date


def refresh_target(
    prefix: str, pdef: dg.TimeWindowPartitionsDefinition | None, when: dt.datetime, tz: dt.tzinfo,
) -> RefreshTarget | None:
    """The partition whose window contains the refresh time `when` (Dagster's last partition at
    `when`, given end_offset >= 1): today's day, this hour's slot, this week's or month's window,
    the window of a daily definition with an hour offset. Its file is the one `DatedCacheIOManager`
    writes for it (`partition_file`). None: `when` is before the first partition."""
    if pdef is None:
        return RefreshTarget(None, prefix, when.astimezone(tz).date())
    with dg.partition_loading_context(effective_dt=when):
        try:
            key = pdef.get_partition_key_for_timestamp(when.timestamp())
        except Exception:  # noqa: BLE001 - before the start date: no window contains `when`
            return None
        if not pdef.has_partition_key(key):
            return None
    file_prefix, file_day = partition_file(pdef, key, prefix)
    return RefreshTarget(key, file_prefix, file_day)


def refresh_request(
    prefix: str, day: dt.date, target: RefreshTarget, suffix: str = "",
    tags: Mapping[str, str] | None = None,
) -> RunRequest:
    """The RunRequest refreshing `day`: run_key `<prefix>:<YYYY-MM-DD>` (plus a retry suffix)."""
    return RunRequest(
        run_key=f"{prefix}:{day.isoformat()}{suffix}",
        partition_key=target.partition_key,
        tags={"dagster_cache/prefix": prefix, "dagster_cache/date": day.isoformat(), **(tags or {})},
    )
