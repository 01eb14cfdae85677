"""Date-stamped compressed pickle caches with latest-file fallback, and an in-memory cache.

`import cache_utils` stays light: pandas, fsspec and opsgenie-sdk load only when needed.
"""

from .alerts import DEFAULT_TIMEOUT as DEFAULT_ALERT_TIMEOUT
from .alerts import MAX_TIMEOUT as MAX_ALERT_TIMEOUT
from .alerts import (
    Alert,
    Alerter,
    EnvAlertSettings,
    JsmOpsAlerter,
    NullAlerter,
    OpsGenieAlerter,
    WebhookAlerter,
    cache_alert,
    configure_alerts,
    default_alias,
    get_alerter,
    resolve_alert,
    send_alert,
    send_test_alert,
)
from .alerts import Backend as AlertBackend
from .alerts import Priority as AlertPriority

# Kept importable from here for compatibility, no longer in __all__: they are now
# `EnvAlertSettings.from_env`, `OpsGenieAlerter.for_backend` and `OpsGenieAlerter.backend_class(b).service`.
from .alerts import env_alert_settings as env_alert_settings
from .alerts import make_alerter as make_alerter
from .alerts import service_name as service_name
from .cachedir import CacheDir
from .errors import CacheError, CacheNotFoundError, CorruptCacheError
from .files import (
    CacheFile,
    cache_dates,
    cache_exists,
    cache_fingerprint,
    cache_owner,
    data_fingerprint,
    get_latest_cache_filename,
    list_caches,
    prune,
    read_cache,
    save_cache,
    verify_cache,
    write_cache,
)
from .loading import (
    CacheHit,
    RefreshCheck,
    Skipped,
    check_refresh,
    load_cache,
    load_latest_cache,
    read_cache_hit,
)
from .memory import InMemoryCache, MemoryKey, MemoryKeyPart, normalize_key
from .naming import cache_filename, parse_file_name, validate_prefix
from .serialization import GzipPickleSerializer, split_signing_keys
from .stores import is_url
from .timing import (
    DEFAULT_RETRY_INTERVAL,
    TimeType,
    ZoneLike,
    at_time,
    next_callback,
    parse_cb_time,
    parse_retry_interval,
    resolve_zone,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ALERT_TIMEOUT",
    "DEFAULT_RETRY_INTERVAL",
    "MAX_ALERT_TIMEOUT",
    "Alert",
    "AlertBackend",
    "AlertPriority",
    "Alerter",
    "CacheDir",
    "CacheError",
    "CacheFile",
    "CacheHit",
    "CacheNotFoundError",
    "CorruptCacheError",
    "EnvAlertSettings",
    "GzipPickleSerializer",
    "InMemoryCache",
    "JsmOpsAlerter",
    "MemoryKey",
    "MemoryKeyPart",
    "NullAlerter",
    "OpsGenieAlerter",
    "RefreshCheck",
    "Skipped",
    "TimeType",
    "WebhookAlerter",
    "ZoneLike",
    "at_time",
    "cache_alert",
    "cache_dates",
    "cache_exists",
    "cache_fingerprint",
    "cache_owner",
    "cache_filename",
    "check_refresh",
    "configure_alerts",
    "data_fingerprint",
    "default_alias",
    "get_alerter",
    "get_latest_cache_filename",
    "is_url",
    "list_caches",
    "load_cache",
    "load_latest_cache",
    "next_callback",
    "normalize_key",
    "parse_cb_time",
    "parse_file_name",
    "parse_retry_interval",
    "prune",
    "read_cache",
    "read_cache_hit",
    "resolve_alert",
    "resolve_zone",
    "save_cache",
    "send_alert",
    "send_test_alert",
    "split_signing_keys",
    "validate_prefix",
    "verify_cache",
    "write_cache",
]
