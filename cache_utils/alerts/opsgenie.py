"""The OpsGenie and Jira Service Management Operations backends (`OpsGenieAlerter`,
`JsmOpsAlerter`), both through the official opsgenie-sdk with bounded timeouts, no SDK retries by
default and bounded answers; `OpsGenieAlerter.for_backend` builds either by name.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any, Literal, get_args

from .model import DEFAULT_PRIORITY, MAX_ALIAS, MAX_TAG, MAX_TAGS, Alert, Alerter, Priority, check_priority
from .redaction import redact
from .transport import bound_sdk_answers
from .validation import DEFAULT_TIMEOUT, check_retries, check_timeout, check_url, clean_key

Backend = Literal["opsgenie", "jsm"]
BACKENDS: tuple[str, ...] = get_args(Backend)
OPSGENIE_US = "https://api.opsgenie.com"
# JSM Operations' integration API: the OpsGenie alert API (same paths, bodies and GenieKey
# header) under this prefix. opsgenie-sdk builds URLs as host + path, so the prefix is kept.
JSM_OPS_URL = "https://api.atlassian.com/jsm/ops/integration"
DEFAULT_URLS: dict[str, str] = {"opsgenie": OPSGENIE_US, "jsm": JSM_OPS_URL}


def check_backend(backend: object) -> Backend:
    """`backend` if it is "opsgenie" or "jsm", else a ValueError naming it."""
    if backend not in BACKENDS:
        raise ValueError(f"alert backend must be one of {BACKENDS}, got {backend!r}")
    return backend  # type: ignore[return-value]  # checked just above


class OpsGenieAlerter(Alerter):
    """Alerts through the official opsgenie-sdk, with bounded timeouts and no SDK retries.

    One SDK client per alerter, built at the first alert and reused.

    Args:
        api_key: Key of the API integration (surrounding whitespace is stripped; never logged).
        api_url: API host; None means the backend's default.
        timeout: Seconds to wait per call, above 0 and at most 300.
        retries: SDK retries per call, 0 to 10.
        team: Responder team name, if any.
        tags: Tags added to every alert.
        priority: The priority of an alert that sets none, "P1" (critical) to "P5" (informational).

    Raises:
        TypeError: A setting of the wrong type.
        ValueError: A malformed key, URL, timeout, retry count or priority (the key never shown).
    """

    service = "OpsGenie"
    default_url = OPSGENIE_US

    def __init__(
        self,
        api_key: str,
        api_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 0,
        team: str | None = None,
        tags: Sequence[str] = (),
        priority: Priority = DEFAULT_PRIORITY,
    ) -> None:
        self._api_key = clean_key(api_key, self.service)
        self._secrets = (api_key, self._api_key)  # as given (maybe "key\n") and as sent
        self.priority = check_priority(priority)
        self.api_url = check_url(api_url or self.default_url, self.service)
        self.timeout = check_timeout(timeout)
        self.retries = check_retries(retries)
        self.team = team
        self.tags = tuple(tags)
        self._api: Any = None
        self._api_lock = threading.Lock()

    @classmethod
    def backend_class(cls, backend: Backend) -> type[OpsGenieAlerter]:
        """`OpsGenieAlerter` for "opsgenie", `JsmOpsAlerter` for "jsm" (its `service` names it in
        messages, its `default_url` is the host used without `api_url`).

        Args:
            backend: "opsgenie" or "jsm".

        Raises:
            ValueError: Another backend name.
        """
        return ALERTER_CLASSES[check_backend(backend)]

    @classmethod
    def for_backend(
        cls,
        backend: Backend,
        api_key: str,
        api_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 0,
        team: str | None = None,
        tags: Sequence[str] = (),
        priority: Priority = DEFAULT_PRIORITY,
    ) -> OpsGenieAlerter:
        """The alerter of `backend` (see `backend_class`); an empty `api_url` means the backend's
        default host. Raises TypeError or ValueError on a bad setting, never echoing the key.

        Args:
            backend: "opsgenie" or "jsm".
            api_key: Key of the API integration (surrounding whitespace is stripped).
            api_url: API host; None or "" means the backend's default.
            timeout: Seconds to wait per call, above 0 and at most 300.
            retries: SDK retries per call, 0 to 10.
            team: Responder team name, if any.
            tags: Tags added to every alert.
            priority: The priority of an alert that sets none, "P1" to "P5".
        """
        chosen = cls.backend_class(backend)
        try:
            return chosen(api_key, api_url or None, timeout=timeout, retries=retries, team=team, tags=tags,
                          priority=priority)
        except (TypeError, ValueError) as e:
            shown = redact(str(e), (api_key,) if isinstance(api_key, str) else ())
            raise type(e)(shown) from None  # the original message could hold the key

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_url={self.api_url!r}, api_key='***', timeout={self.timeout})"

    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def _alert_api(self) -> Any:
        with self._api_lock:
            if self._api is None:
                import opsgenie_sdk  # ~1 s to import: only when an alert is really sent

                conf = opsgenie_sdk.configuration.Configuration()
                conf.host = self.api_url  # the SDK requests host + "/v2/alerts...": a path prefix stays
                conf.api_key["Authorization"] = self._api_key
                # The SDK's defaults retry for up to a minute with random backoff: we bound it.
                conf.retry_enabled = self.retries > 0
                conf.retry_count = self.retries
                conf.retry_delay = 1
                conf.retry_max_delay = max(1, int(self.timeout))
                api_client = opsgenie_sdk.ApiClient(conf)
                bound_sdk_answers(api_client)
                self._api = opsgenie_sdk.AlertApi(api_client=api_client)
            return self._api

    def _request_timeout(self) -> tuple[int, int]:
        # The SDK ignores floats: only an int or a (connect, read) tuple of ints works.
        seconds = max(1, math.ceil(self.timeout))
        return (seconds, seconds)

    def create(self, alert: Alert) -> None:
        """Open (or bump) the alert for `alert.alias`.

        Args:
            alert: The alert to send; without a priority it gets this alerter's.
        """
        import opsgenie_sdk

        responders = [{"name": self.team, "type": "team"}] if self.team else None
        tags = [t[:MAX_TAG] for t in (*self.tags, *alert.tags)][:MAX_TAGS]
        payload = opsgenie_sdk.CreateAlertPayload(
            message=alert.message,
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
        """Close the open alert for `alias`, if any.

        Args:
            alias: Alias of the alert to close.
            note: Note added to the alert on closing.
        """
        import opsgenie_sdk

        payload = opsgenie_sdk.CloseAlertPayload(note=note or None, source="cache_utils")
        self._alert_api().close_alert(
            identifier=alias[:MAX_ALIAS],
            identifier_type="alias",
            close_alert_payload=payload,
            _request_timeout=self._request_timeout(),
        )


class JsmOpsAlerter(OpsGenieAlerter):
    """Jira Service Management Operations, Opsgenie's successor: the same alert API (bodies,
    aliases, `GenieKey` header, close by alias) under `https://api.atlassian.com/jsm/ops/integration`,
    sent through the same opsgenie-sdk with the same bounds. `api_key` is the key of an API
    integration in JSM Operations.

    Args:
        api_key: Key of the API integration (surrounding whitespace is stripped; never logged).
        api_url: API host; None means the backend's default.
        timeout: Seconds to wait per call, above 0 and at most 300.
        retries: SDK retries per call, 0 to 10.
        team: Responder team name, if any.
        tags: Tags added to every alert.
        priority: The priority of an alert that sets none, "P1" (critical) to "P5" (informational).
    """

    service = "JSM Operations"
    default_url = JSM_OPS_URL


ALERTER_CLASSES: dict[str, type[OpsGenieAlerter]] = {"opsgenie": OpsGenieAlerter, "jsm": JsmOpsAlerter}


def make_alerter(
    backend: Backend,
    api_key: str,
    api_url: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = 0,
    team: str | None = None,
    tags: Sequence[str] = (),
    priority: Priority = DEFAULT_PRIORITY,
) -> OpsGenieAlerter:
    """`OpsGenieAlerter.for_backend` (kept for compatibility): `OpsGenieAlerter` ("opsgenie") or
    `JsmOpsAlerter` ("jsm"). Raises TypeError or ValueError on a bad setting, never echoing the key.

    Args:
        backend: "opsgenie" or "jsm".
        api_key: Key of the API integration (surrounding whitespace is stripped).
        api_url: API host; None or "" means the backend's default.
        timeout: Seconds to wait per call, above 0 and at most 300.
        retries: SDK retries per call, 0 to 10.
        team: Responder team name, if any.
        tags: Tags added to every alert.
        priority: The priority of an alert that sets none, "P1" to "P5".
    """
    return OpsGenieAlerter.for_backend(backend, api_key, api_url, timeout=timeout, retries=retries, team=team,
                                       tags=tags, priority=priority)


def service_name(backend: Backend) -> str:
    """How messages name a backend: "OpsGenie" or "JSM Operations" (`OpsGenieAlerter.backend_class(
    backend).service`, kept for compatibility).

    Args:
        backend: "opsgenie" or "jsm".
    """
    return OpsGenieAlerter.backend_class(backend).service
