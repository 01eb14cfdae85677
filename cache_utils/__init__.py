"""Date-stamped compressed pickle caches with latest-file fallback, and an in-memory cache.

`import cache_utils` stays light: pandas, fsspec and opsgenie-sdk load only when needed.
"""

from .alerts import (
    Alert,
    Alerter,
    JsmOpsAlerter,
    OpsGenieAlerter,
    WebhookAlerter,
    configure_alerts,
    get_alerter,
    resolve_alert,
    send_alert,
    send_test_alert,
)
from .errors import CacheError, CacheNotFoundError, CorruptCacheError
from .files import (
    CacheFile,
    cache_dates,
    cache_exists,
    get_latest_cache_filename,
    list_caches,
    prune,
    read_cache,
    save_cache,
    write_cache,
)
from .loading import CacheHit, Skipped, default_alias, load_cache, load_latest_cache
from .memory import InMemoryCache
from .naming import cache_filename, parse_file_name, validate_prefix
from .serialization import GzipPickleSerializer
from .timing import DEFAULT_RETRY_INTERVAL, TimeType, at_time, next_callback, parse_cb_time

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_RETRY_INTERVAL",
    "Alert",
    "Alerter",
    "CacheError",
    "CacheFile",
    "CacheHit",
    "CacheNotFoundError",
    "CorruptCacheError",
    "GzipPickleSerializer",
    "InMemoryCache",
    "JsmOpsAlerter",
    "OpsGenieAlerter",
    "Skipped",
    "TimeType",
    "WebhookAlerter",
    "at_time",
    "cache_dates",
    "cache_exists",
    "cache_filename",
    "configure_alerts",
    "default_alias",
    "get_alerter",
    "get_latest_cache_filename",
    "list_caches",
    "load_cache",
    "load_latest_cache",
    "next_callback",
    "parse_cb_time",
    "parse_file_name",
    "prune",
    "read_cache",
    "resolve_alert",
    "save_cache",
    "send_alert",
    "send_test_alert",
    "validate_prefix",
    "write_cache",
]
