"""How `cache-utils` speaks: exit codes, one-line errors naming the bad value and what to do
(`Failure`, `describe_os_error`), warnings on stderr, text made safe to print, and the progress
counter drawn while pruning. The commands and the parser are in `cache_utils.cli`."""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
import time
from types import TracebackType
from typing import IO

from .stores import is_url

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3
EXIT_INTERRUPTED = 128 + 2  # SIGINT, as a shell reports a process stopped by Ctrl-C
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE, as a shell reports `yes | head -1`'s `yes`
DEFAULT_DIR = "data"
PROG = "cache-utils"


def _human(size: float) -> str:
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


def printable(text: object) -> str:
    """`text` with control characters and undecodable bytes escaped (`\\x1b`), so a file name
    cannot move the cursor, clear the screen or forge lines of output."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# --- errors: one line, a short phrase, what to do -------------------------------------------------


class Failure(Exception):
    """A command's error: the one line to print (without the `cache-utils: ` lead) and the exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


# `[Errno 13] `, and a class name leading a message (`EOFError: `, `(NoCredentialsError: ...)`).
_NOISE = re.compile(r"\[Errno -?\d+\] |(?<![\w.'\"])[A-Z]\w*(?:Error|Exception|Warning): ")

_PHRASES = {
    errno.ENOENT: "no such file",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOSPC: "no space left on the device",
    getattr(errno, "EDQUOT", -1): "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.ENAMETOOLONG: "file name too long",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EIO: "input/output error",
    errno.EMFILE: "too many open files",
    errno.ETIMEDOUT: "the store did not answer in time",
    errno.ECONNREFUSED: "cannot reach the store",
}
_HINTS = {
    errno.EACCES: "check its permissions and owner",
    errno.EPERM: "check its permissions and owner",
    errno.ENOSPC: "free some space, then retry",
    getattr(errno, "EDQUOT", -1): "free some space, then retry",
    errno.EROFS: "use a writable directory",
    errno.EMFILE: "raise the limit (ulimit -n) or retry",
    errno.ETIMEDOUT: "check the network and the endpoint, then retry",
    errno.ECONNREFUSED: "check the endpoint URL and the network, then retry",
}
_S3_CREDENTIALS = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), "
    """or pass --storage-options '{"key": "...", "secret": "..."}'"""
)


def plain(text: object) -> str:
    """`text` without `[Errno N]` prefixes and leading exception class names, printable."""
    return printable(_NOISE.sub("", str(text)))


def _access_denied(error: OSError, url: str) -> str:
    """The line for a PermissionError of a store URL: missing credentials, or refused ones."""
    from .stores.errors import CREDENTIAL_ERRORS  # loaded already: a URL went through fsspec

    cause = error.__cause__
    names = {c.__name__ for c in type(cause).__mro__} if cause is not None else set()
    s3 = url.startswith(("s3://", "s3a://"))
    if names & CREDENTIAL_ERRORS:
        detail = plain(cause)
        if s3:
            return f"{printable(url)}: no usable AWS credentials ({detail}): {_S3_CREDENTIALS}"
        return f"{printable(url)}: no usable credentials ({detail}): pass them in --storage-options"
    if s3:
        return (f"{printable(url)}: access denied: the AWS credentials in use may not access it "
                f"(check AWS_PROFILE or AWS_ACCESS_KEY_ID, or --storage-options)")
    return f"{printable(url)}: access denied: check the credentials in --storage-options"


# Store errors with these errnos (or none) say nothing by their phrase: the library's cause is kept.
_VAGUE_ERRNOS = frozenset({0, errno.EIO, errno.EINVAL, errno.EAGAIN})
_MAX_CAUSE = 200  # characters of a store's cause on the line (botocore quotes whole regexes)
# Secrets a store's message may quote (an endpoint URL echoed back): credentials in a URL, query
# parameters that carry tokens or signatures, AWS access key ids.
_URL_USERINFO = re.compile(r"(\b[a-zA-Z][\w+.-]*://)[^/\s@'\"`]+@")
_SECRET_PARAM = re.compile(
    r"([?&;][\w.-]*(?:token|signature|secret|password|passwd|pwd|key|credential|sig|sas|auth)[\w.-]*=)"
    r"[^&;\s'\"`]+", re.IGNORECASE)
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|AIPA)[A-Z0-9]{12,}\b")
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID",
               "AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN",
               "AZURE_STORAGE_CONNECTION_STRING", "AZURE_CLIENT_SECRET")


def _redact_store_text(text: str) -> str:
    """`text` with the secrets a store error may carry replaced by ***."""
    from .alerts import redact

    text = _URL_USERINFO.sub(r"\1***@", text)
    text = _SECRET_PARAM.sub(r"\1***", text)
    text = _ACCESS_KEY_ID.sub("***", text)
    return redact(text, [v for k in _SECRET_ENV if len(v := os.environ.get(k, "")) >= 4])


def _store_cause(error: OSError, path: str) -> str | None:
    """The library's reason for a store error, on one line, without the URL it already names."""
    text = plain(" ".join(str(error.strerror or "").split()))
    for noise in (f"{path}: ", f": {path!r}", path):
        text = text.replace(noise, "")
    text = text.strip(" :")
    if not text or text.lower() == os.strerror(error.errno or errno.EIO).lower():
        return None
    return text if len(text) <= _MAX_CAUSE else text[: _MAX_CAUSE - 1] + "\u2026"


def describe_os_error(error: OSError) -> str:
    """One short line for an OSError: `<path>: <phrase> (<what to do>)`. A store error with a vague
    errno keeps the library's cause instead of the phrase, with secrets redacted."""
    path = error.filename
    if isinstance(error, PermissionError) and path is not None and is_url(str(path)):
        return _access_denied(error, str(path))
    if path is not None and is_url(str(path)) and (error.errno or 0) in _VAGUE_ERRNOS:
        cause = _store_cause(error, str(path))
        if cause is not None:
            if "credentials encoded in URL" in cause:
                cause += (" (take them out of endpoint_url: pass key and secret in --storage-options"
                          " or the environment)")
            return _redact_store_text(f"{printable(path)}: {cause}")
    phrase = _PHRASES.get(error.errno or 0)
    if phrase is None:
        phrase = os.strerror(error.errno) if error.errno else plain(error.strerror or error)
        phrase = phrase[:1].lower() + phrase[1:]
    hint = _HINTS.get(error.errno or 0)
    line = phrase if path is None else f"{printable(path)}: {phrase}"
    return f"{line} ({hint})" if hint else line


def _missing_directory(directory: str) -> bool:
    """A local directory that does not exist (object stores have no directories to miss)."""
    if is_url(directory):
        return False
    local = directory.removeprefix("file://")
    return not os.path.isdir(local or ".")


def _no_such_directory(directory: str) -> Failure:
    return Failure(f"{printable(directory)}: no such directory", EXIT_NOT_FOUND)


def _no_files(prefix: str, directory: str, what: str = "cache") -> Failure:
    return Failure(
        f"{printable(prefix)}: no {what} files in {printable(directory)} "
        f"(`{PROG} ls --dir {printable(directory)}` lists the prefixes there)",
        EXIT_NOT_FOUND,
    )


class _Warnings(logging.Handler):
    """The library's warnings (a skipped corrupt file, a kept older file) as `cache-utils: warning:`
    lines on the stderr of the moment."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(f"{PROG}: warning: {plain(record.getMessage())}", file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


# --- progress ---------------------------------------------------------------------------------------


class Progress:
    """A one-line `\\r` counter (`deleting sales files: 12/340`) on `stream` (stderr), drawn only
    when it is a terminal, redrawn at most every `interval` seconds, erased when done."""

    def __init__(self, label: str, total: int, stream: IO[str] | None = None, interval: float = 0.1) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.label, self.done, self.interval = label, 0, interval
        self._drawn_at = -interval
        self._width = 0
        self.start(total)

    def start(self, total: int) -> None:
        """Set the total once it is known (a counter made before it is shows nothing)."""
        self.total = total
        self.enabled = total > 0 and _isatty(self.stream)

    def __enter__(self) -> Progress:
        return self

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and (self.done >= self.total or now - self._drawn_at >= self.interval):
            self._drawn_at = now
            self._write(f"{self.label}: {self.done}/{self.total}")

    def _write(self, text: str) -> None:
        pad = " " * max(self._width - len(text), 0)
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()
        self._width = len(text)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
