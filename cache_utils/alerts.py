"""Alerts on missing, stale or corrupt caches: a small backend interface, OpsGenie and its
successor Jira Service Management (JSM) Operations first.

Sending never breaks or stalls the data path: each call runs on a daemon thread and the
caller waits at most `timeout` seconds; failures are logged once, with secrets redacted in
every form they can take in a message (raw, stripped, repr, JSON, percent-encoded). A bad
alert setting in the environment is reported once as a warning and never stops loading.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import math
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

log = logging.getLogger("cache_utils.alerts")

Priority = Literal["P1", "P2", "P3", "P4", "P5"]
PRIORITIES: tuple[str, ...] = get_args(Priority)
DEFAULT_PRIORITY: Priority = "P3"
MISSING_DATA_PRIORITY: Priority = "P2"  # no data at all pages harder than stale or corrupt data
Backend = Literal["opsgenie", "jsm"]
BACKENDS: tuple[str, ...] = get_args(Backend)
OPSGENIE_US = "https://api.opsgenie.com"
# JSM Operations' integration API: the OpsGenie alert API (same paths, bodies and GenieKey
# header) under this prefix. opsgenie-sdk builds URLs as host + path, so the prefix is kept.
JSM_OPS_URL = "https://api.atlassian.com/jsm/ops/integration"
DEFAULT_URLS: dict[str, str] = {"opsgenie": OPSGENIE_US, "jsm": JSM_OPS_URL}
API_KEY_ENV = "OPSGENIE_API_KEY"
API_URL_ENV = "OPSGENIE_API_URL"
JSM_API_KEY_ENV = "JSM_OPS_API_KEY"
JSM_API_URL_ENV = "JSM_OPS_API_URL"
TIMEOUT_ENV = "CACHE_UTILS_ALERT_TIMEOUT"
DEFAULT_TIMEOUT = 5.0
MAX_TIMEOUT = 300.0  # an alert may hold up loading this long at most
MAX_RETRIES = 10
DEDUPE_WINDOW_ENV = "CACHE_UTILS_ALERT_DEDUPE_WINDOW"
DEFAULT_DEDUPE_WINDOW = 900.0  # seconds: one create per alias and title per 15 minutes
MAX_DEDUPE_WINDOW = 7 * 86400.0
# Bytes read of any answer of an alert API, status line and headers included: the answers we
# need are a few hundred bytes of JSON; an endless or huge one is cut here, never buffered.
MAX_ANSWER = 64 * 1024

# OpsGenie's documented field limits (JSM Operations keeps them).
MAX_MESSAGE, MAX_ALIAS, MAX_TAGS, MAX_TAG = 130, 512, 20, 50


@dataclass(frozen=True)
class Alert:
    """One alert: `alias` de-duplicates it (one open alert per alias); `message` is cut to 130 characters.

    Attributes:
        message: The title, cut to 130 characters.
        alias: De-duplication key: one open alert per alias (must not be empty).
        description: The longer text of the alert.
        priority: "P1" (critical) to "P5" (informational).
        tags: Tags added to the alert.
        details: Key/value pairs shown with the alert.
        source: Where the alert comes from.
    """

    message: str
    alias: str
    description: str = ""
    priority: Priority = DEFAULT_PRIORITY
    tags: Sequence[str] = ()
    details: Mapping[str, str] = field(default_factory=dict)
    source: str = "cache_utils"

    def __post_init__(self) -> None:
        # OpsGenie and JSM Operations cut titles at 130 characters: cut them here, for every backend.
        object.__setattr__(self, "message", str(self.message)[:MAX_MESSAGE])
        if self.priority not in PRIORITIES:
            raise ValueError(f"invalid alert priority {self.priority!r}: use one of {PRIORITIES}")
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
    and P3 otherwise.

    Args:
        kind: What is wrong: "missing", "stale" or "corrupt".
        prefix: The cache prefix.
        description: The alert's longer text.
        title: The alert message; None means the default title.
        alias: The alert alias; None means `default_alias(prefix)`.
        priority: "P1" to "P5"; None means P2 for missing data, P3 otherwise.
        details: Key/value pairs shown with the alert.
        source: Where the alert comes from.
    """
    return Alert(
        title or f"{kind} cache data for {prefix!r}",
        alias or default_alias(prefix),
        description,
        priority or (MISSING_DATA_PRIORITY if kind == "missing" else DEFAULT_PRIORITY),
        details=dict(details or {}),
        source=source,
    )


class Alerter(ABC):
    """An alerting backend. Subclasses send; `send_alert`/`close_alert` bound the time."""

    timeout: float = DEFAULT_TIMEOUT

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


# --- checking settings -------------------------------------------------------------------------


def _clean_key(api_key: object, service: str) -> str:
    """The key without surrounding whitespace (secret files often end in a newline). The value
    is never echoed, even when it is refused."""
    if not isinstance(api_key, str):
        raise TypeError(f"{service} api_key must be a string, got {type(api_key).__name__}")
    if not api_key.strip():
        raise ValueError(f"{service} api_key must be a non-empty string")
    key = api_key.strip()
    if not all("!" <= c <= "~" for c in key):
        raise ValueError(f"{service} api_key holds whitespace, control or non-ASCII characters "
                         "(its value is not shown): check where it was read from")
    return key


def _shown_url(text: str) -> str:
    """`text` for a message, with any user:password@ part, query and fragment hidden (tokens
    travel there)."""
    for mark in ("?", "#"):
        head, sep, _tail = text.partition(mark)
        text = head + (mark + "***" if sep else "")
    scheme, sep, rest = text.partition("://")
    netloc, slash, path = rest.partition("/")
    if sep and "@" in netloc:
        return f"{scheme}://***@{netloc.rpartition('@')[2]}{slash}{path}"
    return text


def _check_url(url: object, service: str) -> str:
    """An http(s) base URL with a host, without query, fragment, credentials or spaces."""
    text = url.strip() if isinstance(url, str) else url
    if not isinstance(text, str):
        raise TypeError(f"{service} api_url must be a string, got {type(url).__name__}")
    shown = _shown_url(text)[:200]
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query or parts.fragment or "@" in parts.netloc
        or not all("!" <= c <= "~" for c in text)
    ):
        raise ValueError(f"{service} api_url must be an http(s) URL with a host and no query, "
                         f"credentials or spaces, got {shown!r}")
    return text.rstrip("/")


def _check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"alert timeout must be a number of seconds, got {type(timeout).__name__}: "
                        f"{timeout!r}")
    # NaN fails both comparisons; infinity and 1e300 exceed the cap (Thread.join overflows on them).
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ValueError(f"alert timeout must be a number of seconds above 0 and at most "
                         f"{MAX_TIMEOUT:g}, got {timeout!r}")
    return float(timeout)


def _check_retries(retries: object) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise TypeError(f"alert retries must be a whole number, got {type(retries).__name__}: {retries!r}")
    if not 0 <= retries <= MAX_RETRIES:
        raise ValueError(f"alert retries must be a whole number from 0 to {MAX_RETRIES}, got {retries!r}")
    return retries


def _check_backend(backend: object) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"alert backend must be one of {BACKENDS}, got {backend!r}")
    return str(backend)


# --- bounded answers ---------------------------------------------------------------------------


class AnswerTooLongError(OSError):
    """An alert API's answer went past `MAX_ANSWER` bytes: it is not read further."""


# The sending thread's deadline (see `_call_bounded`): every read of an answer waits at most
# until then, so the thread ends with its caller's wait even when the answer never ends.
_bounds = threading.local()


def _clock() -> float:
    # A deadline must follow real time, also under freezegun (which freezes time.monotonic;
    # clock_gettime is left alone).
    if hasattr(time, "clock_gettime"):
        return time.clock_gettime(time.CLOCK_MONOTONIC)
    return time.monotonic()  # pragma: no cover - platforms without clock_gettime


class _BoundedSocketReader(io.RawIOBase):
    """The raw reader of an answer: at most `MAX_ANSWER` bytes, and no read waits past the sending
    thread's deadline (the socket timeout of each read is cut to the time left)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._left = MAX_ANSWER
        self._deadline: float | None = getattr(_bounds, "deadline", None)
        self._timeout = sock.gettimeout()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            raise AnswerTooLongError(f"the answer is longer than {MAX_ANSWER} bytes: not read further")
        if self._deadline is not None:
            left = self._deadline - _clock()
            if left <= 0:
                raise TimeoutError("the answer did not end within the alert timeout: not read further")
            self._sock.settimeout(left if self._timeout is None else min(self._timeout, left))
        with memoryview(buffer) as view:
            count: int | None = self._raw.readinto(view[: self._left])
        self._left -= count or 0
        return count or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


class _BoundedHTTPResponse(http.client.HTTPResponse):
    """http.client's response reading through `_BoundedSocketReader` (both urllib, for webhooks,
    and urllib3, under opsgenie-sdk, build their responses with this class)."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self.fp.close()  # the unbounded reader made by super(); the socket stays open
        self.fp = io.BufferedReader(_BoundedSocketReader(sock))


class _BoundedHTTPConnection(http.client.HTTPConnection):
    response_class = _BoundedHTTPResponse


class _BoundedHTTPSConnection(http.client.HTTPSConnection):
    response_class = _BoundedHTTPResponse


def _bound_sdk_answers(api_client: Any) -> None:
    """Make opsgenie-sdk's urllib3 pools read answers through `_BoundedHTTPResponse`: the SDK reads
    every body whole (also with `_preload_content=False`), so the bound sits below it."""
    import urllib3
    from urllib3.connection import HTTPConnection, HTTPSConnection

    class Connection(HTTPConnection):
        response_class = _BoundedHTTPResponse

    class SecureConnection(HTTPSConnection):
        response_class = _BoundedHTTPResponse

    class Pool(urllib3.HTTPConnectionPool):
        ConnectionCls = Connection

    class SecurePool(urllib3.HTTPSConnectionPool):
        ConnectionCls = SecureConnection

    manager = api_client.rest_client.pool_manager
    manager.clear()
    manager.pool_classes_by_scheme = {"http": Pool, "https": SecurePool}


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of `url`, the port defaulted: what a redirect must keep."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to the webhook's own origin (scheme, host and port): its headers
    carry credentials, and urllib would resend them to any host, and from https to http."""

    def __init__(self, url: str) -> None:
        self.origin = _origin(url)

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if _origin(newurl) != self.origin:
            scheme, host, port = self.origin
            raise urllib.error.HTTPError(
                req.full_url, code,
                f"redirect to {_shown_url(newurl)[:200]!r} not followed: the webhook's headers are only "
                f"sent to {scheme}://{host}:{port}; configure the URL it redirects to", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _BoundedHTTPHandler(urllib.request.HTTPHandler):
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(_BoundedHTTPConnection, req, **kwargs)


class _BoundedHTTPSHandler(urllib.request.HTTPSHandler):
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(_BoundedHTTPSConnection, req, **kwargs)


# --- backends ----------------------------------------------------------------------------------


class OpsGenieAlerter(Alerter):
    """Alerts through the official opsgenie-sdk, with bounded timeouts and no SDK retries.

    Args:
        api_key: Key of the API integration (surrounding whitespace is stripped; never logged).
        api_url: API host; None means the backend's default.
        timeout: Seconds to wait per call, above 0 and at most 300.
        retries: SDK retries per call, 0 to 10.
        team: Responder team name, if any.
        tags: Tags added to every alert.
        priority: Default priority, "P1" (critical) to "P5" (informational).

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
        self._api_key = _clean_key(api_key, self.service)
        self._secrets = (api_key, self._api_key)  # as given (maybe "key\n") and as sent
        if priority not in PRIORITIES:
            raise ValueError(f"invalid alert priority {priority!r}: use one of {PRIORITIES}")
        self.api_url = _check_url(api_url or self.default_url, self.service)
        self.timeout = _check_timeout(timeout)
        self.retries = _check_retries(retries)
        self.team = team
        self.tags = tuple(tags)
        self.priority = priority
        self._api: Any = None
        self._api_lock = threading.Lock()

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
                _bound_sdk_answers(api_client)
                self._api = opsgenie_sdk.AlertApi(api_client=api_client)
            return self._api

    def _request_timeout(self) -> tuple[int, int]:
        # The SDK ignores floats: only an int or a (connect, read) tuple of ints works.
        seconds = max(1, math.ceil(self.timeout))
        return (seconds, seconds)

    def create(self, alert: Alert) -> None:
        """Open (or bump) the alert for `alert.alias`.

        Args:
            alert: The alert to send.
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
        priority: Default priority, "P1" (critical) to "P5" (informational).
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
    """`OpsGenieAlerter` ("opsgenie") or `JsmOpsAlerter` ("jsm"); an empty `api_url` means the
    backend's default host. Raises TypeError or ValueError on a bad setting, never echoing the key.

    Args:
        backend: "opsgenie" or "jsm".
        api_key: Key of the API integration (surrounding whitespace is stripped).
        api_url: API host; None or "" means the backend's default.
        timeout: Seconds to wait per call, above 0 and at most 300.
        retries: SDK retries per call, 0 to 10.
        team: Responder team name, if any.
        tags: Tags added to every alert.
        priority: Default priority, "P1" (critical) to "P5" (informational).
    """
    cls = ALERTER_CLASSES[_check_backend(backend)]
    try:
        return cls(api_key, api_url or None, timeout=timeout, retries=retries, team=team, tags=tags,
                   priority=priority)
    except (TypeError, ValueError) as e:
        shown = redact(str(e), (api_key,) if isinstance(api_key, str) else ())
        raise type(e)(shown) from None  # the original message could hold the key


def service_name(backend: Backend) -> str:
    """How messages name a backend: "OpsGenie" or "JSM Operations".

    Args:
        backend: "opsgenie" or "jsm".
    """
    return ALERTER_CLASSES[_check_backend(backend)].service


class WebhookAlerter(Alerter):
    """POSTs `{"action": "create"|"close", ...}` as JSON to a URL: a generic second backend.
    Header values (stripped on input), the URL's query values and its password are secrets.

    Args:
        url: The http(s) URL to POST to.
        timeout: Seconds to wait per call, above 0 and at most 300.
        headers: Extra HTTP headers (e.g. Authorization), sent with every request.

    Raises:
        TypeError: `url` is not a string.
        ValueError: `url` is not http(s), or a header value holds control characters.
    """

    def __init__(
        self, url: str, *, timeout: float = DEFAULT_TIMEOUT, headers: Mapping[str, str] | None = None
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"webhook url must be a string, got {type(url).__name__}")
        if not url.strip().startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http(s), got {_shown_url(url)!r}")
        self.url = url.strip()
        self.timeout = _check_timeout(timeout)
        raw = dict(headers or {})
        self._headers: dict[str, str] = {}
        for name, value in raw.items():
            clean = str(value).strip()
            if not all(c == "\t" or " " <= c != "\x7f" for c in clean):
                raise ValueError(f"webhook header {name!r} holds control characters "
                                 "(its value is not shown)")
            self._headers[str(name)] = clean
        parts = urllib.parse.urlsplit(self.url)
        from_url = [v for _k, v in urllib.parse.parse_qsl(parts.query)] + [parts.password or ""]
        self._secrets = tuple(v for v in (*map(str, raw.values()), *self._headers.values(), *from_url) if v)

    def __repr__(self) -> str:
        shown = _shown_url(self.url.split("?", 1)[0]) + ("?***" if "?" in self.url else "")
        return f"WebhookAlerter(url={shown!r}, timeout={self.timeout})"

    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def _post(self, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **self._headers},
            method="POST",
        )
        # Our own opener: redirects only within the URL's origin, answers read through the bound.
        opener = urllib.request.build_opener(
            _SameOriginRedirects(self.url), _BoundedHTTPHandler(), _BoundedHTTPSHandler())
        with opener.open(request, timeout=self.timeout) as response:
            response.read(4096)  # the status says it all: a small part of the body is enough

    def create(self, alert: Alert) -> None:
        """Open (or bump) the alert for `alert.alias`.

        Args:
            alert: The alert to send.
        """
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
        """Close the open alert for `alias`, if any.

        Args:
            alias: Alias of the alert to close.
            note: Note added to the alert on closing.
        """
        self._post({"action": "close", "alias": alias, "note": note})


# --- redaction ---------------------------------------------------------------------------------


def secret_forms(secret: str) -> set[str]:
    """The ways `secret` can show up in a message: raw, stripped, the inside of its str and bytes
    reprs (`Invalid header value b'GenieKey ...\\n'`), JSON, percent-encoded, and the credential
    of a header value such as `Bearer <token>`."""
    forms: set[str] = set()
    bases = {secret, secret.strip()}
    for value in list(bases):
        scheme, _, credential = value.strip().partition(" ")
        if credential.strip():
            bases.add(credential.strip())
    for value in bases:
        if not value:
            continue
        forms.add(value)
        forms.add(repr(value)[1:-1])
        forms.add(repr(value.encode("utf-8", "backslashreplace"))[2:-1])
        forms.add(repr(value.encode("latin-1", "backslashreplace"))[2:-1])
        forms.add(json.dumps(value)[1:-1])
        forms.add(urllib.parse.quote(value, safe=""))
        forms.add(urllib.parse.quote_plus(value))
    return {f for f in forms if f}


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in `text`, in each of its `secret_forms`, with ***."""
    forms: set[str] = set()
    for secret in secrets:
        if isinstance(secret, str) and secret:
            forms |= secret_forms(secret)
    for form in sorted(forms, key=len, reverse=True):  # longest first: "GenieKey k\n" before "k"
        text = text.replace(form, "***")
    return text


def _secrets_of(alerter: Alerter) -> tuple[str, ...]:
    try:
        return tuple(s for s in alerter.secrets() if isinstance(s, str))
    except Exception:  # noqa: BLE001 - a broken backend must not break the data path
        return ()


# --- configuration -------------------------------------------------------------------------


_configured: Alerter | None = None
_ENV_NAMES = (JSM_API_KEY_ENV, JSM_API_URL_ENV, API_KEY_ENV, API_URL_ENV, TIMEOUT_ENV)
_from_env: tuple[tuple[str, ...], Alerter | None] | None = None
_state_lock = threading.Lock()
# Aliases this process may have left open; a successful load closes them (and checks once).
_open_aliases: set[str] = set()
_checked_aliases: set[str] = set()
_warned: set[tuple[str, ...]] = set()
# Creates de-duplicated per alias, title and destination: when each was sent (time.monotonic, which freezegun
# moves in tests), and how many repeats were suppressed, since then and in all.
_dedupe_window: float | None = None  # None: CACHE_UTILS_ALERT_DEDUPE_WINDOW, else the default
_sent_at: dict[tuple[str, str, str], float] = {}  # (alias, title, destination) -> sent at
_held_back: dict[tuple[str, str, str], int] = {}
_suppressed: dict[str, int] = {}


def _warn_once(key: tuple[str, ...], message: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


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
    `OPSGENIE_API_KEY`, see `alerter_from_env`). Raises ValueError on a bad setting.

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
    global _configured, _from_env, _dedupe_window
    window = None if dedupe_window is None else _check_dedupe_window(dedupe_window)
    if alerter is None and api_key is not None:
        alerter = make_alerter(backend, api_key, api_url, timeout=timeout)
    elif alerter is None and backend != "opsgenie":
        raise ValueError(f"configure_alerts(backend={backend!r}) needs api_key=; to choose the backend "
                         f"from the environment, set {JSM_API_KEY_ENV} (JSM) or {API_KEY_ENV}")
    with _state_lock:
        _configured = alerter
        _from_env = None
        _open_aliases.clear()
        _checked_aliases.clear()
        _warned.clear()
        _dedupe_window = window
        _sent_at.clear()
        _held_back.clear()
        _suppressed.clear()
    return alerter


def _check_dedupe_window(seconds: object) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
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
    if _dedupe_window is not None:
        return _dedupe_window
    text = os.environ.get(DEDUPE_WINDOW_ENV, "")
    if not text.strip():
        return DEFAULT_DEDUPE_WINDOW
    try:
        return _check_dedupe_window(float(text))
    except ValueError:
        _warn_once(("dedupe", text), "ignoring %s=%r: not a number of seconds from 0 to %g; repeated "
                   "alerts are held back for %g s", DEDUPE_WINDOW_ENV, text[:50], MAX_DEDUPE_WINDOW,
                   DEFAULT_DEDUPE_WINDOW)
        return DEFAULT_DEDUPE_WINDOW


def suppressed_alerts(alias: str | None = None) -> int:
    """How many creates `send_alert` held back as repeats (same alias and title within the
    dedupe window) since the last `configure_alerts`, for `alias` or for all aliases.

    Args:
        alias: The alert alias; None counts every alias.
    """
    with _state_lock:
        return sum(_suppressed.values()) if alias is None else _suppressed.get(alias, 0)


def _destination(alerter: Alerter | None) -> str:
    """Where an alert goes: one backend class at one URL (alerters may be rebuilt per alert, as
    the Dagster resource does, and still be one destination); "" for log only."""
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
    with _state_lock:
        sent = _sent_at.get(key)
        # A negative age only happens when a frozen clock is released: treat it as expired.
        if window > 0 and sent is not None and 0 <= now - sent < window:
            _held_back[key] = _held_back.get(key, 0) + 1
            _suppressed[alert.alias] = _suppressed.get(alert.alias, 0) + 1
            return True, _held_back[key]
        _sent_at[key] = now
        return False, _held_back.pop(key, 0)


def _forget_sent(alias: str, key: tuple[str, str, str] | None = None) -> None:
    """Let the next create for `alias` through (to every destination, or only for `key`): after
    a close, or when this create failed."""
    with _state_lock:
        for sent in [k for k in _sent_at if k[0] == alias and key in (None, k)]:
            del _sent_at[sent]


def timeout_setting(text: str) -> float:
    if not text.strip():
        return DEFAULT_TIMEOUT
    try:
        return _check_timeout(float(text))
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


def env_alert_settings(environ: Mapping[str, str] | None = None) -> EnvAlertSettings | None:
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
    return EnvAlertSettings(backend, key_env, env.get(url_env, "").strip(),
                            timeout_setting(env.get(TIMEOUT_ENV, "")))


def alerter_from_env(environ: Mapping[str, str] | None = None) -> Alerter | None:
    """The backend `env_alert_settings` selects, or None (alerts are only logged). Never raises.

    Keys are stripped. A malformed key or URL is logged as a warning (the key never shown) and
    alerts are only logged, since a guessed host could receive the key.
    """
    env = os.environ if environ is None else environ
    settings = env_alert_settings(env)
    if settings is None:
        return None
    url_env = JSM_API_URL_ENV if settings.backend == "jsm" else API_URL_ENV
    try:
        return make_alerter(settings.backend, env[settings.api_key_env], settings.api_url or None,
                            timeout=settings.timeout)
    except ValueError as e:
        where = settings.api_key_env if "api_key" in str(e) else f"{settings.api_key_env} and {url_env}"
        detail = redact(str(e), (env.get(JSM_API_KEY_ENV, ""), env.get(API_KEY_ENV, "")))
        log.warning("ignoring %s: %s; alerts are only logged", where, detail)
        return None


def get_alerter() -> Alerter | None:
    """The configured alerter, else the one the environment selects (`alerter_from_env`),
    else None (log only). Never raises; a bad environment setting is logged once."""
    global _from_env
    if _configured is not None:
        return _configured
    values = tuple(os.environ.get(name, "") for name in _ENV_NAMES)
    if not (values[0] or values[2]):  # neither JSM_OPS_API_KEY nor OPSGENIE_API_KEY
        return None
    with _state_lock:
        if _from_env is None or _from_env[0] != values:
            _from_env = (values, alerter_from_env(dict(zip(_ENV_NAMES, values, strict=True))))
        return _from_env[1]


# --- sending -------------------------------------------------------------------------------


def _wait_for(alerter: Alerter) -> float:
    timeout = getattr(alerter, "timeout", DEFAULT_TIMEOUT)
    try:
        return _check_timeout(timeout)
    except (TypeError, ValueError):
        _warn_once(("timeout", type(alerter).__name__, repr(timeout)),
                   "%s.timeout=%r is not a number of seconds above 0 and at most %g; waiting %g s",
                   type(alerter).__name__, timeout, MAX_TIMEOUT, DEFAULT_TIMEOUT)
        return DEFAULT_TIMEOUT


def _describe(error: BaseException) -> str:
    status, reason = getattr(error, "status", None), getattr(error, "reason", None)
    if isinstance(status, int) and hasattr(error, "body"):  # the SDK's HTTP errors: skip their headers
        body = error.body.decode("utf-8", "replace") if isinstance(error.body, bytes) else error.body
        return f"{type(error).__name__}: HTTP {status} {reason or ''}: {str(body or '')[:300]}"
    return f"{type(error).__name__}: {error}"


def _call_bounded(alerter: Alerter, what: str, fn: Callable[..., Any], *args: Any) -> tuple[bool, str]:
    """Run fn(*args) on a daemon thread, waiting at most the alerter's timeout.
    (True, "") when it succeeded, else (False, a one-line reason with secrets redacted)."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        _bounds.deadline = deadline  # every answer read on this thread ends by then
        try:
            fn(*args)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - reported below, never raised to the caller
            outcome.append(e)

    wait = _wait_for(alerter)
    deadline = _clock() + wait
    thread = threading.Thread(target=target, name=f"cache-utils-{what}", daemon=True)
    try:
        thread.start()
    except RuntimeError as e:  # "can't start new thread"
        return False, f"failed: could not start a thread: {e}"
    thread.join(wait)
    # A call cut by the deadline may end a moment before join returns: it did not finish either.
    if not outcome or (outcome[0] is not None and _clock() >= deadline):
        return False, f"did not finish within {wait:.1f} s"
    error = outcome[0]
    last_attempt = getattr(error, "last_attempt", None)  # tenacity.RetryError wraps the cause
    if last_attempt is not None and last_attempt.failed:
        error = last_attempt.exception()
    if error is None:
        return True, ""
    detail = " ".join(redact(_describe(error), _secrets_of(alerter)).split())  # one line
    return False, f"failed: {detail[:500]}"


def _run_bounded(alerter: Alerter, what: str, fn: Callable[..., Any], *args: Any) -> bool:
    """`_call_bounded`, logging a failure once as a warning. True when it succeeded."""
    ok, detail = _call_bounded(alerter, what, fn, *args)
    if not ok:
        suffix = "; continuing without it" if detail.startswith("did not finish") else ""
        log.warning("%s via %s %s%s", what, type(alerter).__name__, detail, suffix)
    return ok


def send_alert(alert: Alert, alerter: Alerter | None = None) -> bool:
    """Send (or, without a backend, only log) an alert; never raises, waits at most the timeout.

    A create that repeats one sent within the dedupe window (same alias and title; see
    `configure_alerts(dedupe_window=...)`) is not sent nor logged as a warning: it is counted
    (`suppressed_alerts`) and the next create sent for it says how many were held back. A close
    (`resolve_alert`) or a failed create lets the next one through.

    Args:
        alert: The alert to send.
        alerter: The backend; None uses `get_alerter()`.

    Returns:
        True when the backend accepted the alert (or, for a repeat held back, when there is a backend).
    """
    try:
        alerter = alerter or get_alerter()
        repeat, held_back = _hold_back(alert, alerter)
        if repeat:
            log.debug("ALERT [%s] %s: not sent again within the %g s dedupe window (%d held back so far)",
                      alert.alias, alert.message, dedupe_window(), held_back)
            return alerter is not None
        if held_back:
            details = {**alert.details, "repeats_not_sent": str(held_back)}
            alert = replace(alert, details=details)
        log.warning("ALERT [%s] %s%s%s", alert.alias, alert.message,
                    f": {alert.description}" if alert.description else "",
                    f" ({held_back} repeats were not sent within the dedupe window)" if held_back else "")
        if alerter is None:
            return False
        with _state_lock:
            _open_aliases.add(alert.alias)
        ok = _run_bounded(alerter, f"alert {alert.alias!r}", alerter.create, alert)
        if not ok:
            # not delivered: the next repeat is sent
            _forget_sent(alert.alias, (alert.alias, alert.message, _destination(alerter)))
        return ok
    except Exception as e:  # noqa: BLE001 - alerting must never break the data path
        log.warning("alert not sent: %s", redact(_describe(e), _secrets_of(alerter) if alerter else ()))
        return False


def resolve_alert(alias: str, note: str = "", alerter: Alerter | None = None) -> bool:
    """Close the alert for `alias` if this process may have left it open, or has not checked.

    Args:
        alias: Alias of the alert to close.
        note: Note added to the alert on closing.
        alerter: The backend; None uses `get_alerter()`.

    Returns:
        True when a close was sent and accepted.
    """
    try:
        _forget_sent(alias)  # a change of state: the next create opens a new alert, so it is sent
        alerter = alerter or get_alerter()
        if alerter is None:
            return False
        with _state_lock:
            if alias not in _open_aliases and alias in _checked_aliases:
                return False
            _open_aliases.discard(alias)
            _checked_aliases.add(alias)
        return _run_bounded(alerter, f"close {alias!r}", alerter.close, alias, note)
    except Exception as e:  # noqa: BLE001 - alerting must never break the data path
        log.warning("close not sent: %s", redact(_describe(e), _secrets_of(alerter) if alerter else ()))
        return False


TEST_ALIAS = "cache_utils:alert-test"


def send_test_alert(alerter: Alerter | None = None, alias: str = TEST_ALIAS) -> tuple[bool, str]:
    """Create a P5 test alert under `alias`, then close it (`cache-utils alert-test`).

    Returns (both calls accepted, a one-line report). Uses the configured or environment backend
    when `alerter` is None. Each call waits at most the backend's timeout; nothing is logged and
    the process-wide open/closed bookkeeping is left alone. Never raises.

    Args:
        alerter: The backend; None uses the configured or environment one.
        alias: Alias of the test alert.
    """
    alerter = alerter or get_alerter()
    if alerter is None:
        return False, (f"no alert backend configured: set {JSM_API_KEY_ENV} (JSM Operations) or "
                       f"{API_KEY_ENV} (OpsGenie)")
    where = f"{type(alerter).__name__} at {getattr(alerter, 'api_url', None) or '?'}"
    try:
        alert = Alert("cache-utils alert-test: a test alert, closed right away", alias,
                      "Sent by `cache-utils alert-test` to check alert delivery.", "P5",
                      ("cache_utils", "alert-test"))
    except ValueError as e:
        return False, str(e)
    ok, detail = _call_bounded(alerter, "alert-test create", alerter.create, alert)
    if not ok:
        return False, f"create via {where} {detail}"
    ok, detail = _call_bounded(alerter, "alert-test close", alerter.close, alias, "alert-test done")
    if not ok:
        return False, f"created {alias!r}, but close via {where} {detail}: close it by hand"
    return True, f"created and closed {alias!r} via {where}"
