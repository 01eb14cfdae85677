"""Object reads pinned to one version, per cloud: a read sees one whole version of an object even
while a writer replaces it (S3 `VersionId`/`If-Match`, GCS generations, Azure `If-Match`), one GET
for an object up to READ_BLOCKSIZE, every GET bounded in time. `FsspecStore.open_read` picks the
reader by protocol family (`READERS`)."""

from __future__ import annotations

import asyncio
import errno
import io
from typing import Any, NoReturn

import fsspec.asyn

from .base import ObjectChangedError
from .clouds import http_status
from .errors import read_errors

# Reads fetch blocks of this size (s3fs' default is 50 MiB). It is also the single-GET threshold:
# an object up to this size is read in one GET, which is one version of it; larger ones in GETs of
# this size pinned to the first one's version. 16 MiB: a daily cache file is usually smaller (one
# round trip, no HEAD), and one block is what a read holds in memory anyway.
READ_BLOCKSIZE = 16 * 2**20


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

    def __init__(self, store: Any, full: str, url: str) -> None:
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
        with read_errors(self._url):
            info = self._store.fs.info(self._full, **self._store.deadline)
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
        bound = self._store.request_bound()
        return bound, 2 * bound + length / self._store.min_bytes_per_second

    def _fetch(self, start: int, length: int) -> bytes:
        """Bytes [start, start + length) of the pinned version (the first call pins it)."""
        try:
            with read_errors(self._url):
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

    def __init__(self, store: Any, full: str, url: str) -> None:
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
                body_bound = bound + size / store.min_bytes_per_second
                return resp, await asyncio.wait_for(resp["Body"].read(), body_bound)
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
                fs._call("GET", url, headers=headers), bound + length / self._store.min_bytes_per_second)
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
                rate = self._store.min_bytes_per_second
                body = await asyncio.wait_for(stream.readall(), bound + length / rate)
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



# The readers that pin one version per cloud (by protocol family, see `clouds.family`).
READERS: dict[str, type[_PinnedRangeFile]] = {
    "s3": _S3RangeFile, "gs": _GcsRangeFile, "az": _AzureRangeFile,
}
