"""Dagster resources: the process-wide in-memory cache, and alerting through OpsGenie / JSM Operations
(`AlertResource`, also known by its first name `OpsGenieResource`)."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

from dagster import ConfigurableResource, EnvVar
from pydantic import Field, PrivateAttr

from cache_utils import Alert, InMemoryCache, NullAlerter, OpsGenieAlerter, send_alert
from cache_utils.integration import (
    DEFAULT_ALERT_TIMEOUT,
    MAX_ALERT_TIMEOUT,
    AlertBackend,
    AlertPriority,
    EnvAlertSettings,
    MemoryKey,
    MemoryKeyPart,
    normalize_key,
    resolve_alert,
)

log = logging.getLogger("dagster_cache")

class InMemoryCacheResource(ConfigurableResource):
    """`cache_utils.InMemoryCache` for ops, assets, sensors and schedules.

    The data lives in the process, not on this object (Dagster copies resources per run):
    steps of one in-process run share it, and so do sensor/schedule ticks served by one
    long-lived code server; the multiprocess executor runs each step in its own process,
    so its steps do not share it.
    """

    namespace: str | None = Field(
        default=None,
        description="Optional first key part added to every key, so several users of the "
        "process-wide cache cannot collide. None or empty: keys are used as given.",
    )

    def _key(self, prefix_keys: MemoryKeyPart, *keys: Hashable) -> MemoryKey:
        key = normalize_key(prefix_keys, keys)
        return (self.namespace, *key) if self.namespace else key

    def get(self, prefix_keys: MemoryKeyPart, *keys: Hashable, default_copy: bool = True) -> Any:
        """The value under the key (a copy by default), or None.

        Args:
            prefix_keys: First key part, or a list/tuple of parts.
            *keys: Further key parts.
            default_copy: Return a copy (True) or the stored object itself (False).
        """
        return InMemoryCache.get(self._key(prefix_keys, *keys), default_copy=default_copy)

    def get_many(
        self, prefix_keys: MemoryKeyPart, list_or_dict: Iterable[Hashable] | dict[Hashable, Any],
        default_copy: bool = True,
    ) -> dict[Hashable, Any]:
        """Several values under one prefix, as `InMemoryCache.get_many`.

        Args:
            prefix_keys: First key part, or a list/tuple of parts.
            list_or_dict: Last key parts to look up: an iterable, or a dict of defaults filled in place.
            default_copy: Return copies (True) or the stored objects themselves (False).
        """
        return InMemoryCache.get_many(self._key(prefix_keys), list_or_dict, default_copy)

    def get_state(self, prefix_keys: MemoryKeyPart, autogen_key: Hashable) -> Any:
        """The object stored by `put_state` itself (shared, not copied).

        Args:
            prefix_keys: First key part, or a list/tuple of parts.
            autogen_key: The key `put_state` returned.
        """
        return InMemoryCache.get_state(self._key(prefix_keys), autogen_key)

    def put(self, data: Any, prefix_keys: MemoryKeyPart, *keys: Hashable) -> None:
        """Store a copy of `data` under the key.

        Args:
            data: The value to store (copied).
            prefix_keys: First key part, or a list/tuple of parts.
            *keys: Further key parts.
        """
        InMemoryCache.put(data, self._key(prefix_keys, *keys))

    def put_many(self, data_dict: Mapping[Hashable, Any], prefix_keys: MemoryKeyPart) -> None:
        """Store each item under `prefix_keys + (key,)`.

        Args:
            data_dict: {last key part: value}; each value is copied.
            prefix_keys: First key part, or a list/tuple of parts.
        """
        InMemoryCache.put_many(data_dict, self._key(prefix_keys))

    def put_state(
        self, state: Any, prefix_keys: MemoryKeyPart, autogen_key: Hashable | None = None
    ) -> Hashable:
        """Store `state` itself and return its key.

        Args:
            state: The object to store as is, shared by every caller.
            prefix_keys: First key part, or a list/tuple of parts.
            autogen_key: Last key part; None generates a unique one.
        """
        return InMemoryCache.put_state(state, self._key(prefix_keys), autogen_key)

    def delete(self, prefix_keys: MemoryKeyPart, *keys: Hashable) -> bool:
        """Remove one entry; True if it existed.

        Args:
            prefix_keys: First key part, or a list/tuple of parts.
            *keys: Further key parts.
        """
        return InMemoryCache.delete(self._key(prefix_keys, *keys))

    def clear(self, prefix_keys: MemoryKeyPart | None = None, *keys: Hashable) -> int:
        """Remove everything under a key prefix (the whole namespace, or everything, when none).

        Args:
            prefix_keys: First key part(s); None means the whole namespace (or everything).
            *keys: Further key parts.
        """
        if prefix_keys is None:
            return InMemoryCache.clear(self.namespace) if self.namespace else InMemoryCache.clear()
        return InMemoryCache.clear(self._key(prefix_keys, *keys))

    # Not named `keys`: Dagster calls dict(resource), which would treat a `keys` method as a mapping.
    def list_keys(self, prefix_keys: MemoryKeyPart | None = None, *keys: Hashable) -> list[MemoryKey]:
        """`InMemoryCache.keys`: every full key (namespace included) under a key prefix.

        Args:
            prefix_keys: First key part(s); None means the whole namespace (or everything).
            *keys: Further key parts.
        """
        if prefix_keys is None:
            return InMemoryCache.keys(self.namespace) if self.namespace else InMemoryCache.keys()
        return InMemoryCache.keys(self._key(prefix_keys, *keys))


class AlertResource(ConfigurableResource):
    """OpsGenie or Jira Service Management Operations alerts through the real opsgenie-sdk
    (via `cache_utils.OpsGenieAlerter` / `cache_utils.JsmOpsAlerter`). `OpsGenieResource` is the
    same class under its first name.

    `backend="jsm"` sends to JSM Operations (Opsgenie's successor: the same alert API under
    https://api.atlassian.com/jsm/ops/integration). With an empty `api_key` alerting is off:
    alerts are only logged. Give the key as `EnvVar(...)` so Dagster shows the variable's name,
    never its value. `from_env()` builds one from the same variables as the library.

    One alerter (and so one SDK client) per resource instance, built at the first alert: Dagster
    builds the instance once per run (and per sensor tick), so the steps of a run share it.
    """

    backend: AlertBackend = Field(
        default="opsgenie",
        description="Where alerts go: 'opsgenie' (Opsgenie, whose API ends on 5 April 2027) or 'jsm' "
        "(Jira Service Management Operations, key of a JSM API integration). The alert bodies, "
        "aliases and closing are the same on both.",
    )
    api_key: str = Field(
        default="",
        repr=False,
        description="API integration key (leading/trailing whitespace is ignored). Pass "
        "EnvVar('OPSGENIE_API_KEY') or EnvVar('JSM_OPS_API_KEY'): the UI then shows the variable "
        "name only. Empty disables alerting (alerts are only logged).",
    )
    api_url: str = Field(
        default="",
        description="API host. Empty: the backend's default, https://api.opsgenie.com (opsgenie) or "
        "https://api.atlassian.com/jsm/ops/integration (jsm). Opsgenie EU: "
        "https://api.eu.opsgenie.com; or a proxy URL.",
    )
    priority: AlertPriority = Field(
        default="P3", description="Default alert priority, P1 (critical) to P5 (informational)."
    )
    tags: list[str] = Field(default_factory=list, description="Tags added to every alert.")
    team: str | None = Field(default=None, description="Responder team name, if any.")
    timeout: float = Field(
        default=DEFAULT_ALERT_TIMEOUT,
        gt=0,
        le=MAX_ALERT_TIMEOUT,
        description=f"Seconds to wait for the alert API per call (above 0, at most {MAX_ALERT_TIMEOUT:g}); "
        "a slow or down service never blocks or fails the run for longer than this.",
    )

    # Built by `alerter()` on first use; private, so neither config nor part of dict(resource).
    _alerter: OpsGenieAlerter | NullAlerter | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, **fields: Any) -> AlertResource:
        """A resource chosen by the same variables as `cache_utils`: `JSM_OPS_API_KEY` set gives
        backend "jsm" (URL from `JSM_OPS_API_URL`), else `OPSGENIE_API_KEY` gives "opsgenie" (URL
        from `OPSGENIE_API_URL`), else alerting off. The key is an `EnvVar`, so the UI shows only
        the variable's name; a malformed `CACHE_UTILS_ALERT_TIMEOUT` is logged and the default
        used. Other fields (priority, tags, team, ...) are passed through.

        Args:
            **fields: Other resource fields; they override what the environment gives.
        """
        settings = EnvAlertSettings.from_env()
        if settings is None:
            return cls(**{"api_key": "", **fields})
        return cls(**{
            "backend": settings.backend, "api_key": EnvVar(settings.api_key_env),
            "api_url": settings.api_url, "timeout": settings.timeout, **fields,
        })

    @property
    def enabled(self) -> bool:
        """Whether an API key is configured."""
        return bool(self.api_key.strip())

    @property
    def service(self) -> str:
        """'OpsGenie' or 'JSM Operations', for messages."""
        return OpsGenieAlerter.backend_class(self.backend).service

    def alerter(self) -> OpsGenieAlerter | NullAlerter:
        """The library alerter for this configuration, built once per resource instance; a
        `cache_utils.NullAlerter` when alerting is off. Never raises: a malformed key or URL is
        logged once as a warning (the key never shown) and turns alerts off."""
        if self._alerter is None:  # two threads racing here build two equal alerters: harmless
            self._alerter = self._build_alerter()
        return self._alerter

    def _build_alerter(self) -> OpsGenieAlerter | NullAlerter:
        if not self.enabled:
            return NullAlerter(f"{self.service} alerts off: no api_key")
        try:
            return OpsGenieAlerter.for_backend(
                self.backend, self.api_key, self.api_url or None, timeout=self.timeout,
                team=self.team, tags=tuple(self.tags), priority=self.priority,
            )
        except (TypeError, ValueError) as e:  # for_backend's message never holds the key
            log.warning("%s alerts off: %s", self.service, e)
            return NullAlerter(f"{self.service} alerts off: {e}")

    def create_alert(
        self,
        message: str,
        alias: str,
        *,
        description: str = "",
        priority: AlertPriority | None = None,
        tags: Sequence[str] = (),
        details: Mapping[str, str] | None = None,
        source: str = "dagster_cache",
    ) -> bool:
        """Open (or bump) the alert for `alias`; True when the service accepted it. Never raises.

        Args:
            message: The alert title (cut to 130 characters).
            alias: De-duplication key: one open alert per alias.
            description: The alert's longer text.
            priority: "P1" to "P5"; None means the resource's `priority`.
            tags: Tags added to this alert, after the resource's `tags`.
            details: Key/value pairs shown with the alert.
            source: Where the alert comes from.
        """
        # No priority: the alerter's, which is the resource's `priority`.
        alert = Alert(message, alias, description, priority, tuple(tags), dict(details or {}), source)
        alerter = self.alerter()
        if isinstance(alerter, NullAlerter):
            log.warning("ALERT (%s off: no usable api_key) [%s] %s", self.service, alias, message)
            return False
        return send_alert(alert, alerter)

    def close_alert(self, alias: str, note: str = "") -> bool:
        """Close the alert for `alias` (skipped if this process already closed it and opened
        none since). Never raises.

        Args:
            alias: Alias of the alert to close.
            note: Note added to the alert on closing.
        """
        return resolve_alert(alias, note, self.alerter())


# The first name of `AlertResource`, from when it served OpsGenie only: the same class.
OpsGenieResource = AlertResource
