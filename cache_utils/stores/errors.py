"""Store failures as `OSError`s on one line: the URL, what was being done, the SDK's cause, and for a
refusal of credentials what to set on that cloud. A failure to deliver a file's bytes is never
taken for a corrupt file (`read_errors`)."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from typing import NoReturn

from .base import ObjectChangedError, StoreReadError
from .clouds import CREDENTIAL_HINTS, family, first_line, http_status

_TIMEOUT_ERRORS = frozenset({
    "ReadTimeoutError", "ConnectTimeoutError", "FSTimeoutError", "TimeoutError",
    "ServerTimeoutError", "ConnectionTimeoutError", "SocketTimeoutError",
})
_CONNECTION_ERRORS = frozenset({
    "EndpointConnectionError", "ConnectionClosedError", "ProxyConnectionError",
    "ClientConnectorError", "ClientConnectionError", "ServerDisconnectedError",
    "ClientOSError", "ConnectionError",
})
CREDENTIAL_ERRORS = frozenset({
    "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError",
    "ProfileNotFound", "TokenRetrievalError", "SSOTokenLoadError",
    "DefaultCredentialsError", "RefreshError",  # google-auth
})
# Azure SDK refusals (ClientAuthenticationError carries 401/403; a bad shared key signature is a
# 403 HttpResponseError with ErrorCode AuthorizationFailure / AuthenticationFailed).
AZURE_AUTH_ERRORS = frozenset({"ClientAuthenticationError", "CredentialUnavailableError"})


def _names(error: BaseException) -> set[str]:
    return {c.__name__ for c in type(error).__mro__}


def raise_store_error(error: BaseException, url: str, action: str) -> NoReturn:
    """Re-raise a store failure as the matching OSError subclass, on one line with the URL; a refusal
    of the credentials names what to set for that cloud."""
    names = _names(error)
    detail = first_line(error)
    status = http_status(error)
    if isinstance(error, FileNotFoundError) or status == 404:
        raise FileNotFoundError(errno.ENOENT, f"{action}: not found: {url} ({detail})", url) from error
    if (isinstance(error, PermissionError) or names & CREDENTIAL_ERRORS or status in (401, 403)
            or names & AZURE_AUTH_ERRORS):
        hint = CREDENTIAL_HINTS.get(family(url.split("://", 1)[0].lower()), "check the credentials")
        raise PermissionError(
            errno.EACCES, f"{action}: access denied to {url}: check the credentials: {hint} ({detail})", url
        ) from error
    if isinstance(error, TimeoutError) or names & _TIMEOUT_ERRORS:
        raise TimeoutError(
            errno.ETIMEDOUT, f"{action}: the store for {url} did not answer in time ({detail})", url
        ) from error
    if isinstance(error, ConnectionError) or names & _CONNECTION_ERRORS:
        raise ConnectionError(
            errno.ECONNREFUSED, f"{action}: cannot reach the store for {url} ({detail})", url
        ) from error
    if isinstance(error, OSError):
        raise type(error)(error.errno or errno.EIO, f"{action}: {url}: {detail}", url) from error
    raise OSError(errno.EIO, f"{action}: {url}: {detail}", url) from error


@contextlib.contextmanager
def store_errors(url: str, action: str) -> Iterator[None]:
    try:
        yield
    except (ValueError, TypeError, NotImplementedError):
        raise
    except OSError as e:
        if e.filename == url:  # already explained
            raise
        raise_store_error(e, url, action)
    except Exception as e:
        raise_store_error(e, url, action)


_NOT_A_STORE_FAILURE = (FileNotFoundError, PermissionError, ConnectionError, TimeoutError, ObjectChangedError,
                        StoreReadError)


@contextlib.contextmanager
def read_errors(url: str) -> Iterator[None]:
    """`store_errors` for reads of a file's bytes: a failure without a kind of its own (an error
    answer, an invalid request) becomes StoreReadError, so that it is never taken for corruption."""
    try:
        with store_errors(url, "cannot read"):
            yield
    except _NOT_A_STORE_FAILURE:
        raise
    except OSError as e:
        raise StoreReadError(e.errno or errno.EIO, e.strerror or str(e), e.filename or url) from e
