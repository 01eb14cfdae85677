"""Dagster integration for cache_utils: an IO manager, resources, alerts, refresh schedule and sensor."""

from .errors import CachePartitionError
from .io_manager import DatedCacheIOManager
from .resources import InMemoryCacheResource, OpsGenieResource
from .schedules import build_cache_refresh_schedule
from .sensors import build_cache_refresh_sensor, make_opsgenie_on_run_failure_sensor

__all__ = [
    "CachePartitionError",
    "DatedCacheIOManager",
    "InMemoryCacheResource",
    "OpsGenieResource",
    "build_cache_refresh_schedule",
    "build_cache_refresh_sensor",
    "make_opsgenie_on_run_failure_sensor",
]
