"""`DatedCacheIOManager`: assets persisted as `<prefix>_<YYYYMMDD>.pkl.gz` through cache_utils.

This module holds the manager's configuration (its fields), the writing path (`handle_output`:
targets, owner checks, the write, retention, output metadata) and the reading path (`load_input`:
one file with fallback, or a range as a dict, alerts and stale-input records). Neighbours:
`dates` (which day and prefix a partition maps to), `prefixes` (prefixes, clash refusals),
`ownership` (who wrote a file), `context` (what the step context knows), `files` (targets, loaded
files, metadata, and `read_many`, the one function that reads a range's files concurrently, to be
swapped for the library's many-file read when it exists), `rules` (argument rules of the builders).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pickle
from collections.abc import Callable, Generator, Mapping
from typing import Any

import dagster as dg
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext
from pydantic import Field

from cache_utils import (
    Alert,
    Alerter,
    CacheError,
    CacheFile,
    CacheNotFoundError,
    cache_filename,
    load_latest_cache,
    prune,
    send_alert,
    write_cache,
)
from cache_utils.integration import (
    cache_alert,
    cache_owner,
    default_alias,
    is_url,
    read_cache_hit,
    resolve_alert,
    split_signing_keys,
)

from .context import (
    STALE_INPUTS_KEY,
    STALE_RUN_TAG,
    days_written_by_run,
    is_external,
    is_nothing,
    is_single_run,
    output_name,
    record_stale,
    run_id_of,
    wants_dict,
)
from .dates import has_time_dimension, key_prefix, partition_file, unpartitioned_file, zone
from .errors import CachePartitionError
from .files import (
    FINGERPRINT_KEY,
    Discard,
    Loaded,
    Target,
    file_day,
    input_metadata,
    not_picklable,
    output_metadata,
    read_many,
)
from .metadata import refuse_lazy
from .ownership import (
    Owner,
    asset_owner,
    check_loaded_owner,
    check_overwrite,
    op_owner,
    output_owner,
)
from .prefixes import cache_prefix_of, check_clashes, op_output_prefix, prefix_for
from .refresh import storage_options_arg
from .resources import AlertResource

# Input metadata keys. The first is UPathIOManager's own; the others override the manager's fields.
ALLOW_MISSING_KEY = "allow_missing_partitions"
AS_DICT_KEY = "partitions_as_dict"
FALLBACK_KEY = "fallback_to_latest"
FILL_KEY = "fill_missing_partitions"
__all__ = ["FINGERPRINT_KEY", "STALE_INPUTS_KEY", "STALE_RUN_TAG", "DatedCacheIOManager"]  # re-exported
# Output metadata key: {prefix: [ISO days]} of the files retention deleted after this write.
PRUNED_DATES_KEY = "dagster_cache/pruned_dates"


class DatedCacheIOManager(ConfigurableIOManager):
    """Stores each asset (partition) as one atomic, compressed, dated cache file and loads
    the newest file on or before the wanted day, the same files `cache_utils.load_cache` reads."""

    directory: str = Field(
        default="data",
        description="Directory (or fsspec URL such as s3://bucket/dir) holding the cache files.",
    )
    timezone: str = Field(
        default="UTC",
        description="IANA time zone that decides 'today' for unpartitioned assets and alerts, "
        "e.g. 'Europe/London'.",
    )
    fallback_to_latest: bool = Field(
        default=True,
        description="When the wanted day's file of a single-partition or unpartitioned input is "
        "missing, load the newest earlier file (never a later one), log a warning, record the "
        "staleness on the consumer and raise a stale-data alert. Off: a missing file is an error. "
        "An input overrides it with metadata {'fallback_to_latest': bool}.",
    )
    fill_missing_partitions: bool = Field(
        default=False,
        description="Range (dict) inputs: fill a missing day with the newest earlier file. Off "
        "(Dagster's rule): a missing day is an error, or skipped with input metadata "
        "{'allow_missing_partitions': True}. An input overrides it with metadata "
        "{'fill_missing_partitions': bool}.",
    )
    max_concurrent_loads: int = Field(
        default=8,
        ge=1,
        strict=True,  # "8" or True is a mistake, not 8 or 1
        description="Range (dict) inputs from a URL directory (s3://...): at most this many partition "
        "files are read at once, so a 30-day range costs a few round trips, not 30. 1: one after "
        "another. Local directories are always read one after another (threads measured no "
        "faster there). On S3, botocore keeps 10 connections unless storage_options "
        "{'config_kwargs': {'max_pool_connections': N}} raises it.",
    )
    signing_key: str | None = Field(
        default=None,
        repr=False,  # never show the key in a repr (logs, tracebacks)
        description="HMAC key to sign files on write and verify them on read; pass "
        "EnvVar('CACHE_UTILS_SIGNING_KEY'). Unset: the library's environment default "
        "(CACHE_UTILS_SIGNING_KEY and CACHE_UTILS_SIGNING_KEY_FALLBACKS).",
    )
    signing_key_fallbacks: str | None = Field(
        default=None,
        repr=False,
        description="Older HMAC keys that still verify files (never sign), while a key is rotated: "
        "comma-separated, whitespace around each ignored, the format of "
        "CACHE_UTILS_SIGNING_KEY_FALLBACKS; pass EnvVar('CACHE_UTILS_SIGNING_KEY_FALLBACKS'). "
        "Needs signing_key. See 'Rotating the signing key' in the file-format docs.",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        repr=False,  # may hold credentials
        description="fsspec storage options (credentials, endpoint_url, ...) passed to cache_utils "
        "for URL directories.",
    )
    preview_rows: int = Field(
        default=5, ge=0, description="Rows of a DataFrame output shown as a markdown preview."
    )
    keep_days: int | None = Field(
        default=None,
        ge=1,
        description="Retention: after writing an asset's file, delete the files of its prefix dated "
        "more than N days before today in `timezone` (keep_days=3 on the 10th keeps the 7th to the "
        "10th), through cache_utils.prune. Never deletes a file this run wrote (a backfill of an "
        "old day keeps it) nor the newest file that loads. Unset: keep everything.",
    )
    keep_files: int | None = Field(
        default=None,
        ge=1,
        description="Retention by count: keep the newest N files of each prefix written (dated up to "
        "today). With keep_days too, a file is deleted only when neither rule keeps it.",
    )
    overwrite_unowned_files: bool = Field(
        default=True,
        description="Every file this manager writes records its writer (asset and partition, or op "
        "output), and a file another writer recorded is never overwritten or loaded for the wrong "
        "input. A file that records no owner (written by cache_utils.save_cache outside Dagster, or "
        "by a release before owners) is overwritten when True, so upgrading keeps re-runs working; "
        "False refuses that too (an external cache's files declared in another code location are "
        "then safe).",
    )
    opsgenie: AlertResource | None = Field(
        default=None,
        description="Where stale/missing-data alerts go. Unset: cache_utils' process-wide alert "
        "configuration (OPSGENIE_API_KEY), if any.",
    )

    # --- shared helpers ---------------------------------------------------------------------

    def _tz(self) -> dt.tzinfo:
        return zone(self.timezone)

    def signing_keys(self) -> list[str | bytes] | None:
        """The keys for cache_utils: `signing_key` (signs) then `signing_key_fallbacks` (verify);
        None when no key is set here (the library then reads the environment)."""
        fallbacks = split_signing_keys(self.signing_key_fallbacks, "signing_key_fallbacks")
        if not self.signing_key:
            if fallbacks:
                raise ValueError("DatedCacheIOManager: signing_key_fallbacks is set but signing_key is "
                                 "not: set the key that signs new files as well (fallback keys only verify)")
            return None
        return [self.signing_key, *fallbacks]

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.signing_keys()  # a malformed key configuration fails the run at its start

    def _io(self) -> dict[str, Any]:
        return {"storage_options": storage_options_arg(self.storage_options)}

    def _alerter(self) -> Alerter | None:
        """The resource's alerter (a NullAlerter when it is disabled: alerts off entirely), or None
        without a resource: cache_utils' configured alerter."""
        return self.opsgenie.alerter() if self.opsgenie is not None else None

    def _alert(self, alert: Alert) -> None:
        send_alert(alert, self._alerter())

    # --- output -----------------------------------------------------------------------------

    def _targets(self, context: OutputContext, obj: Any) -> list[Target]:
        """The files this output writes, one per partition."""
        if not context.has_asset_key:
            base = op_output_prefix(context.step_key, context.name, context.mapping_key,
                                    context.definition_metadata, run_id_of(context))
            prefix, day, _why = unpartitioned_file(context, base, False, self._tz())
            return [Target(None, prefix, day, obj)]
        base = prefix_for(context.asset_key, context.definition_metadata)
        if not context.has_asset_partitions:
            prefix, day, why = unpartitioned_file(context, base, True, self._tz())
            today = dt.datetime.now(self._tz()).date()
            if day > today:  # e.g. a run for today's partition in a zone ahead of the manager's
                context.log.warning(
                    f"{output_name(context)} is written under {day.isoformat()} ({why}), after today "
                    f"({today.isoformat()}) in timezone {self.timezone!r}: unpartitioned readers look for "
                    f"today's file there and will not see it before then. Set the manager's timezone to "
                    "the partitions' zone.")
            return [Target(None, prefix, day, obj)]
        pdef = context.asset_partitions_def
        keys = list(context.asset_partition_keys)
        where = self._partition_files(context, pdef, base)
        if len(keys) == 1 and not is_single_run(context):
            return [Target(keys[0], *where(keys[0]), obj)]
        # A single-run backfill policy: one value per partition, one file per partition, whether
        # the run covers a range or (a daily schedule's run) a single day.
        if not isinstance(obj, Mapping):
            raise CachePartitionError(
                f"asset {context.asset_key.to_user_string()} ran for {len(keys)} partitions "
                f"({keys[0]}..{keys[-1]}) but returned {type(obj).__name__}: return a dict "
                "{partition_key: value} with one entry per partition"
            )
        by_str = {str(k): v for k, v in obj.items()}
        missing = [k for k in keys if str(k) not in by_str]
        extra = sorted(set(by_str) - {str(k) for k in keys})
        if missing or extra:
            raise CachePartitionError(
                f"asset {context.asset_key.to_user_string()}: the returned dict's keys must be the "
                f"run's partition keys; missing {missing[:5]}, unexpected {extra[:5]}"
            )
        return [Target(k, *where(k), by_str[str(k)]) for k in keys]

    def _partition_files(
        self, context: InputContext | OutputContext, pdef: Any, base: str, by_run: bool = False,
    ) -> Callable[[str], tuple[str, dt.date]]:
        """key -> (prefix, day) of its file. A time partition's day is its window's; a key without a
        time dimension (static, dynamic) is its own daily series `<base>__<key>`, dated like an
        unpartitioned asset (the schedule tick's day, else today in `timezone`; the run's time
        partition's day in a run that has one) and, with `by_run`, read from the day the writing run
        (this one, or the parent on a re-execution) wrote it."""
        if has_time_dimension(pdef):
            return lambda key: partition_file(pdef, key, base)
        _prefix, day, _why = unpartitioned_file(context, base, True, self._tz())
        written = days_written_by_run(context) if by_run and isinstance(context, InputContext) else {}

        def where(key: str) -> tuple[str, dt.date]:
            prefix = key_prefix(pdef, key, base)
            return prefix, written.get(prefix, day)

        return where

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        """Write the output (one file per partition) atomically through `cache_utils.save_cache`.

        `None` is written like any value, so the consumer receives `None` and never an older
        day's file; only a `Nothing`-typed output (`-> None`) writes nothing, as in Dagster.

        Args:
            context: Dagster's output context.
            obj: The value to write, or {partition key: value} for a single-run backfill.
        """
        if is_nothing(context):
            return
        targets = self._targets(context, obj)
        refuse_lazy(output_name(context), [t.value for t in targets])
        check_clashes(context, [t.prefix for t in targets], self.directory, DatedCacheIOManager)
        if len(targets) > 1:  # a single-run backfill writes all of its days or none of them
            for target in targets:
                self._picklable(context, target.value)
        owners = [output_owner(context, target.key) for target in targets]
        for target, mine in zip(targets, owners, strict=True):  # all checked before the first is written
            self._check_overwrite(target, mine)
        today = dt.datetime.now(self._tz()).date()
        written: list[tuple[Target, CacheFile]] = []
        for target, mine in zip(targets, owners, strict=True):
            try:
                saved = write_cache(target.value, target.prefix, target.day, self.directory,
                                    signing_key=self.signing_keys(), owner=mine.record(), **self._io())
            except pickle.PicklingError as e:
                raise not_picklable(context, target.value, e) from e
            context.log.debug(f"wrote {saved.path} ({saved.size:,} bytes)")
            written.append((target, saved))
            if target.day >= today:
                resolve_alert(default_alias(target.prefix), f"fresh data written to {saved.path}",
                              self._alerter())
        meta = output_metadata(written, self.preview_rows, context.has_asset_partitions)
        shared = context.has_asset_key or cache_prefix_of(context.definition_metadata) is not None
        retention = self.keep_days is not None or self.keep_files is not None
        if retention and shared:  # a run's own op outputs are not daily caches
            pruned = self._prune(context, written, today)
            meta["dagster_cache/pruned"] = MetadataValue.int(sum(len(d) for d in pruned.values()))
            if pruned:
                meta[PRUNED_DATES_KEY] = MetadataValue.json(
                    {p: [d.isoformat() for d in days] for p, days in pruned.items()})
        context.add_output_metadata(meta)

    def _retention(self) -> str:
        rules = [f"{name}={value}" for name, value in (("keep_days", self.keep_days),
                                                      ("keep_files", self.keep_files)) if value]
        return ", ".join(rules)

    def _check_overwrite(self, target: Target, mine: Owner) -> None:
        """Refuse to overwrite a file another asset or op output wrote (the owner recorded in it),
        whatever spelling of the directory or code location that writer used. A file without an
        owner (written before owners were recorded, or by `save_cache`) is overwritten as before
        unless `overwrite_unowned_files` is off; an external cache asset's prefix in this code
        location is never written (`prefixes.check_clashes` refuses it)."""
        try:
            recorded = cache_owner(target.prefix, target.day, self.directory,
                                   signing_key=self.signing_keys(), **self._io())
        except FileNotFoundError:
            return
        except CacheError:  # a damaged or unverifiable file: replaced, as before
            return
        path = cache_filename(target.prefix, target.day, directory=self.directory)
        check_overwrite(mine, recorded, path, target.prefix, self.overwrite_unowned_files)

    def _prune(
        self, context: OutputContext, written: list[tuple[Target, CacheFile]], today: dt.date,
    ) -> dict[str, list[dt.date]]:
        """Apply `keep_days`/`keep_files` to each prefix written, sparing the days this step wrote;
        {prefix: days deleted}. A failure is logged, never raised (the data is saved)."""
        removed: dict[str, list[dt.date]] = {}
        oldest = None if self.keep_days is None else today - dt.timedelta(days=self.keep_days)
        for prefix in dict.fromkeys(t.prefix for t, _saved in written):
            mine = [t.day for t, _saved in written if t.prefix == prefix]
            try:
                gone = prune(prefix, self.keep_files, self.directory, tz=self.timezone, older_than=oldest,
                             spare=mine, signing_key=self.signing_keys(), **self._io())
            except (CacheError, OSError) as e:
                context.log.warning(f"retention ({self._retention()}) skipped for {prefix}: {e}")
                continue
            days = sorted(d for d in (file_day(prefix, path) for path in gone) if d is not None)
            if days:
                shown = ", ".join(d.isoformat() for d in days[:10])
                more = f" and {len(days) - 10} more" if len(days) > 10 else ""
                context.log.info(f"retention ({self._retention()}): removed {len(days)} {prefix} file(s) "
                                 f"dated {shown}{more}")
                removed[prefix] = days
        return removed

    @staticmethod
    def _picklable(context: OutputContext, value: Any) -> None:
        try:
            pickle.dump(value, Discard(), protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as e:
            raise not_picklable(context, value, e) from e

    # --- input ------------------------------------------------------------------------------

    def load_input(self, context: InputContext) -> Any:
        """A partition's file (newest on or before its day with fallback), a dict for ranges.

        Args:
            context: Dagster's input context.
        """
        upstream = context.upstream_output
        upstream_meta = upstream.definition_metadata if upstream is not None else {}
        meta = context.definition_metadata or {}
        allow_missing = bool(meta.get(ALLOW_MISSING_KEY, False))
        fallback = bool(meta.get(FALLBACK_KEY, self.fallback_to_latest))
        run_scoped = False
        if context.has_asset_key:
            base = prefix_for(context.asset_key, upstream_meta)
            expected = asset_owner(context.asset_key, None, external=is_external(context))
        elif upstream is not None:  # the run that wrote it: the parent run's, on re-execution
            expected = op_owner(upstream.step_key, upstream.name)
            run_id = run_id_of(upstream)
            base = op_output_prefix(upstream.step_key, upstream.name, upstream.mapping_key, upstream_meta,
                                    run_id)
            run_scoped = cache_prefix_of(upstream_meta) is None and run_id is not None
        else:
            raise CachePartitionError(f"input {context.name!r} has no asset key and no upstream output")

        if not (context.has_asset_key and context.has_asset_partitions):
            # In a run for a daily partition this is that day: never a file from after it.
            prefix, day, why = unpartitioned_file(context, base, context.has_asset_key, self._tz())
            # The file the writing run wrote (this run, or the parent on re-execution), whatever the
            # reader's clock says now: a run past midnight or a re-execution days later.
            written = None if run_scoped else days_written_by_run(context).get(prefix)
            if written is not None and written != day:
                day, why = written, f"the day run {run_id_of(upstream) if upstream else ''} wrote it"
            # A run's own output may be dated earlier (a run past midnight, a re-execution days
            # later): any file of its run-scoped prefix is the one, and not stale.
            return self._load_one(context, prefix, day, why, fallback or run_scoped, allow_missing,
                                  run_scoped=run_scoped, owner=expected)

        keys = list(context.asset_partition_keys)
        as_dict = wants_dict(context, keys, (context.definition_metadata or {}).get(AS_DICT_KEY))
        if not keys:  # e.g. the first partition of a self-dependent asset: Dagster gives None
            context.log.info(f"input {context.name!r}: no partition of "
                             f"{context.asset_key.to_user_string()} maps to this run; loading None")
            return None
        pdef = context.asset_partitions_def
        where = self._partition_files(context, pdef, base, by_run=True)
        per_key = not has_time_dimension(pdef)
        if len(keys) == 1 and not as_dict:
            prefix, day = where(keys[0])
            if allow_missing and FALLBACK_KEY not in meta and not per_key:
                # Dagster's UPathIOManager: with this key a missing partition loads as None. The
                # input's own fallback_to_latest=True still falls back first; the manager's does not.
                fallback = False
            return self._load_one(context, prefix, day, f"partition {keys[0]}", fallback, allow_missing,
                                  owner=expected)
        # A key without a time dimension falls back like an unpartitioned asset: its newest file.
        fill = fallback if per_key else bool(meta.get(FILL_KEY, self.fill_missing_partitions))
        return self._load_range(context, base, where, keys, fill, allow_missing, owner=expected,
                                per_key=per_key)

    def _load_one(
        self, context: InputContext, prefix: str, day: dt.date, what: str, fallback: bool,
        allow_missing: bool, run_scoped: bool = False, owner: Owner | None = None,
    ) -> Any:
        """One file: the wanted day's, else (with fallback) the newest earlier one, recorded as stale."""
        found = self._read(context, prefix, day, fallback, owner)
        if found is None:
            return self._missing(context, prefix, day, allow_missing,
                                 self._missing_message(prefix, day, what, fallback))
        value, used = found
        # Dagster stores an asset input's metadata as an observation of the upstream's *wanted*
        # partition: after a fallback that would make the missing partition look observed, so
        # fresh to Dagster's freshness checks. A fallback is recorded on the consumer instead
        # (`_record_stale`: output metadata the `inputs_current` check reads, and a run tag). An
        # external (sensor-reported) upstream gets no observation either: without a data version
        # it reads as "upstream changed".
        if not context.has_asset_key or (used.stale_days == 0 and not is_external(context)):
            context.add_input_metadata(input_metadata(used))
        if used.stale_days > 0 and run_scoped:
            context.log.info(f"{what}: the run's own output, written on {used.date.isoformat()}")
        elif used.stale_days > 0:
            message = self._stale_message(prefix, used, what)
            context.log.warning(message)
            details = {"prefix": prefix, "wanted": day.isoformat(), "used": used.path,
                       "age_days": str(used.stale_days)}
            self._alert(cache_alert("stale", prefix, message, details=details, source="dagster_cache"))
            record_stale(context, {prefix: used})
        return value

    def _load_range(
        self, context: InputContext, base: str, where: Callable[[str], tuple[str, dt.date]],
        keys: list[str], fill: bool, allow_missing: bool, owner: Owner | None = None, per_key: bool = False,
    ) -> dict[str, Any]:
        """{partition key: value}. A missing day is an error, skipped with allow_missing, or
        (fill) taken from the newest earlier file; never silently another day's data. `per_key`:
        keys without a time dimension, where `fill` is the fallback to a key's newest file."""
        values: dict[str, Any] = {}
        stale: dict[str, Loaded] = {}
        missing: list[str] = []
        reads = self._fetch_range(keys, where, fill, owner)
        with contextlib.closing(reads) as fetched:  # whatever ends the loop drops the queued reads at once
            for key, (found, warnings) in zip(keys, fetched, strict=True):
                for warning in warnings:  # from this thread, in key order: context.log is not thread-safe
                    context.log.warning(warning)
                if found is None:
                    missing.append(key)
                    continue
                values[key], used = found
                if used.stale_days:
                    stale[key] = used
        asset = context.asset_key.to_user_string()
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            message = (f"{len(missing)} of {len(keys)} partitions of {asset} have no cache file in "
                       f"{self.directory!r}: {shown}")
            if not allow_missing:
                hint = f"set input metadata {{'{ALLOW_MISSING_KEY}': True}} to skip missing days"
                if per_key:
                    hint = f"materialize them, or set input metadata {{'{ALLOW_MISSING_KEY}': True}} to skip"
                elif not fill:
                    hint += f", or {{'{FILL_KEY}': True}} to fill each from the newest earlier file"
                self._alert(cache_alert("missing", base, message, details={"prefix": base, "missing": shown},
                                        source="dagster_cache"))
                raise CacheNotFoundError(f"{message}; {hint}", prefix=base, directory=self.directory)
            context.log.warning(f"{message}; skipped because input metadata has {ALLOW_MISSING_KEY}=True")
        if stale:  # one alert for the range, not one per day
            filled = {k: u.date.isoformat() for k, u in stale.items()}
            why, unit = (FALLBACK_KEY, "partitions") if per_key else (FILL_KEY, "days")
            context.log.warning(f"{len(stale)} of {len(keys)} partitions of {asset} filled from earlier "
                                f"files ({why}): {filled}")
            self._alert(cache_alert(
                "stale", base, f"partitions filled from earlier files: {filled}",
                title=f"stale cache data for {base!r}: {len(stale)} of {len(keys)} {unit}",
                details={"prefix": base, "stale_partitions": str(len(stale))},
                source="dagster_cache",
            ))
            record_stale(context, {f"{base}[{k}]": u for k, u in stale.items()})
        return values

    def _read(
        self, context: InputContext, prefix: str, day: dt.date, fallback: bool, owner: Owner | None = None,
    ) -> tuple[Any, Loaded] | None:
        """(value, where it came from) for `day`, the newest earlier file with fallback; None if none."""
        found, warnings = self._fetch(prefix, day, fallback, owner)
        for warning in warnings:
            context.log.warning(warning)
        return found

    def _fetch(
        self, prefix: str, day: dt.date, fallback: bool, owner: Owner | None = None,
    ) -> tuple[tuple[Any, Loaded] | None, list[str]]:
        """`_read` without a context, so a worker thread may run it: what it found, and the
        warnings for the caller to log. A file another writer than `owner` wrote is refused."""
        if not fallback:
            expected = cache_filename(prefix, day, directory=self.directory)
            try:
                exact = read_cache_hit(prefix, day, self.directory,
                                       signing_key=self.signing_keys(), **self._io())
            except FileNotFoundError:
                return None, []
            check_loaded_owner(prefix, expected, exact.owner, owner)
            return (exact.data, Loaded(expected, day, day)), []
        hit, skipped = load_latest_cache(prefix, day, self.directory,
                                         signing_key=self.signing_keys(), **self._io())
        warnings = [f"skipped corrupt cache file {s.path}: {s.reason}" for s in skipped]
        if hit is None:
            return None, warnings
        check_loaded_owner(prefix, hit.path, hit.owner, owner)
        wanted = os.path.basename(cache_filename(prefix, day, directory=""))
        corrupt = any(os.path.basename(s.path) == wanted for s in skipped)
        return (hit.data, Loaded(hit.path, hit.date, day, corrupt)), warnings

    def _range_workers(self, targets: list[tuple[str, dt.date]]) -> int:
        """Reads in flight for a range's (prefix, day) files: up to `max_concurrent_loads` for a
        URL directory; 1 for a local one, where a pool measured no faster (big files already
        inflate on several threads) and up to 1.9x slower for small files
        (benchmarks/bench_range_loads.py)."""
        if not is_url(self.directory):
            return 1
        return max(1, min(self.max_concurrent_loads, len(targets)))

    def _fetch_range(
        self, keys: list[str], where: Callable[[str], tuple[str, dt.date]], fallback: bool,
        owner: Owner | None = None,
    ) -> Generator[tuple[tuple[Any, Loaded] | None, list[str]], None, None]:
        """`_fetch` of each key's (prefix, day) = `where(key)`, yielded in key order (`read_many`).
        A key `where` refuses is raised at its turn, after the keys before it."""
        targets: list[tuple[str, dt.date]] = []
        bad_key: Exception | None = None
        for key in keys:  # on this thread: Dagster's partition objects stay here
            try:
                targets.append(where(key))
            except Exception as e:  # noqa: BLE001 - re-raised below, after the keys before it
                bad_key = e
                break
        yield from read_many(lambda t: self._fetch(t[0], t[1], fallback, owner), targets,
                             self._range_workers(targets))
        if bad_key is not None:
            raise bad_key

    def _missing_message(self, prefix: str, day: dt.date, what: str, fallback: bool) -> str:
        expected = cache_filename(prefix, day, directory=self.directory)
        if not fallback:
            return f"cache file {expected} for {what} does not exist (fallback_to_latest is off)"
        return (f"no cache file for {what}: {expected} is missing and there is no earlier {prefix} "
                f"file in {self.directory!r}")

    def _stale_message(self, prefix: str, used: Loaded, what: str) -> str:
        expected = cache_filename(prefix, used.wanted, directory=self.directory)
        state = "is corrupt" if used.wanted_corrupt else "is missing"
        return (f"{what}: {expected} {state}; using {used.path} from {used.date.isoformat()} "
                f"({used.stale_days} day(s) stale)")

    def _missing(
        self, context: InputContext, prefix: str, day: dt.date, allow_missing: bool, message: str,
    ) -> None:
        if allow_missing:
            context.log.warning(f"{message}; loading None because input metadata has "
                                f"{ALLOW_MISSING_KEY}=True")
            return None
        self._alert(cache_alert(
            "missing", prefix, message,
            details={"prefix": prefix, "wanted": day.isoformat(), "directory": self.directory},
            source="dagster_cache",
        ))
        raise CacheNotFoundError(message, prefix=prefix, directory=self.directory)
