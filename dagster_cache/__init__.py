"""Dagster integration for cache_utils: an IO manager, resources, alerts, refresh schedule and sensor."""

from .alerts import make_opsgenie_on_run_failure_sensor
from .io_manager import DatedCacheIOManager
from .resources import InMemoryCacheResource, OpsGenieResource
from .schedules import build_cache_refresh_schedule
from .sensors import build_cache_refresh_sensor

__all__ = [
    "DatedCacheIOManager",
    "InMemoryCacheResource",
    "OpsGenieResource",
    "build_cache_refresh_schedule",
    "build_cache_refresh_sensor",
    "make_opsgenie_on_run_failure_sensor",
]
