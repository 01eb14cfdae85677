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

from cache_utils import CacheError, cache_dates, cache_exists, cache_filename, verify_cache
from cache_utils.integration import TimeType, parse_cb_time

from .dates import partition_file, zone
from .freshness import superseded_freshness
from .io_manager import STALE_INPUTS_KEY
from .prefixes import prefix_for
from .refresh import cron_for, storage_options_arg
from .rules import definition_errors, is_whole, require_current_window

EXISTS_CHECK = "cache_file_exists"
VERIFIES_CHECK = "cache_file_verifies"
AGE_CHECK = "cache_file_age"
INPUTS_CHECK = "inputs_current"
PRUNED_CHECK = "cache_files_pruned"
# Unpartitioned assets: how many of the newest materializations the pruned-days check looks at.
RECENT_MATERIALIZATIONS = 100
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
    options = storage_options_arg(manager.storage_options)
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
        verified = verify_cache(prefix, newest_day, directory, signing_key=manager.signing_keys(),
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
    if not is_whole(max_age_days):
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
    with definition_errors("build_cache_freshness_checks"):
        cb = parse_cb_time(cb_time)
        zone(timezone)
    targets = _targets("build_cache_freshness_checks", assets, None)
    for t in targets:
        what = f"build_cache_freshness_checks: asset {t.key.to_user_string()}"
        require_current_window(t.partitions_def, what, "the check expects today's partition by cb_time")
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


# --- the consumer's view: were its inputs current? ------------------------------------------------


def _positive_days(builder: str, name: str, value: Any) -> int:
    if not is_whole(value) or value < 0:
        raise dg.DagsterInvalidDefinitionError(
            f"{builder}: {name} must be a whole number of days >= 0, got {value!r}")
    return value


def _materializations(context: AssetCheckExecutionContext, key: AssetKey) -> list[dg.EventLogEntry]:
    """The consumer's materializations this check judges: those of the check's own run (the check
    runs after its asset in the same run), else the asset's latest one (a check launched alone)."""
    instance = context.instance
    logs = instance.all_logs(context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    own = [entry for entry in logs
           if entry.asset_materialization is not None and entry.asset_materialization.asset_key == key]
    if own:
        return own
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1).records
    return [r.event_log_entry for r in records]


def inputs_current_result(
    key: AssetKey, entries: Sequence[dg.EventLogEntry], error_after_days: int,
) -> AssetCheckResult:
    """The `inputs_current` result for a consumer's materializations: WARN when an input came from
    an earlier day's file (a fallback), ERROR when one is more than `error_after_days` days old."""
    if not entries:
        return AssetCheckResult(asset_key=key, check_name=INPUTS_CHECK, passed=True,
                                description="not materialized yet: no inputs to judge")
    stale: dict[str, Any] = {}
    partitions = []
    for entry in entries:
        materialization = entry.asset_materialization
        assert materialization is not None
        partitions.append(materialization.partition)
        value = materialization.metadata.get(STALE_INPUTS_KEY)
        for name, info in (value.value if value is not None else {}).items():  # type: ignore[union-attr]
            if isinstance(info, dict) and int(info.get("stale_days", 0)) > stale.get(name, {}).get(
                    "stale_days", 0):
                stale[name] = info
    which = ", ".join(str(p) for p in partitions if p is not None) or "unpartitioned"
    run = entries[-1].run_id
    meta: dict[str, Any] = {"materialization_run_id": run, "partitions": which,
                            "error_after_days": error_after_days}
    if not stale:
        return AssetCheckResult(asset_key=key, check_name=INPUTS_CHECK, passed=True, metadata=meta,
                                description=f"every input was the wanted day's file (run {run[:8]}, {which})")
    worst = max(int(info["stale_days"]) for info in stale.values())
    shown = "; ".join(f"{info.get('asset', name)}: wanted {info.get('date_wanted')}, used "
                      f"{info.get('date_used')} ({info['stale_days']} day(s) old)"
                      for name, info in stale.items())
    meta.update({STALE_INPUTS_KEY: dg.MetadataValue.json(stale), "max_stale_days": worst})
    return AssetCheckResult(
        asset_key=key, check_name=INPUTS_CHECK, passed=False, metadata=meta,
        severity=AssetCheckSeverity.ERROR if worst > error_after_days else AssetCheckSeverity.WARN,
        description=f"built from older data than wanted (run {run[:8]}, {which}): {shown}",
    )


def build_inputs_current_checks(
    *,
    assets: Sequence[CachedAsset],
    error_after_days: int = 1,
    name: str = "inputs_current_checks",
) -> list[AssetChecksDefinition]:
    """An `inputs_current` check per consumer asset (an asset that loads cached inputs through
    `DatedCacheIOManager`), shown in its Checks tab and seen by automation conditions:

    - passes when its latest materialization read each input's wanted day;
    - fails with WARN when an input fell back to an earlier day's file;
    - fails with ERROR when an input is more than `error_after_days` days older than wanted.

    The check runs after the asset in the same run (then it judges that run's materializations),
    or alone from the UI (then the asset's latest materialization). It reads the
    `dagster_cache/stale_inputs` metadata the IO manager puts on that materialization. A
    fallback never counts as the upstream's wanted partition existing: the upstream's own
    freshness checks stay failed until its file arrives.

    Args:
        assets: The consumer assets (`AssetsDefinition`s or `AssetSpec`s).
        error_after_days: Days of staleness a WARN tolerates; more is an ERROR.
        name: Name of the multi-asset check.

    Raises:
        DagsterInvalidDefinitionError: A bad argument, named in the message.
    """
    error_after_days = _positive_days("build_inputs_current_checks", "error_after_days", error_after_days)
    keys = list(dict.fromkeys(
        spec.key for asset in assets
        for spec in (asset.specs if isinstance(asset, dg.AssetsDefinition) else [asset])))
    if not keys:
        raise dg.DagsterInvalidDefinitionError("build_inputs_current_checks needs at least one asset")
    text = (f"Each input was the wanted day's file: WARN on a fallback to an earlier file, ERROR when "
            f"more than {error_after_days} day(s) older.")
    specs = [dg.AssetCheckSpec(INPUTS_CHECK, asset=k, description=text) for k in keys]

    @dg.multi_asset_check(specs=specs, name=name, can_subset=True)
    def inputs_current_checks(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        for check_key in context.selected_asset_check_keys:
            yield inputs_current_result(check_key.asset_key, _materializations(context, check_key.asset_key),
                                        error_after_days)

    return [inputs_current_checks]


def build_stale_inputs_sensor(
    *,
    consumers: Sequence[CachedAsset],
    file_checks: Sequence[AssetChecksDefinition],
    name: str = "stale_inputs_sensor",
    minimum_interval_seconds: int | None = None,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor that re-runs an upstream asset's cache file checks when a consumer fell back to an
    earlier file of it, so the upstream's Checks tab shows the missing file at once rather than at
    its next scheduled check.

    It reads the consumers' new materializations (a cursor of event storage ids) and requests one
    run of the file checks (`build_cache_file_checks`) of every upstream named in their
    `dagster_cache/stale_inputs` metadata.

    Args:
        consumers: The consumer assets to watch.
        file_checks: The file checks to re-run (those of `build_cache_file_checks`).
        name: Sensor name.
        minimum_interval_seconds: Seconds between evaluations; None: Dagster's default.
        default_status: Whether the sensor starts running or stopped.
    """
    keys = list(dict.fromkeys(
        spec.key for asset in consumers
        for spec in (asset.specs if isinstance(asset, dg.AssetsDefinition) else [asset])))
    check_keys = [k for checks in file_checks for k in checks.check_keys]
    if not keys or not check_keys:
        raise dg.DagsterInvalidDefinitionError(
            "build_stale_inputs_sensor needs at least one consumer asset and one file check")

    @dg.sensor(name=name, asset_selection=dg.AssetSelection.checks(*check_keys),
               minimum_interval_seconds=minimum_interval_seconds, default_status=default_status,
               description="Re-runs an upstream's cache file checks when a consumer loaded an earlier "
                           "file of it than wanted.")
    def stale_inputs_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        after = int(context.cursor) if context.cursor else None
        newest = after or 0
        stale_upstreams: set[str] = set()
        for key in keys:
            # First tick: only each consumer's latest materialization, not its whole history.
            records = context.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, after_storage_id=after),
                limit=1 if after is None else 1000, ascending=after is not None).records
            for record in records:
                newest = max(newest, record.storage_id)
                materialization = record.asset_materialization
                value = materialization.metadata.get(STALE_INPUTS_KEY) if materialization else None
                for info in (value.value if value is not None else {}).values():  # type: ignore[union-attr]
                    if isinstance(info, dict) and info.get("asset"):
                        stale_upstreams.add(str(info["asset"]))
        context.update_cursor(str(newest))
        wanted = [k for k in check_keys if k.asset_key.to_user_string() in stale_upstreams]
        if not wanted:
            return dg.SkipReason("no new consumer materialization fell back to an earlier file")
        return dg.RunRequest(run_key=f"{name}:{newest}", asset_check_keys=wanted)

    return stale_inputs_sensor


@dataclass(frozen=True)
class CacheChecks:
    """What `build_cache_checks` builds: pass `asset_checks` and `sensors` to `dg.Definitions`.

    Attributes:
        asset_checks: The freshness checks, the file checks, then the consumers' `inputs_current`.
        sensors: The sensor that re-runs the freshness checks, and with consumers the one that
            re-runs an upstream's file checks when a consumer fell back.
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
    consumers: Sequence[CachedAsset] = (),
    error_after_days: int = 1,
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
        default_status: Whether the sensors start running or stopped.
        consumers: Assets that load `assets` through the IO manager: each gets an `inputs_current`
            check (`build_inputs_current_checks`), and a sensor re-runs an upstream's file checks
            when one of them fell back (`build_stale_inputs_sensor`).
        error_after_days: `inputs_current` fails with ERROR (not WARN) when an input is more
            than this many days older than wanted.
    """
    freshness = build_cache_freshness_checks(assets=assets, cb_time=cb_time, timezone=timezone)
    files = build_cache_file_checks(assets=assets, max_age_days=max_age_days, io_manager_key=io_manager_key)
    sensor = superseded_freshness(
        dg.build_sensor_for_freshness_checks, freshness_checks=freshness, name=sensor_name,
        minimum_interval_seconds=minimum_interval_seconds, default_status=default_status)
    if not consumers:
        return CacheChecks([*freshness, *files], [sensor])
    inputs = build_inputs_current_checks(assets=consumers, error_after_days=error_after_days)
    stale = build_stale_inputs_sensor(consumers=consumers, file_checks=files,
                                      minimum_interval_seconds=minimum_interval_seconds,
                                      default_status=default_status)
    return CacheChecks([*freshness, *files, *inputs], [sensor, stale])


def _materialized_days(
    target: _Target, instance: dg.DagsterInstance
) -> dict[str, dict[dt.date, list[str]]]:
    """{prefix: {day: [partition keys, or "" for an unpartitioned write]}} of what Dagster
    recorded as materialized: every materialized partition, or an unpartitioned asset's recent
    materializations (the `dagster_cache/date` each wrote)."""
    base = prefix_for(target.key, target.metadata)
    days: dict[str, dict[dt.date, list[str]]] = {}
    if target.partitions_def is not None:
        for key in sorted(instance.get_materialized_partitions(target.key)):
            try:
                prefix, day = partition_file(target.partitions_def, key, base)
            except CacheError:  # a key the definition no longer has
                continue
            days.setdefault(prefix, {}).setdefault(day, []).append(key)
        return days
    records = instance.fetch_materializations(target.key, limit=RECENT_MATERIALIZATIONS).records
    for record in records:
        meta = record.asset_materialization.metadata if record.asset_materialization is not None else {}
        written, named = meta.get("dagster_cache/date"), meta.get("dagster_cache/prefix")
        if written is None:  # not written by DatedCacheIOManager (or a single-run backfill's summary)
            continue
        written_prefix = str(getattr(named, "value", named)) if named is not None else base
        day = dt.date.fromisoformat(str(getattr(written, "value", written)))
        days.setdefault(written_prefix, {}).setdefault(day, []).append("")
    return days


def _pruned_result(target: _Target, manager: Any, instance: dg.DagsterInstance) -> AssetCheckResult:
    """Which materialized days no longer have a file, and whether retention explains each."""
    today = dt.datetime.now(zone(manager.timezone)).date()
    keep_days = getattr(manager, "keep_days", None)
    keep_files = getattr(manager, "keep_files", None)
    oldest = None if keep_days is None else today - dt.timedelta(days=keep_days)
    gone: list[str] = []
    unexplained: list[str] = []
    for prefix, by_day in _materialized_days(target, instance).items():
        present = set(cache_dates(prefix, manager.directory, storage_options=manager.storage_options or None))
        newest_kept = max(present) if present else None
        for day in sorted(by_day):
            if day in present:
                continue
            keys = [k for k in by_day[day] if k]
            label = f"{day.isoformat()} ({', '.join(keys)})" if keys and keys != [day.isoformat()] \
                else day.isoformat()
            gone.append(label)
            by_days = oldest is not None and day < oldest
            by_count = keep_files is not None and newest_kept is not None and day < newest_kept
            if not (by_days or by_count):
                unexplained.append(label)
    rules = ", ".join(f"{n}={v}" for n, v in (("keep_days", keep_days), ("keep_files", keep_files)) if v)
    shown = ", ".join(gone[:20]) + (f" and {len(gone) - 20} more" if len(gone) > 20 else "")
    if not gone:
        text = "every materialized day still has its cache file"
    elif not unexplained:
        text = f"{len(gone)} materialized day(s) were pruned by retention ({rules}): {shown}"
    else:
        lost = ", ".join(unexplained[:20])
        text = (f"{len(unexplained)} materialized day(s) have no cache file and retention "
                f"({rules or 'unset'}) does not explain it: {lost}; pruned or missing: {shown}")
    return AssetCheckResult(
        asset_key=target.key, check_name=PRUNED_CHECK, passed=not unexplained,
        severity=AssetCheckSeverity.WARN, description=text,
        metadata={"pruned_days": dg.MetadataValue.json(gone),
                  "unexplained": dg.MetadataValue.json(unexplained), "retention": rules or "unset"},
    )


def build_cache_retention_checks(
    *,
    assets: Sequence[CachedAsset],
    io_manager_key: str | None = None,
    name: str = "cache_retention_checks",
) -> list[AssetChecksDefinition]:
    """One check per cached asset, `cache_files_pruned` (WARN), that says which materialized days
    no longer have a file: Dagster still shows a pruned partition as materialized, so this check
    lists the days retention (`keep_days`, `keep_files` of the asset's `DatedCacheIOManager`) has
    deleted, and fails when a materialized day's file is gone that retention does not explain.

    Partitioned assets: every materialized partition is looked at; unpartitioned assets: the days
    their last 100 materializations wrote.

    Args:
        assets: The cached assets: `AssetsDefinition`s or `AssetSpec`s, daily-partitioned or not.
        io_manager_key: Resource key of the `DatedCacheIOManager` for every asset; None: each
            asset's own IO manager key.
        name: Name of the multi-asset check.

    Raises:
        DagsterInvalidDefinitionError: A bad argument, named in the message.
    """
    targets = _targets("build_cache_retention_checks", assets, io_manager_key)
    by_key = {t.key: t for t in targets}
    specs = [dg.AssetCheckSpec(PRUNED_CHECK, asset=t.key,
                               description="Which materialized days' cache files retention has deleted.")
             for t in targets]

    @dg.multi_asset_check(specs=specs, name=name, can_subset=True,
                          required_resource_keys={t.io_manager_key for t in targets})
    def cache_retention_checks(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        selected = {c.asset_key for c in context.selected_asset_check_keys}
        for key, target in by_key.items():
            if key in selected:
                manager = getattr(context.resources, target.io_manager_key)
                yield _pruned_result(target, manager, context.instance)

    return [cache_retention_checks]

