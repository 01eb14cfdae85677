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
from typing import IO, Any

import fsspec  # the package: absolute imports never resolve to this module
import fsspec.asyn
import fsspec.core
from fsspec.implementations.cached import CachingFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from ..naming import join, matching_stamps
from .base import STALE_TEMP_SECONDS, Entry
from .clouds import (
    DEFAULT_S3_CONFIG,
    OBJECT_STORE_PROTOCOLS,
    S3_PROTOCOLS,
    effective_options,
    family,
    gcs_filesystem,
    request_bound,
)
from .errors import read_errors, store_errors
from .pinned import READ_BLOCKSIZE, READERS

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
SPOOL_PREFIX = "cache_utils-spool-"  # spool files of saves to URLs, in the local temp dir
SPOOL_SUFFIX = ".tmp"
# A spool untouched this long, and not locked, belongs to a writer that died; saves look for such
# spools at most once per SPOOL_SWEEP_INTERVAL seconds per process.
SPOOL_GRACE_SECONDS = 60.0
SPOOL_SWEEP_INTERVAL = 60.0

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
    # a store, or on the class, for a link slower than 1 MiB/s.
    min_bytes_per_second: float = MIN_BYTES_PER_SECOND

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.directory = url
        # Chained URLs (simplecache::s3://...) nest options per protocol: left exactly as given.
        protocol = "" if "::" in url else url.split("://", 1)[0].lower()
        self.options = effective_options(protocol, storage_options)
        with store_errors(url, "cannot open the store"):
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
        self.deadline: dict[str, float] = (  # fsspec sync calls: `timeout=` bounds a whole call
            {"timeout": self.request_bound()} if family(protocol) and self.fs.async_impl else {})
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
        found = self.fs.find(self.root, maxdepth=1, prefix=prefix, detail=True, **self.deadline)
        entries = [Entry(name, int(info.get("size") or 0), _mtime(info)) for full, info in found.items()
                   if info.get("type") == "file" and (name := self._base(full)) is not None]
        if not entries and not self._s3:  # gcsfs and adlfs list a missing bucket as empty
            self._check_container()
        return entries

    def prefix_entries(self, start: str) -> list[Entry]:
        """Files whose names start with `start`, without listing the rest of the directory."""
        try:
            with store_errors(self.directory, f"cannot list {start}*"):
                return self._list_prefix(start)
        except FileNotFoundError:
            if self._object_store:  # a prefix listing finds nothing rather than failing: no bucket
                raise
            return []

    def _ls(self) -> list[Entry]:
        self.fs.invalidate_cache(self.root)
        try:
            infos = self.fs.ls(self.root, detail=True, **self.deadline)
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
            self.fs.info(bucket, **self.deadline)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                errno.ENOENT, f"no such bucket {bucket!r} for {self.directory} ({e})", self.directory
            ) from e

    def stamps(self, prefix: str, on_or_before: str | None = None) -> list[str]:
        """Stamps of objects named exactly `<prefix>_<YYYYMMDD>.pkl.gz`, newest first."""
        names = (e.name for e in self.prefix_entries(prefix + "_"))
        return matching_stamps(names, prefix, on_or_before)

    def entries(self) -> Iterator[Entry]:
        with store_errors(self.directory, "cannot list caches"):
            found = self._ls()
        yield from found

    def exists(self, name: str) -> bool:
        with store_errors(self.path(name), "cannot check"):
            try:
                return bool(self.fs.info(self._full(name), **self.deadline).get("type") == "file")
            except FileNotFoundError:
                return False

    def open_read(self, name: str) -> IO[bytes]:
        url = self.path(name)
        with store_errors(url, "cannot open"):
            if self._in_memory:  # memory:// hands every reader the same file object; copy it
                return io.BytesIO(self.fs.cat_file(self._full(name)))
            if not self._object_store and self.fs.isdir(self._full(name)):
                raise IsADirectoryError(errno.EISDIR, "is a directory", url)
            pinned = READERS.get(family(self._protocol)) if self._object_store else None
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
                with store_errors(url, "cannot write"):
                    self.fs.pipe_file(self._full(name), f.read())
            else:
                with store_errors(url, "cannot write"):
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
        deadline = self.request_bound() + os.path.getsize(local) / self.min_bytes_per_second
        try:
            fsspec.asyn.sync(self.fs.loop, asyncio.wait_for, self.fs._put_file(local, remote, **kwargs),
                             deadline)
        except TimeoutError as e:
            if self._s3:
                self._abort_uploads(remote)  # s3fs aborts on errors, not on cancellation
            raise TimeoutError(
                errno.ETIMEDOUT, f"the upload did not finish within {deadline:.0f} s", remote
            ) from e

    def request_bound(self) -> float:
        """Seconds one request may take at most, all attempts included (the cloud's settings)."""
        return request_bound(self._protocol, self.options)

    def _abort_uploads(self, remote: str) -> None:
        """Abort the open multipart uploads of `remote`, best effort (each call bounded by the
        timeouts). A writer of the same object at the same moment would see its save fail."""
        bucket, key, _ = self.fs.split_path(remote)
        bound = self.request_bound()

        def call(method: str, **kwargs: Any) -> Any:  # each call bounded: the store may trickle
            return fsspec.asyn.sync(self.fs.loop, asyncio.wait_for, self.fs._call_s3(method, **kwargs), bound)

        with contextlib.suppress(Exception):
            listing = call("list_multipart_uploads", Bucket=bucket, Prefix=key)
            for upload in listing.get("Uploads", []):
                if upload["Key"] == key:
                    call("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload["UploadId"])

    def remove(self, name: str) -> None:
        with store_errors(self.path(name), "cannot delete"):
            self.fs.rm_file(self._full(name), **self.deadline)

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
        with read_errors(self._url):
            data: bytes = self._f.read(-1 if size is None else size)
            return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with read_errors(self._url):
            return int(self._f.seek(offset, whence))

    def tell(self) -> int:
        return int(self._f.tell())

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._f.close()
        super().close()
