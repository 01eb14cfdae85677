"""Date-stamped compressed pickle caches with latest-file fallback, and an in-memory cache.

`__all__` is the stable API (docs/api-stability.md): the original functions, `CacheDir` (one
directory as an object; the file functions are one-line wrappers over it), the errors, the records
they return and the alert backends. `cache_utils.integration` is the surface integrations such as
`dagster_cache` build on; its names stay importable from here too, as before.

`import cache_utils` stays light: pandas, fsspec and opsgenie-sdk load only when needed.
"""

from .alerts import (
    Alert,
    Alerter,
    JsmOpsAlerter,
    NullAlerter,
    OpsGenieAlerter,
    WebhookAlerter,
    configure_alerts,
    get_alerter,
    send_alert,
    send_test_alert,
)

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
    data_fingerprint,
    get_latest_cache_filename,
    list_caches,
    prune,
    read_cache,
    save_cache,
    verify_cache,
    write_cache,
)

# The integration surface (docs/api-stability.md), importable from here as before but not in __all__:
# integrations import it from `cache_utils.integration`.
from .integration import DEFAULT_ALERT_TIMEOUT as DEFAULT_ALERT_TIMEOUT
from .integration import DEFAULT_RETRY_INTERVAL as DEFAULT_RETRY_INTERVAL
from .integration import MAX_ALERT_TIMEOUT as MAX_ALERT_TIMEOUT
from .integration import AlertBackend as AlertBackend
from .integration import AlertPriority as AlertPriority
from .integration import EnvAlertSettings as EnvAlertSettings
from .integration import GzipPickleSerializer as GzipPickleSerializer
from .integration import MemoryKey as MemoryKey
from .integration import MemoryKeyPart as MemoryKeyPart
from .integration import TimeType as TimeType
from .integration import ZoneLike as ZoneLike
from .integration import at_time as at_time
from .integration import cache_alert as cache_alert
from .integration import cache_owner as cache_owner
from .integration import default_alias as default_alias
from .integration import is_url as is_url
from .integration import map_in_order as map_in_order
from .integration import normalize_key as normalize_key
from .integration import parse_cb_time as parse_cb_time
from .integration import parse_file_name as parse_file_name
from .integration import parse_retry_interval as parse_retry_interval
from .integration import read_cache_hit as read_cache_hit
from .integration import resolve_alert as resolve_alert
from .integration import resolve_zone as resolve_zone
from .integration import split_signing_keys as split_signing_keys
from .integration import validate_prefix as validate_prefix
from .loading import CacheHit, RefreshCheck, Skipped, check_refresh, load_cache, load_latest_cache
from .memory import InMemoryCache
from .naming import cache_filename
from .timing import next_callback

__version__ = "0.1.0"

# The stable API (docs/api-stability.md): the original functions, CacheDir, the errors, the main
# functions and records, the alert backends. At most about 35 names (issue 20).
__all__ = [
    "Alert",
    "Alerter",
    "CacheDir",
    "CacheError",
    "CacheFile",
    "CacheHit",
    "CacheNotFoundError",
    "CorruptCacheError",
    "InMemoryCache",
    "JsmOpsAlerter",
    "NullAlerter",
    "OpsGenieAlerter",
    "RefreshCheck",
    "Skipped",
    "WebhookAlerter",
    "cache_dates",
    "cache_exists",
    "cache_filename",
    "cache_fingerprint",
    "check_refresh",
    "configure_alerts",
    "data_fingerprint",
    "get_alerter",
    "get_latest_cache_filename",
    "list_caches",
    "load_cache",
    "load_latest_cache",
    "next_callback",
    "prune",
    "read_cache",
    "save_cache",
    "send_alert",
    "send_test_alert",
    "verify_cache",
    "write_cache",
]
