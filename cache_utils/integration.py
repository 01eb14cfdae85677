"""The names integrations of `cache_utils` build on (`dagster_cache` is one), beyond the stable API
in `cache_utils.__all__`.

`from cache_utils.integration import ...`: parsing and validating the settings an integration
passes through (zones, times, retry intervals, signing keys, prefixes, file names, memory keys),
the building blocks of the alerts `load_cache` raises (so an integration's alerts look the same and
close the same), and the one-file reads `CacheDir` also offers as methods (`cache_owner` is
`CacheDir.owner`, `read_cache_hit` is `CacheDir.read_hit`). These names are kept working across
minor releases, like `__all__`, but they are an integrator's tools, not the library's front door:
see docs/api-stability.md. Every name here is also importable from `cache_utils` itself, as before.
"""

from __future__ import annotations

from .alerts import DEFAULT_TIMEOUT as DEFAULT_ALERT_TIMEOUT
from .alerts import MAX_TIMEOUT as MAX_ALERT_TIMEOUT
from .alerts import Backend as AlertBackend
from .alerts import EnvAlertSettings, cache_alert, default_alias, resolve_alert
from .alerts import Priority as AlertPriority
from .cachedir import map_in_order
from .files import cache_owner
from .format.serializer import GzipPickleSerializer
from .format.signing import split_signing_keys
from .loading import read_cache_hit
from .memory import MemoryKey, MemoryKeyPart, normalize_key
from .naming import parse_file_name, validate_prefix
from .stores import is_url
from .timing import (
    DEFAULT_RETRY_INTERVAL,
    TimeType,
    ZoneLike,
    at_time,
    parse_cb_time,
    parse_retry_interval,
    resolve_zone,
)

__all__ = [
    "map_in_order",
    "DEFAULT_ALERT_TIMEOUT",
    "DEFAULT_RETRY_INTERVAL",
    "MAX_ALERT_TIMEOUT",
    "AlertBackend",
    "AlertPriority",
    "EnvAlertSettings",
    "GzipPickleSerializer",
    "MemoryKey",
    "MemoryKeyPart",
    "TimeType",
    "ZoneLike",
    "at_time",
    "cache_alert",
    "cache_owner",
    "default_alias",
    "is_url",
    "normalize_key",
    "parse_cb_time",
    "parse_file_name",
    "parse_retry_interval",
    "read_cache_hit",
    "resolve_alert",
    "resolve_zone",
    "split_signing_keys",
    "validate_prefix",
]
