"""Dagster integration for cache_utils: an IO manager, resources, alerts, refresh schedule and sensor,
checks and freshness, external caches, and a Component declaring all of it in YAML."""

from .checks import (
    CacheChecks,
    build_cache_checks,
    build_cache_file_checks,
    build_cache_freshness_checks,
    build_cache_retention_checks,
    build_inputs_current_checks,
    build_stale_inputs_sensor,
)
from .component import DailyCacheComponent
from .errors import CachePartitionError
from .external import build_cache_observation_sensor, external_cache_asset
from .freshness import cache_freshness_policy
from .io_manager import DatedCacheIOManager
from .metadata import cache_data_version
from .ownership import CacheOwnerError
from .resources import AlertResource, InMemoryCacheResource, OpsGenieResource
from .schedules import build_cache_refresh_schedule
from .sensors import (
    build_cache_refresh_sensor,
    make_alert_on_run_failure_sensor,
    make_opsgenie_on_run_failure_sensor,
)

__all__ = [
    "AlertResource",
    "CacheChecks",
    "CacheOwnerError",
    "CachePartitionError",
    "DailyCacheComponent",
    "DatedCacheIOManager",
    "InMemoryCacheResource",
    "OpsGenieResource",
    "build_cache_checks",
    "build_cache_file_checks",
    "build_cache_freshness_checks",
    "build_cache_observation_sensor",
    "build_cache_refresh_schedule",
    "build_cache_refresh_sensor",
    "build_inputs_current_checks",
    "build_stale_inputs_sensor",
    "build_cache_retention_checks",
    "cache_data_version",
    "cache_freshness_policy",
    "external_cache_asset",
    "make_alert_on_run_failure_sensor",
    "make_opsgenie_on_run_failure_sensor",
]
