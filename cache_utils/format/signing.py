"""Signing: keys (from arguments and the environment, rotation), the file's MAC and the owner's
MAC, and `verified_copy`, the streaming check of a signed file before anything is unpickled.

A signed file's first member header carries subfield `CU`: a version byte and
HMAC-SHA256(key, b"cache_utils-v1\\0" + file name + b"\\0" + body), where body is every byte after
that header (all members, the end member included). The `CU` signature cannot cover the header
that holds it, so in a signed file the owner record `CO` carries its own MAC,
HMAC-SHA256(key, b"cache_utils-owner-v1\\0" + file name + b"\\0" + owner + b"\\0" + the `CU` MAC):
the owner is bound to the name and, through the `CU` MAC, to every byte of the body.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import os
import struct
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, Any, cast

from isal import isal_zlib

from ..errors import CorruptCacheError
from .layout import MAX_HEADER, check_length, is_multimember, owner_of, parse_header, signature_in
from .reader import CHUNK, member_chunks, read_end, read_exactly

SIGNING_KEY_ENV = "CACHE_UTILS_SIGNING_KEY"
SIGNING_KEY_FALLBACKS_ENV = "CACHE_UTILS_SIGNING_KEY_FALLBACKS"
# One key, or a list or tuple of keys: the first signs, every one verifies (key rotation).
SigningKeys = str | bytes | Sequence[str | bytes]

_MAC_CONTEXT = b"cache_utils-v1\0"
_OWNER_CONTEXT = b"cache_utils-owner-v1\0"
# Checking a signed file: the first MiB of the deflate stream is inflated while hashing (at most
# _PROBE_OUTPUT out), and the checked copy stays in memory up to _SPOOL_MEMORY, then spills to disk.
_PROBE_BYTES = 1 << 20
_PROBE_OUTPUT = 4 << 20
_SPOOL_MEMORY = 64 << 20

# isal's stubs declare its error as an instance: name it as the exception class it is.
_ISAL_ERROR = cast(type[Exception], isal_zlib.error)


# --- keys -------------------------------------------------------------------------------------------


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


# --- MACs -------------------------------------------------------------------------------------------


def body_mac(key: bytes, name: str) -> hmac.HMAC:
    """The `CU` MAC of a file named `name`, to be fed every byte after its first header."""
    # surrogateescape: a name from undecodable file-system bytes signs as those bytes
    return hmac.new(key, _MAC_CONTEXT + name.encode("utf-8", "surrogateescape") + b"\0", hashlib.sha256)


def owner_mac(key: bytes, name: str, owner: str, signature: bytes) -> bytes:
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
    if not hmac.compare_digest(mac, owner_mac(key, name, owner, signature)):
        raise CorruptCacheError(path, f"owner record {owner!r} does not match the signature (changed, "
                                      "or signed with another key)")
    return owner


def _signature(head: bytes, path: str) -> tuple[int, bytes]:
    """(header length, `CU` MAC) of a file whose first bytes are `head`: CorruptCacheError when its
    header is malformed or it is not signed."""
    try:
        header_len, fields = parse_header(head)
    except (ValueError, struct.error) as e:
        raise CorruptCacheError(path, str(e)) from e
    signature = signature_in(fields)
    if signature is None:
        raise CorruptCacheError(path, "file is not signed but a signing key is configured")
    return header_len, signature


def signed_owner(keys: tuple[bytes, ...], head: bytes, path: str) -> str | None:
    """The owner recorded in the first header found in `head`, its MAC checked against the file's
    signature with any of `keys` (rotation): CorruptCacheError when the file is not signed, or the
    record is damaged or matches no key. The body is not checked (loading does that)."""
    _, signature = _signature(head, path)
    name = os.path.basename(path.rstrip("/"))
    for key in keys[:-1]:
        with contextlib.suppress(CorruptCacheError):
            return _check_owner(key, name, head, signature, path)
    return _check_owner(keys[-1], name, head, signature, path)


# --- the signed-copy check ---------------------------------------------------------------------------


def verified_copy(fileobj: IO[bytes], path: str, keys: tuple[bytes, ...]) -> IO[bytes]:
    """A private copy of the file whose signature has been checked with `keys` (any of them may
    have signed it), made in one streaming pass in bounded memory (spilled to a temp file past
    `_SPOOL_MEMORY`). Unpickling reads the copy, so bytes changed in the file after the check are
    never unpickled. CorruptCacheError when the file is not signed, does not match, or its layout
    is damaged."""
    name = os.path.basename(path.rstrip("/"))
    # The end first: on object storage, one small ranged read before the one from the start.
    try:
        end: tuple[int, bytes] | None = read_end(fileobj, fileobj.tell())
    except (io.UnsupportedOperation, AttributeError):  # a stream: the member walk still bounds it
        end = None
    head = read_exactly(fileobj, MAX_HEADER)
    header_len, signature = _signature(head, path)
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
        body = member_chunks(fileobj, head, CHUNK)
    else:  # an older single-member file: one deflate stream, no index
        body = _chunks(head[header_len:], fileobj)
    macs = [body_mac(key, name) for key in keys]
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
                        probed_out += len(probe.decompress(pending, CHUNK))
                        pending = probe.unconsumed_tail
                except _ISAL_ERROR as e:
                    raise CorruptCacheError(path, f"not a deflate stream: {e}") from e
                if probed >= _PROBE_BYTES or probe.eof or probed_out >= _PROBE_OUTPUT:
                    probe = None
        # Every key is compared (no early exit), so timing does not tell which one matched.
        matches = [hmac.compare_digest(mac.digest(), signature) for mac in macs]
        if not any(matches):
            keys_text = "the configured key" if len(macs) == 1 else f"any of the {len(macs)} configured keys"
            raise CorruptCacheError(path, f"signature does not match {keys_text} (tampered, or another key)")
        # The owner's MAC is made with the key that signed the file.
        _check_owner(keys[matches.index(True)], name, head[:header_len], signature, path)
        copy.seek(0)
    except BaseException:
        copy.close()
        raise
    return copy


def _chunks(first: bytes, fileobj: IO[bytes]) -> Iterator[bytes]:
    """`first`, then the rest of `fileobj`, CHUNK bytes at a time."""
    chunk = first
    while chunk:
        yield chunk
        chunk = fileobj.read(CHUNK)


def _checked(chunks: Iterator[bytes], path: str) -> Iterator[bytes]:
    """`chunks`, with a layout error raised while walking them as CorruptCacheError."""
    try:
        yield from chunks
    except (ValueError, EOFError, struct.error) as e:
        raise CorruptCacheError(path, str(e)) from e
