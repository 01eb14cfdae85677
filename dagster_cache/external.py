"""External caches: files `cache_utils.save_cache` writes outside Dagster (cron scripts, notebooks,
other teams) shown as Dagster assets, reported by a sensor with their content's data version."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster import DefaultSensorStatus, MetadataValue, SensorDefinition, SkipReason

from cache_utils import CacheFile, CorruptCacheError, cache_fingerprint, list_caches
from cache_utils.integration import validate_prefix

from .compat import DATA_VERSION_IS_USER_PROVIDED_TAG, DATA_VERSION_TAG
from .dates import is_sub_daily, zone
from .io_manager import FINGERPRINT_KEY
from .prefixes import PREFIX_METADATA_KEY, cache_prefix_of, prefix_for
from .refresh import partition_key_for, storage_options_arg
from .rules import definition_errors, is_whole, require_current_window

DEFAULT_MAX_FILES_PER_TICK = 100
DEFAULT_LOOKBACK_DAYS = 7
CURSOR_DATE = "date"
CURSOR_FINGERPRINT = "fingerprint"
CURSOR_DAYS = "days"  # {ISO day: fingerprint} of the files reported within the lookback window
CORRUPT = ""  # the fingerprint recorded for a file too short to hold a gzip trailer


def _check_partitions(builder: str, what: str, pdef: Any) -> dg.TimeWindowPartitionsDefinition | None:
    """None, or a time-window partitions definition with one window a day at most and end_offset >= 1."""
    if pdef is None:
        return None
    if not isinstance(pdef, dg.TimeWindowPartitionsDefinition):
        raise dg.DagsterInvalidDefinitionError(
            f"{builder}: {what} has {type(pdef).__name__}; an external cache is one file per day, so it "
            "takes a daily (time-window) partitions definition or none"
        )
    if is_sub_daily(pdef):
        raise dg.DagsterInvalidDefinitionError(
            f"{builder}: {what} has sub-daily partitions ({pdef.cron_schedule!r}); an external cache is "
            "one file per day: use DailyPartitionsDefinition (or weekly, monthly)"
        )
    require_current_window(pdef, f"{builder}: {what}", "today's file is written today")
    return pdef


def external_cache_asset(
    prefix: str,
    *,
    key: dg.AssetKey | str | Sequence[str] | None = None,
    partitions_def: dg.TimeWindowPartitionsDefinition | None = None,
    group_name: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    owners: Sequence[str] | None = None,
    kinds: set[str] | None = None,
) -> dg.AssetSpec:
    """An external asset for the files `<prefix>_<YYYYMMDD>.pkl.gz` that code outside Dagster writes
    with `cache_utils.save_cache`.

    Its key defaults to `AssetKey(prefix)`; its metadata names the prefix (`cache_prefix`), so a
    Dagster asset that takes it as an input reads the same files through `DatedCacheIOManager`.
    With a daily `partitions_def` (`end_offset=1`), each file is the partition of its day.
    `build_cache_observation_sensor` reports the files as they appear.

    Args:
        prefix: Cache file prefix, as in `<prefix>_<YYYYMMDD>.pkl.gz`.
        key: Asset key; None means `AssetKey(prefix)`.
        partitions_def: Daily (or coarser) time-window partitions with `end_offset=1`; None: unpartitioned.
        group_name: Asset group.
        description: Asset description; None gives one naming the files.
        metadata: Extra asset metadata; `cache_prefix`, if given, must equal `prefix`.
        tags: Asset tags.
        owners: Asset owners.
        kinds: Asset kinds shown in the UI.

    Raises:
        DagsterInvalidDefinitionError: A bad argument, named in the message.
    """
    builder = "external_cache_asset"
    with definition_errors(builder):
        validate_prefix(prefix)
    _check_partitions(builder, f"external cache {prefix!r}", partitions_def)
    named = cache_prefix_of(metadata)
    if named is not None and named != prefix:
        raise dg.DagsterInvalidDefinitionError(
            f"{builder}: metadata names {PREFIX_METADATA_KEY}={named!r} but the prefix is {prefix!r}"
        )
    return dg.AssetSpec(
        key=key if key is not None else dg.AssetKey(prefix),
        partitions_def=partitions_def,
        group_name=group_name,
        description=description or f"Daily cache files named {prefix}_YYYYMMDD.pkl.gz, written outside "
        "Dagster (for example by cache_utils.save_cache in a script).",
        metadata={**(metadata or {}), PREFIX_METADATA_KEY: prefix},
        tags=tags,
        owners=owners,
        kinds=kinds,
    )


@dataclass(frozen=True)
class _Watched:
    """One external asset the sensor watches: its key, prefix and daily partitions (or None)."""

    key: dg.AssetKey
    prefix: str
    partitions_def: dg.TimeWindowPartitionsDefinition | None


@dataclass(frozen=True)
class _New:
    """A file to report: the asset, its partition key, and its fingerprint when already read."""

    order: int  # the asset's position in `assets`: files of one day are reported in that order
    watched: _Watched
    file: CacheFile
    partition_key: str | None
    fingerprint: str | None = None


def _watched(builder: str, assets: Any) -> list[_Watched]:
    specs = [assets] if isinstance(assets, dg.AssetSpec) else list(assets or ())
    if not specs:
        raise dg.DagsterInvalidDefinitionError(f"{builder} needs at least one asset")
    watched: list[_Watched] = []
    owners: dict[str, dg.AssetKey] = {}
    for spec in specs:
        if not isinstance(spec, dg.AssetSpec):
            raise dg.DagsterInvalidDefinitionError(
                f"{builder}: assets must be AssetSpecs (see external_cache_asset), got {spec!r}"
            )
        name = f"asset {spec.key.to_user_string()}"
        with definition_errors(f"{builder}: {name}"):
            prefix = prefix_for(spec.key, spec.metadata)
        if prefix in owners:
            raise dg.DagsterInvalidDefinitionError(
                f"{builder}: {name} and asset {owners[prefix].to_user_string()} both map to the files "
                f"'{prefix}_<YYYYMMDD>.pkl.gz'"
            )
        owners[prefix] = spec.key
        watched.append(_Watched(spec.key, prefix, _check_partitions(builder, name, spec.partitions_def)))
    return watched


def _read_cursor(text: str | None) -> dict[str, dict[str, Any]]:
    """{prefix: {"date": ISO date, "fingerprint": ..., "days": {ISO date: fingerprint}}}: the newest
    file reported per prefix, and each file reported within the lookback window (a cursor written
    before the window existed has no "days")."""
    if not text:
        return {}
    try:
        cursor = json.loads(text)
        for entry in cursor.values():
            dt.date.fromisoformat(entry[CURSOR_DATE])
            if not isinstance(entry[CURSOR_FINGERPRINT], str):
                raise TypeError("a fingerprint must be a string")
            for day, fingerprint in entry.get(CURSOR_DAYS, {}).items():
                dt.date.fromisoformat(day)
                if not isinstance(fingerprint, str):
                    raise TypeError("a fingerprint must be a string")
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ValueError(
            f"cache observation sensor: unreadable cursor {text[:200]!r} ({e}); reset the cursor to "
            "report every file again"
        ) from e
    return cursor


def _fingerprint(file: CacheFile, directory: str, options: dict[str, Any] | None) -> str | None:
    """The file's content fingerprint; CORRUPT if it is too short to hold one; None if it is gone."""
    try:
        return cache_fingerprint(file.prefix, file.date, directory, storage_options=options).fingerprint
    except FileNotFoundError:
        return None
    except CorruptCacheError:
        return CORRUPT


def _new_files(
    order: int, watched: _Watched, files: list[CacheFile], seen: Mapping[str, Any] | None, today: dt.date,
    directory: str, options: dict[str, Any] | None, lookback_days: int, known: dict[str, str],
) -> list[_New]:
    """The files of one prefix to report, oldest first: those dated after the newest reported, and
    within the lookback window (the last `lookback_days` days up to today) each file not reported
    yet (delivered late) or whose content changed since (corrected). An unpartitioned asset is its
    newest file on or before today (what its consumers load), so only that one is reported.
    Fingerprints taken as the baseline of a cursor from before the window go into `known`."""
    last = dt.date.fromisoformat(seen[CURSOR_DATE]) if seen else None
    reported: Mapping[str, str] = (seen or {}).get(CURSOR_DAYS, {})
    # A cursor from before the window: its newest day is known; other days up to it count as reported.
    baseline = seen is not None and CURSOR_DAYS not in seen
    window_start = today - dt.timedelta(days=lookback_days)
    pdef = watched.partitions_def
    new: list[_New] = []
    last_start = None
    if pdef is None:
        files = [f for f in files if f.date <= today][-1:]  # a later-dated file waits for its day
    else:
        window = pdef.get_last_partition_window()
        last_start = window.start.date() if window is not None else None
    for f in files:
        if last is not None and f.date < last and f.date < window_start:
            continue  # older than the window: reported once, never looked at again
        key = None
        if pdef is not None:
            key = partition_key_for(pdef, f.date)
            if not pdef.has_partition_key(key):
                if last_start is None or f.date > last_start:
                    break  # not a partition yet: reported once its day's partition exists
                continue  # never a partition (before the start date, not a window's start)
        fingerprint = None
        if last is not None and f.date <= last:  # up to the newest reported: again only if new or changed
            fingerprint = _fingerprint(f, directory, options)
            iso = f.date.isoformat()
            before = reported.get(iso)
            if before is None and f.date == last:
                before = seen[CURSOR_FINGERPRINT] if seen else None
            if fingerprint is not None and before is None and baseline:
                known[iso] = fingerprint
                continue
            if fingerprint is None or fingerprint == before:
                continue
        new.append(_New(order, watched, f, key, fingerprint))
    return new


def _advance(entry: dict[str, Any] | None, day: dt.date, fingerprint: str) -> dict[str, Any]:
    """The cursor entry of a prefix after reporting (or skipping as corrupt) its `day` file."""
    days = dict((entry or {}).get(CURSOR_DAYS, {}))
    days[day.isoformat()] = fingerprint
    newest = entry[CURSOR_DATE] if entry else None
    if newest is None or day.isoformat() >= newest:
        return {CURSOR_DATE: day.isoformat(), CURSOR_FINGERPRINT: fingerprint, CURSOR_DAYS: days}
    return {**entry, CURSOR_DAYS: days}  # type: ignore[dict-item]


def _bounded(entry: dict[str, Any], window_start: dt.date) -> dict[str, Any]:
    """The entry without the days that have left the lookback window: the cursor stays small."""
    start = window_start.isoformat()
    return {**entry, CURSOR_DAYS: {d: f for d, f in entry.get(CURSOR_DAYS, {}).items() if d >= start}}


def _events(
    new: _New, fingerprint: str
) -> list[dg.AssetMaterialization | dg.AssetObservation]:
    """A materialization with the file's date, size, path and data version; for a partitioned asset,
    an observation with the same data version before it (see build_cache_observation_sensor)."""
    f = new.file
    tags = {DATA_VERSION_TAG: fingerprint, DATA_VERSION_IS_USER_PROVIDED_TAG: "true"}
    text = f"{f.path} ({f.size} bytes), written outside Dagster"
    metadata: dict[str, Any] = {
        "path": MetadataValue.path(f.path),
        "dagster_cache/prefix": f.prefix,
        "dagster_cache/date": MetadataValue.text(f.date.isoformat()),
        "dagster_cache/size_bytes": MetadataValue.int(f.size),
        FINGERPRINT_KEY: MetadataValue.text(fingerprint),
    }
    key, partition = new.watched.key, new.partition_key
    events: list[dg.AssetMaterialization | dg.AssetObservation] = []
    if partition is not None:
        events.append(dg.AssetObservation(
            key, partition=partition, tags=tags, description=f"data version of {text}",
            metadata={"path": MetadataValue.path(f.path), FINGERPRINT_KEY: MetadataValue.text(fingerprint)},
        ))
    events.append(dg.AssetMaterialization(key, partition=partition, tags=tags, description=text,
                                          metadata=metadata))
    return events


def _reported(events: list[dg.AssetMaterialization | dg.AssetObservation]) -> str:
    """What a tick reported, in words: "Reported 2 new files as materializations: market_prices
    2026-12-01, market_prices 2026-12-02 (partition 2026-12-02)"."""
    shown = []
    for e in events:
        if isinstance(e, dg.AssetMaterialization):
            day = e.metadata["dagster_cache/date"].value
            part = f" (partition {e.partition})" if e.partition else ""
            shown.append(f"{e.asset_key.to_user_string()} {day}{part}")
    more = f" and {len(shown) - 10} more" if len(shown) > 10 else ""
    files = "new file" if len(shown) == 1 else "new files"
    return f"Reported {len(shown)} {files} (as materializations): {', '.join(shown[:10])}{more}"


def build_cache_observation_sensor(
    *,
    assets: dg.AssetSpec | Sequence[dg.AssetSpec],
    directory: str = "data",
    storage_options: Mapping[str, Any] | None = None,
    timezone: str = "UTC",
    name: str | None = None,
    max_files_per_tick: int = DEFAULT_MAX_FILES_PER_TICK,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    minimum_interval_seconds: int = 60,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    description: str | None = None,
) -> SensorDefinition:
    """A sensor that reports each new cache file of external assets (`external_cache_asset`) once,
    as an `AssetMaterialization` carrying its date, size, path and, for daily partitions, its
    partition key, with the file's content fingerprint (`cache_utils.cache_fingerprint`: one small
    read from the file's end) as its `DataVersion`.

    A materialization, not an observation: dagster 1.13 counts only materializations as updates of
    an external `AssetSpec` (`AutomationCondition.eager()` and "missing" ignore observations of an
    asset that is not observable), and only they drive staleness of an unpartitioned dependency.
    For a partitioned asset, though, the stale-status resolver reads only observations of an
    external dependency's partition (dagster issue 26162), so an observation with the same data
    version goes first: downstream partitions then show "upstream changed" too. (A consumer that
    loads the partition as an input through `DatedCacheIOManager` also gets the input metadata the
    manager records, which Dagster stores as a versionless observation of that partition.)

    Each tick lists each prefix once (`cache_utils.list_caches` with the prefix: on object stores
    only `<prefix>_*` is listed, never the whole directory). Every new or changed file is reported
    once: files dated after the newest reported, and within the last `lookback_days` days (up to
    today in `timezone`) any file not reported yet (an earlier day delivered late) or rewritten with
    different content (a corrected file: a new data version), not one rewritten with identical data.
    The cursor holds, per prefix, the newest date reported and the fingerprint of each file
    reported within the window, so it stays bounded; each tick reads the fingerprint of each file
    in the window (one small read from its end). Files older than the window are not looked at
    again. An unpartitioned asset is its newest file on or before today, so older files are not
    reported. At most `max_files_per_tick` files are reported per tick, oldest first: a first run
    over a long history catches up tick by tick.

    Args:
        assets: The external assets to watch (`external_cache_asset` specs), one or several.
        directory: Local directory or fsspec URL of the cache files.
        storage_options: fsspec options (credentials, endpoint...) for a URL `directory`.
        timezone: IANA zone of "today".
        name: Sensor name; None means "cache_observation_sensor".
        max_files_per_tick: Most files reported per tick (>= 1).
        lookback_days: How many days back (before today) late and corrected files are still
            reported (>= 0; 0: today's file only).
        minimum_interval_seconds: Seconds between evaluations.
        default_status: Whether the sensor starts running or stopped.
        description: Sensor description; None gives one naming the prefixes.

    Raises:
        DagsterInvalidDefinitionError: A bad argument, named in the message.
    """
    builder = "build_cache_observation_sensor"
    watched = _watched(builder, assets)
    if not is_whole(max_files_per_tick) or max_files_per_tick < 1:
        raise dg.DagsterInvalidDefinitionError(
            f"{builder}: max_files_per_tick must be a whole number >= 1, got {max_files_per_tick!r}"
        )
    if not is_whole(lookback_days) or lookback_days < 0:
        raise dg.DagsterInvalidDefinitionError(
            f"{builder}: lookback_days must be a whole number >= 0, got {lookback_days!r}"
        )
    with definition_errors(builder):
        tz = zone(timezone)
    options = storage_options_arg(storage_options)
    shown = ", ".join(w.prefix for w in watched[:3])
    if len(watched) > 3:
        shown += f" and {len(watched) - 3} more"

    def evaluate(context: dg.SensorEvaluationContext) -> dg.SensorResult | SkipReason:
        seen = _read_cursor(context.cursor)
        cursor = {w.prefix: seen[w.prefix] for w in watched if w.prefix in seen}
        now = dt.datetime.now(tz)
        new: list[_New] = []
        with dg.partition_loading_context(effective_dt=now):
            for order, w in enumerate(watched):
                files = list_caches(directory, w.prefix, storage_options=options)
                known: dict[str, str] = {}
                new += _new_files(order, w, files, cursor.get(w.prefix), now.date(), directory, options,
                                  lookback_days, known)
                if known:
                    entry = cursor[w.prefix]
                    cursor[w.prefix] = {**entry, CURSOR_DAYS: {**known, **entry.get(CURSOR_DAYS, {})}}
        new.sort(key=lambda n: (n.file.date, n.order))

        events: list[dg.AssetMaterialization | dg.AssetObservation] = []
        reported = 0
        for i, n in enumerate(new):
            if reported == max_files_per_tick:
                context.log.info(f"reported {reported} files; {len(new) - i} more wait for the next tick")
                break
            fingerprint = n.fingerprint
            if fingerprint is None:  # read only for the files reported, not the whole backlog
                fingerprint = _fingerprint(n.file, directory, options)
            if fingerprint is None:  # deleted since it was listed
                continue
            cursor[n.file.prefix] = _advance(cursor.get(n.file.prefix), n.file.date, fingerprint)
            if fingerprint == CORRUPT:
                context.log.warning(f"{n.file.path} is too short to be a cache file: not reported")
                continue
            events += _events(n, fingerprint)
            reported += 1

        window_start = now.date() - dt.timedelta(days=lookback_days)
        cursor = {prefix: _bounded(entry, window_start) for prefix, entry in cursor.items()}
        text = json.dumps(cursor, sort_keys=True, separators=(",", ":"))
        if events:
            # A tick that requests no run shows only its skip reason: say there what was reported.
            return dg.SensorResult(asset_events=events, cursor=text, skip_reason=_reported(events))
        reason = f"no new cache files of {shown} in {directory}"
        if cursor != seen:
            return dg.SensorResult(skip_reason=reason, cursor=text)
        return SkipReason(reason)

    return SensorDefinition(
        name=name or "cache_observation_sensor",
        evaluation_fn=evaluate,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=description or f"Reports new {shown} cache files in {directory}, written outside "
        "Dagster, as materializations with their content's data version.",
    )
