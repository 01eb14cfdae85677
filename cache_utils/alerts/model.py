"""The alert model: what an alert is (`Alert`, its priorities and field limits, the cache alerts
`cache_alert` builds) and what a backend is (`Alerter`), including the backend that sends nothing
(`NullAlerter`, alerting off).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from .validation import DEFAULT_TIMEOUT

Priority = Literal["P1", "P2", "P3", "P4", "P5"]
PRIORITIES: tuple[str, ...] = get_args(Priority)
DEFAULT_PRIORITY: Priority = "P3"
MISSING_DATA_PRIORITY: Priority = "P2"  # no data at all pages harder than stale or corrupt data

# OpsGenie's documented field limits (JSM Operations keeps them).
MAX_MESSAGE, MAX_ALIAS, MAX_TAGS, MAX_TAG = 130, 512, 20, 50


def check_priority(priority: object) -> Priority:
    """`priority` if it is one of "P1".."P5", else a ValueError naming it."""
    if priority not in PRIORITIES:
        raise ValueError(f"invalid alert priority {priority!r}: use one of {PRIORITIES}")
    return priority  # type: ignore[return-value]  # checked just above


@dataclass(frozen=True)
class Alert:
    """One alert: `alias` de-duplicates it (one open alert per alias); `message` is cut to 130 characters.

    Attributes:
        message: The title, cut to 130 characters.
        alias: De-duplication key: one open alert per alias (must not be empty).
        description: The longer text of the alert.
        priority: "P1" (critical) to "P5" (informational); None means the backend's default
            priority (its `priority`, "P3" unless set), filled in by `send_alert`.
        tags: Tags added to the alert.
        details: Key/value pairs shown with the alert.
        source: Where the alert comes from.
    """

    message: str
    alias: str
    description: str = ""
    priority: Priority | None = None
    tags: Sequence[str] = ()
    details: Mapping[str, str] = field(default_factory=dict)
    source: str = "cache_utils"

    def __post_init__(self) -> None:
        # OpsGenie and JSM Operations cut titles at 130 characters: cut them here, for every backend.
        object.__setattr__(self, "message", str(self.message)[:MAX_MESSAGE])
        if self.priority is not None:
            check_priority(self.priority)
        if not self.alias:
            raise ValueError("alert alias must not be empty")


def default_alias(prefix: str) -> str:
    """The alert alias used for a prefix when none is given.

    Args:
        prefix: The cache prefix.
    """
    return f"cache_utils:{prefix}"


def cache_alert(
    kind: Literal["missing", "stale", "corrupt"],
    prefix: str,
    description: str = "",
    *,
    title: str | None = None,
    alias: str | None = None,
    priority: Priority | None = None,
    details: Mapping[str, str] | None = None,
    source: str = "cache_utils",
) -> Alert:
    """The alert for missing, stale or corrupt data of `prefix`: titled "<kind> cache data for
    '<prefix>'" unless `title` is given, under `default_alias(prefix)`, at P2 for missing data
    and the backend's default priority (P3 unless set) otherwise.

    Args:
        kind: What is wrong: "missing", "stale" or "corrupt".
        prefix: The cache prefix.
        description: The alert's longer text.
        title: The alert message; None means the default title.
        alias: The alert alias; None means `default_alias(prefix)`.
        priority: "P1" to "P5"; None means P2 for missing data, the backend's default otherwise.
        details: Key/value pairs shown with the alert.
        source: Where the alert comes from.
    """
    return Alert(
        title or f"{kind} cache data for {prefix!r}",
        alias or default_alias(prefix),
        description,
        priority or (MISSING_DATA_PRIORITY if kind == "missing" else None),
        details=dict(details or {}),
        source=source,
    )


class Alerter(ABC):
    """An alerting backend. Subclasses send; `send_alert`/`close_alert` bound the time.

    Attributes:
        timeout: Seconds `send_alert` waits for a call, above 0 and at most 300.
        priority: The priority of an alert that sets none ("P1".."P5").
    """

    timeout: float = DEFAULT_TIMEOUT
    priority: Priority = DEFAULT_PRIORITY

    @abstractmethod
    def create(self, alert: Alert) -> None:
        """Open (or bump) the alert for `alert.alias`.

        Args:
            alert: The alert to send.
        """

    @abstractmethod
    def close(self, alias: str, note: str = "") -> None:
        """Close the open alert for `alias`, if any.

        Args:
            alias: Alias of the alert to close.
            note: Note added to the alert on closing.
        """

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in a log line or an exception message (each is also
        redacted in its stripped, repr, JSON and percent-encoded forms)."""
        return ()


def with_default_priority(alert: Alert, alerter: object) -> Alert:
    """`alert` with the backend's `priority` when it sets none ("P3" for a backend without a
    well-formed `priority`).

    Args:
        alert: The alert to send.
        alerter: The backend it goes to.
    """
    if alert.priority is not None:
        return alert
    default = getattr(alerter, "priority", DEFAULT_PRIORITY)
    return replace(alert, priority=default if default in PRIORITIES else DEFAULT_PRIORITY)


class NullAlerter(Alerter):
    """Alerting off: `send_alert` and `resolve_alert` send nothing, record nothing and return
    False at once (the alert is logged at DEBUG only).

    Where an alerter may be given, None means "the configured or environment backend"
    (`get_alerter`); a `NullAlerter` means "none", whatever is configured: `load_cache(...,
    alerter=NullAlerter())`, `configure_alerts(NullAlerter())`, or a Dagster alert resource
    without a usable key.

    Args:
        reason: Why alerting is off, for the DEBUG line and `repr`.
    """

    def __init__(self, reason: str = "alerting off") -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"NullAlerter(reason={self.reason!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NullAlerter) and other.reason == self.reason

    def __hash__(self) -> int:
        return hash((NullAlerter, self.reason))

    def create(self, alert: Alert) -> None:
        """Send nothing.

        Args:
            alert: The alert not sent.
        """

    def close(self, alias: str, note: str = "") -> None:
        """Close nothing.

        Args:
            alias: Alias of the alert not closed.
            note: Unused.
        """
