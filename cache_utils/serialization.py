"""Pickle + standard gzip (ISA-L), verified to the end of the stream, optionally HMAC-signed.

File layout: a plain gzip member (RFC 1952) whose pickle is written with protocol 5.
When a signing key is set, the gzip header carries an FEXTRA subfield `CU` holding
a version byte and HMAC-SHA256(key, b"cache_utils-v1\\0" + file name + b"\\0" + body),
where body is every byte after the header (deflate stream and gzip trailer). Gzip
readers skip FEXTRA, so signed files stay readable by `gzip`, `pandas.read_pickle`
and `pickle.load(gzip.open(...))`; the signature is checked before decompressing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import queue
import struct
import tempfile
import threading
import time
from typing import IO, Any

from isal import igzip, igzip_threaded, isal_zlib

from .errors import CorruptCacheError

PROTOCOL = 5
DEFAULT_LEVEL = 2  # ISA-L levels 0-3; 2 is igzip's default (speed and size: README, Benchmarks)
SIGNING_KEY_ENV = "CACHE_UTILS_SIGNING_KEY"

_MAGIC = b"\x1f\x8b\x08"
_TRAILER_LEN = 8  # CRC32 and ISIZE, little-endian, after the deflate stream
_FEXTRA, _FNAME, _FCOMMENT, _FHCRC = 4, 8, 16, 2
_SUBFIELD_ID = b"CU"
_SIG_VERSION = 1
_MAC_LEN = hashlib.sha256().digest_size
_SUBFIELD_LEN = 1 + _MAC_LEN
_MAC_CONTEXT = b"cache_utils-v1\0"
# ID1 ID2 CM FLG MTIME(0: reproducible) XFL OS(255: unknown)
_PLAIN_HEADER = _MAGIC + bytes([0]) + b"\0\0\0\0" + b"\0\xff"
_SIGNED_PREFIX = (
    _MAGIC + bytes([_FEXTRA]) + b"\0\0\0\0" + b"\0\xff"
    + struct.pack("<H", 4 + _SUBFIELD_LEN) + _SUBFIELD_ID + struct.pack("<H", _SUBFIELD_LEN)
)
_SIG_OFFSET = len(_SIGNED_PREFIX) + 1  # after the version byte
# Reading a signed file: a gzip header is parsed from at most this many bytes (FEXTRA alone may
# take 65,537), and the checked copy stays in memory up to _SPOOL_MEMORY, then spills to disk.
_MAX_HEADER = 10 + 2 + 0xFFFF + 4096
_SIGN_CHUNK = 1 << 20
_PROBE_BYTES = 1 << 20
_SPOOL_MEMORY = 64 << 20

# Raised by unpickling code that refers to modules or classes that moved or vanished.
_MOVED_CLASS_ERRORS = (ModuleNotFoundError, ImportError, AttributeError, TypeError)


def signing_key_from_env() -> bytes | None:
    """The signing key from `CACHE_UTILS_SIGNING_KEY`, or None when unset or empty."""
    value = os.environ.get(SIGNING_KEY_ENV)
    # The variable's bytes as given: os.environ decodes undecodable bytes as surrogates.
    return os.fsencode(value) if value else None


def coerce_key(key: str | bytes | None) -> bytes | None:
    """Accept a signing key as str or bytes; empty means no key."""
    if key is None or key == b"" or key == "":
        return None
    if isinstance(key, str):  # surrogateescape: a str read from a non-UTF-8 env var keeps its bytes
        return key.encode("utf-8", "surrogateescape")
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key)
    raise TypeError(f"signing key must be str or bytes, got {type(key).__name__}")


# Data moves between the (un)pickling thread and the ISA-L helper thread in batches. The helper
# needs the GIL between two ISA-L calls, and the C pickler holds it for a millisecond or more at a
# time on string columns, so every hand-over costs a wait: larger batches mean fewer waits and
# more overlap. Extra memory stays bounded: `_IN_FLIGHT` batches, whatever the object's size.
# WRITE_BATCH: bytes of pickle gathered per hand-over to the deflate helper thread (the helper starts
# with the first full batch; a single buffer at least this large, e.g. a numpy column, goes as is).
WRITE_BATCH = 8 << 20
# THREADED_READ_MIN: a file with fewer compressed bytes than this is read without a helper thread.
THREADED_READ_MIN = 4 << 20
_IN_FLIGHT = 2
_READ_BLOCK = 4 << 20  # inflated bytes per hand-over from ISA-L's threaded reader (2 in flight)


class _GzipWriter:
    """File-like sink for `pickle.dump`: deflates with ISA-L as it goes, never holds the pickle.

    Once a full batch has been written, CRC, deflate and output move to a helper thread (ISA-L
    releases the GIL), so pickling and compressing overlap. The bytes written are the same.
    """

    def __init__(self, raw: IO[bytes], level: int, mac: hmac.HMAC | None) -> None:
        self._raw = raw
        self._mac = mac
        self._deflate = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS)
        self._crc = 0
        self._size = 0
        self._pending = bytearray()
        self._queue: queue.Queue[Any] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def write(self, data: Any) -> int:
        view = data.raw() if type(data) is pickle.PickleBuffer else memoryview(data)
        n = view.nbytes
        if n >= WRITE_BATCH:  # a large buffer (a numpy column): pass it on without copying
            if self._pending:
                self._submit(self._pending)
                self._pending = bytearray()
            self._submit(view)
        else:  # pickle frames are small: gather them (copied, so the caller may reuse its buffer)
            self._pending += view
            if len(self._pending) >= WRITE_BATCH:
                self._submit(self._pending)
                self._pending = bytearray()
        if self._thread is not None:
            # Hand the GIL to the helper now if it waits for it (between two deflate calls), not
            # at the interpreter's next forced switch 5 ms later: that wait would undo the overlap.
            time.sleep(0)
        return n

    def _submit(self, chunk: Any) -> None:
        if self._error is not None:
            raise self._error
        if self._queue is None:
            self._queue = queue.Queue(_IN_FLIGHT)
            self._thread = threading.Thread(target=self._work, name="cache_utils-deflate", daemon=True)
            self._thread.start()
        self._queue.put(chunk)

    def _work(self) -> None:
        assert self._queue is not None
        while (chunk := self._queue.get()) is not None:
            if self._error is None:  # after an error keep draining, so the writer never blocks
                try:
                    self._consume(chunk)
                except BaseException as e:
                    self._error = e

    def _consume(self, chunk: Any) -> None:
        self._crc = isal_zlib.crc32(chunk, self._crc)
        self._size += len(chunk) if type(chunk) is bytearray else chunk.nbytes
        out = self._deflate.compress(chunk)
        if out:
            self._emit(out)

    def _emit(self, out: bytes) -> None:
        self._raw.write(out)
        if self._mac is not None:
            self._mac.update(out)

    def _stop(self) -> None:
        if self._thread is not None:
            assert self._queue is not None
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def finish(self) -> None:
        """Write the rest of the deflate stream and the gzip trailer (CRC, length)."""
        if self._thread is None:  # small: everything is still here, no thread was needed
            self._consume(self._pending)
        else:
            if self._pending:
                self._submit(self._pending)
            self._stop()
            if self._error is not None:
                raise self._error
        self._pending = bytearray()
        self._emit(self._deflate.flush())
        trailer = struct.pack("<II", self._crc, self._size & 0xFFFFFFFF)
        self._emit(trailer)
        self.fingerprint = _fingerprint(trailer)

    def close(self) -> None:
        """Stop the helper thread (after an error in pickling; a no-op after finish)."""
        self._stop()


def _fingerprint(trailer: bytes) -> str:
    """The content fingerprint of a file from its gzip trailer: CRC32 and length of the pickle."""
    crc, isize = struct.unpack("<II", trailer)
    return f"{crc:08x}{isize:08x}"


def _mac(key: bytes, name: str) -> hmac.HMAC:
    # surrogateescape: a name from undecodable file-system bytes signs as those bytes
    return hmac.new(key, _MAC_CONTEXT + name.encode("utf-8", "surrogateescape") + b"\0", hashlib.sha256)


def _parse_header(buf: bytes) -> tuple[int, bytes | None]:
    """Return (header length, our signature or None) of a gzip member at the start of buf.
    Every length is checked against buf: a malformed header is a ValueError, never an IndexError."""
    if len(buf) < 10 or buf[:3] != _MAGIC:
        raise ValueError("not a gzip file")
    flags = buf[3]
    pos = 10
    signature = None
    if flags & _FEXTRA:
        if pos + 2 > len(buf):
            raise ValueError("truncated gzip header")
        (xlen,) = struct.unpack_from("<H", buf, pos)
        pos += 2
        end = pos + xlen
        if end > len(buf):
            raise ValueError("truncated gzip header")
        while pos + 4 <= end:
            sub_id = buf[pos : pos + 2]
            (sub_len,) = struct.unpack_from("<H", buf, pos + 2)
            if pos + 4 + sub_len > end:
                raise ValueError(f"gzip extra subfield {sub_id!r} claims {sub_len} bytes past its field")
            data = buf[pos + 4 : pos + 4 + sub_len]
            if sub_id == _SUBFIELD_ID and sub_len == _SUBFIELD_LEN and data[0] == _SIG_VERSION:
                signature = data[1:]
            pos += 4 + sub_len
        pos = end
    for flag in (_FNAME, _FCOMMENT):
        if flags & flag:
            zero = buf.find(b"\0", pos)
            if zero < 0:
                raise ValueError(f"gzip header longer than {_MAX_HEADER} bytes, or truncated")
            pos = zero + 1
    if flags & _FHCRC:
        pos += 2
    if pos > len(buf):
        raise ValueError("truncated gzip header")
    return pos, signature


def _read_exactly(fileobj: IO[bytes], size: int) -> bytes:
    """Up to `size` bytes (fewer only at the end of the file), whatever the reader's chunking."""
    parts, got = [], 0
    while got < size:
        chunk = fileobj.read(size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class GzipPickleSerializer:
    """Writes and reads one object as a standard gzip'd pickle, optionally HMAC-signed."""

    def __init__(self, level: int = DEFAULT_LEVEL, signing_key: str | bytes | None = None) -> None:
        if isinstance(level, bool) or not isinstance(level, int):
            raise TypeError(f"compression level must be an int from 0 to 3 (ISA-L), got "
                            f"{type(level).__name__}: {level!r}")
        if not 0 <= level <= 3:
            raise ValueError(f"compression level must be an int from 0 to 3 (ISA-L), got {level!r}")
        self.level = level
        self._key = coerce_key(signing_key)

    @property
    def signs(self) -> bool:
        """Whether this serializer signs what it writes and refuses unsigned files."""
        return self._key is not None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(level={self.level}, signed={self.signs})"

    def dump(self, obj: Any, fileobj: IO[bytes], name: str) -> str:
        """Pickle `obj` into a seekable binary `fileobj`; `name` is the base name that gets signed.
        Returns the content fingerprint (see `fingerprint`)."""
        if self._key is None:
            fileobj.write(_PLAIN_HEADER)
            mac = None
        else:
            start = fileobj.tell()
            fileobj.write(_SIGNED_PREFIX + bytes([_SIG_VERSION]) + bytes(_MAC_LEN))
            mac = _mac(self._key, name)
        writer = _GzipWriter(fileobj, self.level, mac)
        try:
            try:
                pickle.dump(obj, writer, protocol=PROTOCOL)
            except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as e:
                # pickle reports a lock or a lambda as TypeError/AttributeError: say what failed.
                kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
                raise pickle.PicklingError(f"cannot pickle {kind} for {name}: {_describe(e)}") from e
            writer.finish()
        finally:
            writer.close()
        if mac is not None:
            end = fileobj.tell()
            fileobj.seek(start + _SIG_OFFSET)
            fileobj.write(mac.digest())
            fileobj.seek(end)
        return writer.fingerprint

    @staticmethod
    def fingerprint(fileobj: IO[bytes], path: str) -> str:
        """The content fingerprint of a cache file, read from its last bytes without inflating:
        16 hex digits, the same for the same pickled bytes (signed or not, at any level).
        Raises CorruptCacheError when the file is too short to hold one."""
        try:
            fileobj.seek(-_TRAILER_LEN, os.SEEK_END)
            trailer = _read_exactly(fileobj, _TRAILER_LEN)
        except OSError as e:
            if isinstance(e, FileNotFoundError | PermissionError | ConnectionError | TimeoutError):
                raise
            raise CorruptCacheError(path, f"too short to be a cache file: {e}") from e
        if len(trailer) != _TRAILER_LEN:
            raise CorruptCacheError(path, "too short to be a cache file")
        return _fingerprint(trailer)

    def load(self, fileobj: IO[bytes], path: str) -> Any:
        """Unpickle from a binary file, verifying signature (if keyed), gzip CRC and length."""
        if self._key is None:
            return self._unpickle(fileobj, path)
        with self._verified_copy(fileobj, path) as verified:
            return self._unpickle(verified, path)

    def verify(self, fileobj: IO[bytes], path: str) -> None:
        """Check a file without unpickling it: the signature (when keyed), then the gzip stream to
        its end (CRC and length). Raises CorruptCacheError."""
        if self._key is not None:
            fileobj = self._verified_copy(fileobj, path)
        try:
            with fileobj, _open_gzip(fileobj) as gz:
                while gz.read(_SIGN_CHUNK):
                    pass
        except (FileNotFoundError, PermissionError, ConnectionError, TimeoutError):
            raise
        except Exception as e:  # EOFError, BadGzipFile, isal errors...
            raise CorruptCacheError(path, _describe(e)) from e

    def _verified_copy(self, fileobj: IO[bytes], path: str) -> IO[bytes]:
        """A private copy of the file whose signature has been checked, made in one streaming pass
        in bounded memory (spilled to a temp file past `_SPOOL_MEMORY`). Unpickling reads the copy,
        so bytes changed in the file after the check are never unpickled."""
        name = os.path.basename(path.rstrip("/"))
        head = _read_exactly(fileobj, _MAX_HEADER)
        try:
            header_len, signature = _parse_header(head)
        except (ValueError, struct.error) as e:
            raise CorruptCacheError(path, str(e)) from e
        if signature is None:
            raise CorruptCacheError(path, "file is not signed but a signing key is configured")
        mac = _mac(self._key, name)  # type: ignore[arg-type]
        # The first MiB of the deflate stream is inflated (output discarded) while hashing, so
        # garbage, such as a sparse file of zeros behind a copied header, is refused at once
        # instead of after hashing all of it. Only that much: inflating more before the signature
        # is checked would open the door to decompression bombs.
        probe: Any = isal_zlib.decompressobj(-15)
        probed = 0
        copy = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115 - returned
        try:
            copy.write(head[:header_len])
            chunk = head[header_len:]
            while chunk:
                mac.update(chunk)
                copy.write(chunk)
                if probe is not None:
                    try:
                        probe.decompress(chunk[: _PROBE_BYTES - probed], _SIGN_CHUNK)
                    except isal_zlib.error as e:
                        raise CorruptCacheError(path, f"not a deflate stream: {e}") from e
                    probed += len(chunk)
                    if probed >= _PROBE_BYTES or probe.eof:
                        probe = None
                chunk = fileobj.read(_SIGN_CHUNK)
            if not hmac.compare_digest(mac.digest(), signature):
                raise CorruptCacheError(path, "signature does not match (tampered, or another key)")
            copy.seek(0)
        except BaseException:
            copy.close()
            raise
        return copy  # type: ignore[return-value]

    def _unpickle(self, fileobj: IO[bytes], path: str) -> Any:
        start = fileobj.tell()
        try:
            return _load_verified(fileobj, pickle.Unpickler)
        except _MOVED_CLASS_ERRORS as e:
            first_error = e
        except (FileNotFoundError, PermissionError, ConnectionError, TimeoutError):
            raise  # the store failed while reading: the file is not known to be corrupt
        except Exception as e:  # EOFError, BadGzipFile, UnpicklingError, isal errors...
            raise CorruptCacheError(path, _describe(e)) from e
        compat = _pandas_compat_unpickler()
        if compat is None:
            raise CorruptCacheError(path, f"cannot unpickle: {_describe(first_error)}") from first_error
        fileobj.seek(start)
        try:
            return _load_verified(fileobj, compat)
        except Exception as e:
            raise CorruptCacheError(
                path,
                f"cannot unpickle: {_describe(first_error)}; "
                f"pandas compatibility reader: {_describe(e)}",
            ) from e


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _load_verified(fileobj: IO[bytes], unpickler: type) -> Any:
    """Unpickle, then read to the end of the gzip stream so its CRC and length are checked."""
    with _open_gzip(fileobj) as gz:
        obj = unpickler(gz).load()
        if gz.read(1):
            raise ValueError("data after the end of the pickle")
    return obj


def _open_gzip(fileobj: IO[bytes]) -> IO[bytes]:
    """A reader of the decompressed stream; large files inflate on ISA-L's reader thread."""
    try:
        here = fileobj.tell()
        remaining = fileobj.seek(0, os.SEEK_END) - here
        fileobj.seek(here)
    except (AttributeError, OSError, ValueError):
        remaining = 0
    if remaining < THREADED_READ_MIN:
        return igzip.IGzipFile(fileobj=fileobj, mode="rb")
    return igzip_threaded.open(fileobj, "rb", threads=1, block_size=_READ_BLOCK)


def _pandas_compat_unpickler() -> type | None:
    try:
        from pandas.compat.pickle_compat import Unpickler
    except ImportError:
        return None
    return Unpickler
