"""Checks of alert settings, with their limits: API keys, backend URLs (and how a URL is shown in a
message, its credentials and query hidden), timeouts and retry counts.

Every check raises TypeError or ValueError naming the setting and the bad value, except a key,
which is never echoed, even when it is refused.
"""

from __future__ import annotations

import urllib.parse

from .._numbers import is_number, is_whole

DEFAULT_TIMEOUT = 5.0
MAX_TIMEOUT = 300.0  # an alert may hold up loading this long at most
MAX_RETRIES = 10


def clean_key(api_key: object, service: str) -> str:
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


def shown_url(text: str) -> str:
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


def check_url(url: object, service: str) -> str:
    """An http(s) base URL with a host, without query, fragment, credentials or spaces."""
    text = url.strip() if isinstance(url, str) else url
    if not isinstance(text, str):
        raise TypeError(f"{service} api_url must be a string, got {type(url).__name__}")
    shown = shown_url(text)[:200]
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


def check_timeout(timeout: object) -> float:
    """`timeout` as seconds above 0 and at most `MAX_TIMEOUT`."""
    if not is_number(timeout):
        raise TypeError(f"alert timeout must be a number of seconds, got {type(timeout).__name__}: "
                        f"{timeout!r}")
    # NaN fails both comparisons; infinity and 1e300 exceed the cap (Thread.join overflows on them).
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ValueError(f"alert timeout must be a number of seconds above 0 and at most "
                         f"{MAX_TIMEOUT:g}, got {timeout!r}")
    return float(timeout)


def check_retries(retries: object) -> int:
    """`retries` as a whole number from 0 to `MAX_RETRIES`."""
    if not is_whole(retries):
        raise TypeError(f"alert retries must be a whole number, got {type(retries).__name__}: {retries!r}")
    if not 0 <= retries <= MAX_RETRIES:
        raise ValueError(f"alert retries must be a whole number from 0 to {MAX_RETRIES}, got {retries!r}")
    return retries
