"""Pickle + standard gzip (ISA-L), verified to the end of the stream, optionally HMAC-signed.

File layout (written since the multi-member format; see `gzip_members` for the byte layout): the
pickle (protocol 5) cut into gzip members of MEMBER_SIZE bytes each, deflated and inflated on
several threads, then an empty end member holding the index (members, whole-pickle CRC32 and
length, from which the content fingerprint comes). When a signing key is set, the first member's
gzip header carries an FEXTRA subfield `CU` holding a version byte and
HMAC-SHA256(key, b"cache_utils-v1\\0" + file name + b"\\0" + body), where body is every byte after
that header (all members, the end member included). Gzip readers skip FEXTRA and concatenate
members, so files stay readable by `gzip`, `pandas.read_pickle` and `pickle.load(gzip.open(...))`;
the signature is checked before decompressing.

An owner (who wrote the file) may be recorded in the first member's header as subfield `CO`
(see `gzip_members`). The `CU` signature cannot cover the header that holds it, so in a signed file
the owner record carries its own MAC, HMAC-SHA256(key, b"cache_utils-owner-v1\0" + file name +
b"\0" + owner + b"\0" + the `CU` MAC): the owner is bound to the name and, through the `CU` MAC, to
every byte of the body. A signed load checks it with the signature; readers that do not know `CO`
(older versions, gzip, pandas) verify and read the file as before. Files of one plain gzip
member (written by earlier versions, or by `DataFrame.to_pickle`) are read as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import os
import pickle
import pickletools
import struct
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, Any, cast

from isal import igzip, igzip_threaded, isal_zlib

from ._numbers import is_whole
from .errors import CorruptCacheError
from .gzip_members import (
    END_LEN,
    HEAD_BYTES,
    OWNER_HEAD_BYTES,
    OWNER_MAC_OFFSET,
    SIGNATURE_ID,
    SIGNATURE_LEN,
    SIGNATURE_OFFSET,
    MemberReader,
    MemberWriter,
    check_length,
    check_threads,
    default_threads,
    fingerprint_of,
    is_multimember,
    member_chunks,
    owner_of,
    owner_payload,
    read_end,
    tail_fingerprint,
)
from .gzip_members import (
    read_exactly as _read_exactly,
)

PROTOCOL = 5
DEFAULT_LEVEL = 2  # ISA-L levels 0-3; 2 is igzip's default (speed and size: docs/benchmarks.md, bench_io)
SIGNING_KEY_ENV = "CACHE_UTILS_SIGNING_KEY"
SIGNING_KEY_FALLBACKS_ENV = "CACHE_UTILS_SIGNING_KEY_FALLBACKS"
# One key, or a list or tuple of keys: the first signs, every one verifies (key rotation).
SigningKeys = str | bytes | Sequence[str | bytes]

_MAGIC = b"\x1f\x8b\x08"
_TRAILER_LEN = 8  # CRC32 and ISIZE, little-endian, after the deflate stream
_FEXTRA, _FNAME, _FCOMMENT, _FHCRC = 4, 8, 16, 2
_SUBFIELD_ID = SIGNATURE_ID  # b"CU"
_SIG_VERSION = 1
_MAC_LEN = hashlib.sha256().digest_size
_SUBFIELD_LEN = SIGNATURE_LEN  # the version byte and the MAC
_MAC_CONTEXT = b"cache_utils-v1\0"
_OWNER_CONTEXT = b"cache_utils-owner-v1\0"
# Reading a signed file: a gzip header is parsed from at most this many bytes (FEXTRA alone may
# take 65,537), and the checked copy stays in memory up to _SPOOL_MEMORY, then spills to disk.
_MAX_HEADER = 10 + 2 + 0xFFFF + 4096
_SIGN_CHUNK = 1 << 20
_PROBE_BYTES = 1 << 20
_PROBE_OUTPUT = 4 << 20
_SPOOL_MEMORY = 64 << 20

# isal's stubs declare its error as an instance: name it as the exception class it is.
_ISAL_ERROR = cast(type[Exception], isal_zlib.error)

# Raised by unpickling code that refers to modules or classes that moved or vanished.
_MOVED_CLASS_ERRORS = (ModuleNotFoundError, ImportError, AttributeError, TypeError)


def signing_key_from_env() -> bytes | None:
    """The signing key from `CACHE_UTILS_SIGNING_KEY`, or None when unset or empty."""
    value = os.environ.get(SIGNING_KEY_ENV)
    # The variable's bytes as given: os.environ decodes undecodable bytes as surrogates.
    return os.fsencode(value) if value else None


def split_signing_keys(text: str | None, source: str = SIGNING_KEY_FALLBACKS_ENV) -> tuple[bytes, ...]:
    """Older signing keys written as one string, as `CACHE_UTILS_SIGNING_KEY_FALLBACKS` holds them:
    separated by commas, whitespace around each one ignored (so a fallback key cannot contain a
    comma or start or end with whitespace). None or blank: no keys.

    Args:
        text: The keys, such as "old-key-2, old-key-1".
        source: Where `text` came from, named in errors (never the keys themselves).

    Raises:
        ValueError: An entry is empty (two commas in a row, or one at either end); the message
            says which entry, never a key.
    """
    if text is None or not text.strip():
        return ()
    parts = text.split(",")
    for i, part in enumerate(parts, 1):
        if not part.strip():
            raise ValueError(f"{source}: entry {i} of {len(parts)} is empty: separate the older keys "
                             "with single commas, with no comma at either end")
    # os.fsencode: a str read from the environment keeps its undecodable bytes (surrogateescape)
    return tuple(os.fsencode(part.strip()) for part in parts)


def signing_keys_from_env() -> tuple[bytes, ...]:
    """The signing keys the environment sets: `CACHE_UTILS_SIGNING_KEY` (signs and verifies), then
    those of `CACHE_UTILS_SIGNING_KEY_FALLBACKS` (verify only); () when neither is set.

    Raises:
        ValueError: the fallbacks are malformed, or set without `CACHE_UTILS_SIGNING_KEY` (files
            would be written unsigned and unsigned files accepted while keys are configured).
    """
    primary = signing_key_from_env()
    fallbacks = split_signing_keys(os.environ.get(SIGNING_KEY_FALLBACKS_ENV))
    if primary is None:
        if fallbacks:
            raise ValueError(f"{SIGNING_KEY_FALLBACKS_ENV} is set but {SIGNING_KEY_ENV} is not: set the "
                             "key that signs new files as well (fallback keys only verify)")
        return ()
    return (primary, *fallbacks)


def coerce_key(key: str | bytes | None) -> bytes | None:
    """Accept a signing key as str or bytes; empty means no key."""
    if key is None or key == b"" or key == "":
        return None
    if isinstance(key, str):  # surrogateescape: a str read from a non-UTF-8 env var keeps its bytes
        return key.encode("utf-8", "surrogateescape")
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key)
    raise TypeError(f"signing key must be str or bytes, got {type(key).__name__}")


def coerce_keys(keys: SigningKeys | None) -> tuple[bytes, ...]:
    """Signing keys as bytes, the one that signs first: one key (str or bytes), or a sequence of
    them (a list or tuple: the first signs, all verify). None, an empty key or an empty sequence:
    no key. An empty entry in a sequence is an error naming its position (never the key)."""
    if keys is None or isinstance(keys, str | bytes | bytearray | memoryview):
        key = coerce_key(keys)  # type: ignore[arg-type]  # bytearray and memoryview as bytes
        return () if key is None else (key,)
    if not isinstance(keys, list | tuple):
        raise TypeError(f"signing key must be str or bytes, or a list or tuple of them (the first "
                        f"signs, all verify), got {type(keys).__name__}")
    coerced = []
    for i, key in enumerate(keys, 1):
        if not isinstance(key, str | bytes | bytearray | memoryview):
            raise TypeError(f"signing key {i} of {len(keys)} must be str or bytes, got {type(key).__name__}")
        value = coerce_key(key)
        if value is None:
            raise ValueError(f"signing key {i} of {len(keys)} is empty: every key in a list must be set")
        coerced.append(value)
    return tuple(coerced)


# THREADED_READ_MIN: a single-member (older) file with fewer compressed bytes than this is read
# without a helper thread; larger ones inflate on ISA-L's threaded reader, _READ_BLOCK at a time.
THREADED_READ_MIN = 4 << 20
_READ_BLOCK = 4 << 20


def _fingerprint(trailer: bytes) -> str:
    """The content fingerprint of a single-member file from its gzip trailer: CRC32 and length."""
    crc, isize = struct.unpack("<II", trailer)
    return fingerprint_of(crc, isize)


def _mac(key: bytes, name: str) -> hmac.HMAC:
    # surrogateescape: a name from undecodable file-system bytes signs as those bytes
    return hmac.new(key, _MAC_CONTEXT + name.encode("utf-8", "surrogateescape") + b"\0", hashlib.sha256)


def _owner_mac(key: bytes, name: str, owner: str, signature: bytes) -> bytes:
    """The MAC of a signed file's owner record: owner, file name and the file's `CU` MAC."""
    message = (_OWNER_CONTEXT + name.encode("utf-8", "surrogateescape") + b"\0" + owner.encode("utf-8")
               + b"\0" + signature)
    return hmac.new(key, message, hashlib.sha256).digest()


def _check_owner(key: bytes, name: str, head: bytes, signature: bytes, path: str) -> str | None:
    """The owner recorded in a signed file's first header `head`, after checking its MAC against
    the file's `CU` MAC; None when it records none. CorruptCacheError when the record is damaged
    or its MAC does not match (the owner was changed, or another key signed it)."""
    try:
        found = owner_of(head)
    except ValueError as e:
        raise CorruptCacheError(path, str(e)) from e
    if found is None:
        return None
    owner, mac = found
    if not hmac.compare_digest(mac, _owner_mac(key, name, owner, signature)):
        raise CorruptCacheError(path, f"owner record {owner!r} does not match the signature (changed, "
                                      "or signed with another key)")
    return owner


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


class GzipPickleSerializer:
    """Writes and reads one object as a standard gzip'd pickle, optionally HMAC-signed.

    Args:
        level: ISA-L compression level, 0 to 3.
        signing_key: HMAC-SHA256 key (str or bytes): sign on write, verify on read; or a list or
            tuple of keys, for key rotation: the first signs, a file signed by any of them
            verifies. None: unsigned.
        threads: threads that deflate (on save) and inflate (on load) gzip members beside the
            calling thread, which pickles or unpickles; 1 does everything in the calling thread.
            None: `CACHE_UTILS_THREADS`, else the cores this process may use, at most 8. The bytes
            written do not depend on it.
    """

    def __init__(
        self, level: int = DEFAULT_LEVEL, signing_key: SigningKeys | None = None, threads: int | None = None
    ) -> None:
        if not is_whole(level):
            raise TypeError(f"compression level must be an int from 0 to 3 (ISA-L), got "
                            f"{type(level).__name__}: {level!r}")
        if not 0 <= level <= 3:
            raise ValueError(f"compression level must be an int from 0 to 3 (ISA-L), got {level!r}")
        self.level = level
        self.threads = default_threads() if threads is None else check_threads(threads)
        self._keys = coerce_keys(signing_key)
        self._key = self._keys[0] if self._keys else None

    @property
    def signs(self) -> bool:
        """Whether this serializer signs what it writes and refuses unsigned files."""
        return self._key is not None

    def __repr__(self) -> str:
        keys = f", verify_keys={len(self._keys)}" if len(self._keys) > 1 else ""
        return f"{type(self).__name__}(level={self.level}, signed={self.signs}{keys}, threads={self.threads})"

    def dump(self, obj: Any, fileobj: IO[bytes], name: str, owner: str | None = None) -> str:
        """Pickle `obj` into a seekable binary `fileobj`; `name` is the base name that gets signed.
        `owner`, when given, is recorded in the first header (subfield `CO`; signed with the file
        when keyed). Returns the content fingerprint (see `fingerprint`)."""
        mac = None if self._key is None else _mac(self._key, name)
        start = fileobj.tell() if mac is not None else 0
        blank = None if mac is None else bytes([_SIG_VERSION]) + bytes(_MAC_LEN)
        record = None if owner is None else owner_payload(owner)
        writer = MemberWriter(fileobj, self.level, self.threads, mac, blank, record)
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
            signature = mac.digest()
            fileobj.seek(start + SIGNATURE_OFFSET)
            fileobj.write(signature)
            if owner is not None:
                fileobj.seek(start + OWNER_MAC_OFFSET)
                fileobj.write(_owner_mac(self._key, name, owner, signature))  # type: ignore[arg-type]
            fileobj.seek(end)
        assert writer.fingerprint is not None
        return writer.fingerprint

    @staticmethod
    def fingerprint(fileobj: IO[bytes], path: str) -> str:
        """The content fingerprint of a cache file, read from its last bytes without inflating:
        16 hex digits, CRC32 and length (mod 2**32) of the whole pickle, the same for the same
        pickled bytes (signed or not, at any level, with any thread count). Multi-member files
        hold it in their end member; for a single-member file it is its gzip trailer. One read of
        at most END_LEN bytes. Raises CorruptCacheError when the file is too short to hold one or
        its end member is damaged."""
        try:
            size = fileobj.seek(0, os.SEEK_END)
            fileobj.seek(max(0, size - END_LEN))
            tail = _read_exactly(fileobj, END_LEN)
        except OSError as e:
            if isinstance(e, FileNotFoundError | PermissionError | ConnectionError | TimeoutError):
                raise
            raise CorruptCacheError(path, f"too short to be a cache file: {e}") from e
        if len(tail) < _TRAILER_LEN:
            raise CorruptCacheError(path, "too short to be a cache file")
        try:
            fingerprint = tail_fingerprint(tail)
        except ValueError as e:
            raise CorruptCacheError(path, str(e)) from e
        if fingerprint is not None:
            return fingerprint
        trailer = tail[-_TRAILER_LEN:]
        if trailer == bytes(_TRAILER_LEN):  # an empty member's trailer, and no end member before it
            raise CorruptCacheError(path, "no content fingerprint: the end member is damaged")
        return _fingerprint(trailer)

    def owner(self, fileobj: IO[bytes], path: str) -> str | None:
        """The owner recorded in a cache file's first header (None: no owner recorded, as in files
        of older versions and of writers that name none), from one read of its first bytes, without
        inflating or unpickling. With a signing key, the owner record of a signed file is checked
        against its signature (the body is checked when the file is loaded). Raises
        CorruptCacheError when the record is damaged or does not match."""
        try:
            head = _read_exactly(fileobj, OWNER_HEAD_BYTES)
        except OSError as e:
            if isinstance(e, FileNotFoundError | PermissionError | ConnectionError | TimeoutError):
                raise
            raise CorruptCacheError(path, f"cannot read its header: {e}") from e
        try:
            found = owner_of(head)
        except ValueError as e:
            raise CorruptCacheError(path, str(e)) from e
        if found is None or self._key is None:
            return None if found is None else found[0]
        try:
            _, signature = _parse_header(head)
        except (ValueError, struct.error) as e:
            raise CorruptCacheError(path, str(e)) from e
        if signature is None:  # loading it refuses it: say so now
            raise CorruptCacheError(path, "file is not signed but a signing key is configured")
        name = os.path.basename(path.rstrip("/"))
        for key in self._keys[:-1]:  # any configured key may have signed it (rotation)
            with contextlib.suppress(CorruptCacheError):
                return _check_owner(key, name, head, signature, path)
        return _check_owner(self._keys[-1], name, head, signature, path)

    def load(self, fileobj: IO[bytes], path: str) -> Any:
        """Unpickle from a binary file, verifying signature (if keyed), gzip CRC and length."""
        if self._key is None:
            return self._unpickle(fileobj, path)
        with self._verified_copy(fileobj, path) as verified:
            return self._unpickle(verified, path)

    def verify(self, fileobj: IO[bytes], path: str, *, pickle_opcodes: bool = False) -> None:
        """Check a file without unpickling it: the signature (when keyed), then every gzip member
        to the end (CRC and length) and the end member's index. Raises CorruptCacheError.

        With `pickle_opcodes`, also walk the pickle's opcodes with `pickletools.genops`, which
        parses them and runs no code: a file that is not one whole pickle, or has bytes after it,
        is refused (a class that no longer exists is not noticed: that takes unpickling). In the
        same streaming pass, in bounded memory: an opcode's argument larger than 1 MiB (a column's
        bytes) is read through and dropped, never held."""
        if self._key is not None:
            fileobj = self._verified_copy(fileobj, path)
        try:
            with fileobj, _open_gzip(fileobj, self.threads) as gz:
                if pickle_opcodes:
                    # genops only calls read and readline: _OpcodeSource is the file it needs.
                    source = _OpcodeSource(gz)
                    for _ in pickletools.genops(cast(IO[bytes], source)):
                        pass
                    if not source.at_end():
                        raise ValueError("data after the end of the pickle")
                if isinstance(gz, MemberReader):
                    gz.skip_to_end()
                else:
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
        # The end first: on object storage, one small ranged read before the one from the start.
        try:
            end: tuple[int, bytes] | None = read_end(fileobj, fileobj.tell())
        except (io.UnsupportedOperation, AttributeError):  # a stream: the member walk still bounds it
            end = None
        head = _read_exactly(fileobj, _MAX_HEADER)
        try:
            header_len, signature = _parse_header(head)
        except (ValueError, struct.error) as e:
            raise CorruptCacheError(path, str(e)) from e
        if signature is None:
            raise CorruptCacheError(path, "file is not signed but a signing key is configured")
        body: Iterator[bytes]
        if is_multimember(head):
            # Walked by its own sizes, after checking its length against the index at its end: a
            # file with a hole of zeros (sparse) or padding is refused at once, or after at most
            # one member, not after hashing and copying all of it.
            try:
                if end is not None:
                    check_length(*end)
            except (ValueError, struct.error) as e:
                raise CorruptCacheError(path, str(e)) from e
            body = member_chunks(fileobj, head, _SIGN_CHUNK)
        else:  # an older single-member file: one deflate stream, no index
            body = _chunks(head[header_len:], fileobj)
        macs = [_mac(key, name) for key in self._keys]
        # The first MiB of the deflate stream is inflated (output discarded) while hashing, so
        # garbage, such as a sparse file of zeros behind a copied header, is refused at once
        # instead of after hashing all of it. Only that much, and at most _PROBE_OUTPUT inflated:
        # inflating more before the signature is checked would open the door to decompression
        # bombs. Input held back by the output cap is fed again (unconsumed_tail) before more.
        probe: Any = isal_zlib.decompressobj(-15)
        probed = probed_out = 0
        copy = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115 - returned
        try:
            copy.write(head[:header_len])
            for chunk in _checked(body, path):
                for mac in macs:
                    mac.update(chunk)
                copy.write(chunk)
                if probe is not None:
                    pending = chunk[: _PROBE_BYTES - probed]
                    probed += len(pending)
                    try:
                        while pending and not probe.eof and probed_out < _PROBE_OUTPUT:
                            probed_out += len(probe.decompress(pending, _SIGN_CHUNK))
                            pending = probe.unconsumed_tail
                    except _ISAL_ERROR as e:
                        raise CorruptCacheError(path, f"not a deflate stream: {e}") from e
                    if probed >= _PROBE_BYTES or probe.eof or probed_out >= _PROBE_OUTPUT:
                        probe = None
            # Every key is compared (no early exit), so timing does not tell which one matched.
            matches = [hmac.compare_digest(mac.digest(), signature) for mac in macs]
            if not any(matches):
                keys = "the configured key" if len(macs) == 1 else f"any of the {len(macs)} configured keys"
                raise CorruptCacheError(path, f"signature does not match {keys} (tampered, or another key)")
            # The owner's MAC is made with the key that signed the file.
            _check_owner(self._keys[matches.index(True)], name, head[:header_len], signature, path)
            copy.seek(0)
        except BaseException:
            copy.close()
            raise
        return copy

    def _unpickle(self, fileobj: IO[bytes], path: str) -> Any:
        start = fileobj.tell()
        try:
            return _load_verified(fileobj, pickle.Unpickler, self.threads)
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
            return _load_verified(fileobj, compat, self.threads)
        except Exception as e:
            raise CorruptCacheError(
                path,
                f"cannot unpickle: {_describe(first_error)}; "
                f"pandas compatibility reader: {_describe(e)}",
            ) from e


def _describe(error: BaseException) -> str:
    if isinstance(error, MemoryError):  # raised without a message: say what it means here
        return "MemoryError: the pickle asks for more memory than this process can have"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _chunks(first: bytes, fileobj: IO[bytes]) -> Iterator[bytes]:
    """`first`, then the rest of `fileobj`, _SIGN_CHUNK bytes at a time."""
    chunk = first
    while chunk:
        yield chunk
        chunk = fileobj.read(_SIGN_CHUNK)


def _checked(chunks: Iterator[bytes], path: str) -> Iterator[bytes]:
    """`chunks`, with a layout error raised while walking them as CorruptCacheError."""
    try:
        yield from chunks
    except (ValueError, EOFError, struct.error) as e:
        raise CorruptCacheError(path, str(e)) from e


# Walking the pickle's opcodes (housekeeping never unpickles): an argument longer than _HOLD is read
# through and dropped; a text-protocol line longer than _MAX_LINE is refused.
_HOLD = 1 << 20
_MAX_LINE = 16 << 20
_BUFFER = 64 << 10


class _Dropped(bytes):
    """Stands for an opcode argument of `length` bytes that was read and dropped: pickletools'
    argument readers only compare its length (and decode it, giving '')."""

    length: int

    def __new__(cls, length: int) -> _Dropped:
        dropped = super().__new__(cls)
        dropped.length = length
        return dropped

    def __len__(self) -> int:
        return self.length


class _OpcodeSource:
    """The decompressed stream as `pickletools.genops` reads it, in bounded memory: it reads each
    opcode argument with one `read(n)`, and a large one (a 1 GB column) is consumed in pieces.
    Small reads (one a byte per opcode) are served from a 64 KiB buffer: a call to the gzip
    reader per opcode would cost as much as the walk."""

    def __init__(self, gz: Any) -> None:
        self._gz = gz
        self._buf = b""
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        pos = self._pos
        if 0 <= size <= len(self._buf) - pos:
            self._pos = pos + size
            return self._buf[pos : pos + size]
        if size < 0:
            raise ValueError("a pickle opcode without a length")  # pragma: no cover - genops never asks
        have = self._buf[pos:]
        self._buf, self._pos = b"", 0
        if size > _HOLD:
            left = size - len(have)
            while left and (piece := self._gz.read(min(left, _HOLD))):
                left -= len(piece)
            return _Dropped(size - left)
        self._buf = have + _read_exactly(self._gz, max(size - len(have), _BUFFER))
        self._pos = min(size, len(self._buf))
        return self._buf[:size]

    def at_end(self) -> bool:
        """Whether nothing is left: neither in the buffer nor in the stream."""
        return self._pos == len(self._buf) and not self._gz.read(1)

    def readline(self) -> bytes:
        end = self._buf.find(b"\n", self._pos, self._pos + _MAX_LINE)
        if end >= 0:
            line = self._buf[self._pos : end + 1]
            self._pos = end + 1
            return line
        have = self._buf[self._pos :]
        self._buf, self._pos = b"", 0
        if len(have) >= _MAX_LINE:  # no newline in the first _MAX_LINE bytes
            return have[:_MAX_LINE]
        rest: bytes = self._gz.readline(_MAX_LINE - len(have))
        return have + rest  # without its newline when longer than _MAX_LINE: pickletools refuses it


def _load_verified(fileobj: IO[bytes], unpickler: type, threads: int) -> Any:
    """Unpickle, then read to the end of the gzip stream so its CRC and length are checked (and,
    for a multi-member file, every member and the end member's index)."""
    with _open_gzip(fileobj, threads) as gz:
        obj = unpickler(gz).load()
        if gz.read(1):
            raise ValueError("data after the end of the pickle")
    return obj


def _open_gzip(fileobj: IO[bytes], threads: int) -> Any:
    """A reader of the decompressed stream: a multi-member file inflates on `threads` threads;
    a large single-member file on ISA-L's reader thread."""
    here = fileobj.tell()
    head = _read_exactly(fileobj, HEAD_BYTES)
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


def _pandas_compat_unpickler() -> type | None:
    try:
        from pandas.compat.pickle_compat import Unpickler
    except ImportError:
        return None
    unpickler: type = Unpickler
    return unpickler
