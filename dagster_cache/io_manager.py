"""`DatedCacheIOManager`: assets persisted as `<prefix>_<YYYYMMDD>.pkl.gz` through cache_utils."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext
from dagster._core.definitions.metadata import TableMetadataSet  # not re-exported by dagster 1.13
from pydantic import Field

from cache_utils import (
    Alert,
    CacheNotFoundError,
    cache_filename,
    default_alias,
    list_caches,
    load_latest_cache,
    read_cache,
    resolve_alert,
    save_cache,
    send_alert,
)
from cache_utils.alerts import Alerter
from cache_utils.storage import is_url

from .dates import CachePartitionError, partition_file, prefix_for, run_date, run_partition_date, zone
from .metadata import frame_metadata
from .resources import OpsGenieResource

ALLOW_MISSING_KEY = "allow_missing_partitions"  # the same input metadata key as UPathIOManager
AS_DICT_KEY = "partitions_as_dict"


@dataclass(frozen=True)
class Loaded:
    """Which file an input came from and how many days older than wanted it is."""

    path: str
    date: dt.date
    wanted: dt.date

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
        description="When the wanted day's file is missing, load the newest earlier file (never a "
        "later one), log a warning and raise a stale-data alert. Off: a missing file is an error.",
    )
    signing_key: str | None = Field(
        default=None,
        repr=False,  # never show the key in a repr (logs, tracebacks)
        description="HMAC key to sign files on write and verify them on read; pass "
        "EnvVar('CACHE_UTILS_SIGNING_KEY'). Unset: the library's environment default.",
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
    opsgenie: OpsGenieResource | None = Field(
        default=None,
        description="Where stale/missing-data alerts go. Unset: cache_utils' process-wide alert "
        "configuration (OPSGENIE_API_KEY), if any.",
    )

    # --- shared helpers ---------------------------------------------------------------------

    def _tz(self) -> dt.tzinfo:
        return zone(self.timezone)

    def _io(self) -> dict[str, Any]:
        return {"storage_options": self.storage_options or None}

    def _alerter(self) -> tuple[bool, Alerter | None]:
        """(alerts wanted, backend): a disabled OpsGenieResource turns alerts off entirely."""
        if self.opsgenie is None:
            return True, None  # send_alert falls back to cache_utils' configured alerter
        alerter = self.opsgenie.alerter()
        return alerter is not None, alerter

    def _alert(self, context: Any, alert: Alert) -> None:
        wanted, alerter = self._alerter()
        if wanted:
            send_alert(alert, alerter)

    def _priority(self) -> Any:
        return self.opsgenie.priority if self.opsgenie is not None else "P3"

    # --- output -----------------------------------------------------------------------------

    def _output_prefix(self, context: OutputContext) -> str:
        if context.has_asset_key:
            return prefix_for(context.asset_key, context.definition_metadata)
        return prefix_for(dg.AssetKey([context.step_key, context.name]), context.definition_metadata)

    def _targets(self, context: OutputContext, obj: Any) -> list[tuple[str | None, str, dt.date, Any]]:
        """(partition key, prefix, date, value) for each file this output writes."""
        base = self._output_prefix(context)
        if not context.has_asset_partitions:
            day, _why = run_date(context, self._tz())
            return [(None, base, day, obj)]
        pdef = context.asset_partitions_def
        keys = list(context.asset_partition_keys)
        if len(keys) == 1:
            return [(keys[0], *partition_file(pdef, keys[0], base), obj)]
        # A single-run backfill: one value per partition, one file per day.
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
        return [(k, *partition_file(pdef, k, base), by_str[str(k)]) for k in keys]

    def _size(self, path: str, prefix: str, day: dt.date) -> int | None:
        if not is_url(self.directory):
            return os.path.getsize(path)
        found = [c.size for c in list_caches(self.directory, prefix, **self._io()) if c.date == day]
        return found[0] if found else None

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        """Write the output (one file per partition) atomically through `cache_utils.save_cache`."""
        if obj is None:
            context.log.info("output is None: no cache file written")
            context.add_output_metadata({"dagster_cache/written": False,
                                         "dagster_cache/note": "output was None: nothing written"})
            return
        targets = self._targets(context, obj)
        today = dt.datetime.now(self._tz()).date()
        written: list[tuple[str | None, str, dt.date, str, Any]] = []
        for key, prefix, day, value in targets:
            if value is None:
                context.log.info(f"partition {key}: value is None, no cache file written")
                continue
            path = save_cache(value, prefix, day, self.directory,
                              signing_key=self.signing_key or None, **self._io())
            context.log.debug(f"wrote {path}")
            written.append((key, prefix, day, path, value))
            if day >= today:
                wanted, alerter = self._alerter()
                if wanted:
                    resolve_alert(default_alias(prefix), f"fresh data written to {path}", alerter)
        context.add_output_metadata(self._output_metadata(context, written, len(targets)))

    def _output_metadata(self, context: OutputContext, written: list, n_targets: int) -> dict[str, Any]:
        if not written:
            return {"dagster_cache/written": False, "dagster_cache/note": "every value was None"}
        sizes = [self._size(path, prefix, day) for _k, prefix, day, path, _v in written]
        meta: dict[str, Any] = {"dagster_cache/written": True}
        if len(written) == 1 and n_targets == 1:
            _key, prefix, day, path, value = written[0]
            meta.update({
                "path": MetadataValue.path(path),
                "dagster_cache/prefix": prefix,
                "dagster_cache/date": MetadataValue.text(day.isoformat()),
            })
            if sizes[0] is not None:
                meta["dagster_cache/size_bytes"] = MetadataValue.int(sizes[0])
            meta.update(frame_metadata(value, self.preview_rows, context.has_asset_partitions))
            return meta
        meta.update({
            "paths": MetadataValue.json({str(k): p for k, _pr, _d, p, _v in written}),
            "dagster_cache/dates": MetadataValue.json([d.isoformat() for _k, _p, d, _pa, _v in written]),
            "dagster_cache/files_written": MetadataValue.int(len(written)),
            "dagster_cache/size_bytes": MetadataValue.int(sum(s or 0 for s in sizes)),
        })
        rows = [len(v) for *_rest, v in written if hasattr(v, "shape") and hasattr(v, "columns")]
        if len(rows) == len(written):
            meta.update(dict(TableMetadataSet(row_count=sum(rows))))
        return meta

    # --- input ------------------------------------------------------------------------------

    def load_input(self, context: InputContext) -> Any:
        """A partition's file (newest on or before its day with fallback), a dict for ranges."""
        upstream = context.upstream_output
        upstream_meta = upstream.definition_metadata if upstream is not None else {}
        allow_missing = bool((context.definition_metadata or {}).get(ALLOW_MISSING_KEY, False))
        if context.has_asset_key:
            base = prefix_for(context.asset_key, upstream_meta)
        elif upstream is not None:
            base = prefix_for(dg.AssetKey([upstream.step_key, upstream.name]), upstream_meta)
        else:
            raise CachePartitionError(f"input {context.name!r} has no asset key and no upstream output")

        if not (context.has_asset_key and context.has_asset_partitions):
            # In a run for a daily partition, never load a file from after that day.
            day = run_partition_date(context)
            why = f"the run's partition day {day}"
            if day is None:
                day, why = run_date(context, self._tz())
            value, used = self._load_day(context, base, day, allow_missing, why)
            if used is not None:
                context.add_input_metadata(_input_metadata(used))
            return value

        keys = list(context.asset_partition_keys)
        as_dict = _wants_dict(context, keys)
        if not keys:  # e.g. the first partition of a self-dependent asset
            if allow_missing:
                context.log.info(f"no upstream partition of {base} for this run: loading None")
                return {} if as_dict else None
            raise CachePartitionError(
                f"input {context.name!r} maps to no partition of {context.asset_key.to_user_string()} "
                f"(the first partition of a self-dependent asset?): set input metadata "
                f"{{'{ALLOW_MISSING_KEY}': True}} to receive None"
            )
        pdef = context.asset_partitions_def
        values: dict[str, Any] = {}
        loaded: dict[str, Loaded] = {}
        single = len(keys) == 1
        for key in keys:
            prefix, day = partition_file(pdef, key, base)
            value, used = self._load_day(context, prefix, day, allow_missing, f"partition {key}",
                                         alert_stale=single)
            if used is not None:
                values[key] = value
                loaded[key] = used
        if single and keys[0] in loaded:
            context.add_input_metadata(_input_metadata(loaded[keys[0]]))
        elif loaded:
            stale = {k: u.date.isoformat() for k, u in loaded.items() if u.stale_days}
            context.log.info(f"loaded {len(loaded)} of {len(keys)} partitions of {base}; "
                             f"filled from earlier files: {stale or 'none'}")
            if stale:  # one alert for the range, not one per day
                self._alert(context, Alert(
                    f"stale cache data for {base!r}: {len(stale)} of {len(keys)} days"[:130],
                    default_alias(base), f"partitions filled from earlier files: {stale}",
                    self._priority(), details={"prefix": base, "stale_partitions": str(len(stale))},
                    source="dagster_cache",
                ))
        if as_dict:
            return values
        return values.get(keys[0])

    def _load_day(
        self, context: InputContext, prefix: str, day: dt.date, allow_missing: bool, what: str,
        alert_stale: bool = True,
    ) -> tuple[Any, Loaded | None]:
        """The data for `day` (falling back to the newest earlier file when enabled)."""
        expected = cache_filename(prefix, day, directory=self.directory)
        if not self.fallback_to_latest:
            try:
                data = read_cache(prefix, day, self.directory,
                                  signing_key=self.signing_key or None, **self._io())
            except FileNotFoundError as e:
                return self._missing(context, prefix, day, allow_missing,
                                     f"cache file {expected} for {what} does not exist "
                                     "(fallback_to_latest is off)", e)
            return data, Loaded(expected, day, day)
        hit, skipped = load_latest_cache(prefix, day, self.directory,
                                         signing_key=self.signing_key or None, **self._io())
        for s in skipped:
            context.log.warning(f"skipped corrupt cache file {s.path}: {s.reason}")
        if hit is None:
            return self._missing(context, prefix, day, allow_missing,
                                 f"no cache file for {what}: {expected} is missing and there is no "
                                 f"earlier {prefix} file in {self.directory!r}", None)
        used = Loaded(hit.path, hit.date, day)
        if used.stale_days > 0:
            corrupt = any(os.path.basename(s.path) == os.path.basename(expected) for s in skipped)
            message = (f"{what}: {expected} {'is corrupt' if corrupt else 'is missing'}; using "
                       f"{hit.path} from {hit.date.isoformat()} ({used.stale_days} day(s) stale)")
            context.log.warning(message)
            if alert_stale:
                details = {"prefix": prefix, "wanted": day.isoformat(), "used": hit.path,
                           "age_days": str(used.stale_days)}
                self._alert(context, Alert(f"stale cache data for {prefix!r}"[:130], default_alias(prefix),
                                           message, self._priority(), details=details,
                                           source="dagster_cache"))
        return hit.data, used

    def _missing(
        self, context: InputContext, prefix: str, day: dt.date, allow_missing: bool, message: str,
        cause: BaseException | None,
    ) -> tuple[None, None]:
        if allow_missing:
            context.log.warning(f"{message}; loading None because input metadata has "
                                f"{ALLOW_MISSING_KEY}=True")
            return None, None
        self._alert(context, Alert(
            f"missing cache data for {prefix!r}"[:130], default_alias(prefix), message, "P2",
            details={"prefix": prefix, "wanted": day.isoformat(), "directory": self.directory},
            source="dagster_cache",
        ))
        raise CacheNotFoundError(message, prefix=prefix, directory=self.directory) from cause


def _input_metadata(used: Loaded) -> dict[str, Any]:
    return {
        "path": MetadataValue.path(used.path),
        "dagster_cache/date_used": MetadataValue.text(used.date.isoformat()),
        "dagster_cache/date_wanted": MetadataValue.text(used.wanted.isoformat()),
        "dagster_cache/stale_days": MetadataValue.int(used.stale_days),
        "dagster_cache/fallback": MetadataValue.bool(used.stale_days > 0),
    }


def _wants_dict(context: InputContext, keys: list[str]) -> bool:
    """Several keys, an explicit request, a dict annotation, or a range partition mapping
    (so a one-day range still gives a dict: dagster issue 28942)."""
    if len(keys) > 1:
        return True
    explicit = (context.definition_metadata or {}).get(AS_DICT_KEY)
    if explicit is not None:
        return bool(explicit)
    try:
        typing_type = context.dagster_type.typing_type
    except dg.DagsterInvariantViolationError:  # contexts built for tests may have no type
        typing_type = None
    if typing_type is dict or getattr(typing_type, "__origin__", None) in (dict, Mapping):
        return True
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
    try:
        step = context.step_context
    except Exception:  # noqa: BLE001 - built by build_input_context: nothing to inspect
        return None, None
    assets_def = step.job_def.asset_layer.get_assets_def_for_node(step.node_handle)
    if assets_def is None:
        return None, None
    return assets_def.get_partition_mapping_for_dep(context.asset_key), assets_def.partitions_def is not None
