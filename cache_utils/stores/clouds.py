"""What differs between the clouds: default timeouts per protocol, the credentials each one reads
(named in errors), HTTP statuses in their SDKs' exceptions, and gcsfs' bucket-type probe.

Everything else about object stores is the same code in `stores.fsspec`.
"""

from __future__ import annotations

import copy
import os
from typing import Any

S3_PROTOCOLS = frozenset({"s3", "s3a"})
GCS_PROTOCOLS = frozenset({"gs", "gcs"})
AZURE_PROTOCOLS = frozenset({"az", "abfs", "abfss"})
# Flat object stores: no directories, a missing "directory" is just an empty listing.
OBJECT_STORE_PROTOCOLS = S3_PROTOCOLS | GCS_PROTOCOLS | AZURE_PROTOCOLS

# One request's bounds, the same on every cloud: connect within CONNECT_TIMEOUT, each read within
# READ_TIMEOUT, ATTEMPTS tries. A whole call (every page, every retry) gets the deadline
# ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT): 75 s.
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 20
ATTEMPTS = 3
# botocore settings: every request fails within about max_attempts * (connect + read) + backoff.
DEFAULT_S3_CONFIG: dict[str, Any] = {
    "connect_timeout": CONNECT_TIMEOUT,
    "read_timeout": READ_TIMEOUT,
    "retries": {"max_attempts": ATTEMPTS, "mode": "standard"},
}
# gcsfs' per-request timeout (it retries 6 times itself; the call deadline bounds the total).
DEFAULT_GCS_OPTIONS: dict[str, Any] = {"requests_timeout": READ_TIMEOUT}
# adlfs hands these to the Azure SDK on every request.
DEFAULT_AZURE_OPTIONS: dict[str, Any] = {"connection_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT}
# The environment variable gcsfs reads at import to pick its file system class; "false" keeps the
# plain GCSFileSystem, which never probes a bucket's type over gRPC.
GCS_PROBE_ENV = "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"

# What to set when a cloud refuses the credentials (or finds none), per protocol family.
CREDENTIAL_HINTS = {
    "s3": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or a role), "
          "or storage_options key/secret",
    "gs": "set GOOGLE_APPLICATION_CREDENTIALS (or run `gcloud auth application-default login`), "
          "or storage_options token",
    "az": "set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with "
          "AZURE_STORAGE_ACCOUNT_KEY, or storage_options connection_string / account_name + "
          "account_key / anon=False for DefaultAzureCredential",
}


def family(protocol: str) -> str:
    """'s3', 'gs', 'az' or '' for the protocol of a URL."""
    if protocol in S3_PROTOCOLS:
        return "s3"
    if protocol in GCS_PROTOCOLS:
        return "gs"
    if protocol in AZURE_PROTOCOLS:
        return "az"
    return ""


def effective_options(protocol: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """The user's storage options plus this library's defaults (timeouts, no listing cache)."""
    opts = copy.deepcopy(dict(storage_options or {}))
    kind = family(protocol)
    if kind:
        # A long-lived process must see files other processes write: never answer from a stale listing.
        opts.setdefault("use_listings_cache", False)
    if kind == "s3":
        config = copy.deepcopy(DEFAULT_S3_CONFIG)
        config.update(opts.get("config_kwargs") or {})
        opts["config_kwargs"] = config
    elif kind == "gs":
        for key, value in DEFAULT_GCS_OPTIONS.items():
            opts.setdefault(key, value)
    elif kind == "az":
        for key, value in DEFAULT_AZURE_OPTIONS.items():
            opts.setdefault(key, value)
    return opts


def request_bound(protocol: str, options: dict[str, Any]) -> float:
    """Seconds one call may take at most, all attempts included, from the effective options."""
    kind = family(protocol)
    if kind == "s3":
        config = options.get("config_kwargs") or {}
        attempts = (config.get("retries") or {}).get("max_attempts", 1) or 1
        per_try = float(config.get("connect_timeout", 60)) + float(config.get("read_timeout", 60))
        return float(attempts * per_try)
    if kind == "gs":
        return float(ATTEMPTS * (CONNECT_TIMEOUT + float(options.get("requests_timeout") or READ_TIMEOUT)))
    if kind == "az":
        connect = float(options.get("connection_timeout") or CONNECT_TIMEOUT)
        return float(ATTEMPTS * (connect + float(options.get("read_timeout") or READ_TIMEOUT)))
    return float(ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT))


def gcs_filesystem(options: dict[str, Any]) -> Any | None:
    """gcsfs' plain GCSFileSystem for an emulator (an `endpoint_url` option or STORAGE_EMULATOR_HOST),
    else None (fsspec's registry picks). gcsfs >= 2026 registers a subclass that first asks the
    Storage Control gRPC API for the bucket's type; an emulator has no such API, and every call
    then waits about 60 s before falling back. Against real GCS the probe answers quickly and is
    cached per bucket; set GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false to skip it there too."""
    if not (options.get("endpoint_url") or os.environ.get("STORAGE_EMULATOR_HOST")):
        return None
    from gcsfs.core import GCSFileSystem

    return GCSFileSystem(**options)


def http_status(error: BaseException) -> int | None:
    """The HTTP status an SDK error carries: Azure's `status_code`, gcsfs' `code`, aiohttp's `status`."""
    for attr in ("status_code", "code", "status"):
        value = getattr(error, attr, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    return None


def first_line(error: BaseException) -> str:
    """`Type: message` on one line: an SDK's message lines joined, up to the request ids, times and
    XML bodies that Azure's SDK appends (noise on a terminal), at most 300 characters."""
    kept = []
    for line in str(error).strip().splitlines():
        line = line.strip()
        if line.startswith(("RequestId:", "Time:", "Content:", "<")):
            break
        if line:
            kept.append(line)
    text = " ".join(kept)
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
