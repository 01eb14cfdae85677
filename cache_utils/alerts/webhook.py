"""The webhook backend (`WebhookAlerter`): POSTs each create or close as JSON to a URL, with its
headers kept on the URL's origin and its answers bounded (see `transport`).
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from .model import DEFAULT_PRIORITY, Alert, Alerter, Priority, check_priority
from .transport import bounded_opener
from .validation import DEFAULT_TIMEOUT, check_timeout, shown_url


class WebhookAlerter(Alerter):
    """POSTs `{"action": "create"|"close", ...}` as JSON to a URL: a generic second backend.
    Header values (stripped on input), the URL's query values and its password are secrets.

    Args:
        url: The http(s) URL to POST to.
        timeout: Seconds to wait per call, above 0 and at most 300.
        headers: Extra HTTP headers (e.g. Authorization), sent with every request.
        priority: The priority of an alert that sets none, "P1" to "P5".

    Raises:
        TypeError: `url` is not a string.
        ValueError: `url` is not http(s), or a header value holds control characters.
    """

    def __init__(
        self, url: str, *, timeout: float = DEFAULT_TIMEOUT, headers: Mapping[str, str] | None = None,
        priority: Priority = DEFAULT_PRIORITY,
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"webhook url must be a string, got {type(url).__name__}")
        if not url.strip().startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http(s), got {shown_url(url)!r}")
        self.url = url.strip()
        self.timeout = check_timeout(timeout)
        self.priority = check_priority(priority)
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
        shown = shown_url(self.url.split("?", 1)[0]) + ("?***" if "?" in self.url else "")
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
        with bounded_opener(self.url).open(request, timeout=self.timeout) as response:
            response.read(4096)  # the status says it all: a small part of the body is enough

    def create(self, alert: Alert) -> None:
        """Open (or bump) the alert for `alert.alias`.

        Args:
            alert: The alert to send; without a priority it gets this alerter's.
        """
        self._post(
            {
                "action": "create",
                "message": alert.message,
                "alias": alert.alias,
                "description": alert.description,
                "priority": alert.priority or self.priority,
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
