"""Process-wide alert configuration: the environment variables (`EnvAlertSettings.from_env`,
`alerter_from_env`), `configure_alerts` and `get_alerter`, and the dedupe window.

A bad setting in the environment is reported once as a warning and never stops loading; a bad
setting in code is a TypeError or ValueError when it is given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .._numbers import is_number
from .model import Alerter
from .opsgenie import Backend, make_alerter
from .redaction import redact
from .state import STATE
from .validation import DEFAULT_TIMEOUT, MAX_TIMEOUT, check_timeout

log = logging.getLogger("cache_utils.alerts")

API_KEY_ENV = "OPSGENIE_API_KEY"
API_URL_ENV = "OPSGENIE_API_URL"
JSM_API_KEY_ENV = "JSM_OPS_API_KEY"
JSM_API_URL_ENV = "JSM_OPS_API_URL"
TIMEOUT_ENV = "CACHE_UTILS_ALERT_TIMEOUT"
DEDUPE_WINDOW_ENV = "CACHE_UTILS_ALERT_DEDUPE_WINDOW"
DEFAULT_DEDUPE_WINDOW = 900.0  # seconds: one create per alias and title per 15 minutes
MAX_DEDUPE_WINDOW = 7 * 86400.0
_ENV_NAMES = (JSM_API_KEY_ENV, JSM_API_URL_ENV, API_KEY_ENV, API_URL_ENV, TIMEOUT_ENV)


def timeout_setting(text: str) -> float:
    """The alert timeout a `CACHE_UTILS_ALERT_TIMEOUT` value gives: the default when empty, or
    (with a warning) when it is not a number above 0 and at most 300.

    Args:
        text: The variable's value.
    """
    if not text.strip():
        return DEFAULT_TIMEOUT
    try:
        return check_timeout(float(text))
    except ValueError:
        log.warning("ignoring %s=%r: not a number of seconds above 0 and at most %g; alerts wait "
                    "%g s", TIMEOUT_ENV, text[:50], MAX_TIMEOUT, DEFAULT_TIMEOUT)
        return DEFAULT_TIMEOUT


@dataclass(frozen=True)
class EnvAlertSettings:
    """The alert backend the environment selects: which variable holds the key (its value is
    never kept here), the API URL ("" for the backend's default) and the timeout.

    Attributes:
        backend: "opsgenie" or "jsm".
        api_key_env: Name of the environment variable holding the key.
        api_url: API host; "" means the backend's default.
        timeout: Seconds to wait per call.
    """

    backend: Backend
    api_key_env: str
    api_url: str
    timeout: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EnvAlertSettings | None:
        """The backend the environment selects, or None when no key is set. Never raises.

        `JSM_OPS_API_KEY` set: JSM Operations at `JSM_OPS_API_URL`; it wins over `OPSGENIE_API_KEY`
        (OpsGenie at `OPSGENIE_API_URL`). `CACHE_UTILS_ALERT_TIMEOUT` sets the wait; a malformed one
        is logged as a warning and the default (5 s) is used.

        Args:
            environ: The variables to read; None means `os.environ`.
        """
        env = os.environ if environ is None else environ
        backend: Backend
        if env.get(JSM_API_KEY_ENV, ""):
            backend, key_env, url_env = "jsm", JSM_API_KEY_ENV, JSM_API_URL_ENV
            if env.get(API_KEY_ENV, ""):
                log.info("%s is set: alerts go to JSM Operations and %s is not used", key_env, API_KEY_ENV)
        elif env.get(API_KEY_ENV, ""):
            backend, key_env, url_env = "opsgenie", API_KEY_ENV, API_URL_ENV
        else:
            return None
        return cls(backend, key_env, env.get(url_env, "").strip(), timeout_setting(env.get(TIMEOUT_ENV, "")))

    @property
    def api_url_env(self) -> str:
        """Name of the environment variable holding the API URL."""
        return JSM_API_URL_ENV if self.backend == "jsm" else API_URL_ENV


def env_alert_settings(environ: Mapping[str, str] | None = None) -> EnvAlertSettings | None:
    """`EnvAlertSettings.from_env` (kept for compatibility): the backend the environment selects,
    or None when no key is set. Never raises.

    Args:
        environ: The variables to read; None means `os.environ`.
    """
    return EnvAlertSettings.from_env(environ)


def alerter_from_env(environ: Mapping[str, str] | None = None) -> Alerter | None:
    """The backend `EnvAlertSettings.from_env` selects, or None (alerts are only logged). Never raises.

    Keys are stripped. A malformed key or URL is logged as a warning (the key never shown) and
    alerts are only logged, since a guessed host could receive the key.

    Args:
        environ: The variables to read; None means `os.environ`.
    """
    env = os.environ if environ is None else environ
    settings = EnvAlertSettings.from_env(env)
    if settings is None:
        return None
    try:
        return make_alerter(settings.backend, env[settings.api_key_env], settings.api_url or None,
                            timeout=settings.timeout)
    except ValueError as e:
        where = (settings.api_key_env if "api_key" in str(e)
                 else f"{settings.api_key_env} and {settings.api_url_env}")
        detail = redact(str(e), (env.get(JSM_API_KEY_ENV, ""), env.get(API_KEY_ENV, "")))
        log.warning("ignoring %s: %s; alerts are only logged", where, detail)
        return None


def get_alerter() -> Alerter | None:
    """The configured alerter, else the one the environment selects (`alerter_from_env`),
    else None (log only). Never raises; a bad environment setting is logged once."""
    if STATE.configured is not None:
        return STATE.configured
    values = tuple(os.environ.get(name, "") for name in _ENV_NAMES)
    if not (values[0] or values[2]):  # neither JSM_OPS_API_KEY nor OPSGENIE_API_KEY
        return None
    with STATE.lock:
        if STATE.from_env is None or STATE.from_env[0] != values:
            STATE.from_env = (values, alerter_from_env(dict(zip(_ENV_NAMES, values, strict=True))))
        return STATE.from_env[1]


def check_dedupe_window(seconds: object) -> float:
    """`seconds` as a dedupe window from 0 to 7 days."""
    if not is_number(seconds):
        raise TypeError(f"alert dedupe_window must be a number of seconds, got {type(seconds).__name__}: "
                        f"{seconds!r}")
    if not 0 <= seconds <= MAX_DEDUPE_WINDOW:  # NaN fails both
        raise ValueError(f"alert dedupe_window must be a number of seconds from 0 to {MAX_DEDUPE_WINDOW:g} "
                         f"(7 days), got {seconds!r}")
    return float(seconds)


def dedupe_window() -> float:
    """Seconds during which `send_alert` sends one create per alias and title: the value given to
    `configure_alerts`, else `CACHE_UTILS_ALERT_DEDUPE_WINDOW`, else 900. A malformed variable is
    reported once as a warning and the default is used. 0 sends every create."""
    if STATE.dedupe_window is not None:
        return STATE.dedupe_window
    text = os.environ.get(DEDUPE_WINDOW_ENV, "")
    if not text.strip():
        return DEFAULT_DEDUPE_WINDOW
    try:
        return check_dedupe_window(float(text))
    except ValueError:
        STATE.warn_once(("dedupe", text), "ignoring %s=%r: not a number of seconds from 0 to %g; repeated "
                        "alerts are held back for %g s", DEDUPE_WINDOW_ENV, text[:50], MAX_DEDUPE_WINDOW,
                        DEFAULT_DEDUPE_WINDOW)
        return DEFAULT_DEDUPE_WINDOW


def configure_alerts(
    alerter: Alerter | None = None,
    *,
    api_key: str | None = None,
    api_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    backend: Backend = "opsgenie",
    dedupe_window: float | None = None,
) -> Alerter | None:
    """Set the process-wide alerter: a backend, or OpsGenie / JSM Operations (`backend="jsm"`)
    from `api_key`; no arguments resets to the environment (`JSM_OPS_API_KEY` or
    `OPSGENIE_API_KEY`, see `alerter_from_env`); `NullAlerter()` turns alerting off whatever the
    environment says. Raises ValueError on a bad setting.

    Every call also starts the process's alert bookkeeping afresh: open aliases, and the
    de-duplication of creates (`send_alert` sends one create per alias and title within
    `dedupe_window` seconds).

    Args:
        alerter: The backend to use; None (with no `api_key`) goes back to the environment.
        api_key: Key to build an OpsGenie / JSM Operations alerter from, when `alerter` is None.
        api_url: API host for that alerter; None means the backend's default.
        timeout: Seconds that alerter waits per call, above 0 and at most 300.
        backend: "opsgenie" or "jsm", for that alerter.
        dedupe_window: Seconds during which a repeated create (same alias and title) is not sent
            again, 0 (every create is sent) to 7 days; None means `CACHE_UTILS_ALERT_DEDUPE_WINDOW`,
            else 900 (15 minutes).

    Returns:
        The alerter now configured; None when the environment decides.
    """
    window = None if dedupe_window is None else check_dedupe_window(dedupe_window)
    if alerter is None and api_key is not None:
        alerter = make_alerter(backend, api_key, api_url, timeout=timeout)
    elif alerter is None and backend != "opsgenie":
        raise ValueError(f"configure_alerts(backend={backend!r}) needs api_key=; to choose the backend "
                         f"from the environment, set {JSM_API_KEY_ENV} (JSM) or {API_KEY_ENV}")
    STATE.reset(alerter, window)
    return alerter
