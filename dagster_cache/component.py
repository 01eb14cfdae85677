"""`DailyCacheComponent`: one YAML block (`defs.yaml`) declaring a daily cache contract.

It builds, from the package's own builders: the `DatedCacheIOManager` resource (directory, zone,
storage options, signing key read from an environment variable at run time, retention), the
file and freshness checks of the cached assets (freshness from `cb_time`), the refresh job with
its schedule and sensor, and external caches (`external_cache_asset`) with their observation
sensor. `dg list components` lists it (entry point `dagster_dg_cli.registry_modules`) and
`dg scaffold defs dagster_cache.DailyCacheComponent <name>` writes a starting `defs.yaml`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg
from pydantic import Field

from .checks import (
    build_cache_file_checks,
    build_cache_freshness_checks,
    build_cache_retention_checks,
    build_inputs_current_checks,
    build_stale_inputs_sensor,
)
from .external import build_cache_observation_sensor, external_cache_asset
from .freshness import cache_freshness_policy, superseded_freshness
from .io_manager import DatedCacheIOManager
from .schedules import build_cache_refresh_schedule
from .sensors import build_cache_refresh_sensor

__all__ = ["CachedAssetConfig", "DailyCacheComponent", "ExternalCacheConfig", "IOManagerConfig",
           "RefreshConfig"]


class IOManagerConfig(dg.Model, dg.Resolvable):
    """Where and how the cache files are stored (the `DatedCacheIOManager` fields)."""

    key: str = Field(default="cache_io_manager", description="Resource key of the IO manager.")
    directory: str = Field(default="data", description="Local directory or fsspec URL of the files.")
    timezone: str = Field(default="UTC", description="IANA zone of 'today' and of cb_time.")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec options (endpoint_url, ...) for a URL directory.")
    signing_key_env: str | None = Field(
        default=None, description="Environment variable holding the signing key, read at run time "
        "(dg.EnvVar: the key never appears in the UI or in defs.yaml).")
    signing_key_fallbacks_env: str | None = Field(
        default=None, description="Environment variable holding older keys that still verify "
        "(comma-separated; see 'Rotating the signing key'), read at run time.")
    keep_days: int | None = Field(default=None, ge=1, description="Retention: delete files dated more "
                                  "than N days before today (see DatedCacheIOManager).")
    keep_files: int | None = Field(default=None, ge=1, description="Retention by count: keep the "
                                   "newest N files of each prefix written.")
    overwrite_unowned_files: bool = Field(default=True, description="Overwrite a file that records no "
                                          "owner (written outside Dagster or by an older release).")
    fallback_to_latest: bool = Field(default=True, description="Load the newest earlier file when "
                                     "the wanted day's is missing.")


class CachedAssetConfig(dg.Model, dg.Resolvable):
    """An asset (defined in Python or by another component) whose files this contract checks."""

    key: str = Field(description="Asset key, path parts joined by '/' (e.g. 'sales/daily').")
    partitioned: bool = Field(default=False, description="Daily-partitioned (end_offset=1).")
    cache_prefix: str | None = Field(default=None, description="The asset's cache_prefix, if set.")


class ExternalCacheConfig(dg.Model, dg.Resolvable):
    """Files `<prefix>_<YYYYMMDD>.pkl.gz` written outside Dagster, shown as an asset."""

    prefix: str
    key: str | None = Field(default=None, description="Asset key; default: the prefix.")
    group_name: str | None = None
    description: str | None = None
    partitioned: bool = Field(default=False, description="One daily partition per file.")


class RefreshConfig(dg.Model, dg.Resolvable):
    """The refresh job of one cache: a schedule at cb_time and a retry sensor until the file exists."""

    prefix: str = Field(description="The cache whose file for today ends the refresh.")
    assets: list[str] = Field(description="Asset keys the refresh job materializes.")
    job_name: str | None = Field(default=None, description="Default: refresh_<prefix>.")
    schedule: bool = True
    sensor: bool = True
    retry_interval_minutes: int = Field(default=15, ge=1)


class DailyCacheScaffolder(dg.Scaffolder):
    """`dg scaffold defs dagster_cache.DailyCacheComponent <name>`: a defs.yaml to edit."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        dg.scaffold_component(request, {
            "cb_time": "06:30",
            "io_manager": {"key": "cache_io_manager", "directory": "data", "timezone": "UTC",
                           "keep_days": 60},
            "assets": [],
            "refresh": [],
            "external": [{"prefix": "my_vendor_file"}],
        })


@dg.scaffold_with(DailyCacheScaffolder)
class DailyCacheComponent(dg.Component, dg.Model, dg.Resolvable):
    """A daily cache contract: IO manager, checks and freshness, refresh, external caches.

    Example `defs.yaml`:

        type: dagster_cache.DailyCacheComponent
        attributes:
          cb_time: "06:30"
          io_manager:
            directory: data
            timezone: Europe/London
            signing_key_env: CACHE_UTILS_SIGNING_KEY
            keep_days: 60
          assets:
            - key: sales_data
              partitioned: true
          refresh:
            prefix: sales_data
            assets: [sales_data]
          external:
            - prefix: fx_rates
    """

    cb_time: str = Field(default="06:30", description="Daily time today's data is due (HH:MM).")
    io_manager: IOManagerConfig = Field(default_factory=IOManagerConfig)
    assets: list[CachedAssetConfig] = Field(default_factory=list)
    max_age_days: int = Field(default=1, ge=0, description="Oldest the newest file may be (days).")
    start_date: str | None = Field(
        default=None, description="First daily partition (ISO date) of partitioned external caches; "
        "default 30 days ago.")
    consumers: list[str] = Field(
        default_factory=list, description="Asset keys that load cached inputs: each gets an "
        "`inputs_current` check (WARN on a fallback, ERROR past error_after_days), and a sensor re-runs "
        "the upstream's file checks when one falls back.")
    error_after_days: int = Field(default=1, ge=1, description="Days an input may be older than wanted "
                                  "before `inputs_current` fails with ERROR.")
    refresh: list[RefreshConfig] = Field(default_factory=list)
    external: list[ExternalCacheConfig] = Field(default_factory=list)
    observation_sensor_name: str | None = Field(default=None, description="Default: <io key>_observation.")
    checks_sensor_name: str | None = Field(default=None, description="Default: <io key>_freshness_checks.")
    sensors_running: bool = Field(
        default=False, description="Start the component's schedules and sensors running (default stopped).")

    def _daily(self) -> dg.DailyPartitionsDefinition:
        tz = self.io_manager.timezone
        start = self.start_date or (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=30)).isoformat()
        return dg.DailyPartitionsDefinition(start_date=start, timezone=tz, end_offset=1)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        io = self.io_manager
        running = self.sensors_running
        sensor_status = dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
        schedule_status = dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
        manager = DatedCacheIOManager(
            directory=io.directory, timezone=io.timezone, storage_options=io.storage_options,
            signing_key=dg.EnvVar(io.signing_key_env) if io.signing_key_env else None,
            signing_key_fallbacks=(dg.EnvVar(io.signing_key_fallbacks_env)
                                   if io.signing_key_fallbacks_env else None),
            keep_days=io.keep_days, keep_files=io.keep_files, fallback_to_latest=io.fallback_to_latest,
            overwrite_unowned_files=io.overwrite_unowned_files,
        )
        daily = self._daily() if any(e.partitioned for e in self.external) or self.assets else None
        externals = [
            external_cache_asset(
                e.prefix, key=dg.AssetKey.from_user_string(e.key) if e.key else None,
                partitions_def=daily if e.partitioned else None, group_name=e.group_name,
                description=e.description,
            ).replace_attributes(
                freshness_policy=None if e.partitioned else cache_freshness_policy(self.cb_time, io.timezone),
            ).with_io_manager_key(io.key)
            for e in self.external
        ]
        checked: list[dg.AssetSpec] = [
            dg.AssetSpec(dg.AssetKey.from_user_string(a.key), partitions_def=daily if a.partitioned else None,
                         metadata={"cache_prefix": a.cache_prefix} if a.cache_prefix else None)
            for a in self.assets
        ]
        asset_checks: list[Any] = []
        sensors: list[dg.SensorDefinition] = []
        file_checks: list[Any] = []
        if checked or externals:
            file_checks = build_cache_file_checks(
                assets=[*checked, *externals], max_age_days=self.max_age_days, io_manager_key=io.key,
                name=f"{io.key}_file_checks")
            asset_checks += file_checks
        if checked and (io.keep_days or io.keep_files):
            asset_checks += build_cache_retention_checks(assets=checked, io_manager_key=io.key,
                                                         name=f"{io.key}_retention_checks")
        if self.consumers:
            consumers = [dg.AssetSpec(dg.AssetKey.from_user_string(k)) for k in self.consumers]
            asset_checks += build_inputs_current_checks(
                assets=consumers, error_after_days=self.error_after_days, name=f"{io.key}_inputs_current")
            if file_checks:
                sensors.append(build_stale_inputs_sensor(
                    consumers=consumers, file_checks=file_checks, name=f"{io.key}_stale_inputs",
                    default_status=sensor_status))
        # Freshness: a FreshnessPolicy on an unpartitioned asset (set here on external ones; on a
        # Python asset, freshness_policy=cache_freshness_policy(...)); per-partition checks for
        # daily-partitioned ones (see dagster_cache.freshness for why).
        partitioned = [s for s in [*checked, *externals] if s.partitions_def is not None]
        if partitioned:
            freshness = build_cache_freshness_checks(assets=partitioned, cb_time=self.cb_time,
                                                     timezone=io.timezone)
            asset_checks += freshness
            sensors.append(superseded_freshness(
                dg.build_sensor_for_freshness_checks, freshness_checks=freshness,
                name=self.checks_sensor_name or f"{io.key}_freshness_checks", default_status=sensor_status))
        if externals:
            sensors.append(build_cache_observation_sensor(
                assets=externals, directory=io.directory, storage_options=io.storage_options,
                timezone=io.timezone, name=self.observation_sensor_name or f"{io.key}_observation",
                default_status=sensor_status,
            ))
        jobs: list[Any] = []
        schedules: list[dg.ScheduleDefinition] = []
        for r in self.refresh:
            job = dg.define_asset_job(
                r.job_name or f"refresh_{r.prefix}",
                selection=[dg.AssetKey.from_user_string(k) for k in r.assets],
                description=f"Refreshes today's {r.prefix} cache.",
            )
            jobs.append(job)
            common: dict[str, Any] = {"prefix": r.prefix, "cb_time": self.cb_time, "job": job,
                                      "directory": io.directory, "timezone": io.timezone,
                                      "storage_options": io.storage_options}
            if r.schedule:
                schedules.append(build_cache_refresh_schedule(**common, default_status=schedule_status))
            if r.sensor:
                sensors.append(build_cache_refresh_sensor(
                    **common, retry_interval=r.retry_interval_minutes * 60, default_status=sensor_status))
        return dg.Definitions(
            assets=externals, asset_checks=asset_checks, jobs=jobs, schedules=schedules, sensors=sensors,
            resources={io.key: manager},
        )
