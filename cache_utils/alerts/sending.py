"""Bounded sending: `send_alert`, `resolve_alert` and `send_test_alert` run each backend call on a
daemon thread and wait at most the backend's timeout, never raise, log a failure once on one line
with secrets redacted, and de-duplicate creates (one per alias, title and destination within the
dedupe window; `suppressed_alerts` counts the rest).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .model import Alert, Alerter, NullAlerter, with_default_priority
from .redaction import redact, secrets_of
from .settings import API_KEY_ENV, JSM_API_KEY_ENV, dedupe_window, get_alerter
from .state import STATE, DedupeKey
from .transport import clock, set_deadline
from .validation import DEFAULT_TIMEOUT, MAX_TIMEOUT, check_timeout

log = logging.getLogger("cache_utils.alerts")

TEST_ALIAS = "cache_utils:alert-test"


# --- de-duplication ------------------------------------------------------------------------------


def suppressed_alerts(alias: str | None = None) -> int:
    """How many creates `send_alert` held back as repeats (same alias and title within the
    dedupe window) since the last `configure_alerts`, for `alias` or for all aliases.

    Args:
        alias: The alert alias; None counts every alias.
    """
    with STATE.lock:
        return sum(STATE.suppressed.values()) if alias is None else STATE.suppressed.get(alias, 0)


def _destination(alerter: Alerter | None) -> str:
    """Where an alert goes: one backend class at one URL (two alerters built from one
    configuration are one destination); "" for log only."""
    if alerter is None:
        return ""
    url = getattr(alerter, "api_url", None) or getattr(alerter, "url", None)
    return f"{type(alerter).__qualname__} {url if isinstance(url, str) else ''}"


def _hold_back(alert: Alert, alerter: Alerter | None) -> tuple[bool, int]:
    """(whether `alert` repeats a create sent to the same destination within the window, the
    repeats held back before it). When it is sent, its time is recorded before sending, so
    concurrent repeats are held back while it is in flight."""
    window = dedupe_window()
    key = (alert.alias, alert.message, _destination(alerter))
    now = time.monotonic()
    with STATE.lock:
        sent = STATE.sent_at.get(key)
        # A negative age only happens when a frozen clock is released: treat it as expired.
        if window > 0 and sent is not None and 0 <= now - sent < window:
            STATE.held_back[key] = STATE.held_back.get(key, 0) + 1
            STATE.suppressed[alert.alias] = STATE.suppressed.get(alert.alias, 0) + 1
            return True, STATE.held_back[key]
        STATE.sent_at[key] = now
        return False, STATE.held_back.pop(key, 0)


def _forget_sent(alias: str, key: DedupeKey | None = None) -> None:
    """Let the next create for `alias` through (to every destination, or only for `key`): after
    a close, or when this create failed."""
    with STATE.lock:
        for sent in [k for k in STATE.sent_at if k[0] == alias and key in (None, k)]:
            del STATE.sent_at[sent]


# --- bounded calls -------------------------------------------------------------------------------


def _wait_for(alerter: Alerter) -> float:
    timeout = getattr(alerter, "timeout", DEFAULT_TIMEOUT)
    try:
        return check_timeout(timeout)
    except (TypeError, ValueError):
        STATE.warn_once(("timeout", type(alerter).__name__, repr(timeout)),
                        "%s.timeout=%r is not a number of seconds above 0 and at most %g; waiting %g s",
                        type(alerter).__name__, timeout, MAX_TIMEOUT, DEFAULT_TIMEOUT)
        return DEFAULT_TIMEOUT


def _describe(error: BaseException) -> str:
    status, reason = getattr(error, "status", None), getattr(error, "reason", None)
    if isinstance(status, int) and hasattr(error, "body"):  # the SDK's HTTP errors: skip their headers
        body = error.body.decode("utf-8", "replace") if isinstance(error.body, bytes) else error.body
        return f"{type(error).__name__}: HTTP {status} {reason or ''}: {str(body or '')[:300]}"
    return f"{type(error).__name__}: {error}"


def call_bounded(alerter: Alerter, what: str, fn: Callable[..., Any], *args: Any) -> tuple[bool, str]:
    """Run fn(*args) on a daemon thread, waiting at most the alerter's timeout.
    (True, "") when it succeeded, else (False, a one-line reason with secrets redacted)."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        set_deadline(deadline)  # every answer read on this thread ends by then
        try:
            fn(*args)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - reported below, never raised to the caller
            outcome.append(e)

    wait = _wait_for(alerter)
    deadline = clock() + wait
    thread = threading.Thread(target=target, name=f"cache-utils-{what}", daemon=True)
    try:
        thread.start()
    except RuntimeError as e:  # "can't start new thread"
        return False, f"failed: could not start a thread: {e}"
    thread.join(wait)
    # A call cut by the deadline may end a moment before join returns: it did not finish either.
    if not outcome or (outcome[0] is not None and clock() >= deadline):
        return False, f"did not finish within {wait:.1f} s"
    error = outcome[0]
    last_attempt = getattr(error, "last_attempt", None)  # tenacity.RetryError wraps the cause
    if last_attempt is not None and last_attempt.failed:
        error = last_attempt.exception()
    if error is None:
        return True, ""
    detail = " ".join(redact(_describe(error), secrets_of(alerter)).split())  # one line
    return False, f"failed: {detail[:500]}"


def _run_bounded(alerter: Alerter, what: str, fn: Callable[..., Any], *args: Any) -> bool:
    """`call_bounded`, logging a failure once as a warning. True when it succeeded."""
    ok, detail = call_bounded(alerter, what, fn, *args)
    if not ok:
        suffix = "; continuing without it" if detail.startswith("did not finish") else ""
        log.warning("%s via %s %s%s", what, type(alerter).__name__, detail, suffix)
    return ok


# --- sending -------------------------------------------------------------------------------------


def send_alert(alert: Alert, alerter: Alerter | None = None) -> bool:
    """Send (or, without a backend, only log) an alert; never raises, waits at most the timeout.

    An alert without a priority gets the backend's (`Alerter.priority`, "P3" unless set). A create
    that repeats one sent within the dedupe window (same alias and title; see
    `configure_alerts(dedupe_window=...)`) is not sent nor logged as a warning: it is counted
    (`suppressed_alerts`) and the next create sent for it says how many were held back. A close
    (`resolve_alert`) or a failed create lets the next one through. A `NullAlerter` sends,
    logs (but at DEBUG) and counts nothing.

    Args:
        alert: The alert to send.
        alerter: The backend; None uses `get_alerter()`.

    Returns:
        True when the backend accepted the alert (or, for a repeat held back, when there is a backend).
    """
    try:
        alerter = alerter if alerter is not None else get_alerter()
        if isinstance(alerter, NullAlerter):
            log.debug("ALERT [%s] %s: not sent (%s)", alert.alias, alert.message, alerter.reason)
            return False
        repeat, held_back = _hold_back(alert, alerter)
        if repeat:
            log.debug("ALERT [%s] %s: not sent again within the %g s dedupe window (%d held back so far)",
                      alert.alias, alert.message, dedupe_window(), held_back)
            return alerter is not None
        if held_back:
            alert = replace(alert, details={**alert.details, "repeats_not_sent": str(held_back)})
        log.warning("ALERT [%s] %s%s%s", alert.alias, alert.message,
                    f": {alert.description}" if alert.description else "",
                    f" ({held_back} repeats were not sent within the dedupe window)" if held_back else "")
        if alerter is None:
            return False
        with STATE.lock:
            STATE.open_aliases.add(alert.alias)
        ok = _run_bounded(alerter, f"alert {alert.alias!r}", alerter.create,
                          with_default_priority(alert, alerter))
        if not ok:
            # not delivered: the next repeat is sent
            _forget_sent(alert.alias, (alert.alias, alert.message, _destination(alerter)))
        return ok
    except Exception as e:  # noqa: BLE001 - alerting must never break the data path
        log.warning("alert not sent: %s", redact(_describe(e), secrets_of(alerter)))
        return False


def resolve_alert(alias: str, note: str = "", alerter: Alerter | None = None) -> bool:
    """Close the alert for `alias` if this process may have left it open, or has not checked.

    Args:
        alias: Alias of the alert to close.
        note: Note added to the alert on closing.
        alerter: The backend; None uses `get_alerter()`; a `NullAlerter` closes nothing.

    Returns:
        True when a close was sent and accepted.
    """
    try:
        alerter = alerter if alerter is not None else get_alerter()
        if isinstance(alerter, NullAlerter):
            return False
        _forget_sent(alias)  # a change of state: the next create opens a new alert, so it is sent
        if alerter is None:
            return False
        with STATE.lock:
            if alias not in STATE.open_aliases and alias in STATE.checked_aliases:
                return False
            STATE.open_aliases.discard(alias)
            STATE.checked_aliases.add(alias)
        return _run_bounded(alerter, f"close {alias!r}", alerter.close, alias, note)
    except Exception as e:  # noqa: BLE001 - alerting must never break the data path
        log.warning("close not sent: %s", redact(_describe(e), secrets_of(alerter)))
        return False


def send_test_alert(alerter: Alerter | None = None, alias: str = TEST_ALIAS) -> tuple[bool, str]:
    """Create a P5 test alert under `alias`, then close it (`cache-utils alert-test`).

    Returns (both calls accepted, a one-line report). Uses the configured or environment backend
    when `alerter` is None. Each call waits at most the backend's timeout; nothing is logged and
    the process-wide open/closed bookkeeping is left alone. Never raises.

    Args:
        alerter: The backend; None uses the configured or environment one.
        alias: Alias of the test alert.
    """
    alerter = alerter if alerter is not None else get_alerter()
    if alerter is None:
        return False, (f"no alert backend configured: set {JSM_API_KEY_ENV} (JSM Operations) or "
                       f"{API_KEY_ENV} (OpsGenie)")
    if isinstance(alerter, NullAlerter):
        return False, f"alerting is off ({alerter.reason}): nothing sent"
    where = f"{type(alerter).__name__} at {getattr(alerter, 'api_url', None) or '?'}"
    try:
        alert = Alert("cache-utils alert-test: a test alert, closed right away", alias,
                      "Sent by `cache-utils alert-test` to check alert delivery.", "P5",
                      ("cache_utils", "alert-test"))
    except ValueError as e:
        return False, str(e)
    ok, detail = call_bounded(alerter, "alert-test create", alerter.create, alert)
    if not ok:
        return False, f"create via {where} {detail}"
    ok, detail = call_bounded(alerter, "alert-test close", alerter.close, alias, "alert-test done")
    if not ok:
        return False, f"created {alias!r}, but close via {where} {detail}: close it by hand"
    return True, f"created and closed {alias!r} via {where}"
