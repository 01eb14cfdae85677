"""Asset checks for cached assets: the current file exists, verifies and is recent; freshness
from the same `cb_time` that drives `load_cache` and the refresh schedule."""

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
)

from cache_utils import (
    CacheError,
    TimeType,
    cache_dates,
    cache_exists,
    cache_filename,
    parse_cb_time,
    verify_cache,
)

from .dates import partition_file, zone
from .freshness import superseded_freshness
from .prefixes import prefix_for
from .refresh import cron_for

EXISTS_CHECK = "cache_file_exists"
VERIFIES_CHECK = "cache_file_verifies"
AGE_CHECK = "cache_file_age"
CachedAsset = dg.AssetsDefinition | dg.AssetSpec


@dataclass(frozen=True)
class _Target:
    """What the checks of one asset look at: its key, prefix function inputs and IO manager key."""

    key: AssetKey
    metadata: Any
    partitions_def: dg.PartitionsDefinition | None
    io_manager_key: str


def _targets(builder: str, assets: Sequence[CachedAsset], io_manager_key: str | None) -> list[_Target]:
    targets = []
    for asset in assets:
        specs = asset.specs if isinstance(asset, dg.AssetsDefinition) else [asset]
        for spec in specs:
            pdef = spec.partitions_def
            if pdef is not None and not isinstance(pdef, dg.TimeWindowPartitionsDefinition):
                raise dg.DagsterInvalidDefinitionError(
                    f"{builder}: asset {spec.key.to_user_string()} has {type(pdef).__name__}; cache file "
                    "checks look at the newest time-window partition, so they need a daily (time-window) "
                    "partitions definition or none"
                )
            key = io_manager_key
            if key is None and isinstance(asset, dg.AssetsDefinition):
                key = asset.get_io_manager_key_for_asset_key(spec.key)
            targets.append(_Target(spec.key, spec.metadata, pdef, key or "io_manager"))
    if not targets:
        raise dg.DagsterInvalidDefinitionError(f"{builder} needs at least one asset")
    return targets


def current_file(target: _Target, tz: dt.tzinfo, now: dt.datetime | None = None) -> tuple[str, dt.date]:
    """(prefix, day) of the file an asset should have now: today's (in `tz`) when unpartitioned,
    else its newest partition's (today's with `end_offset=1`)."""
    base = prefix_for(target.key, target.metadata)
    now = now or dt.datetime.now(tz)
    if target.partitions_def is None:
        return base, now.astimezone(tz).date()
    with dg.partition_loading_context(effective_dt=now):
        last = target.partitions_def.get_last_partition_key()
    if last is None:  # before the first partition: nothing can exist yet
        return base, now.astimezone(tz).date()
    return partition_file(target.partitions_def, last, base)


def _results(target: _Target, manager: Any, max_age_days: int) -> Iterator[AssetCheckResult]:
    tz = zone(manager.timezone)
    prefix, day = current_file(target, tz)
    options = manager.storage_options or None
    directory = manager.directory
    asset = target.key

    exists = cache_exists(prefix, day, directory, storage_options=options)
    expected = cache_filename(prefix, day, directory=directory)
    yield AssetCheckResult(
        asset_key=asset, check_name=EXISTS_CHECK, passed=exists, severity=AssetCheckSeverity.ERROR,
        description=f"{expected} {'exists' if exists else 'is missing'}",
        metadata={"prefix": prefix, "date": day.isoformat(), "directory": directory},
    )

    dates = cache_dates(prefix, directory, day, storage_options=options)
    newest_day = dates[0] if dates else None
    if newest_day is None:
        yield AssetCheckResult(
            asset_key=asset, check_name=VERIFIES_CHECK, passed=False, severity=AssetCheckSeverity.ERROR,
            description=f"no {prefix} file on or before {day.isoformat()} in {directory} to verify",
        )
        yield AssetCheckResult(
            asset_key=asset, check_name=AGE_CHECK, passed=False, severity=AssetCheckSeverity.WARN,
            description=f"no {prefix} file on or before {day.isoformat()} in {directory}",
            metadata={"max_age_days": max_age_days},
        )
        return
    newest = cache_filename(prefix, newest_day, directory=directory)
    try:
        verified = verify_cache(prefix, newest_day, directory, signing_key=manager.signing_key or None,
                                storage_options=options)
    except FileNotFoundError:  # removed between listing and reading: the age check still speaks
        yield AssetCheckResult(
            asset_key=asset, check_name=VERIFIES_CHECK, passed=False, severity=AssetCheckSeverity.ERROR,
            description=f"{newest} vanished while being verified",
        )
    except (CacheError, OSError) as e:
        yield AssetCheckResult(
            asset_key=asset, check_name=VERIFIES_CHECK, passed=False, severity=AssetCheckSeverity.ERROR,
            description=f"{newest} does not verify: {e}", metadata={"path": newest},
        )
    else:
        yield AssetCheckResult(
            asset_key=asset, check_name=VERIFIES_CHECK, passed=True, severity=AssetCheckSeverity.ERROR,
            description=f"{verified.path}: signature and gzip CRC checked to the end",
            metadata={"path": verified.path, "size_bytes": verified.size,
                      "dagster_cache/fingerprint": verified.fingerprint or ""},
        )
    age = (day - newest_day).days
    yield AssetCheckResult(
        asset_key=asset, check_name=AGE_CHECK, passed=age <= max_age_days, severity=AssetCheckSeverity.WARN,
        description=f"the newest {prefix} file is from {newest_day.isoformat()}: {age} day(s) old "
                    f"(at most {max_age_days} allowed)",
        metadata={"age_days": age, "max_age_days": max_age_days, "newest_date": newest_day.isoformat()},
    )


def build_cache_file_checks(
    *,
    assets: Sequence[CachedAsset],
    max_age_days: int = 1,
    io_manager_key: str | None = None,
    name: str = "cache_file_checks",
) -> list[AssetChecksDefinition]:
    """Three checks per cached asset, shown in its Checks tab and runnable from the UI:

    - `cache_file_exists` (ERROR): today's file, or the newest partition's, exists;
    - `cache_file_verifies` (ERROR): the newest file on or before that day passes its signature and
      gzip CRC check to the end, without being unpickled;
    - `cache_file_age` (WARN): that newest file is at most `max_age_days` old.

    Each asset's `DatedCacheIOManager` (its own IO manager key, or `io_manager_key`) gives the
    directory, time zone, signing key and storage options.

    Args:
        assets: The cached assets: `AssetsDefinition`s or `AssetSpec`s, daily-partitioned or not.
        max_age_days: How many days old the newest file may be before `cache_file_age` fails.
        io_manager_key: Resource key of the `DatedCacheIOManager` for every asset; None: each
            asset's own IO manager key.
        name: Name of the multi-asset check.

    Raises:
        DagsterInvalidDefinitionError: A bad argument, named in the message.
    """
    if isinstance(max_age_days, bool) or not isinstance(max_age_days, int):
        raise dg.DagsterInvalidDefinitionError(
            f"build_cache_file_checks: max_age_days must be a whole number of days, got {max_age_days!r}")
    if max_age_days < 0:
        raise dg.DagsterInvalidDefinitionError(
            f"build_cache_file_checks: max_age_days must be >= 0, got {max_age_days!r}")
    targets = _targets("build_cache_file_checks", assets, io_manager_key)
    by_key = {t.key: t for t in targets}
    specs = [
        dg.AssetCheckSpec(check, asset=t.key, description=text)
        for t in targets
        for check, text in (
            (EXISTS_CHECK, "Today's (or the newest partition's) cache file exists."),
            (VERIFIES_CHECK, "The newest cache file's signature and gzip CRC verify (not unpickled)."),
            (AGE_CHECK, f"The newest cache file is at most {max_age_days} day(s) old."),
        )
    ]

    @dg.multi_asset_check(specs=specs, name=name, can_subset=True,
                          required_resource_keys={t.io_manager_key for t in targets})
    def cache_file_checks(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        selected = context.selected_asset_check_keys
        for key, target in by_key.items():
            wanted = {c.name for c in selected if c.asset_key == key}
            if not wanted:
                continue
            manager = getattr(context.resources, target.io_manager_key)
            for result in _results(target, manager, max_age_days):
                if result.check_name in wanted:
                    yield result

    return [cache_file_checks]


def build_cache_freshness_checks(
    *,
    assets: Sequence[CachedAsset],
    cb_time: TimeType,
    timezone: str = "UTC",
    severity: AssetCheckSeverity = AssetCheckSeverity.WARN,
) -> list[AssetChecksDefinition]:
    """Dagster freshness checks from `cb_time`: today's data is expected by cb_time in `timezone`
    and overdue after it.

    Daily-partitioned assets (`end_offset=1`) get `build_time_partition_freshness_checks`: after
    cb_time, today's partition must have been materialized or observed. Unpartitioned assets get
    `build_last_update_freshness_checks`: after cb_time, the last update must be from today.

    Args:
        assets: The cached assets: `AssetsDefinition`s or `AssetSpec`s, daily-partitioned or not.
        cb_time: Daily time today's data is due: a `datetime.time` or "HH:MM" / "HH:MM:SS".
        timezone: IANA zone of `cb_time`, e.g. "Europe/London".
        severity: Severity of a failed (overdue) check.

    Raises:
        DagsterInvalidDefinitionError: A bad argument, named in the message.
    """
    try:
        cb = parse_cb_time(cb_time)
        zone(timezone)
    except (TypeError, ValueError) as e:
        raise dg.DagsterInvalidDefinitionError(f"build_cache_freshness_checks: {e}") from e
    targets = _targets("build_cache_freshness_checks", assets, None)
    for t in targets:
        pdef = t.partitions_def
        if isinstance(pdef, dg.TimeWindowPartitionsDefinition) and pdef.end_offset < 1:
            raise dg.DagsterInvalidDefinitionError(
                f"build_cache_freshness_checks: asset {t.key.to_user_string()} has end_offset="
                f"{pdef.end_offset}, so today's partition does not exist until the day ends "
                "and the check would expect yesterday's: use DailyPartitionsDefinition(..., end_offset=1)"
            )
    partitioned = [t.key for t in targets if t.partitions_def is not None]
    plain = [t.key for t in targets if t.partitions_def is None]
    cron = cron_for(cb)
    checks: list[AssetChecksDefinition] = []
    deadline = f"{cb:%H:%M} {timezone}"
    if partitioned:
        checks += superseded_freshness(dg.build_time_partition_freshness_checks, deadline,
                                       assets=partitioned, deadline_cron=cron, timezone=timezone,
                                       severity=severity)
    if plain:
        since_midnight = dt.timedelta(hours=cb.hour, minutes=cb.minute, seconds=cb.second)
        checks += superseded_freshness(dg.build_last_update_freshness_checks, deadline,
                                       assets=plain, deadline_cron=cron, lower_bound_delta=since_midnight,
                                       timezone=timezone, severity=severity)
    return checks


@dataclass(frozen=True)
class CacheChecks:
    """What `build_cache_checks` builds: pass `asset_checks` and `sensors` to `dg.Definitions`.

    Attributes:
        asset_checks: The freshness checks, then the file checks.
        sensors: The sensor that re-runs the freshness checks.
    """

    asset_checks: list[AssetChecksDefinition]
    sensors: list[dg.SensorDefinition]


def build_cache_checks(
    *,
    assets: Sequence[CachedAsset],
    cb_time: TimeType,
    timezone: str = "UTC",
    max_age_days: int = 1,
    io_manager_key: str | None = None,
    sensor_name: str = "cache_freshness_checks_sensor",
    minimum_interval_seconds: int | None = None,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> CacheChecks:
    """One call: the file checks and the freshness checks of `assets`, and Dagster's sensor that
    re-runs the freshness checks when they may have changed.

    Args:
        assets: The cached assets: `AssetsDefinition`s or `AssetSpec`s, daily-partitioned or not.
        cb_time: Daily time today's data is due: a `datetime.time` or "HH:MM" / "HH:MM:SS".
        timezone: IANA zone of `cb_time`, e.g. "Europe/London".
        max_age_days: How many days old the newest file may be before `cache_file_age` fails.
        io_manager_key: Resource key of the `DatedCacheIOManager` for every asset; None: each
            asset's own IO manager key.
        sensor_name: Name of the freshness checks sensor.
        minimum_interval_seconds: Seconds between the sensor's evaluations; None: Dagster's default.
        default_status: Whether the sensor starts running or stopped.
    """
    freshness = build_cache_freshness_checks(assets=assets, cb_time=cb_time, timezone=timezone)
    files = build_cache_file_checks(assets=assets, max_age_days=max_age_days, io_manager_key=io_manager_key)
    sensor = superseded_freshness(
        dg.build_sensor_for_freshness_checks, freshness_checks=freshness, name=sensor_name,
        minimum_interval_seconds=minimum_interval_seconds, default_status=default_status)
    return CacheChecks([*freshness, *files], [sensor])

