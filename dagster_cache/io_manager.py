"""`DatedCacheIOManager`: assets persisted as `<prefix>_<YYYYMMDD>.pkl.gz` through cache_utils."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pickle
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext
from pydantic import Field

from cache_utils import (
    Alert,
    Alerter,
    CacheDir,
    CacheError,
    CacheFile,
    CacheHit,
    CacheNotFoundError,
    Skipped,
    cache_filename,
    prune,
    send_alert,
    write_cache,
)
from cache_utils.integration import (
    AlertPriority,
    cache_alert,
    cache_owner,
    default_alias,
    is_url,
    parse_file_name,
    resolve_alert,
    split_signing_keys,
)

from .dates import partition_file, unpartitioned_file, zone
from .errors import CachePartitionError
from .metadata import frame_metadata, refuse_lazy, row_count_metadata
from .ownership import (
    CacheOwnerError,
    Owner,
    asset_owner,
    describe_recorded,
    op_owner,
    parse_owner,
    same_directory,
)
from .prefixes import cache_prefix_of, check_no_clash, op_output_prefix, prefix_for
from .refresh import storage_options_arg
from .resources import AlertResource

# Input metadata keys. The first is UPathIOManager's own; the others override the manager's fields.
ALLOW_MISSING_KEY = "allow_missing_partitions"
AS_DICT_KEY = "partitions_as_dict"
FALLBACK_KEY = "fallback_to_latest"
FILL_KEY = "fill_missing_partitions"
# Output metadata key on a consumer's materialization built from a stale (fallback) input.
STALE_INPUTS_KEY = "dagster_cache/stale_inputs"
STALE_RUN_TAG = "dagster_cache/stale_inputs"
# The written file's content fingerprint (gzip CRC32 and length), what `cache_data_version` gives.
FINGERPRINT_KEY = "dagster_cache/fingerprint"
# Output metadata key: {prefix: [ISO days]} of the files retention deleted after this write.
PRUNED_DATES_KEY = "dagster_cache/pruned_dates"


@dataclass(frozen=True)
class Target:
    """One file an output writes: its partition key (None when unpartitioned), prefix, day, value."""

    key: str | None
    prefix: str
    day: dt.date
    value: Any


@dataclass(frozen=True)
class Loaded:
    """Which file an input came from and how many days older than wanted it is."""

    path: str
    date: dt.date
    wanted: dt.date
    wanted_corrupt: bool = False  # the wanted day's file exists but was skipped as corrupt

    @property
    def stale_days(self) -> int:
        return (self.wanted - self.date).days


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

    def _priority(self) -> AlertPriority | None:
        return self.opsgenie.priority if self.opsgenie is not None else None

    # --- output -----------------------------------------------------------------------------

    def _targets(self, context: OutputContext, obj: Any) -> list[Target]:
        """The files this output writes, one per partition."""
        if not context.has_asset_key:
            base = op_output_prefix(context.step_key, context.name, context.mapping_key,
                                    context.definition_metadata, _run_id(context))
            prefix, day, _why = unpartitioned_file(context, base, False, self._tz())
            return [Target(None, prefix, day, obj)]
        base = prefix_for(context.asset_key, context.definition_metadata)
        if not context.has_asset_partitions:
            prefix, day, why = unpartitioned_file(context, base, True, self._tz())
            today = dt.datetime.now(self._tz()).date()
            if day > today:  # e.g. a run for today's partition in a zone ahead of the manager's
                context.log.warning(
                    f"{_output_name(context)} is written under {day.isoformat()} ({why}), after today "
                    f"({today.isoformat()}) in timezone {self.timezone!r}: unpartitioned readers look for "
                    f"today's file there and will not see it before then. Set the manager's timezone to "
                    "the partitions' zone.")
            return [Target(None, prefix, day, obj)]
        pdef = context.asset_partitions_def
        keys = list(context.asset_partition_keys)
        if len(keys) == 1 and not _single_run(context):
            return [Target(keys[0], *partition_file(pdef, keys[0], base), obj)]
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
        return [Target(k, *partition_file(pdef, k, base), by_str[str(k)]) for k in keys]

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        """Write the output (one file per partition) atomically through `cache_utils.save_cache`.

        `None` is written like any value, so the consumer receives `None` and never an older
        day's file; only a `Nothing`-typed output (`-> None`) writes nothing, as in Dagster.

        Args:
            context: Dagster's output context.
            obj: The value to write, or {partition key: value} for a single-run backfill.
        """
        if _is_nothing(context):
            return
        targets = self._targets(context, obj)
        refuse_lazy(_output_name(context), [t.value for t in targets])
        _check_clashes(context, [t.prefix for t in targets], self.directory)
        if len(targets) > 1:  # a single-run backfill writes all of its days or none of them
            for target in targets:
                self._picklable(context, target.value)
        owners = [_writer(context, target.key) for target in targets]
        for target, mine in zip(targets, owners, strict=True):  # all checked before the first is written
            self._check_overwrite(target, mine)
        today = dt.datetime.now(self._tz()).date()
        written: list[tuple[Target, CacheFile]] = []
        for target, mine in zip(targets, owners, strict=True):
            try:
                saved = write_cache(target.value, target.prefix, target.day, self.directory,
                                    signing_key=self.signing_keys(), owner=mine.record(), **self._io())
            except pickle.PicklingError as e:
                raise _not_picklable(context, target.value, e) from e
            context.log.debug(f"wrote {saved.path} ({saved.size:,} bytes)")
            written.append((target, saved))
            if target.day >= today:
                resolve_alert(default_alias(target.prefix), f"fresh data written to {saved.path}",
                              self._alerter())
        meta = self._output_metadata(context, written)
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
        location is never written (`_check_clashes` refuses it)."""
        try:
            recorded = cache_owner(target.prefix, target.day, self.directory,
                                   signing_key=self.signing_keys(), **self._io())
        except FileNotFoundError:
            return
        except CacheError:  # a damaged or unverifiable file: replaced, as before
            return
        theirs = parse_owner(recorded)
        path = cache_filename(target.prefix, target.day, directory=self.directory)
        if theirs is None and not self.overwrite_unowned_files:
            raise CacheOwnerError(
                f"{mine.describe()} would overwrite {path}, which records no owner (written outside "
                "Dagster, or before owners were recorded) and overwrite_unowned_files is False: move "
                "or delete the file if it is this asset's, or give the asset another cache_prefix."
            )
        if theirs is None or theirs.same_writer(mine):
            return
        raise CacheOwnerError(
            f"{mine.describe()} would overwrite {path}, which belongs to {theirs.describe()}: both map "
            f"to cache prefix {target.prefix!r} in this directory (perhaps spelled differently, or from "
            "another code location). Give one of them metadata={'cache_prefix': '<another prefix>'} "
            "or another directory; the file was left as it is."
        )

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
            days = sorted(d for d in (_file_day(prefix, path) for path in gone) if d is not None)
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
            pickle.dump(value, _Discard(), protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as e:
            raise _not_picklable(context, value, e) from e

    def _output_metadata(
        self, context: OutputContext, written: list[tuple[Target, CacheFile]]
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {"dagster_cache/written": True}
        if len(written) == 1:
            target, saved = written[0]
            meta.update({
                "path": MetadataValue.path(saved.path),
                "dagster_cache/prefix": target.prefix,
                "dagster_cache/date": MetadataValue.text(target.day.isoformat()),
            })
            if target.value is None:
                meta["dagster_cache/note"] = "output was None: written, so consumers receive None"
            meta["dagster_cache/size_bytes"] = MetadataValue.int(saved.size)
            meta[FINGERPRINT_KEY] = MetadataValue.text(saved.fingerprint or "")
            meta.update(frame_metadata(target.value, self.preview_rows, context.has_asset_partitions))
            return meta
        meta.update({
            "paths": MetadataValue.json({str(t.key): saved.path for t, saved in written}),
            "dagster_cache/dates": MetadataValue.json([t.day.isoformat() for t, _saved in written]),
            "dagster_cache/files_written": MetadataValue.int(len(written)),
            "dagster_cache/size_bytes": MetadataValue.int(sum(saved.size for _t, saved in written)),
            FINGERPRINT_KEY: MetadataValue.json({str(t.key): saved.fingerprint for t, saved in written}),
        })
        meta.update(row_count_metadata([t.value for t, _saved in written]))
        return meta

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
            expected = asset_owner(context.asset_key, None, external=_is_external(context))
        elif upstream is not None:  # the run that wrote it: the parent run's, on re-execution
            expected = op_owner(upstream.step_key, upstream.name)
            run_id = _run_id(upstream)
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
            written = None if run_scoped else _day_written_by_run(context, prefix)
            if written is not None and written != day:
                day, why = written, f"the day run {_run_id(upstream) if upstream else ''} wrote it"
            # A run's own output may be dated earlier (a run past midnight, a re-execution days
            # later): any file of its run-scoped prefix is the one, and not stale.
            return self._load_one(context, prefix, day, why, fallback or run_scoped, allow_missing,
                                  run_scoped=run_scoped, owner=expected)

        keys = list(context.asset_partition_keys)
        as_dict = _wants_dict(context, keys)
        if not keys:  # e.g. the first partition of a self-dependent asset: Dagster gives None
            context.log.info(f"input {context.name!r}: no partition of "
                             f"{context.asset_key.to_user_string()} maps to this run; loading None")
            return None
        pdef = context.asset_partitions_def
        if len(keys) == 1 and not as_dict:
            prefix, day = partition_file(pdef, keys[0], base)
            if allow_missing and FALLBACK_KEY not in meta:
                # Dagster's UPathIOManager: with this key a missing partition loads as None. The
                # input's own fallback_to_latest=True still falls back first; the manager's does not.
                fallback = False
            return self._load_one(context, prefix, day, f"partition {keys[0]}", fallback, allow_missing,
                                  owner=expected)
        fill = bool(meta.get(FILL_KEY, self.fill_missing_partitions))
        return self._load_range(context, base, pdef, keys, fill, allow_missing, owner=expected)

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
        if not context.has_asset_key or (used.stale_days == 0 and not _is_external(context)):
            context.add_input_metadata(_input_metadata(used))
        if used.stale_days > 0 and run_scoped:
            context.log.info(f"{what}: the run's own output, written on {used.date.isoformat()}")
        elif used.stale_days > 0:
            message = self._stale_message(prefix, used, what)
            context.log.warning(message)
            details = {"prefix": prefix, "wanted": day.isoformat(), "used": used.path,
                       "age_days": str(used.stale_days)}
            self._alert(cache_alert("stale", prefix, message, priority=self._priority(), details=details,
                                    source="dagster_cache"))
            _record_stale(context, {prefix: used})
        return value

    def _load_range(
        self, context: InputContext, base: str, pdef: Any, keys: list[str], fill: bool,
        allow_missing: bool, owner: Owner | None = None,
    ) -> dict[str, Any]:
        """{partition key: value}. A missing day is an error, skipped with allow_missing, or
        (fill) taken from the newest earlier file; never silently another day's data."""
        values: dict[str, Any] = {}
        stale: dict[str, Loaded] = {}
        missing: list[str] = []
        reads = self._fetch_range(keys, lambda k: partition_file(pdef, k, base), fill, owner)
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
                if not fill:
                    hint += f", or {{'{FILL_KEY}': True}} to fill each from the newest earlier file"
                self._alert(cache_alert("missing", base, message, details={"prefix": base, "missing": shown},
                                        source="dagster_cache"))
                raise CacheNotFoundError(f"{message}; {hint}", prefix=base, directory=self.directory)
            context.log.warning(f"{message}; skipped because input metadata has {ALLOW_MISSING_KEY}=True")
        if stale:  # one alert for the range, not one per day
            filled = {k: u.date.isoformat() for k, u in stale.items()}
            context.log.warning(f"{len(stale)} of {len(keys)} partitions of {asset} filled from earlier "
                                f"files ({FILL_KEY}): {filled}")
            self._alert(cache_alert(
                "stale", base, f"partitions filled from earlier files: {filled}",
                title=f"stale cache data for {base!r}: {len(stale)} of {len(keys)} days",
                priority=self._priority(), details={"prefix": base, "stale_partitions": str(len(stale))},
                source="dagster_cache",
            ))
            _record_stale(context, {f"{base}[{k}]": u for k, u in stale.items()})
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
        """`_read` without a context: what it found, and the warnings for the caller to log."""
        with contextlib.closing(self._fetch_range([prefix], lambda _: (prefix, day), fallback, owner)) as one:
            return next(one)

    def _found(
        self, prefix: str, day: dt.date, fallback: bool, hit: CacheHit | None, skipped: tuple[Skipped, ...],
        owner: Owner | None,
    ) -> tuple[tuple[Any, Loaded] | None, list[str]]:
        """(value, where it came from) of what a read of (prefix, day) found, and the warnings for
        the caller to log. A file another writer than `owner` wrote is refused."""
        if not fallback:
            if hit is None:
                return None, []
            expected = cache_filename(prefix, day, directory=self.directory)
            _check_owner(prefix, expected, hit.owner, owner)
            return (hit.data, Loaded(expected, day, day)), []
        warnings = [f"skipped corrupt cache file {s.path}: {s.reason}" for s in skipped]
        if hit is None:
            return None, warnings
        _check_owner(prefix, hit.path, hit.owner, owner)
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
        """What each key's (prefix, day) = `where(key)` holds, yielded in key order. The reads are
        `CacheDir.read_many`'s, `_range_workers` of them in flight; a failure (a key `where`
        refuses, a read's error) is raised at its key's turn."""
        targets: list[tuple[str, dt.date]] = []
        bad_key: Exception | None = None
        for key in keys:  # on this thread: Dagster's partition objects stay here
            try:
                targets.append(where(key))
            except Exception as e:  # noqa: BLE001 - re-raised below, after the keys before it
                bad_key = e
                break
        cache = CacheDir(self.directory, signing_key=self.signing_keys(), **self._io())
        reads = cache.read_many(targets, fallback=fallback, max_workers=self._range_workers(targets),
                                thread_name_prefix="dagster_cache-load")
        with contextlib.closing(reads):
            for (prefix, day), (hit, skipped) in zip(targets, reads, strict=True):
                yield self._found(prefix, day, fallback, hit, skipped, owner)
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


def _file_day(prefix: str, path: str) -> dt.date | None:
    """The day in a deleted cache file's name (None for a temp file `prune` swept)."""
    parsed = parse_file_name(path.rstrip("/").rsplit("/", 1)[-1], prefix)
    return parsed[1] if parsed is not None else None


def _check_owner(prefix: str, path: str, recorded: str | None, owner: Owner | None) -> None:
    """Refuse a loaded file whose recorded owner (read with it, from the same open file) is another
    asset (or op output) than the one the input reads; a file recording no owner loads as before."""
    theirs = parse_owner(recorded)
    if owner is not None and theirs is not None and not theirs.same_writer(owner):
        raise CacheOwnerError(
            f"{path} belongs to {describe_recorded(theirs)}, not to {owner.describe()}, whose input it "
            f"was to be: both map to cache prefix {prefix!r} in this directory (perhaps spelled "
            "differently, or from another code location). Give one of them "
            "metadata={'cache_prefix': '<another prefix>'} or another directory."
        )


class _Discard:
    """A file that forgets what is written: pickling into it only proves the value pickles."""

    def write(self, data: Any) -> int:
        return len(data)


def _not_picklable(context: OutputContext, value: Any, error: BaseException) -> Exception:
    return dg.DagsterInvariantViolationError(
        f"Object of type {type(value).__module__}.{type(value).__qualname__} returned by "
        f"{_output_name(context)} is not picklable, so it cannot be cached: {error}. Return "
        "picklable data, or give this output another io_manager_key."
    )


def _run_id(context: InputContext | OutputContext) -> str | None:
    """The id of the run that wrote (or writes) an output; None for contexts built without a run."""
    try:
        run_id = context.run_id  # type: ignore[union-attr]  # InputContext has it at run time too
    except Exception:  # noqa: BLE001 - build_input_context without an upstream run
        return None
    return None if not run_id or run_id.startswith("__") else run_id  # "__EPHEMERAL_RUN_ID": built


def _day_written_by_run(context: InputContext, prefix: str) -> dt.date | None:
    """The day of the `prefix` file the upstream output's run wrote, from that run's handled-output
    event (this run's, or the parent run's on a re-execution that did not run the upstream step);
    None when the upstream did not run in a run of this lineage or wrote no such file."""
    upstream = context.upstream_output
    run_id = _run_id(upstream) if upstream is not None else None
    if upstream is None or run_id is None:
        return None
    try:
        instance = context.step_context.instance
        records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.HANDLED_OUTPUT).records
    except Exception as e:  # noqa: BLE001 - no step context or no event log: fall back to the clock
        context.log.debug(f"could not look up the day run {run_id} wrote {prefix}: {e}")
        return None
    for record in reversed(records):  # the last write wins, as on disk
        event = record.event_log_entry.dagster_event
        if event is None or event.step_key != upstream.step_key:
            continue
        data = event.event_specific_data
        if getattr(data, "output_name", None) != upstream.name:
            continue
        meta = getattr(data, "metadata", None) or {}
        written_prefix, written_day = meta.get("dagster_cache/prefix"), meta.get("dagster_cache/date")
        if written_day is None or _text(written_prefix) != prefix:
            continue
        try:
            return dt.date.fromisoformat(_text(written_day))
        except ValueError:
            return None
    return None


def _text(value: Any) -> str:
    """The text of a metadata entry (a MetadataValue wraps it)."""
    return str(getattr(value, "value", value))


def _assets_def(context: InputContext | OutputContext) -> Any:
    """The AssetsDefinition of the step's node, or None (an op, or a context built without a run)."""
    try:
        step = context.step_context
    except Exception:  # noqa: BLE001 - built by build_*_context: nothing to inspect
        return None
    return step.job_def.asset_layer.get_assets_def_for_node(step.node_handle)


def _single_run(context: OutputContext) -> bool:
    """Whether the output's asset has a single-run backfill policy (it returns {partition: value})."""
    assets_def = _assets_def(context)
    policy = assets_def.backfill_policy if assets_def is not None else None
    return policy is not None and policy.max_partitions_per_run is None  # BackfillPolicy.single_run()


def _writer(context: OutputContext, partition: str | None) -> Owner:
    """The owner recorded in a file this output writes: the asset and partition key, or the op
    output (node and output name)."""
    if context.has_asset_key:
        return asset_owner(context.asset_key, partition)
    return op_owner(context.step_key, context.name)


def _is_nothing(context: OutputContext) -> bool:
    try:
        return context.dagster_type.is_nothing
    except dg.DagsterInvariantViolationError:  # contexts built for tests may have no type
        return False


def _output_name(context: OutputContext) -> str:
    if context.has_asset_key:
        return f"asset {context.asset_key.to_user_string()}"
    return f"output {context.name!r} of op {context.step_key}"


def _keys_writing_to(step: Any, own_key: str, directory: str) -> set[str]:
    """The IO manager keys bound to a DatedCacheIOManager on `directory` (own_key included), by the
    run's resolved configuration (environment variables and launch-time config applied)."""
    keys = {own_key}
    resolved = step.resolved_run_config.resources  # only the keys this step needs
    for key, resource_def in step.job_def.resource_defs.items():
        cls = getattr(resource_def, "configurable_resource_cls", None)
        if not (isinstance(cls, type) and issubclass(cls, DatedCacheIOManager)):
            continue
        launch = ((step.dagster_run.run_config or {}).get("resources") or {}).get(key) or {}
        if key in resolved:
            where = (resolved[key].config or {}).get("directory", "data")
        elif "directory" in (launch.get("config") or {}):  # given in the run's config
            where = launch["config"]["directory"]
        else:  # as defined; an EnvVar shows as {"env": NAME}
            field = resource_def.config_field
            if field is None or not field.default_provided:
                continue
            where = field.default_value.get("directory", "data")
            if isinstance(where, dict):
                where = os.environ.get(str(where.get("env")), "")
        if where and same_directory(str(where), directory):
            keys.add(key)
    return keys


def _other_assets(
    context: OutputContext, directory: str, external: set[dg.AssetKey] | None = None,
) -> Iterator[tuple[dg.AssetKey, str, Any]]:
    """(key, base prefix, partitions) of each asset whose files go to the same directory as this
    output (any IO manager key bound to a DatedCacheIOManager on it), across the whole code
    location when Dagster gives it: materializable ones, and external ones (files written outside
    Dagster, such as `external_cache_asset`), whose keys are added to `external`."""
    try:
        step = context.step_context
        output_def = step.op_def.output_def_named(context.name)
    except Exception:  # noqa: BLE001 - no step context: built with build_output_context
        return
    keys = _keys_writing_to(step, output_def.io_manager_key, directory)
    try:
        graph = step.repository_def.asset_graph
    except Exception:  # noqa: BLE001 - execute_in_process has no repository: start from the job
        selection = step.job_def.asset_selection_data
        job = selection.parent_job_def if selection is not None else step.job_def
        graph = job.asset_layer.asset_graph
        # An asset job's graph is scoped to its selection; it keeps the code location's whole graph.
        graph = getattr(graph, "source_asset_graph", graph)
    for node in graph.asset_nodes:
        if not (node.is_materializable or node.is_external) or node.io_manager_key not in keys:
            continue
        try:
            base = prefix_for(node.key, node.metadata)
        except ValueError:  # its own write will report its bad prefix
            continue
        if not node.is_materializable and external is not None:
            external.add(node.key)
        yield node.key, base, node.partitions_def


def _check_clashes(context: OutputContext, prefixes: list[str], directory: str) -> None:
    """Refuse, before anything is written, prefixes another asset of this code location writes too,
    or an external asset's files (written outside Dagster) have."""
    owner: dg.AssetKey | str = context.asset_key if context.has_asset_key else _output_name(context)
    external: set[dg.AssetKey] = set()
    others = list(_other_assets(context, directory, external))
    try:
        instance = context.step_context.instance  # knows the dynamic partitions' keys
    except Exception:  # noqa: BLE001 - no step context: built with build_output_context
        instance = None
    for prefix in dict.fromkeys(prefixes):
        check_no_clash(prefix, owner, others, instance, external=external)
    if not context.has_asset_key:
        _check_op_caches(context)


def _check_op_caches(context: OutputContext) -> None:
    """Refuse an op output whose `cache_prefix` another op output of the same job names too: both
    would write that shared daily file in turn."""
    mine = cache_prefix_of(context.definition_metadata)
    if mine is None:
        return
    try:
        step = context.step_context
        own = (step.node_handle, context.name)
        graph = step.job_def.graph
    except Exception:  # noqa: BLE001 - no step context: built with build_output_context
        return
    for handle in graph.iterate_node_handles():
        definition = graph.get_node(handle).definition
        if not isinstance(definition, dg.OpDefinition):
            continue
        for out in definition.output_defs:
            if (handle, out.name) != own and cache_prefix_of(out.metadata) == mine:
                raise CachePartitionError(
                    f"{_output_name(context)} and output {out.name!r} of op {handle} both name "
                    f"cache_prefix {mine!r} and would overwrite each other's daily file: give one "
                    "of them another cache_prefix"
                )


def _record_stale(context: InputContext, used: Mapping[str, Loaded]) -> None:
    """Put which upstream day a stale input came from on the consumer's own materialization
    (output metadata `dagster_cache/stale_inputs`) and on the run (tag), where users look."""
    try:
        step = context.step_context
        outputs = step.op_def.output_defs
    except Exception:  # noqa: BLE001 - no step context: built with build_input_context
        return
    # The upstream's asset key lets the stale-input sensor re-run that asset's file checks.
    upstream = {"asset": context.asset_key.to_user_string()} if context.has_asset_key else {}
    entries = {name: {"used": u.path, "date_used": u.date.isoformat(), "date_wanted": u.wanted.isoformat(),
                      "stale_days": u.stale_days, **upstream} for name, u in used.items()}
    for out in outputs:
        if out.is_dynamic or step.has_seen_output(out.name):
            continue
        current = (step.get_output_metadata(out.name) or {}).get(STALE_INPUTS_KEY)
        merged = {**(current.value if current is not None else {}), **entries}
        step.add_output_metadata({STALE_INPUTS_KEY: MetadataValue.json(merged)}, output_name=out.name)
    try:
        run = step.instance.get_run_by_id(step.run_id)
        previous = run.tags.get(STALE_RUN_TAG, "") if run is not None else ""
        added = [f"{name} from {u.date.isoformat()} ({u.stale_days}d)" for name, u in used.items()]
        tag = ", ".join(dict.fromkeys([t for t in previous.split(", ") if t] + added))
        step.instance.add_run_tags(step.run_id, {STALE_RUN_TAG: tag[:4000]})
    except Exception as e:  # noqa: BLE001 - a tag is a convenience: never fail the load for it
        context.log.debug(f"could not tag the run with its stale inputs: {e}")


def _is_external(context: InputContext) -> bool:
    """Whether the input's upstream is an external asset (an AssetSpec Dagster does not materialize)."""
    if not context.has_asset_key:
        return False
    try:
        return bool(context.step_context.job_def.asset_layer.get(context.asset_key).is_external)
    except Exception:  # noqa: BLE001 - no step context (build_input_context) or no asset node
        return False


def _input_metadata(used: Loaded) -> dict[str, Any]:
    return {
        "path": MetadataValue.path(used.path),
        "dagster_cache/date_used": MetadataValue.text(used.date.isoformat()),
        "dagster_cache/date_wanted": MetadataValue.text(used.wanted.isoformat()),
        "dagster_cache/stale_days": MetadataValue.int(used.stale_days),
        "dagster_cache/fallback": MetadataValue.bool(used.stale_days > 0),
    }


def _wants_dict(context: InputContext, keys: list[str]) -> bool:
    """Several keys, an explicit request, or a range partition mapping (so a one-day range still
    gives a dict: dagster issue 28942)."""
    if len(keys) > 1:
        return True
    explicit = (context.definition_metadata or {}).get(AS_DICT_KEY)
    if explicit is not None:
        return bool(explicit)
    # Not a `dict` annotation: one partition whose value is a dict is loaded as it is, as Dagster does.
    mapping, downstream_partitioned = _partition_mapping(context)
    if isinstance(mapping, dg.TimeWindowPartitionMapping):
        return mapping.start_offset != mapping.end_offset
    if isinstance(mapping, dg.AllPartitionMapping):
        return True
    # No explicit mapping: an unpartitioned asset depending on a partitioned one gets them all.
    return mapping is None and downstream_partitioned is False


def _partition_mapping(context: InputContext) -> tuple[Any, bool | None]:
    """(explicit partition mapping of this input or None, whether the consuming asset is
    partitioned); (None, None) outside a run."""
    assets_def = _assets_def(context)
    if assets_def is None:
        return None, None
    return assets_def.get_partition_mapping_for_dep(context.asset_key), assets_def.partitions_def is not None
