"""Multi-member gzip: a pickle cut into fixed-size gzip members, deflated and inflated on threads.

A single deflate stream can only be inflated in order, on one core. A file made of independent
gzip members (RFC 1952 allows any number, and every gzip reader concatenates them) can be
deflated and inflated a member per thread. Layout, all integers little-endian:

    data members    one gzip member per MEMBER_SIZE bytes of the pickle (the last one may be
                    shorter; the cut does not depend on the thread count, so the same pickle always
                    gives the same bytes). Header: FLG = FEXTRA, MTIME 0, XFL 0, OS 255, and an extra
                    field holding subfield `CM` (4 bytes: the member's whole size, from its first
                    header byte to the end of its trailer, as BGZF's `BC`). In a signed file the first
                    member's extra field holds the signature subfield `CU` first, then `CM`.
                    When the writer names an owner (who wrote the file: a Dagster asset and
                    partition, say), the first member's extra field holds subfield `CO` before
                    `CM` (after `CU` when signed): version (1), owner MAC (32 bytes: in a signed
                    file HMAC-SHA256 of the owner bound to the file's name and `CU` signature,
                    see `cache_utils.serialization`; zeros otherwise), then the owner as UTF-8
                    (1 to MAX_OWNER bytes). A file without `CO` has no recorded owner.
    end member      an empty gzip member (deflate `03 00`, CRC 0, ISIZE 0: any gzip reader reads
                    nothing from it) whose extra field holds subfield `CI` (33 bytes): version (1),
                    member size (u32), number of data members (u32), length of the whole pickle (u64),
                    CRC32 of the whole pickle (u32), bytes of the data members (u64), CRC32 of these
                    29 bytes (u32). It has a fixed size (END_LEN), so the content fingerprint is read
                    from the file's last END_LEN bytes.

Readers that do not know the subfields skip them (gzip, `pandas.read_pickle`, Python's gzip). Our
reader walks the members by their `CM` sizes, inflates up to `threads + 1` of them at once, hands
the inflated bytes to the unpickler in order, checks every member's CRC and length, and at the end
checks the `CI` totals and that nothing follows: memory stays bounded by the members in flight.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import struct
import threading
from collections import deque
from collections.abc import Iterator
from typing import IO, Any, Protocol

from isal import igzip_lib, isal_zlib

from ._numbers import is_whole

log = logging.getLogger("cache_utils")

MEMBER_SIZE = 2 << 20  # bytes of pickle per data member (recorded in the index; fixed for a version)
MAX_MEMBER = 64 << 20  # reader limit: larger members (compressed or inflated) are refused as damaged
# Members in flight: writing, one per thread (a block being deflated holds its data and ISA-L's
# output: the bound that matters); reading, one per thread and one more, inflated ahead.
READ_AHEAD = 1
MAX_THREADS = 64
DEFAULT_MAX_THREADS = 8  # the default thread count: the usable cores, at most this many
THREADS_ENV = "CACHE_UTILS_THREADS"

MAGIC = b"\x1f\x8b\x08"
FEXTRA = 4
# ID1 ID2 CM FLG(FEXTRA) MTIME(0: reproducible) XFL(0) OS(255: unknown)
FIXED_HEADER = MAGIC + bytes([FEXTRA]) + b"\0\0\0\0" + b"\0\xff"
MEMBER_ID = b"CM"
INDEX_ID = b"CI"
SIGNATURE_ID = b"CU"
OWNER_ID = b"CO"
OWNER_VERSION = 1
OWNER_MAC_LEN = 32
MAX_OWNER = 1024  # bytes of UTF-8 in an owner record
SIGNATURE_LEN = 1 + 32  # version byte and HMAC-SHA256 (cache_utils.serialization)
SIGNATURE_OFFSET = len(FIXED_HEADER) + 2 + 4 + 1  # of the MAC in a signed file: after XLEN, id, len, version
INDEX_VERSION = 1
_INDEX = struct.Struct("<BIIQIQ")  # version, member size, members, length, CRC32, data bytes
_INDEX_LEN = _INDEX.size + 4  # and the CRC32 of those bytes
_EMPTY_DEFLATE = b"\x03\x00"  # a final, empty, fixed-Huffman deflate block
END_LEN = len(FIXED_HEADER) + 2 + 4 + _INDEX_LEN + len(_EMPTY_DEFLATE) + 8
_TRAILER = struct.Struct("<II")  # CRC32, ISIZE
_SIZE_FIELD = struct.Struct("<2sHI")  # subfield id, length (4), member size


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask), else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        count = getattr(os, "process_cpu_count", os.cpu_count)()
        return max(1, count or 1)


def check_threads(threads: object) -> int:
    """`threads` as given when it is an int from 1 to MAX_THREADS: TypeError / ValueError otherwise."""
    if not is_whole(threads):
        raise TypeError(f"threads must be an int from 1 to {MAX_THREADS}, got "
                        f"{type(threads).__name__}: {threads!r}")
    if not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be an int from 1 to {MAX_THREADS}, got {threads!r}")
    return threads


def default_threads() -> int:
    """`CACHE_UTILS_THREADS` when set, else the usable cores, at most DEFAULT_MAX_THREADS.

    A malformed value (not a whole number from 1 to MAX_THREADS) is logged as a warning once per
    value and the default is used, as a bad `CACHE_UTILS_ALERT_TIMEOUT` is: a setting that only
    tunes speed must never stop a load."""
    value = os.environ.get(THREADS_ENV, "").strip()
    default = min(available_cores(), DEFAULT_MAX_THREADS)
    if not value:
        return default
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if not 1 <= threads <= MAX_THREADS:
        if value not in _warned_threads:
            _warned_threads.add(value)
            log.warning("ignoring %s=%r: not a whole number from 1 to %d; using %d thread(s)",
                        THREADS_ENV, value[:50], MAX_THREADS, default)
        return default
    return threads


_warned_threads: set[str] = set()  # malformed CACHE_UTILS_THREADS values already reported


def fingerprint_of(crc: int, length: int) -> str:
    """The content fingerprint: CRC32 and length mod 2**32 of the pickle, as 16 hex digits (for a
    single-member file, exactly its gzip trailer)."""
    return f"{crc:08x}{length & 0xFFFFFFFF:08x}"


# --- threads ------------------------------------------------------------------------------------


class _Job:
    __slots__ = ("_fn", "_args", "_done", "_result", "_error")

    def __init__(self, fn: Any, args: tuple[Any, ...]) -> None:
        self._fn, self._args = fn, args
        self._done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None

    def run(self, cancelled: bool) -> None:
        try:
            if cancelled:
                raise RuntimeError("cancelled")
            self._result = self._fn(*self._args)
        except BaseException as e:
            self._error = e
        finally:
            self._args = ()
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def result(self) -> Any:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result


class _Ready:
    """A job already run in the calling thread (a file of one member needs no thread)."""

    def __init__(self, result: Any) -> None:
        self._result = result

    def done(self) -> bool:
        return True

    def result(self) -> Any:
        return self._result


class _Pool:
    """`size` worker threads taking jobs in submission order; stopped (and joined) by `close`."""

    def __init__(self, size: int, name: str) -> None:
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closing = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(size)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Any, *args: Any) -> _Job:
        job = _Job(fn, args)
        self._queue.put(job)
        return job

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            job.run(self._closing)

    def close(self) -> None:
        """Skip the jobs not started yet, wait for the running ones, stop the threads."""
        self._closing = True
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()


# --- writing ------------------------------------------------------------------------------------


def _deflate(block: Any, level: int) -> tuple[bytes, int, int]:
    """(deflate stream and gzip trailer, CRC32, length) of one member's data. One ISA-L call, which
    releases the GIL: the worker needs it back once per member, while pickling holds it."""
    body = igzip_lib.compress(block, level, igzip_lib.COMP_GZIP_NO_HDR)
    crc, length = _TRAILER.unpack_from(body, len(body) - 8)
    return body, crc, length


def member_header(size: int, signature: bytes | None = None, owner: bytes | None = None) -> bytes:
    """A data member's gzip header; `signature` (version byte and MAC) goes first when given, then
    `owner` (a `CO` payload, see `owner_payload`)."""
    signed = b"" if signature is None else SIGNATURE_ID + struct.pack("<H", len(signature)) + signature
    owned = b"" if owner is None else OWNER_ID + struct.pack("<H", len(owner)) + owner
    extra = signed + owned + _SIZE_FIELD.pack(MEMBER_ID, 4, size)
    return FIXED_HEADER + struct.pack("<H", len(extra)) + extra


def owner_payload(owner: str, mac: bytes = bytes(OWNER_MAC_LEN)) -> bytes:
    """The `CO` subfield's data for `owner`: ValueError when it is empty, holds a NUL or is longer
    than MAX_OWNER bytes of UTF-8; TypeError when it is not a str."""
    if not isinstance(owner, str):
        raise TypeError(f"owner must be a str, got {type(owner).__name__}: {owner!r}")
    try:
        data = owner.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate
        raise ValueError(f"owner must be text that encodes as UTF-8, got {owner[:80]!r}: {e}") from e
    if not data or b"\0" in data or len(data) > MAX_OWNER:
        raise ValueError(f"owner must be 1 to {MAX_OWNER} bytes of UTF-8 without NUL, got {owner[:80]!r}")
    return bytes([OWNER_VERSION]) + mac + data


def owner_of(head: bytes) -> tuple[str, bytes] | None:
    """(owner, owner MAC) recorded in a file's first member header, found in `head` (the file's
    first bytes: OWNER_HEAD_BYTES hold any header of this format); None when it records none (an
    unowned file, a file of an older version, a plain gzip file). ValueError when the owner record
    is damaged."""
    if len(head) < 12 or head[:3] != MAGIC or not head[3] & FEXTRA:
        return None
    (xlen,) = struct.unpack_from("<H", head, 10)
    if len(head) < 12 + xlen:
        if 12 + xlen > OWNER_HEAD_BYTES:  # not a header this format writes
            return None
        raise ValueError(f"file ends inside its gzip header of {12 + xlen} bytes")
    for sub_id, data in _subfields(head[12 : 12 + xlen]):
        if sub_id == OWNER_ID:
            if len(data) <= 1 + OWNER_MAC_LEN or data[0] != OWNER_VERSION:
                raise ValueError("owner record (gzip subfield CO) damaged or of an unknown version")
            try:
                text = data[1 + OWNER_MAC_LEN :].decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"owner record (gzip subfield CO) is not UTF-8: {e}") from e
            return text, data[1 : 1 + OWNER_MAC_LEN]
    return None


_MEMBER_HEADER_LEN = len(member_header(0))
_SIGNED_HEADER_LEN = len(member_header(0, bytes(SIGNATURE_LEN)))
# Enough of a file's start for any first header of this format, owner record included.
OWNER_HEAD_BYTES = len(member_header(0, bytes(SIGNATURE_LEN), bytes(1 + OWNER_MAC_LEN + MAX_OWNER)))
# Where the owner MAC sits in a signed, owned file: after the signature subfield and CO's id,
# length and version byte.
OWNER_MAC_OFFSET = len(FIXED_HEADER) + 2 + 4 + SIGNATURE_LEN + 4 + 1


def end_member(members: int, length: int, crc: int, data_bytes: int) -> bytes:
    payload = _INDEX.pack(INDEX_VERSION, MEMBER_SIZE, members, length, crc, data_bytes)
    payload += struct.pack("<I", isal_zlib.crc32(payload))
    extra = INDEX_ID + struct.pack("<H", len(payload)) + payload
    return FIXED_HEADER + struct.pack("<H", len(extra)) + extra + _EMPTY_DEFLATE + bytes(8)


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
        self._mac = mac
        self._pending = bytearray()
        self._jobs: deque[_Job | _Ready] = deque()
        self._pool: _Pool | None = None
        self._crc = 0
        self._length = 0
        self._members = 0
        self._data_bytes = 0
        self.fingerprint: str | None = None

    def write(self, data: Any) -> int:
        view = data.raw() if type(data) is pickle.PickleBuffer else memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        n = view.nbytes
        pos = 0
        if self._pending:  # pickle frames are small: gather them (copied: the caller may reuse them)
            pos = min(n, MEMBER_SIZE - len(self._pending))
            self._pending += view[:pos]
            if len(self._pending) == MEMBER_SIZE:
                self._submit(self._pending)
                self._pending = bytearray()
        while n - pos >= MEMBER_SIZE:  # whole blocks of a large buffer: deflated in place
            self._submit(view[pos : pos + MEMBER_SIZE])
            pos += MEMBER_SIZE
        if pos < n:
            self._pending += view[pos:]
        return n

    def _submit(self, block: Any) -> None:
        if self._threads == 1:  # one thread: deflate here, between two pickle writes
            self._jobs.append(_Ready(_deflate(block, self._level)))
        else:
            if self._pool is None:
                self._pool = _Pool(self._threads, "cache_utils-deflate")
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
            size = (_MEMBER_HEADER_LEN if signature is None else _SIGNED_HEADER_LEN) + len(body)
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
                self._jobs.append(_Ready(_deflate(self._pending, self._level)))
            else:
                self._submit(self._pending)
            self._pending = bytearray()
        self._drain(0)
        end = end_member(self._members, self._length, self._crc, self._data_bytes)
        self._raw.write(end)
        if self._mac is not None:
            self._mac.update(end)
        self.fingerprint = fingerprint_of(self._crc, self._length)

    def close(self) -> None:
        """Stop the worker threads (after an error while pickling; a no-op after finish)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._jobs.clear()


# --- reading ------------------------------------------------------------------------------------


def _subfields(extra: bytes) -> list[tuple[bytes, bytes]]:
    """The (id, data) subfields of a gzip extra field; ValueError when one overruns the field."""
    fields, pos = [], 0
    while pos < len(extra):
        if pos + 4 > len(extra):
            raise ValueError("gzip extra field ends inside a subfield header")
        sub_id = extra[pos : pos + 2]
        (sub_len,) = struct.unpack_from("<H", extra, pos + 2)
        if pos + 4 + sub_len > len(extra):
            raise ValueError(f"gzip extra subfield {sub_id!r} claims {sub_len} bytes past its field")
        fields.append((sub_id, extra[pos + 4 : pos + 4 + sub_len]))
        pos += 4 + sub_len
    return fields


def is_multimember(head: bytes) -> bool:
    """Whether `head` (a file's first bytes) starts with a member header of this format; if not,
    the file is read as one plain gzip stream. Ours: our fixed header bytes with the extra-field
    length of our unsigned or signed first header (earlier versions wrote 37: `CU` alone), or an
    extra field holding `CM`, or `CU` and another subfield; so that damage to the header is caught
    by the strict member reader, not read past by the plain one."""
    if len(head) < 12 or head[:3] != MAGIC or not head[3] & FEXTRA:
        return False
    (xlen,) = struct.unpack_from("<H", head, 10)
    if head[:10] == FIXED_HEADER and xlen + 12 in (_MEMBER_HEADER_LEN, _SIGNED_HEADER_LEN):
        return True
    try:
        ids = [sub_id for sub_id, _ in _subfields(head[12 : 12 + xlen])]
    except ValueError:
        # An owner record makes the first header longer than `head`: its `CO` subfield comes
        # first, or right after `CU`, so its id is within `head`.
        extra = head[12 : 12 + xlen]
        at = 0 if extra[:2] != SIGNATURE_ID else 4 + SIGNATURE_LEN
        return extra[at : at + 2] == OWNER_ID
    return MEMBER_ID in ids or (ids[:1] == [SIGNATURE_ID] and len(ids) > 1)


HEAD_BYTES = 12 + 4 + SIGNATURE_LEN + _SIZE_FIELD.size  # enough for is_multimember on our headers


def _inflate(body: bytes) -> tuple[bytes, int, int]:
    """Inflate one member's deflate stream and check its trailer: (data, CRC32, length)."""
    crc, isize = _TRAILER.unpack_from(body, len(body) - 8)
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


class MemberReader:
    """File-like source for `pickle.load` over a multi-member file (see the module docstring).

    Reading, in the calling thread, walks the members by their sizes; up to `threads + 1` are
    inflated at once on worker threads (with `threads=1`, or for a file of one member, each is
    inflated in the calling thread when needed), and `read`/`readinto` hand their bytes out in
    order. Every member's CRC and length are checked; when the last one has been read, the end
    member's totals (members, length, whole CRC32, bytes, member size) are checked and nothing may
    follow it. Damage raises ValueError, EOFError or isal's IsalError.
    """

    def __init__(self, raw: IO[bytes], threads: int) -> None:
        self._raw = raw
        self._threads = threads
        # One thread: each member is inflated in the calling thread when it is needed.
        self._max_in_flight = 1 if threads == 1 else threads + READ_AHEAD
        self._pool: _Pool | None = None
        self._jobs: deque[_Job | _Ready] = deque()
        self._held: bytes | None = None  # the first member, until we know whether a second follows
        self._block: bytes = b""
        self._view = memoryview(b"")
        self._offset = 0
        self._read_members = 0
        self._all_read = False
        self._index: tuple[int, ...] | None = None
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
            self._pool.close()
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
                self._jobs.append(_Ready(_inflate(body)))
                continue
            if self._pool is None:
                if self._held is None:
                    self._held = body
                    continue
                self._pool = _Pool(self._threads, "cache_utils-inflate")
                self._jobs.append(self._pool.submit(_inflate, self._held))
                self._held = None
            self._jobs.append(self._pool.submit(_inflate, body))
        if self._all_read and self._held is not None:  # one member only: inflate it here
            self._jobs.append(_Ready(_inflate(self._held)))
            self._held = None

    def _read_member(self) -> bytes | None:
        """The next data member's deflate stream and trailer; None (after checking it) at the end
        member."""
        header, size = _next_header(self._raw, self._read_members)
        if size is None:
            self._read_end(header)
            return None
        header_len = len(header)
        body = read_exactly(self._raw, size - header_len)
        if len(body) < size - header_len:
            raise EOFError("Compressed file ended inside a gzip member (truncated file)")
        self._read_members += 1
        self._data_bytes += size
        return body

    def _read_end(self, header: bytes) -> None:
        payload = _subfields(header[12:])[0][1]
        rest = read_exactly(self._raw, len(_EMPTY_DEFLATE) + 8)
        if len(payload) != _INDEX_LEN or rest != _EMPTY_DEFLATE + bytes(8):
            raise ValueError("end member damaged")
        (check,) = struct.unpack_from("<I", payload, _INDEX.size)
        if isal_zlib.crc32(payload[: _INDEX.size]) != check:
            raise ValueError("end member damaged: its index does not match its CRC32")
        self._index = _INDEX.unpack_from(payload)
        if self._index[0] != INDEX_VERSION:
            raise ValueError(f"end member of format version {self._index[0]}, this reader knows "
                             f"{INDEX_VERSION}")
        if self._raw.read(1):
            raise ValueError("data after the end member")
        self._all_read = True

    def _finish(self) -> None:
        if self._finished:
            return
        assert self._index is not None
        _, member_size, members, length, crc, data_bytes = self._index
        if (members, length, crc, data_bytes) != (self._members, self._length, self._crc,
                                                  self._data_bytes):
            raise ValueError("the members do not match the index of the end member")
        if members and (self._largest > member_size or length != (members - 1) * member_size + self._last):
            raise ValueError("the members' lengths do not match the member size of the end member")
        self._finished = True


_FIRST_IDS = ([SIGNATURE_ID, MEMBER_ID], [OWNER_ID, MEMBER_ID], [SIGNATURE_ID, OWNER_ID, MEMBER_ID])


def _next_header(raw: Readable, read: int) -> tuple[bytes, int | None]:
    """The next member's header, read from `raw` after `read` data members, and the member's whole
    size (None for the end member). ValueError or EOFError when it is not a header this format
    writes, or its size is out of bounds."""
    head = read_exactly(raw, 12)
    if len(head) < 12:
        raise EOFError("Compressed file ended before the end member (truncated file)")
    if head[:10] != FIXED_HEADER:
        raise ValueError(f"gzip member {read + 1}: not the header this format writes")
    (xlen,) = struct.unpack_from("<H", head, 10)
    extra = read_exactly(raw, xlen)
    if len(extra) < xlen:
        raise EOFError("Compressed file ended inside a gzip header (truncated file)")
    fields = _subfields(extra)
    ids = [sub_id for sub_id, _ in fields]
    if ids == [INDEX_ID]:
        return head + extra, None
    if ids != [MEMBER_ID] and not (read == 0 and ids in _FIRST_IDS):
        raise ValueError(f"gzip member {read + 1}: unexpected extra subfields {ids}")
    data = fields[-1][1]
    if len(data) != 4:
        raise ValueError(f"gzip member {read + 1}: size subfield of {len(data)} bytes")
    (size,) = struct.unpack("<I", data)
    header_len = 12 + xlen
    if not header_len + len(_EMPTY_DEFLATE) + 8 <= size <= header_len + MAX_MEMBER:
        raise ValueError(f"gzip member {read + 1}: impossible size {size}")
    return head + extra, size


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
        header, size = _next_header(source, members)
        if size is None:
            rest = source.read(len(_EMPTY_DEFLATE) + 8)
            if rest != _EMPTY_DEFLATE + bytes(8):
                raise ValueError("end member damaged")
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


def check_length(size: int, tail: bytes) -> None:
    """Check that a multi-member file of `size` bytes whose last bytes are `tail` (`read_end`) ends
    with an intact end member and is exactly as long as that index says: ValueError if not
    (truncated, padded, or a hole of zeros at its end)."""
    index = _end_index(tail)
    if index is None:
        raise ValueError("the file does not end with an end member (truncated, or padded with other bytes)")
    expected = index[5] + END_LEN
    if size != expected:
        raise ValueError(f"the file is {size} bytes long, its index says {expected}")


def _end_index(tail: bytes) -> tuple[int, ...] | None:
    """The index of the end member in `tail`; None when `tail` does not end with one; ValueError
    when it ends with a damaged one, or one of another format version."""
    if len(tail) < END_LEN:
        return None
    end = tail[-END_LEN:]
    head_len = len(FIXED_HEADER) + 2
    ours = end[:3] == MAGIC and end[head_len : head_len + 2] == INDEX_ID
    payload = end[head_len + 4 : head_len + 4 + _INDEX_LEN]
    expected = end_member(0, 0, 0, 0)
    if (end[:head_len + 4] != expected[:head_len + 4] or end[-10:] != expected[-10:]
            or isal_zlib.crc32(payload[: _INDEX.size]) != struct.unpack_from("<I", payload, _INDEX.size)[0]):
        if ours:
            raise ValueError("the end member (content fingerprint and index) is damaged")
        return None
    index: tuple[int, ...] = _INDEX.unpack_from(payload)
    if index[0] != INDEX_VERSION:
        raise ValueError(f"end member of format version {index[0]}, this reader knows {INDEX_VERSION}")
    return index


def tail_fingerprint(tail: bytes) -> str | None:
    """The fingerprint held by an end member in `tail` (a file's last END_LEN bytes); None when
    `tail` does not end with one; ValueError when it ends with a damaged one."""
    index = _end_index(tail)
    if index is None:
        return None
    _, _, _, length, crc, _ = index
    return fingerprint_of(crc, length)
