"""Alerts on missing, stale or corrupt caches: a small backend interface, OpsGenie first.

Sending never breaks or stalls the data path: each call runs on a daemon thread and the
caller waits at most `timeout` seconds; failures are logged once, with secrets redacted.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger("cache_utils.alerts")

Priority = Literal["P1", "P2", "P3", "P4", "P5"]
PRIORITIES: tuple[str, ...] = ("P1", "P2", "P3", "P4", "P5")
OPSGENIE_US = "https://api.opsgenie.com"
OPSGENIE_EU = "https://api.eu.opsgenie.com"
API_KEY_ENV = "OPSGENIE_API_KEY"
API_URL_ENV = "OPSGENIE_API_URL"
TIMEOUT_ENV = "CACHE_UTILS_ALERT_TIMEOUT"
DEFAULT_TIMEOUT = 5.0

# OpsGenie's documented field limits.
MAX_MESSAGE, MAX_ALIAS, MAX_TAGS, MAX_TAG = 130, 512, 20, 50


@dataclass(frozen=True)
class Alert:
    """One alert: `alias` de-duplicates it (one open alert per alias)."""

    message: str
    alias: str
    description: str = ""
    priority: Priority = "P3"
    tags: Sequence[str] = ()
    details: Mapping[str, str] = field(default_factory=dict)
    source: str = "cache_utils"

    def __post_init__(self) -> None:
        if self.priority not in PRIORITIES:
            raise ValueError(f"invalid alert priority {self.priority!r}: use one of {PRIORITIES}")
        if not self.alias:
            raise ValueError("alert alias must not be empty")


class Alerter(ABC):
    """An alerting backend. Subclasses send; `send_alert`/`close_alert` bound the time."""

    timeout: float = DEFAULT_TIMEOUT

    @abstractmethod
    def create(self, alert: Alert) -> None:
        """Open (or bump) the alert for `alert.alias`."""

    @abstractmethod
    def close(self, alias: str, note: str = "") -> None:
        """Close the open alert for `alias`, if any."""

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in a log line or an exception message."""
        return ()


class OpsGenieAlerter(Alerter):
    """Alerts through the official opsgenie-sdk, with bounded timeouts and no SDK retries."""

    def __init__(
        self,
        api_key: str,
        api_url: str = OPSGENIE_US,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 0,
        team: str | None = None,
        tags: Sequence[str] = (),
        priority: Priority = "P3",
    ) -> None:
        if not api_key or not isinstance(api_key, str):
            raise ValueError("OpsGenie api_key must be a non-empty string")
        if priority not in PRIORITIES:
            raise ValueError(f"invalid alert priority {priority!r}: use one of {PRIORITIES}")
        self._api_key = api_key
        self.api_url = (api_url or OPSGENIE_US).rstrip("/")
        self.timeout = _check_timeout(timeout)
        self.retries = retries
        self.team = team
        self.tags = tuple(tags)
        self.priority = priority
        self._api: Any = None
        self._api_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpsGenieAlerter(api_url={self.api_url!r}, api_key='***', timeout={self.timeout})"

    def secrets(self) -> tuple[str, ...]:
        return (self._api_key,)

    def _alert_api(self) -> Any:
        with self._api_lock:
            if self._api is None:
                import opsgenie_sdk  # ~1 s to import: only when an alert is really sent

                conf = opsgenie_sdk.configuration.Configuration()
                conf.host = self.api_url
                conf.api_key["Authorization"] = self._api_key
                # The SDK's defaults retry for up to a minute with random backoff: we bound it.
                conf.retry_enabled = self.retries > 0
                conf.retry_count = self.retries
                conf.retry_delay = 1
                conf.retry_max_delay = max(1, int(self.timeout))
                self._api = opsgenie_sdk.AlertApi(api_client=opsgenie_sdk.ApiClient(conf))
            return self._api

    def _request_timeout(self) -> tuple[int, int]:
        # The SDK ignores floats: only an int or a (connect, read) tuple of ints works.
        seconds = max(1, math.ceil(self.timeout))
        return (seconds, seconds)

    def create(self, alert: Alert) -> None:
        import opsgenie_sdk

        responders = [{"name": self.team, "type": "team"}] if self.team else None
        tags = [t[:MAX_TAG] for t in (*self.tags, *alert.tags)][:MAX_TAGS]
        payload = opsgenie_sdk.CreateAlertPayload(
            message=alert.message[:MAX_MESSAGE],
            alias=alert.alias[:MAX_ALIAS],
            description=alert.description,
            priority=alert.priority or self.priority,
            tags=tags,
            details={str(k): str(v) for k, v in alert.details.items()},
            source=alert.source,
            responders=responders,
        )
        self._alert_api().create_alert(
            create_alert_payload=payload, _request_timeout=self._request_timeout()
        )

    def close(self, alias: str, note: str = "") -> None:
        import opsgenie_sdk

        payload = opsgenie_sdk.CloseAlertPayload(note=note or None, source="cache_utils")
        self._alert_api().close_alert(
            identifier=alias[:MAX_ALIAS],
            identifier_type="alias",
            close_alert_payload=payload,
            _request_timeout=self._request_timeout(),
        )


class WebhookAlerter(Alerter):
    """POSTs `{"action": "create"|"close", ...}` as JSON to a URL: a generic second backend."""

    def __init__(
        self, url: str, *, timeout: float = DEFAULT_TIMEOUT, headers: Mapping[str, str] | None = None
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http(s), got {url!r}")
        self.url = url
        self.timeout = _check_timeout(timeout)
        self._headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"WebhookAlerter(url={self.url!r}, timeout={self.timeout})"

    def secrets(self) -> tuple[str, ...]:
        return tuple(self._headers.values())

    def _post(self, body: dict[str, Any]) -> None:
        import urllib.request

        request = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **self._headers},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            response.read()

    def create(self, alert: Alert) -> None:
        self._post(
            {
                "action": "create",
                "message": alert.message,
                "alias": alert.alias,
                "description": alert.description,
                "priority": alert.priority,
                "tags": list(alert.tags),
                "details": dict(alert.details),
                "source": alert.source,
            }
        )

    def close(self, alias: str, note: str = "") -> None:
        self._post({"action": "close", "alias": alias, "note": note})


def _check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"alert timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


# --- configuration -------------------------------------------------------------------------

_configured: Alerter | None = None
_from_env: tuple[tuple[str, str, str], Alerter] | None = None
_state_lock = threading.Lock()
# Aliases this process may have left open; a successful load closes them (and checks once).
_open_aliases: set[str] = set()
_checked_aliases: set[str] = set()


def configure_alerts(
    alerter: Alerter | None = None,
    *,
    api_key: str | None = None,
    api_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Alerter | None:
    """Set the process-wide alerter: a backend, or OpsGenie from `api_key`; no arguments resets
    to the environment (`OPSGENIE_API_KEY`, `OPSGENIE_API_URL`)."""
    global _configured
    if alerter is None and api_key is not None:
        alerter = OpsGenieAlerter(api_key, api_url or OPSGENIE_US, timeout=timeout)
    with _state_lock:
        _configured = alerter
        _open_aliases.clear()
        _checked_aliases.clear()
    return alerter


def get_alerter() -> Alerter | None:
    """The configured alerter, else OpsGenie from the environment, else None (log only)."""
    global _from_env
    if _configured is not None:
        return _configured
    key = os.environ.get(API_KEY_ENV, "")
    if not key:
        return None
    url = os.environ.get(API_URL_ENV, "") or OPSGENIE_US
    timeout_text = os.environ.get(TIMEOUT_ENV, "")
    signature = (key, url, timeout_text)
    with _state_lock:
        if _from_env is None or _from_env[0] != signature:
            try:
                timeout = float(timeout_text) if timeout_text else DEFAULT_TIMEOUT
            except ValueError:
                log.warning("ignoring %s=%r: not a number", TIMEOUT_ENV, timeout_text)
                timeout = DEFAULT_TIMEOUT
            _from_env = (signature, OpsGenieAlerter(key, url, timeout=timeout))
        return _from_env[1]


def redact(text: str, secrets: Sequence[str]) -> str:
    """Replace every secret in `text` with ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _run_bounded(alerter: Alerter, what: str, fn: Any, *args: Any) -> bool:
    """Run fn(*args) on a daemon thread; wait at most alerter.timeout. True when it succeeded."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            fn(*args)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - reported below, never raised to the caller
            outcome.append(e)

    thread = threading.Thread(target=target, name=f"cache-utils-{what}", daemon=True)
    thread.start()
    thread.join(alerter.timeout)
    if not outcome:
        log.warning(
            "%s via %s did not finish within %.1f s; continuing without it",
            what, type(alerter).__name__, alerter.timeout,
        )
        return False
    error = outcome[0]
    last_attempt = getattr(error, "last_attempt", None)  # tenacity.RetryError wraps the cause
    if last_attempt is not None and last_attempt.failed:
        error = last_attempt.exception()
    if error is not None:
        detail = redact(f"{type(error).__name__}: {error}", alerter.secrets())
        log.warning("%s via %s failed: %s", what, type(alerter).__name__, detail[:500])
        return False
    return True


def send_alert(alert: Alert, alerter: Alerter | None = None) -> bool:
    """Send (or, without a backend, only log) an alert; never raises, waits at most the timeout."""
    alerter = alerter or get_alerter()
    log.warning("ALERT [%s] %s%s", alert.alias, alert.message,
                f": {alert.description}" if alert.description else "")
    if alerter is None:
        return False
    with _state_lock:
        _open_aliases.add(alert.alias)
    return _run_bounded(alerter, f"alert {alert.alias!r}", alerter.create, alert)


def resolve_alert(alias: str, note: str = "", alerter: Alerter | None = None) -> bool:
    """Close the alert for `alias` if this process may have left it open, or has not checked."""
    alerter = alerter or get_alerter()
    if alerter is None:
        return False
    with _state_lock:
        if alias not in _open_aliases and alias in _checked_aliases:
            return False
        _open_aliases.discard(alias)
        _checked_aliases.add(alias)
    return _run_bounded(alerter, f"close {alias!r}", alerter.close, alias, note)
