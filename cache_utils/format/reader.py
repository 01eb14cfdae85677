"""Reading the format: `MemberReader`, the file `pickle.load` reads from, walking the members
without inflating them (`member_chunks`, for the signature check), a file's end and length
(`read_end`), and `open_reader`, which picks the reader for a multi-member or an older
single-member file."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, Protocol

from isal import igzip, igzip_lib, igzip_threaded, isal_zlib

from .layout import (
    END_LEN,
    END_REST,
    FIXED_HEADER,
    HEAD_BYTES,
    MAX_MEMBER,
    TRAILER,
    Index,
    is_multimember,
    member_size,
    parse_index,
)
from .threads import READ_AHEAD, close_pool, finished, start_pool

# A single-member (older) file with fewer compressed bytes than this is read without a helper
# thread; larger ones inflate on ISA-L's threaded reader, _READ_BLOCK at a time.
THREADED_READ_MIN = 4 << 20
_READ_BLOCK = 4 << 20
CHUNK = 1 << 20  # bytes at a time when a file is streamed through (signature check, verify)

Inflated = tuple[bytes, int, int]  # data, CRC32, length


class Readable(Protocol):
    """What `read_exactly` reads from: a binary file, or anything with its `read`."""

    def read(self, size: int, /) -> bytes: ...


def read_exactly(raw: Readable, size: int) -> bytes:
    """Up to `size` bytes (fewer only at the end of the file), whatever the reader's chunking."""
    parts, got = [], 0
    while got < size:
        chunk = raw.read(size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def next_header(raw: Readable, read: int) -> tuple[bytes, int | None]:
    """The next member's header, read from `raw` after `read` data members, and the member's whole
    size (None for the end member). ValueError or EOFError when it is not a header this format
    writes, or its size is out of bounds (see `layout.member_size`)."""
    head = read_exactly(raw, 12)
    if len(head) < 12:
        raise EOFError("Compressed file ended before the end member (truncated file)")
    # Another header is refused (by member_size) before anything more is read.
    xlen = int.from_bytes(head[10:12], "little") if head[:10] == FIXED_HEADER else 0
    extra = read_exactly(raw, xlen)
    if len(extra) < xlen:
        raise EOFError("Compressed file ended inside a gzip header (truncated file)")
    header = head + extra
    return header, member_size(header, read)


def _inflate(body: bytes) -> Inflated:
    """Inflate one member's deflate stream and check its trailer: (data, CRC32, length)."""
    crc, isize = TRAILER.unpack_from(body, len(body) - TRAILER.size)
    if isize > MAX_MEMBER:
        raise ValueError(f"gzip member claims {isize} bytes, more than the {MAX_MEMBER} allowed")
    # One call that inflates and checks the trailer (CRC32, length): the worker needs the GIL once.
    inflater = igzip_lib.IgzipDecompressor(flag=igzip_lib.DECOMP_GZIP_NO_HDR_VER)
    data = inflater.decompress(body, max(isize, 1))
    if not inflater.eof or inflater.unused_data:
        raise ValueError("gzip member damaged: its deflate stream does not end where its size says")
    if len(data) != isize:
        raise ValueError(f"gzip member damaged: {len(data)} bytes inflated, its trailer says {isize}")
    return data, crc, isize


class MemberReader:
    """File-like source for `pickle.load` over a multi-member file (see `layout`).

    Reading, in the calling thread, walks the members by their sizes; up to `threads + 1` are
    inflated at once on worker threads (with `threads=1`, or for a file of one member, each is
    inflated in the calling thread when needed), and `read`/`readinto` hand their bytes out in
    order. Every member's CRC and length are checked; when the last one has been read, the end
    member's totals (members, length, whole CRC32, bytes, member size) are checked and nothing may
    follow it. Damage raises ValueError, EOFError or isal's IsalError.

    `read`, `readinto` and `readline` are written here rather than inherited from `io.RawIOBase`
    under an `io.BufferedReader`: the data is already in memory, one inflated member at a time,
    and the unpickler calls `read` once per opcode. Here `read(n)` is a slice of the current
    member (the member itself, uncopied, when the unpickler asks for all of it), and `readinto`
    fills the object the unpickler allocates for a large `bytes` or `bytearray` argument (a
    column's data) straight from the members: one copy. `RawIOBase.read` would allocate a buffer,
    fill it and copy it again on every call, and a `BufferedReader` would copy each member once
    more into its own buffer.
    """

    def __init__(self, raw: IO[bytes], threads: int) -> None:
        self._raw = raw
        self._threads = threads
        # One thread: each member is inflated in the calling thread when it is needed.
        self._max_in_flight = 1 if threads == 1 else threads + READ_AHEAD
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: deque[Future[Inflated]] = deque()
        self._held: bytes | None = None  # the first member, until we know whether a second follows
        self._block: bytes = b""
        self._view = memoryview(b"")
        self._offset = 0
        self._read_members = 0
        self._all_read = False
        self._index: Index | None = None
        self._data_bytes = 0
        self._crc = 0
        self._length = 0
        self._members = 0
        self._largest = 0
        self._last = 0
        self._finished = False

    # -- file-like ------------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._view[self._offset :].tobytes()]
            while self._next_block():
                parts.append(self._block)
            self._offset = len(self._block)
            return b"".join(parts)
        avail = len(self._block) - self._offset
        if size <= avail:
            if size == len(self._block) and self._offset == 0:
                chunk = self._block
            else:
                chunk = self._block[self._offset : self._offset + size]
            self._offset += size
            return chunk
        parts = [self._block[self._offset :]] if avail else []
        need = size - avail
        self._offset = len(self._block)
        while need and self._next_block():
            take = min(need, len(self._block))
            parts.append(self._block if take == len(self._block) else self._block[:take])
            self._offset = take
            need -= take
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        total, wanted = 0, target.nbytes
        while total < wanted:
            avail = len(self._block) - self._offset
            if not avail:
                if not self._next_block():
                    break
                continue
            take = min(avail, wanted - total)
            target[total : total + take] = self._view[self._offset : self._offset + take]
            self._offset += take
            total += take
        return total

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        parts: list[bytes] = []
        got = 0
        while limit < 0 or got < limit:
            if self._offset >= len(self._block) and not self._next_block():
                break
            end = self._block.find(b"\n", self._offset)
            stop = len(self._block) if end < 0 else end + 1
            if limit >= 0:
                stop = min(stop, self._offset + limit - got)
            parts.append(self._block[self._offset : stop])
            got += stop - self._offset
            self._offset = stop
            if parts[-1].endswith(b"\n"):
                break
        return b"".join(parts)

    def skip_to_end(self) -> None:
        """Inflate and check every remaining member and the end member, keeping nothing."""
        while self._next_block():
            pass
        self._offset = len(self._block)

    def close(self) -> None:
        if self._pool is not None:
            close_pool(self._pool)
            self._pool = None
        self._jobs.clear()
        self._held = None

    def __enter__(self) -> MemberReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- members --------------------------------------------------------------------------------

    def _next_block(self) -> bool:
        self._schedule()
        if not self._jobs:
            self._finish()
            self._block, self._view, self._offset = b"", memoryview(b""), 0
            return False
        data, crc, length = self._jobs.popleft().result()
        if self._pool is not None:
            self._schedule()  # keep the workers busy while the caller consumes this block
        self._crc = isal_zlib.crc32_combine(self._crc, crc, length)
        self._length += length
        self._members += 1
        self._largest = max(self._largest, length)
        self._last = length
        self._block, self._view, self._offset = data, memoryview(data), 0
        return True

    def _schedule(self) -> None:
        while not self._all_read and len(self._jobs) < self._max_in_flight:
            body = self._read_member()
            if body is None:
                break
            if self._threads == 1:
                self._jobs.append(finished(_inflate, body))
                continue
            if self._pool is None:
                if self._held is None:
                    self._held = body
                    continue
                self._pool = start_pool(self._threads, "cache_utils-inflate")
                self._jobs.append(self._pool.submit(_inflate, self._held))
                self._held = None
            self._jobs.append(self._pool.submit(_inflate, body))
        if self._all_read and self._held is not None:  # one member only: inflate it here
            self._jobs.append(finished(_inflate, self._held))
            self._held = None

    def _read_member(self) -> bytes | None:
        """The next data member's deflate stream and trailer; None (after checking it) at the end
        member."""
        header, size = next_header(self._raw, self._read_members)
        if size is None:
            self._index = parse_index(header, read_exactly(self._raw, len(END_REST)))
            if self._raw.read(1):
                raise ValueError("data after the end member")
            self._all_read = True
            return None
        header_len = len(header)
        body = read_exactly(self._raw, size - header_len)
        if len(body) < size - header_len:
            raise EOFError("Compressed file ended inside a gzip member (truncated file)")
        self._read_members += 1
        self._data_bytes += size
        return body

    def _finish(self) -> None:
        if self._finished:
            return
        assert self._index is not None
        _, member_bytes, members, length, crc, data_bytes = self._index
        if (members, length, crc, data_bytes) != (self._members, self._length, self._crc,
                                                  self._data_bytes):
            raise ValueError("the members do not match the index of the end member")
        if members and (self._largest > member_bytes or length != (members - 1) * member_bytes + self._last):
            raise ValueError("the members' lengths do not match the member size of the end member")
        self._finished = True


class _Prefixed:
    """`raw`, with `first` (bytes already read from it) served before it."""

    def __init__(self, first: bytes, raw: IO[bytes]) -> None:
        self._first = memoryview(first)
        self._raw = raw

    def read(self, size: int) -> bytes:
        if not self._first:
            return read_exactly(self._raw, size)
        taken = self._first[:size].tobytes()
        self._first = self._first[size:]
        return taken if len(taken) == size else taken + read_exactly(self._raw, size - len(taken))


def member_chunks(raw: IO[bytes], head: bytes, chunk: int) -> Iterator[bytes]:
    """The bytes of a multi-member file after its first member's header, in pieces of at most
    `chunk` bytes, walked member by member: `head` is the file's first bytes (read already), `raw`
    the rest. A header missing where the previous member's size puts it, an impossible size, or a
    byte after the end member raises ValueError (EOFError when the file ends early) as soon as it
    is reached, so a file holed or padded with zeros is refused after at most one member
    (MAX_MEMBER), never read to its end. Nothing is inflated."""
    source = _Prefixed(head, raw)
    members = 0
    while True:
        header, size = next_header(source, members)
        if size is None:
            rest = source.read(len(END_REST))
            parse_index(header, rest)
            if source.read(1):
                raise ValueError("data after the end member")
            yield header + rest
            return
        if members:
            yield header
        members += 1
        left = size - len(header)
        while left:
            piece = source.read(min(left, chunk))
            if not piece:
                raise EOFError("Compressed file ended inside a gzip member (truncated file)")
            yield piece
            left -= len(piece)


def read_end(raw: IO[bytes], start: int) -> tuple[int, bytes]:
    """The length of the file starting at `start` in `raw`, and its last END_LEN bytes (fewer when
    it is shorter): one small read, after which the position is back at `start`."""
    size = raw.seek(0, os.SEEK_END) - start
    raw.seek(start + max(0, size - END_LEN))
    tail = read_exactly(raw, END_LEN)
    raw.seek(start)
    return size, tail


def open_reader(fileobj: IO[bytes], threads: int) -> Any:
    """A reader of the decompressed stream: a multi-member file inflates on `threads` threads
    (`MemberReader`); an older single-member file on ISA-L's reader (with a thread when large)."""
    here = fileobj.tell()
    head = read_exactly(fileobj, HEAD_BYTES)
    fileobj.seek(here)
    if is_multimember(head):
        return MemberReader(fileobj, threads)
    try:
        remaining = fileobj.seek(0, os.SEEK_END) - here
        fileobj.seek(here)
    except (AttributeError, OSError, ValueError):
        remaining = 0
    if remaining < THREADED_READ_MIN:
        return igzip.IGzipFile(fileobj=fileobj, mode="rb")  # type: ignore[no-untyped-call]
    return igzip_threaded.open(fileobj, "rb", threads=1, block_size=_READ_BLOCK)  # type: ignore[no-untyped-call]
