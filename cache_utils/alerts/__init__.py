"""Alerts on missing, stale or corrupt caches: a small backend interface, OpsGenie and its
successor Jira Service Management (JSM) Operations first.

Sending never breaks or stalls the data path: each call runs on a daemon thread and the
caller waits at most `timeout` seconds; failures are logged once, with secrets redacted in
every form they can take in a message (raw, stripped, repr, JSON, percent-encoded). A bad
alert setting in the environment is reported once as a warning and never stops loading.

One module per job, all re-exported here:

- `model`: `Alert`, priorities and field limits, `cache_alert`, the `Alerter` interface and
  `NullAlerter` (alerting off);
- `opsgenie` and `webhook`: the backends (`OpsGenieAlerter`, `JsmOpsAlerter`, `WebhookAlerter`);
- `transport`: bounded HTTP answers and same-origin redirects, below the backends;
- `redaction`: secrets replaced by `***` in every form;
- `validation`: checks and limits of keys, URLs, timeouts and retries;
- `settings`: the environment (`EnvAlertSettings.from_env`), `configure_alerts`, `get_alerter`,
  the dedupe window;
- `state`: the process's bookkeeping (open aliases, creates sent and held back);
- `sending`: `send_alert`, `resolve_alert`, `send_test_alert`: bounded, de-duplicated.
"""

from __future__ import annotations

from .model import (
    DEFAULT_PRIORITY,
    MAX_ALIAS,
    MAX_MESSAGE,
    MAX_TAG,
    MAX_TAGS,
    MISSING_DATA_PRIORITY,
    PRIORITIES,
    Alert,
    Alerter,
    NullAlerter,
    Priority,
    cache_alert,
    default_alias,
)
from .opsgenie import (
    ALERTER_CLASSES,
    BACKENDS,
    DEFAULT_URLS,
    JSM_OPS_URL,
    OPSGENIE_US,
    Backend,
    JsmOpsAlerter,
    OpsGenieAlerter,
    make_alerter,
    service_name,
)
from .redaction import redact, secret_forms
from .sending import TEST_ALIAS, resolve_alert, send_alert, send_test_alert, suppressed_alerts
from .settings import (
    API_KEY_ENV,
    API_URL_ENV,
    DEDUPE_WINDOW_ENV,
    DEFAULT_DEDUPE_WINDOW,
    JSM_API_KEY_ENV,
    JSM_API_URL_ENV,
    MAX_DEDUPE_WINDOW,
    TIMEOUT_ENV,
    EnvAlertSettings,
    alerter_from_env,
    configure_alerts,
    dedupe_window,
    env_alert_settings,
    get_alerter,
    timeout_setting,
)
from .state import log
from .transport import MAX_ANSWER, AnswerTooLongError
from .validation import DEFAULT_TIMEOUT, MAX_RETRIES, MAX_TIMEOUT
from .webhook import WebhookAlerter

__all__ = [
    "ALERTER_CLASSES",
    "API_KEY_ENV",
    "API_URL_ENV",
    "BACKENDS",
    "DEDUPE_WINDOW_ENV",
    "DEFAULT_DEDUPE_WINDOW",
    "DEFAULT_PRIORITY",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URLS",
    "JSM_API_KEY_ENV",
    "JSM_API_URL_ENV",
    "JSM_OPS_URL",
    "MAX_ALIAS",
    "MAX_ANSWER",
    "MAX_DEDUPE_WINDOW",
    "MAX_MESSAGE",
    "MAX_RETRIES",
    "MAX_TAG",
    "MAX_TAGS",
    "MAX_TIMEOUT",
    "MISSING_DATA_PRIORITY",
    "OPSGENIE_US",
    "PRIORITIES",
    "TEST_ALIAS",
    "TIMEOUT_ENV",
    "Alert",
    "Alerter",
    "AnswerTooLongError",
    "Backend",
    "EnvAlertSettings",
    "JsmOpsAlerter",
    "NullAlerter",
    "OpsGenieAlerter",
    "Priority",
    "WebhookAlerter",
    "alerter_from_env",
    "cache_alert",
    "configure_alerts",
    "dedupe_window",
    "default_alias",
    "env_alert_settings",
    "get_alerter",
    "log",
    "make_alerter",
    "redact",
    "resolve_alert",
    "secret_forms",
    "send_alert",
    "send_test_alert",
    "service_name",
    "suppressed_alerts",
    "timeout_setting",
]
