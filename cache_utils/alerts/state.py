"""The process's alert state, one `STATE` shared by `settings` (which sets the backend and the
dedupe window, and starts it afresh in `configure_alerts`) and `sending` (which keeps the books):
the configured backend, the one the environment selected, aliases this process may have left open,
creates sent and held back within the dedupe window, and warnings already given once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from .model import Alerter

log = logging.getLogger("cache_utils.alerts")

# (alias, title, destination): what a create is de-duplicated on.
DedupeKey = tuple[str, str, str]


@dataclass
class AlertState:
    """The process-wide alert bookkeeping; every change happens under `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    configured: Alerter | None = None  # set by configure_alerts; None: the environment decides
    from_env: tuple[tuple[str, ...], Alerter | None] | None = None  # (the variables, their alerter)
    dedupe_window: float | None = None  # None: CACHE_UTILS_ALERT_DEDUPE_WINDOW, else the default
    # Aliases this process may have left open; a successful load closes them (and checks once).
    open_aliases: set[str] = field(default_factory=set)
    checked_aliases: set[str] = field(default_factory=set)
    warned: set[tuple[str, ...]] = field(default_factory=set)
    # When each create was sent (time.monotonic, which freezegun moves in tests), and how many
    # repeats were held back since then (per key) and in all (per alias).
    sent_at: dict[DedupeKey, float] = field(default_factory=dict)
    held_back: dict[DedupeKey, int] = field(default_factory=dict)
    suppressed: dict[str, int] = field(default_factory=dict)

    def reset(self, configured: Alerter | None, dedupe_window: float | None) -> None:
        """Start afresh with this backend and dedupe window."""
        with self.lock:
            self.configured = configured
            self.from_env = None
            self.dedupe_window = dedupe_window
            for books in (self.open_aliases, self.checked_aliases, self.warned, self.sent_at,
                          self.held_back, self.suppressed):
                books.clear()

    def warn_once(self, key: tuple[str, ...], message: str, *args: Any) -> None:
        """Log `message % args` as a warning, once per `key` until the next reset."""
        with self.lock:
            if key in self.warned:
                return
            self.warned.add(key)
        log.warning(message, *args)


STATE = AlertState()
