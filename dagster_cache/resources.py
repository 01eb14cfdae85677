"""Dagster resources: the process-wide in-memory cache and OpsGenie alerting."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal

from dagster import ConfigurableResource
from pydantic import Field

from cache_utils import Alert, InMemoryCache, OpsGenieAlerter, resolve_alert, send_alert
from cache_utils.alerts import DEFAULT_TIMEOUT, OPSGENIE_US
from cache_utils.memory import Key, KeyPart, normalize_key

log = logging.getLogger("dagster_cache")

PriorityName = Literal["P1", "P2", "P3", "P4", "P5"]


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

    def _key(self, prefix_keys: KeyPart, *keys: Hashable) -> Key:
        key = normalize_key(prefix_keys, keys)
        return (self.namespace, *key) if self.namespace else key

    def get(self, prefix_keys: KeyPart, *keys: Hashable, default_copy: bool = True) -> Any:
        """The value under the key (a copy by default), or None."""
        return InMemoryCache.get(self._key(prefix_keys, *keys), default_copy=default_copy)

    def get_many(
        self, prefix_keys: KeyPart, list_or_dict: Iterable[Hashable] | dict[Hashable, Any],
        default_copy: bool = True,
    ) -> dict[Hashable, Any]:
        """Several values under one prefix, as `InMemoryCache.get_many`."""
        return InMemoryCache.get_many(self._key(prefix_keys), list_or_dict, default_copy)

    def get_state(self, prefix_keys: KeyPart, autogen_key: Hashable) -> Any:
        """The object stored by `put_state` itself (shared, not copied)."""
        return InMemoryCache.get_state(self._key(prefix_keys), autogen_key)

    def put(self, data: Any, prefix_keys: KeyPart, *keys: Hashable) -> None:
        """Store a copy of `data` under the key."""
        InMemoryCache.put(data, self._key(prefix_keys, *keys))

    def put_many(self, data_dict: Mapping[Hashable, Any], prefix_keys: KeyPart) -> None:
        """Store each item under `prefix_keys + (key,)`."""
        InMemoryCache.put_many(data_dict, self._key(prefix_keys))

    def put_state(
        self, state: Any, prefix_keys: KeyPart, autogen_key: Hashable | None = None
    ) -> Hashable:
        """Store `state` itself and return its key."""
        return InMemoryCache.put_state(state, self._key(prefix_keys), autogen_key)

    def delete(self, prefix_keys: KeyPart, *keys: Hashable) -> bool:
        """Remove one entry; True if it existed."""
        return InMemoryCache.delete(self._key(prefix_keys, *keys))

    def clear(self, prefix_keys: KeyPart | None = None, *keys: Hashable) -> int:
        """Remove everything under a key prefix (the whole namespace, or everything, when none)."""
        if prefix_keys is None:
            return InMemoryCache.clear(self.namespace) if self.namespace else InMemoryCache.clear()
        return InMemoryCache.clear(self._key(prefix_keys, *keys))

    # Not named `keys`: Dagster calls dict(resource), which would treat a `keys` method as a mapping.
    def list_keys(self, prefix_keys: KeyPart | None = None, *keys: Hashable) -> list[Key]:
        """`InMemoryCache.keys`: every full key (namespace included) under a key prefix."""
        if prefix_keys is None:
            return InMemoryCache.keys(self.namespace) if self.namespace else InMemoryCache.keys()
        return InMemoryCache.keys(self._key(prefix_keys, *keys))


class OpsGenieResource(ConfigurableResource):
    """OpsGenie alerts through the real opsgenie-sdk (via `cache_utils.OpsGenieAlerter`).

    With an empty `api_key` alerting is off: alerts are only logged. Give the key as
    `EnvVar("OPSGENIE_API_KEY")` so Dagster shows the variable's name, never its value.
    """

    api_key: str = Field(
        default="",
        repr=False,
        description="OpsGenie API integration key. Pass EnvVar('OPSGENIE_API_KEY'): the UI then "
        "shows the variable name only. Empty disables alerting (alerts are only logged).",
    )
    api_url: str = Field(
        default=OPSGENIE_US,
        description="OpsGenie API host: https://api.opsgenie.com (US, default), "
        "https://api.eu.opsgenie.com (EU) or a custom/proxy URL.",
    )
    priority: PriorityName = Field(
        default="P3", description="Default alert priority, P1 (critical) to P5 (informational)."
    )
    tags: list[str] = Field(default_factory=list, description="Tags added to every alert.")
    team: str | None = Field(default=None, description="Responder team name, if any.")
    timeout: float = Field(
        default=DEFAULT_TIMEOUT,
        gt=0,
        description="Seconds to wait for OpsGenie per call; a slow or down OpsGenie never "
        "blocks or fails the run for longer than this.",
    )

    @property
    def enabled(self) -> bool:
        """Whether an API key is configured."""
        return bool(self.api_key)

    def alerter(self) -> OpsGenieAlerter | None:
        """The library alerter for this configuration, or None when alerting is off."""
        if not self.enabled:
            return None
        return OpsGenieAlerter(
            self.api_key, self.api_url, timeout=self.timeout, team=self.team,
            tags=tuple(self.tags), priority=self.priority,
        )

    def create_alert(
        self,
        message: str,
        alias: str,
        *,
        description: str = "",
        priority: PriorityName | None = None,
        tags: Sequence[str] = (),
        details: Mapping[str, str] | None = None,
        source: str = "dagster_cache",
    ) -> bool:
        """Open (or bump) the alert for `alias`; True when OpsGenie accepted it. Never raises."""
        alert = Alert(message, alias, description, priority or self.priority, tuple(tags),
                      dict(details or {}), source)
        alerter = self.alerter()
        if alerter is None:
            log.warning("ALERT (OpsGenie off: no api_key) [%s] %s", alias, message)
            return False
        return send_alert(alert, alerter)

    def close_alert(self, alias: str, note: str = "") -> bool:
        """Close the alert for `alias` (skipped if this process already closed it and opened
        none since). Never raises."""
        alerter = self.alerter()
        if alerter is None:
            return False
        return resolve_alert(alias, note, alerter)
