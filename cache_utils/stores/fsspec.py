"""Cache files on object stores and other fsspec file systems (s3://, gs://, memory://, ...)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
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

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: spools are swept by age only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("cache_utils")

S3_PROTOCOLS = frozenset({"s3", "s3a"})
# Flat object stores (s3fs, gcsfs, adlfs' blob store): no directories, a missing "directory" is
# just an empty listing, and listings take a key prefix.
OBJECT_STORE_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az"})
# botocore settings: every request fails within about
# max_attempts * (connect_timeout or read_timeout) + backoff, instead of hanging.
DEFAULT_S3_CONFIG: dict[str, Any] = {
    "connect_timeout": 5,
    "read_timeout": 20,
    "retries": {"max_attempts": 3, "mode": "standard"},
}
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
})


def effective_options(protocol: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """The user's storage options plus this library's defaults (timeouts, no listing cache) for S3."""
    opts = copy.deepcopy(dict(storage_options or {}))
    if protocol in S3_PROTOCOLS:
        # A long-lived process must see files other processes write: never answer from a stale listing.
        opts.setdefault("use_listings_cache", False)
        config = copy.deepcopy(DEFAULT_S3_CONFIG)
        config.update(opts.get("config_kwargs") or {})
        opts["config_kwargs"] = config
    return opts


def _names(error: BaseException) -> set[str]:
    return {c.__name__ for c in type(error).__mro__}


def raise_store_error(error: BaseException, url: str, action: str) -> NoReturn:
    """Re-raise a store failure as the matching OSError subclass, with the URL in the message."""
    names = _names(error)
    detail = f"{type(error).__name__}: {error}"
    if isinstance(error, FileNotFoundError):
        raise FileNotFoundError(errno.ENOENT, f"{action}: not found: {url} ({detail})", url) from error
    if isinstance(error, PermissionError) or names & CREDENTIAL_ERRORS:
        raise PermissionError(
            errno.EACCES, f"{action}: access denied to {url}; check the credentials ({detail})", url
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

    # The rate in a transfer's deadline (see MIN_BYTES_PER_SECOND), read at each transfer: set it on
    # a store, or on the class, for a link slower than 1 MiB/s (tests set it to prove the deadline).
    min_bytes_per_second: float = MIN_BYTES_PER_SECOND

    def __init__(
        self, url: str, storage_options: dict[str, Any] | None = None, file_mode: int | None = None
    ) -> None:
        self.directory = url
        # file_mode has no meaning on object stores: access is the bucket's policy.
        self.file_mode = file_mode
        # Chained URLs (simplecache::s3://...) nest options per protocol: left exactly as given.
        protocol = "" if "::" in url else url.split("://", 1)[0].lower()
        self.options = effective_options(protocol, storage_options)
        with _store_errors(url, "cannot open the store"):
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
        self._deadline: dict[str, float] = {"timeout": self._request_bound()} if self._s3 else {}
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
        return [Entry(name, int(info.get("size") or 0), _mtime(info)) for full, info in found.items()
                if info.get("type") == "file" and (name := self._base(full)) is not None]

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
            if self._s3:  # no request yet: the first read asks for the first block (see _S3RangeFile)
                return io.BufferedReader(_S3RangeFile(self, self._full(name), url), buffer_size=1 << 20)
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
        if not self._s3:
            self.fs.put_file(local, remote)
            return
        kwargs: dict[str, Any] = {}
        if _accepts(self.fs.put_file, "chunksize"):  # unknown keywords would reach botocore
            kwargs["chunksize"] = UPLOAD_CHUNKSIZE
        if _accepts(self.fs.put_file, "max_concurrency"):
            kwargs["max_concurrency"] = UPLOAD_CONCURRENCY
        _bound_s3_uploads(self.fs)
        # aiohttp has no write timeout: a peer that stops reading mid-body stalls the upload with
        # no request timeout armed. So the whole upload gets a deadline from the configured
        # timeouts plus the time its bytes take at MIN_BYTES_PER_SECOND.
        deadline = self._request_bound() + os.path.getsize(local) / self.min_bytes_per_second
        try:
            fsspec.asyn.sync(self.fs.loop, asyncio.wait_for, self.fs._put_file(local, remote, **kwargs),
                             deadline)
        except TimeoutError as e:
            self._abort_uploads(remote)  # s3fs aborts on errors, not on cancellation
            raise TimeoutError(
                errno.ETIMEDOUT, f"the upload did not finish within {deadline:.0f} s", remote
            ) from e

    def _request_bound(self) -> float:
        """Seconds one request may take at most, all attempts included (botocore's settings)."""
        config = self.options.get("config_kwargs") or {}
        attempts = (config.get("retries") or {}).get("max_attempts", 1) or 1
        return attempts * (float(config.get("connect_timeout", 60)) + float(config.get("read_timeout", 60)))

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


class _S3RangeFile(io.RawIOBase):
    """An S3 object read by GETs of READ_BLOCKSIZE, all of one version of the object.

    The first GET asks for the first block and learns the object's size, ETag and version id from
    the answer: an object up to READ_BLOCKSIZE costs that one request (no HEAD). Every later GET
    is pinned to that version: `VersionId` on a versioned bucket (the old version stays readable),
    else `If-Match` with the ETag. A writer replacing the object between two GETs makes the next
    one fail (412, or an answer for another version), raised as ObjectChangedError so that the
    whole read starts again (`read_one_version`); never a mix of two versions. Each GET has
    deadlines (its answer's headers within the request bound, its body within the bound plus the
    announced length at MIN_BYTES_PER_SECOND): a store that trickles its answer byte by byte
    cannot hold a read forever; s3fs' own file object has no such bound."""

    def __init__(self, store: FsspecStore, full: str, url: str) -> None:
        super().__init__()
        self._store, self._full, self._url = store, full, url
        self._bucket, self._key, version = store.fs.split_path(full)
        self._size: int | None = None
        self._etag: str | None = None
        # A version in the URL (?versionId=) pins every request from the start.
        self._pin: dict[str, str] = {"VersionId": version} if version else {}
        self._pos = 0
        self._block = b""
        self._block_start = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _size_known(self) -> int:
        """The object's size; a HEAD (which pins the version too) when no GET has told it yet."""
        if self._size is None:
            with _read_errors(self._url):
                info = self._store.fs.info(self._full, **self._store._deadline)
            self._learn(int(info["size"]), info.get("ETag"), info.get("VersionId"))
        assert self._size is not None
        return self._size

    def _learn(self, size: int, etag: str | None, version: str | None) -> None:
        """Pin this read to the version the store described, or check it is still the pinned one."""
        if self._size is None:
            self._size, self._etag = size, etag
            if not self._pin:
                if version and version != "null":
                    self._pin = {"VersionId": version}
                elif etag:
                    self._pin = {"IfMatch": etag}
            return
        if size != self._size or (etag and self._etag and etag != self._etag):
            self._changed(f"now {size} bytes, ETag {etag}; was {self._size} bytes, ETag {self._etag}")

    def _changed(self, detail: str) -> NoReturn:
        raise ObjectChangedError(errno.EAGAIN, f"replaced while being read ({detail})", self._url)

    def _fetch(self, start: int, length: int) -> bytes:
        """Bytes [start, start + length) of the pinned version (the first call pins it)."""
        store = self._store
        bound = store._request_bound()
        kwargs = {"Bucket": self._bucket, "Key": self._key, "Range": f"bytes={start}-{start + length - 1}",
                  **self._pin}

        async def get() -> tuple[dict[str, Any], bytes]:
            # Two deadlines: the answer's headers within the request bound, then its body at
            # MIN_BYTES_PER_SECOND of the length it announced (not of the block asked for: the
            # first GET asks for 16 MiB of an object that is usually far smaller).
            resp = await asyncio.wait_for(store.fs._call_s3("get_object", **kwargs), bound)
            try:
                size = int(resp.get("ContentLength") or length)
                return resp, await asyncio.wait_for(resp["Body"].read(),
                                                    bound + size / store.min_bytes_per_second)
            finally:
                resp["Body"].close()

        with _read_errors(self._url):
            try:
                resp, body = fsspec.asyn.sync(store.fs.loop, get,
                                              timeout=2 * bound + length / store.min_bytes_per_second)
            except OSError as e:
                code = _s3_error_code(e)
                if code in {"PreconditionFailed", "412", "NoSuchVersion"} and self._size is not None:
                    self._changed(f"the store answered {code}")  # raised as is: it names the URL
                if code in {"InvalidRange", "416"} and self._size is None:
                    self._size_known()  # an empty object has no first byte to ask for
                    return b""
                raise
        total = _total_size(resp.get("ContentRange"))
        if total is None:  # the whole object (the store ignored the Range header)
            total, body = len(body), body[start: start + length]
        self._learn(total, resp.get("ETag"), resp.get("VersionId"))
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
