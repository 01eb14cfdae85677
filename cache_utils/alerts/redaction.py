"""Secret redaction: every form a secret can take in a message (raw, stripped, inside a str or
bytes repr, JSON-escaped, percent-encoded, the credential of a header value) is replaced by `***`.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable

from .model import Alerter


def secret_forms(secret: str) -> set[str]:
    """The ways `secret` can show up in a message: raw, stripped, the inside of its str and bytes
    reprs (`Invalid header value b'GenieKey ...\\n'`), JSON, percent-encoded, and the credential
    of a header value such as `Bearer <token>`."""
    forms: set[str] = set()
    bases = {secret, secret.strip()}
    for value in list(bases):
        _scheme, _, credential = value.strip().partition(" ")
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


def secrets_of(alerter: Alerter | None) -> tuple[str, ...]:
    """The strings `alerter.secrets()` names; () for none, or when that call fails."""
    if alerter is None:
        return ()
    try:
        return tuple(s for s in alerter.secrets() if isinstance(s, str))
    except Exception:  # noqa: BLE001 - a broken backend must not break the data path
        return ()
