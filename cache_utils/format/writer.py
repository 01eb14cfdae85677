"""Writing the format: `MemberWriter`, the file `pickle.dump` writes into, and `data_fingerprint`,
the fingerprint a value would get, computed without writing it."""

from __future__ import annotations

import pickle
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

from isal import igzip_lib, isal_zlib

from . import layout
from .layout import PROTOCOL, SIGNATURE_LEN, TRAILER, end_member, fingerprint_of, member_header
from .threads import close_pool, finished, start_pool

Deflated = tuple[bytes, int, int]  # deflate stream and gzip trailer, CRC32, length


def byte_view(data: Any) -> memoryview:
    """What the pickler hands `write` (bytes, a memoryview of a frame, or a `PickleBuffer` of a
    large column) as a flat view of bytes, without a copy."""
    view = data.raw() if type(data) is pickle.PickleBuffer else memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _deflate(block: Any, level: int) -> Deflated:
    """(deflate stream and gzip trailer, CRC32, length) of one member's data. One ISA-L call, which
    releases the GIL: the worker needs it back once per member, while pickling holds it."""
    body = igzip_lib.compress(block, level, igzip_lib.COMP_GZIP_NO_HDR)
    crc, length = TRAILER.unpack_from(body, len(body) - TRAILER.size)
    return body, crc, length


class MemberWriter:
    """File-like sink for `pickle.dump`: cuts the pickle into MEMBER_SIZE blocks and deflates them
    on `threads` worker threads while pickling goes on, writing the members in order (with
    `threads=1`, in the calling thread, between two writes of the pickler).

    At most `threads` blocks are in flight, and one being filled, whatever the object's size. A
    block of a large buffer (a numpy or Arrow column) is deflated from the buffer itself, without
    a copy. An object smaller than one block is deflated in the calling thread: no thread is
    started. `mac`, when given, is updated with every byte written after the first member's
    header, which holds `signature` as its `CU` subfield (the caller writes the MAC into it at the
    end). `owner`, a `CO` payload, is recorded in the first member's header too. `finish` writes
    the end member and sets `fingerprint`.
    """

    def __init__(
        self, raw: IO[bytes], level: int, threads: int, mac: Any = None, signature: bytes | None = None,
        owner: bytes | None = None,
    ) -> None:
        if (mac is None) != (signature is None) or len(signature or bytes(SIGNATURE_LEN)) != SIGNATURE_LEN:
            raise ValueError(f"a MAC goes with a {SIGNATURE_LEN}-byte signature subfield, and back")
        self._raw = raw
        self._signature = signature
        self._owner = owner
        self._level = level
        self._threads = threads
        self._max_in_flight = threads
        self._member_size = layout.MEMBER_SIZE  # read here, not imported: tests make it small
        self._mac = mac
        self._pending = bytearray()
        self._jobs: deque[Future[Deflated]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._crc = 0
        self._length = 0
        self._members = 0
        self._data_bytes = 0
        self.fingerprint: str | None = None

    def write(self, data: Any) -> int:
        view = byte_view(data)
        n = view.nbytes
        pos = 0
        block_size = self._member_size
        if self._pending:  # pickle frames are small: gather them (copied: the caller may reuse them)
            pos = min(n, block_size - len(self._pending))
            self._pending += view[:pos]
            if len(self._pending) == block_size:
                self._submit(self._pending)
                self._pending = bytearray()
        while n - pos >= block_size:  # whole blocks of a large buffer: deflated in place
            self._submit(view[pos : pos + block_size])
            pos += block_size
        if pos < n:
            self._pending += view[pos:]
        return n

    def _submit(self, block: Any) -> None:
        if self._threads == 1:  # one thread: deflate here, between two pickle writes
            self._jobs.append(finished(_deflate, block, self._level))
        else:
            if self._pool is None:
                self._pool = start_pool(self._threads, "cache_utils-deflate")
            self._jobs.append(self._pool.submit(_deflate, block, self._level))
        self._drain(self._max_in_flight)

    def _drain(self, keep: int) -> None:
        """Write the finished members at the head of the queue, and wait for the oldest ones until
        at most `keep` are left in flight."""
        jobs = self._jobs
        while jobs and (len(jobs) > keep or jobs[0].done()):
            self._emit(*jobs.popleft().result())

    def _emit(self, body: bytes, crc: int, length: int) -> None:
        first = self._members == 0
        # The first member of a signed file holds the signature subfield, its MAC filled in later.
        signature = self._signature if first else None
        owner = self._owner if first else None
        if owner is None:
            size = (layout.MEMBER_HEADER_LEN if signature is None else layout.SIGNED_HEADER_LEN) + len(body)
        else:
            size = len(member_header(0, signature, owner)) + len(body)
        header = member_header(size, signature, owner)
        self._raw.write(header)
        self._raw.write(body)
        if self._mac is not None:
            if not first:
                self._mac.update(header)
            self._mac.update(body)
        self._crc = isal_zlib.crc32_combine(self._crc, crc, length)
        self._length += length
        self._members += 1
        self._data_bytes += size

    def finish(self) -> None:
        """Deflate what is left, write every member and the end member."""
        if self._pending or (self._members == 0 and not self._jobs):
            if self._pool is None:  # the whole pickle fits in one member: no thread needed
                self._jobs.append(finished(_deflate, self._pending, self._level))
            else:
                self._submit(self._pending)
            self._pending = bytearray()
        self._drain(0)
        end = end_member(self._members, self._length, self._crc, self._data_bytes, self._member_size)
        self._raw.write(end)
        if self._mac is not None:
            self._mac.update(end)
        self.fingerprint = fingerprint_of(self._crc, self._length)

    def close(self) -> None:
        """Stop the worker threads (after an error while pickling; a no-op after finish)."""
        if self._pool is not None:
            close_pool(self._pool)
            self._pool = None
        self._jobs.clear()


class _CrcSink:
    """A write-only file that keeps only the CRC32 and length of what is written to it."""

    def __init__(self) -> None:
        self.crc = 0
        self.size = 0

    def write(self, data: Any) -> int:
        view = byte_view(data)
        self.crc = isal_zlib.crc32(view, self.crc)
        self.size += view.nbytes
        return view.nbytes


def data_fingerprint(data: Any) -> str:
    """The content fingerprint `write_cache` records for `data`, without writing a file: one
    pickling pass into a CRC32 (nothing compressed), so a caller can know a value's fingerprint
    before it is saved. Raises what pickling raises.

    Args:
        data: The value to fingerprint; anything picklable.

    Returns:
        16 hex digits: the CRC32 and the length (mod 2**32) of the pickle.
    """
    sink = _CrcSink()
    pickle.dump(data, sink, protocol=PROTOCOL)
    return fingerprint_of(sink.crc, sink.size)
