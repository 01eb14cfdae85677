"""Cache files on object stores and other fsspec file systems (s3://, gs://, memory://, ...)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import io
import logging
import os
import posixpath
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import IO, Any, NoReturn

import fsspec  # the package: absolute imports never resolve to this module
import fsspec.asyn
import fsspec.core
from fsspec.implementations.cached import CachingFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from ..naming import join, matching_stamps
from .base import STALE_TEMP_SECONDS, Entry, ObjectChangedError, StoreReadError
from .clouds import (
    CREDENTIAL_HINTS,
    DEFAULT_S3_CONFIG,
    OBJECT_STORE_PROTOCOLS,
    S3_PROTOCOLS,
    effective_options,
    family,
    first_line,
    gcs_filesystem,
    http_status,
    request_bound,
)

__all__ = ["DEFAULT_S3_CONFIG", "OBJECT_STORE_PROTOCOLS", "S3_PROTOCOLS", "FsspecStore", "effective_options"]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: spools are swept by age only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("cache_utils")

# s3fs retries some errors itself (5 times) on top of botocore; that would multiply the bounds above.
S3FS_RETRIES = 1
# Multipart uploads: parts of this size, this many in flight. botocore holds about two copies of a
# part in flight, so an upload needs about 2 * UPLOAD_CHUNKSIZE * UPLOAD_CONCURRENCY bytes (measured:
# 33 MiB for a 64 MiB file); objects smaller than two parts go up in one put.
UPLOAD_CHUNKSIZE = 8 * 2**20
UPLOAD_CONCURRENCY = 2
# A transfer's deadline: the configured request bound plus its size at this rate (1 MiB/s), so a
# peer that stops reading mid-upload, or trickles a download, cannot hold it forever, and a slow
# link still has time.
MIN_BYTES_PER_SECOND = 2**20
# Reads fetch blocks of this size (s3fs' default is 50 MiB). On S3 it is also the single-GET
# threshold: an object up to this size is read in one GET, which is one version of it; larger ones
# in GETs of this size pinned to the first one's version. 16 MiB: a daily cache file is usually
# smaller (one round trip, no HEAD), and one block is what a read held in memory anyway.
READ_BLOCKSIZE = 16 * 2**20
SPOOL_PREFIX = "cache_utils-spool-"  # spool files of saves to URLs, in the local temp dir
SPOOL_SUFFIX = ".tmp"
# A spool untouched this long, and not locked, belongs to a writer that died; saves look for such
# spools at most once per SPOOL_SWEEP_INTERVAL seconds per process.
SPOOL_GRACE_SECONDS = 60.0
SPOOL_SWEEP_INTERVAL = 60.0

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
def _store_errors(url: str, action: str) -> Iterator[None]:
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
def _read_errors(url: str) -> Iterator[None]:
    """`_store_errors` for reads of a file's bytes: a failure without a kind of its own (an error
    answer, an invalid request) becomes StoreReadError, so that it is never taken for corruption."""
    try:
        with _store_errors(url, "cannot read"):
            yield
    except _NOT_A_STORE_FAILURE:
        raise
    except OSError as e:
        raise StoreReadError(e.errno or errno.EIO, e.strerror or str(e), e.filename or url) from e


def _mtime(info: dict[str, Any]) -> float:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, int | float):
            return float(value)
        stamp = getattr(value, "timestamp", None)  # a datetime
        if callable(stamp):
            return float(stamp())
    return 0.0


def _protocols(fs: fsspec.AbstractFileSystem) -> frozenset[str]:
    """The protocols a file system answers to (`fs.protocol` is a str or a tuple of them)."""
    protocol = fs.protocol
    return frozenset([protocol] if isinstance(protocol, str) else protocol)


def _is_object_store(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether `fs` (or the file system a caching layer such as simplecache:: wraps) is an object store."""
    if isinstance(fs, CachingFileSystem):  # hands listings, info and writes to the wrapped one
        fs = fs.fs
    return not _protocols(fs).isdisjoint(OBJECT_STORE_PROTOCOLS)


def _accepts(method: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


class FsspecStore:
    """A directory on any fsspec file system; object stores get prefix listings and whole-object writes."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.directory = url
        # Chained URLs (simplecache::s3://...) nest options per protocol: left exactly as given.
        protocol = "" if "::" in url else url.split("://", 1)[0].lower()
        self.options = effective_options(protocol, storage_options)
        with _store_errors(url, "cannot open the store"):
            gcs = gcs_filesystem(self.options) if family(protocol) == "gs" else None
            if gcs is not None:
                self.fs, root = gcs, gcs._strip_protocol(url)
            else:
                self.fs, root = fsspec.core.url_to_fs(url, **self.options)
        self.root = root.rstrip("/") or root
        # The S3 pieces below (deadlines, ranged reads, upload options) go with the options that
        # effective_options filled in for s3:// and s3a:// URLs only.
        self._s3 = protocol in S3_PROTOCOLS
        if self._s3:
            from s3fs import S3FileSystem  # already imported by url_to_fs for an s3:// URL

            if isinstance(self.fs, S3FileSystem):
                self.fs.retries = S3FS_RETRIES
        self._object_store = _is_object_store(self.fs)
        self._prefix_listing = self._object_store and _accepts(self.fs.find, "prefix")
        # fsspec's sync wrappers take `timeout=`: a whole call (every page of a listing, every
        # retry) then has a deadline, even against a store that trickles its answer byte by byte.
        self._protocol = protocol
        self._deadline: dict[str, float] = (
            {"timeout": self._request_bound()} if family(protocol) and self.fs.async_impl else {})
        self._in_memory = isinstance(self.fs, MemoryFileSystem)

    def __repr__(self) -> str:
        return f"FsspecStore({self.directory!r})"

    @property
    def object_store(self) -> bool:
        """Whether the file system is a flat object store (S3, GCS, Azure Blob), not a directory tree."""
        return self._object_store

    def path(self, name: str) -> str:
        return join(self.directory, name)

    def _full(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def _base(self, full: str) -> str | None:
        """The name of `full` if it sits directly in this directory, else None."""
        head = self._full("")
        full = full.rstrip("/")
        if not full.startswith(head):
            return None
        rest = full[len(head):]
        return rest if rest and "/" not in rest else None

    def _list_prefix(self, prefix: str) -> list[Entry]:
        """Files directly in the directory whose names start with `prefix`, by a server-side prefix
        listing where the file system has one (s3fs, gcsfs), else by listing the directory."""
        self.fs.invalidate_cache(self.root)
        if not self._prefix_listing:
            return [e for e in self._ls() if e.name.startswith(prefix)]
        found = self.fs.find(self.root, maxdepth=1, prefix=prefix, detail=True, **self._deadline)
        entries = [Entry(name, int(info.get("size") or 0), _mtime(info)) for full, info in found.items()
                   if info.get("type") == "file" and (name := self._base(full)) is not None]
        if not entries and not self._s3:  # gcsfs and adlfs list a missing bucket as empty
            self._check_container()
        return entries

    def prefix_entries(self, start: str) -> list[Entry]:
        """Files whose names start with `start`, without listing the rest of the directory."""
        try:
            with _store_errors(self.directory, f"cannot list {start}*"):
                return self._list_prefix(start)
        except FileNotFoundError:
            if self._object_store:  # a prefix listing finds nothing rather than failing: no bucket
                raise
            return []

    def _ls(self) -> list[Entry]:
        self.fs.invalidate_cache(self.root)
        try:
            infos = self.fs.ls(self.root, detail=True, **self._deadline)
        except FileNotFoundError:
            if self._object_store:
                self._check_container()
            return []
        out = []
        for info in infos:
            name = self._base(info["name"])
            if name is not None and info.get("type") == "file":
                out.append(Entry(name, int(info.get("size") or 0), _mtime(info)))
        return out

    def _check_container(self) -> None:
        """Raise FileNotFoundError naming the URL when the bucket itself does not exist."""
        bucket = self.root.lstrip("/").split("/", 1)[0]
        try:
            self.fs.info(bucket, **self._deadline)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                errno.ENOENT, f"no such bucket {bucket!r} for {self.directory} ({e})", self.directory
            ) from e

    def stamps(self, prefix: str, on_or_before: str | None = None) -> list[str]:
        """Stamps of objects named exactly `<prefix>_<YYYYMMDD>.pkl.gz`, newest first."""
        names = (e.name for e in self.prefix_entries(prefix + "_"))
        return matching_stamps(names, prefix, on_or_before)

    def entries(self) -> Iterator[Entry]:
        with _store_errors(self.directory, "cannot list caches"):
            found = self._ls()
        yield from found

    def exists(self, name: str) -> bool:
        with _store_errors(self.path(name), "cannot check"):
            try:
                return bool(self.fs.info(self._full(name), **self._deadline).get("type") == "file")
            except FileNotFoundError:
                return False

    def open_read(self, name: str) -> IO[bytes]:
        url = self.path(name)
        with _store_errors(url, "cannot open"):
            if self._in_memory:  # memory:// hands every reader the same file object; copy it
                return io.BytesIO(self.fs.cat_file(self._full(name)))
            if not self._object_store and self.fs.isdir(self._full(name)):
                raise IsADirectoryError(errno.EISDIR, "is a directory", url)
            pinned = _PINNED_READERS.get(family(self._protocol)) if self._object_store else None
            if pinned is not None and self.fs.async_impl:  # no request yet: see _PinnedRangeFile
                return io.BufferedReader(pinned(self, self._full(name), url), buffer_size=1 << 20)
            f = self.fs.open(self._full(name), "rb", block_size=READ_BLOCKSIZE)
            return _ReadFile(f, url)  # type: ignore[return-value]

    def write_atomic(self, name: str, write: Callable[[IO[bytes]], None]) -> None:
        """Spool to a local temp file (the serializer seeks), then upload it as one object:
        one put, or a multipart upload completed only at the end (aborted on failure). The spool
        stays locked while it exists; a later save deletes the spools of writers that died."""
        url = self.path(name)
        with _spool() as (f, spool):
            write(f)
            f.flush()
            if self._in_memory:
                f.seek(0)
                with _store_errors(url, "cannot write"):
                    self.fs.pipe_file(self._full(name), f.read())
            else:
                with _store_errors(url, "cannot write"):
                    self._upload(spool, self._full(name))
        sweep_spools()

    def _upload(self, local: str, remote: str) -> None:
        if not self._object_store:
            self.fs.makedirs(posixpath.dirname(remote) or "/", exist_ok=True)
        if not (self._object_store and self.fs.async_impl):
            self.fs.put_file(local, remote)
            return
        kwargs: dict[str, Any] = {}
        if self._s3:
            if _accepts(self.fs.put_file, "chunksize"):  # unknown keywords would reach botocore
                kwargs["chunksize"] = UPLOAD_CHUNKSIZE
            if _accepts(self.fs.put_file, "max_concurrency"):
                kwargs["max_concurrency"] = UPLOAD_CONCURRENCY
            _bound_s3_uploads(self.fs)
        # aiohttp has no write timeout: a peer that stops reading mid-body stalls the upload with
        # no request timeout armed. So the whole upload gets a deadline from the configured
        # timeouts plus the time its bytes take at MIN_BYTES_PER_SECOND.
        deadline = self._request_bound() + os.path.getsize(local) / MIN_BYTES_PER_SECOND
        try:
            fsspec.asyn.sync(self.fs.loop, asyncio.wait_for, self.fs._put_file(local, remote, **kwargs),
                             deadline)
        except TimeoutError as e:
            if self._s3:
                self._abort_uploads(remote)  # s3fs aborts on errors, not on cancellation
            raise TimeoutError(
                errno.ETIMEDOUT, f"the upload did not finish within {deadline:.0f} s", remote
            ) from e

    def _request_bound(self) -> float:
        """Seconds one request may take at most, all attempts included (the cloud's settings)."""
        return request_bound(self._protocol, self.options)

    def _abort_uploads(self, remote: str) -> None:
        """Abort the open multipart uploads of `remote`, best effort (each call bounded by the
        timeouts). A writer of the same object at the same moment would see its save fail."""
        bucket, key, _ = self.fs.split_path(remote)
        bound = self._request_bound()

        def call(method: str, **kwargs: Any) -> Any:  # each call bounded: the store may trickle
            return fsspec.asyn.sync(self.fs.loop, asyncio.wait_for, self.fs._call_s3(method, **kwargs), bound)

        with contextlib.suppress(Exception):
            listing = call("list_multipart_uploads", Bucket=bucket, Prefix=key)
            for upload in listing.get("Uploads", []):
                if upload["Key"] == key:
                    call("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload["UploadId"])

    def remove(self, name: str) -> None:
        with _store_errors(self.path(name), "cannot delete"):
            self.fs.rm_file(self._full(name), **self._deadline)

    def temp_entries(self, prefix: str | None = None) -> list[Entry]:
        """Always empty: uploads spool locally, so a store never holds partial files."""
        return []


@contextlib.contextmanager
def _spool() -> Iterator[tuple[IO[bytes], str]]:
    """A new spool file in the temp dir, open and locked (flock, released by the kernel when the
    process dies, even by SIGKILL), deleted on the way out; its path, for uploads that take one."""
    fd, path = tempfile.mkstemp(prefix=SPOOL_PREFIX, suffix=SPOOL_SUFFIX)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
        f = os.fdopen(fd, "w+b")
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    try:
        with f:
            yield f, path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


_last_sweep = [0.0]


def sweep_spools(directory: str | None = None, older_than: float = SPOOL_GRACE_SECONDS,
                 every: float = SPOOL_SWEEP_INTERVAL) -> list[str]:
    """Delete the spool files of writers killed during a save to a URL; returns their paths.

    A live writer holds a lock on its spool until it deletes it, so a spool that can be locked
    belongs to a dead process. Only this user's regular files named like spools, untouched for
    `older_than` seconds, are considered (never followed through a symlink); where flock does not
    exist, only those older than STALE_TEMP_SECONDS, like local temp files. Runs at most once per
    `every` seconds in a process (0: now): a save lists the temp dir once a minute at most."""
    now = time.time()
    if every and now - _last_sweep[0] < every:
        return []
    _last_sweep[0] = now
    directory = directory or tempfile.gettempdir()
    cutoff = now - (older_than if fcntl is not None else max(older_than, STALE_TEMP_SECONDS))
    removed = []
    try:
        with os.scandir(directory) as it:
            candidates = [e.path for e in it
                          if e.name.startswith(SPOOL_PREFIX) and e.name.endswith(SPOOL_SUFFIX)]
    except OSError:
        return []
    for path in candidates:
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_mtime > cutoff or not _own(st):
                    continue
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # its writer is alive
                os.unlink(path)
                removed.append(path)
            finally:
                os.close(fd)
    if removed:
        log.info("deleted %d spool file(s) left by killed writers: %s", len(removed), ", ".join(removed))
    return removed


def _own(st: os.stat_result) -> bool:
    """Whether this user owns the file (always, where there are no user ids)."""
    return not hasattr(os, "getuid") or st.st_uid == os.getuid()


def _drop_expect_header(params: dict[str, Any], **_: Any) -> None:
    params["headers"].pop("Expect", None)


def _bound_s3_uploads(fs: Any) -> None:
    """Make botocore send uploads without `Expect: 100-continue`.

    botocore asks for it on every PUT with a body; aiohttp then waits for the server's
    `100 Continue` with no timeout at all, before its read timeout is armed, so an endpoint that
    accepts the connection and never answers blocks an upload forever. Without the header the body
    is sent at once and the response falls under `read_timeout` like every other request."""
    client = fs.connect()  # s3fs' live client: created once per file system, then reused
    client.meta.events.register_last("before-call.s3", _drop_expect_header,
                                     unique_id="cache_utils-no-expect-100-continue")


class _PinnedRangeFile(io.RawIOBase):
    """An object read by GETs of READ_BLOCKSIZE, all of one version of the object.

    The first GET asks for the first block and learns the object's size and version (ETag,
    version id or generation) from the answer: an object up to READ_BLOCKSIZE costs that one
    request (no HEAD). Every later GET is pinned to that version (`_get` of each cloud says how).
    A writer replacing the object between two GETs makes the next one fail (412, 404 for a gone
    generation, or an answer for another version), raised as ObjectChangedError so that the whole
    read starts again (`read_one_version`); never a mix of two versions. Each GET has deadlines
    (its answer's headers within the request bound, its body within the bound plus the length at
    MIN_BYTES_PER_SECOND): a store that trickles its answer byte by byte cannot hold a read
    forever; the file systems' own file objects have no such bound.

    It implements `readinto` (and `io.BufferedReader` on top gives `read`) over a block it holds,
    rather than fsspec's file object, because each request must carry the pin and the deadline."""

    def __init__(self, store: FsspecStore, full: str, url: str) -> None:
        super().__init__()
        self._store, self._full, self._url = store, full, url
        self._size: int | None = None
        self._etag: str | None = None
        self._version: str | None = None  # a version id or generation, when the store has one
        self._pos = 0
        self._block = b""
        self._block_start = 0

    # What each cloud provides --------------------------------------------------------------

    def _get(self, start: int, length: int) -> tuple[bytes, int | None, str | None, str | None]:
        """One GET of bytes [start, start + length), pinned once the version is known: the body,
        the object's size (None when the store sent the whole object), its ETag and version.
        Raises `_changed(...)` when the pinned version is gone, `_EmptyObject` for a range past
        the end of an empty object."""
        raise NotImplementedError

    def _head(self) -> tuple[int, str | None, str | None]:
        """The object's size, ETag and version, by one metadata request."""
        with _read_errors(self._url):
            info = self._store.fs.info(self._full, **self._store._deadline)
        return int(info["size"]), _first(info, "ETag", "etag"), _first(info, "VersionId", "generation")

    # The read itself ------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _size_known(self) -> int:
        """The object's size; a HEAD (which pins the version too) when no GET has told it yet."""
        if self._size is None:
            self._learn(*self._head())
        assert self._size is not None
        return self._size

    def _learn(self, size: int, etag: str | None, version: str | None) -> None:
        """Pin this read to the version the store described, or check it is still the pinned one."""
        if self._size is None:
            self._size, self._etag = size, etag
            if self._version is None and version and version != "null":
                self._version = str(version)
            return
        # A version (id, generation) is the surest identity; ETags are compared without their
        # quotes, and only when there is no version to compare (a HEAD and a GET may spell them
        # differently).
        pinned = version if version and version != "null" else None
        if pinned and self._version:
            same = pinned == self._version
        else:
            same = not (etag and self._etag) or etag.strip('W/"') == self._etag.strip('W/"')
        if size != self._size or not same:
            self._changed(f"now {size} bytes, version {pinned or etag}; was {self._size} bytes, "
                          f"version {self._version or self._etag}")

    def _changed(self, detail: str) -> NoReturn:
        raise ObjectChangedError(errno.EAGAIN, f"replaced while being read ({detail})", self._url)

    def _bounds(self, length: int) -> tuple[float, float]:
        """(the headers' deadline, the whole GET's deadline) for a GET of `length` bytes."""
        bound = self._store._request_bound()
        return bound, 2 * bound + length / MIN_BYTES_PER_SECOND

    def _fetch(self, start: int, length: int) -> bytes:
        """Bytes [start, start + length) of the pinned version (the first call pins it)."""
        try:
            with _read_errors(self._url):
                body, total, etag, version = self._get(start, length)
        except _EmptyObject:
            self._size_known()  # an empty object has no first byte to ask for
            return b""
        if total is None:  # the whole object (the store ignored the Range header)
            total, body = len(body), body[start: start + length]
        self._learn(total, etag, version)
        return bytes(body)

    def readinto(self, buffer: Any) -> int:
        if not len(buffer) or (self._size is not None and self._pos >= self._size):
            return 0
        if not self._block_start <= self._pos < self._block_start + len(self._block):
            self._block = self._fetch(self._pos, READ_BLOCKSIZE)
            self._block_start = self._pos
            if not self._block:
                if self._pos >= self._size_known():
                    return 0
                raise EOFError(f"{self._url} ended at byte {self._pos} of {self._size}")
        offset = self._pos - self._block_start
        chunk = memoryview(self._block)[offset: offset + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            base = self._size_known()
        else:
            base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


class _EmptyObject(Exception):
    """A ranged GET of an empty object (HTTP 416): there is no first byte to ask for."""


def _first(info: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        if info.get(key) is not None:
            return str(info[key])
    return None


class _S3RangeFile(_PinnedRangeFile):
    """S3: later GETs carry `VersionId` on a versioned bucket (the old version stays readable),
    else `If-Match` with the ETag."""

    def __init__(self, store: FsspecStore, full: str, url: str) -> None:
        super().__init__(store, full, url)
        self._bucket, self._key, version = store.fs.split_path(full)
        self._version = version or None  # a version in the URL (?versionId=) pins from the start

    def _get(self, start: int, length: int) -> tuple[bytes, int | None, str | None, str | None]:
        store = self._store
        bound, whole = self._bounds(length)
        pin = ({"VersionId": self._version} if self._version
               else {"IfMatch": self._etag} if self._etag else {})
        kwargs = {"Bucket": self._bucket, "Key": self._key, "Range": f"bytes={start}-{start + length - 1}",
                  **pin}

        async def get() -> tuple[dict[str, Any], bytes]:
            # Two deadlines: the answer's headers within the request bound, then its body at
            # MIN_BYTES_PER_SECOND of the length it announced (not of the block asked for: the
            # first GET asks for 16 MiB of an object that is usually far smaller).
            resp = await asyncio.wait_for(store.fs._call_s3("get_object", **kwargs), bound)
            try:
                size = int(resp.get("ContentLength") or length)
                return resp, await asyncio.wait_for(resp["Body"].read(), bound + size / MIN_BYTES_PER_SECOND)
            finally:
                resp["Body"].close()

        try:
            resp, body = fsspec.asyn.sync(store.fs.loop, get, timeout=whole)
        except OSError as e:
            code = _s3_error_code(e)
            if code in {"PreconditionFailed", "412", "NoSuchVersion"} and self._size is not None:
                self._changed(f"the store answered {code}")  # raised as is: it names the URL
            if code in {"InvalidRange", "416"} and self._size is None:
                raise _EmptyObject from e
            raise
        return body, _total_size(resp.get("ContentRange")), resp.get("ETag"), resp.get("VersionId")


class _GcsRangeFile(_PinnedRangeFile):
    """GCS: later GETs ask for the first answer's generation (`?generation=`); once the object is
    replaced that generation is gone (404), unless the bucket keeps versions, when it still reads.
    gcsfs' `_call` is used for the response headers its `cat_file` drops."""

    def _get(self, start: int, length: int) -> tuple[bytes, int | None, str | None, str | None]:
        fs = self._store.fs
        bound, whole = self._bounds(length)
        url = fs.url(self._full, generation=self._version) if self._version else fs.url(self._full)
        headers = {"Range": f"bytes={start}-{start + length - 1}"}

        async def get() -> tuple[Any, bytes]:
            answer: tuple[Any, bytes] = await asyncio.wait_for(
                fs._call("GET", url, headers=headers), bound + length / MIN_BYTES_PER_SECOND)
            return answer

        try:
            answer, body = fsspec.asyn.sync(fs.loop, get, timeout=whole)
        except FileNotFoundError:
            if self._size is not None:
                self._changed(f"generation {self._version} is gone")
            raise
        except Exception as e:
            if http_status(e) == 416 and self._size is None:
                raise _EmptyObject from e
            raise
        answer = {k.lower(): v for k, v in dict(answer).items()}
        return (body, _total_size(answer.get("content-range")), answer.get("etag"),
                answer.get("x-goog-generation"))


class _AzureRangeFile(_PinnedRangeFile):
    """Azure Blob: later GETs carry `If-Match` with the first answer's ETag (the SDK's
    `match_condition`); a replaced blob answers 412."""

    def _get(self, start: int, length: int) -> tuple[bytes, int | None, str | None, str | None]:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError

        fs = self._store.fs
        bound, whole = self._bounds(length)
        container, blob, version_id = fs.split_path(self._full)
        # A HEAD through adlfs may give the ETag without its quotes; If-Match needs them.
        etag = f'"{self._etag.strip(chr(34))}"' if self._etag else None
        pin: dict[str, Any] = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}

        async def get() -> tuple[bytes, int, str | None]:
            async with fs.service_client.get_blob_client(container=container, blob=blob) as client:
                stream = await asyncio.wait_for(client.download_blob(
                    offset=start, length=length, version_id=version_id, max_concurrency=1, **pin), bound)
                body = await asyncio.wait_for(stream.readall(), bound + length / MIN_BYTES_PER_SECOND)
                # properties.size is the range's; the blob's own is in Content-Range.
                total = _total_size(stream.properties.content_range) or int(stream.properties.size)
                return body, total, stream.properties.etag

        try:
            body, size, etag = fsspec.asyn.sync(fs.loop, get, timeout=whole)
        except ResourceModifiedError:
            if self._size is None:
                raise
            self._changed("the store answered 412")
        except Exception as e:
            if http_status(e) == 416 and self._size is None:
                raise _EmptyObject from e
            raise
        return body, size, etag, None


def _s3_error_code(error: BaseException) -> str | None:
    """The S3 error code (or HTTP status) behind an error s3fs translated, if any."""
    cause: BaseException | None = error
    while cause is not None:
        response = getattr(cause, "response", None)
        if isinstance(response, dict):
            code = (response.get("Error") or {}).get("Code")
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            return str(code or status)
        cause = cause.__cause__
    return None


def _total_size(content_range: str | None) -> int | None:
    """The object's size from a `Content-Range: bytes a-b/size` header (None when absent or `*`)."""
    if not content_range or "/" not in content_range:
        return None
    total = content_range.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


class _ReadFile(io.RawIOBase):
    """A file from the store whose I/O errors name the URL and keep their kind (timeout, refused)."""

    def __init__(self, f: Any, url: str) -> None:
        super().__init__()
        self._f = f
        self._url = url

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        with _read_errors(self._url):
            data: bytes = self._f.read(-1 if size is None else size)
            return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with _read_errors(self._url):
            return int(self._f.seek(offset, whence))

    def tell(self) -> int:
        return int(self._f.tell())

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._f.close()
        super().close()


# The readers that pin one version per cloud (by protocol family, see `clouds.family`).
_PINNED_READERS: dict[str, type[_PinnedRangeFile]] = {
    "s3": _S3RangeFile, "gs": _GcsRangeFile, "az": _AzureRangeFile,
}
