"""`GzipPickleSerializer`: one object written and read as a standard gzip'd pickle (ISA-L),
verified to the end of the stream, optionally HMAC-signed. It puts the other modules together:
the bytes are described in `layout`, written by `writer`, read by `reader`, signed and checked by
`signing`, and walked without unpickling by `opcodes`. Gzip readers skip FEXTRA subfields and
concatenate members, so files stay readable by `gzip`, `pandas.read_pickle` and
`pickle.load(gzip.open(...))`; the signature is checked before decompressing. Files of one plain
gzip member (written by earlier versions, or by `DataFrame.to_pickle`) are read as before.
"""

from __future__ import annotations

import os
import pickle
from typing import IO, Any

from ..errors import STORE_FAILURES, CorruptCacheError
from .layout import (
    END_LEN,
    MAC_LEN,
    OWNER_HEAD_BYTES,
    OWNER_MAC_OFFSET,
    PROTOCOL,
    SIGNATURE_OFFSET,
    SIGNATURE_VERSION,
    TRAILER,
    owner_of,
    owner_payload,
    tail_fingerprint,
    trailer_fingerprint,
)
from .opcodes import walk_opcodes
from .reader import CHUNK, MemberReader, open_reader, read_exactly
from .signing import SigningKeys, body_mac, coerce_keys, owner_mac, signed_owner, verified_copy
from .threads import check_threads, default_threads
from .writer import MemberWriter

DEFAULT_LEVEL = 2  # ISA-L levels 0-3; 2 is igzip's default (speed and size: docs/benchmarks.md)

# Raised by unpickling code that refers to modules or classes that moved or vanished.
_MOVED_CLASS_ERRORS = (ModuleNotFoundError, ImportError, AttributeError, TypeError)


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
        if isinstance(level, bool) or not isinstance(level, int):
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
        key = self._key
        mac = None if key is None else body_mac(key, name)
        start = fileobj.tell() if mac is not None else 0
        blank = None if mac is None else bytes([SIGNATURE_VERSION]) + bytes(MAC_LEN)
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
        if key is not None and mac is not None:
            end = fileobj.tell()
            signature = mac.digest()
            fileobj.seek(start + SIGNATURE_OFFSET)
            fileobj.write(signature)
            if owner is not None:
                fileobj.seek(start + OWNER_MAC_OFFSET)
                fileobj.write(owner_mac(key, name, owner, signature))
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
            tail = read_exactly(fileobj, END_LEN)
        except OSError as e:
            if isinstance(e, STORE_FAILURES):
                raise
            raise CorruptCacheError(path, f"too short to be a cache file: {e}") from e
        if len(tail) < TRAILER.size:
            raise CorruptCacheError(path, "too short to be a cache file")
        try:
            fingerprint = tail_fingerprint(tail)
        except ValueError as e:
            raise CorruptCacheError(path, str(e)) from e
        if fingerprint is not None:
            return fingerprint
        trailer = tail[-TRAILER.size :]
        if trailer == bytes(TRAILER.size):  # an empty member's trailer, and no end member before it
            raise CorruptCacheError(path, "no content fingerprint: the end member is damaged")
        return trailer_fingerprint(trailer)

    def owner(self, fileobj: IO[bytes], path: str) -> str | None:
        """The owner recorded in a cache file's first header (None: no owner recorded, as in files
        of older versions and of writers that name none), from one read of its first bytes, without
        inflating or unpickling. With a signing key, the owner record of a signed file is checked
        against its signature (the body is checked when the file is loaded). Raises
        CorruptCacheError when the record is damaged or does not match."""
        try:
            head = read_exactly(fileobj, OWNER_HEAD_BYTES)
        except OSError as e:
            if isinstance(e, STORE_FAILURES):
                raise
            raise CorruptCacheError(path, f"cannot read its header: {e}") from e
        try:
            found = owner_of(head)
        except ValueError as e:
            raise CorruptCacheError(path, str(e)) from e
        if found is None or self._key is None:
            return None if found is None else found[0]
        return signed_owner(self._keys, head, path)

    def load(self, fileobj: IO[bytes], path: str) -> Any:
        """Unpickle from a binary file, verifying signature (if keyed), gzip CRC and length."""
        if self._key is None:
            return self._unpickle(fileobj, path)
        with verified_copy(fileobj, path, self._keys) as verified:
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
            fileobj = verified_copy(fileobj, path, self._keys)
        try:
            with fileobj, open_reader(fileobj, self.threads) as gz:
                if pickle_opcodes:
                    walk_opcodes(gz)
                if isinstance(gz, MemberReader):
                    gz.skip_to_end()
                else:
                    while gz.read(CHUNK):
                        pass
        except STORE_FAILURES:
            raise
        except Exception as e:  # EOFError, BadGzipFile, isal errors...
            raise CorruptCacheError(path, _describe(e)) from e

    def _unpickle(self, fileobj: IO[bytes], path: str) -> Any:
        start = fileobj.tell()
        try:
            return _load_verified(fileobj, pickle.Unpickler, self.threads)
        except _MOVED_CLASS_ERRORS as e:
            first_error = e
        except STORE_FAILURES:
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


def _load_verified(fileobj: IO[bytes], unpickler: type, threads: int) -> Any:
    """Unpickle, then read to the end of the gzip stream so its CRC and length are checked (and,
    for a multi-member file, every member and the end member's index)."""
    with open_reader(fileobj, threads) as gz:
        obj = unpickler(gz).load()
        if gz.read(1):
            raise ValueError("data after the end of the pickle")
    return obj


def _pandas_compat_unpickler() -> type | None:
    try:
        from pandas.compat.pickle_compat import Unpickler
    except ImportError:
        return None
    unpickler: type = Unpickler
    return unpickler
