"""The bytes of a cache file: constants, gzip member headers and their subfields, the end member
and its index, the content fingerprint. Functions of bytes only: reading and writing files is in
`reader` and `writer`, MACs in `signing`.

A cache file is a pickle (protocol 5) cut into gzip members. A single deflate stream can only be
inflated in order, on one core; a file made of independent gzip members (RFC 1952 allows any
number, and every gzip reader concatenates them) can be deflated and inflated a member per thread.
Layout, all integers little-endian:

    data members    one gzip member per MEMBER_SIZE bytes of the pickle (the last one may be
                    shorter; the cut does not depend on the thread count, so the same pickle always
                    gives the same bytes). Header: FLG = FEXTRA, MTIME 0, XFL 0, OS 255, and an extra
                    field holding subfield `CM` (4 bytes: the member's whole size, from its first
                    header byte to the end of its trailer, as BGZF's `BC`). In a signed file the first
                    member's extra field holds the signature subfield `CU` first (a version byte and
                    an HMAC-SHA256, see `signing`), then `CM`.
                    When the writer names an owner (who wrote the file: a Dagster asset and
                    partition, say), the first member's extra field holds subfield `CO` before
                    `CM` (after `CU` when signed): version (1), owner MAC (32 bytes: in a signed
                    file HMAC-SHA256 of the owner bound to the file's name and `CU` signature,
                    see `signing`; zeros otherwise), then the owner as UTF-8 (1 to MAX_OWNER
                    bytes). A file without `CO` has no recorded owner.
    end member      an empty gzip member (deflate `03 00`, CRC 0, ISIZE 0: any gzip reader reads
                    nothing from it) whose extra field holds subfield `CI` (33 bytes): version (1),
                    member size (u32), number of data members (u32), length of the whole pickle (u64),
                    CRC32 of the whole pickle (u32), bytes of the data members (u64), CRC32 of these
                    29 bytes (u32). It has a fixed size (END_LEN), so the content fingerprint is read
                    from the file's last END_LEN bytes.

Readers that do not know the subfields skip them (gzip, `pandas.read_pickle`, Python's gzip). Files
of one plain gzip member (earlier versions, `DataFrame.to_pickle`) have no index: their fingerprint
is their gzip trailer, the same number for the same pickle.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from isal import isal_zlib

PROTOCOL = 5  # the pickle protocol written
MEMBER_SIZE = 2 << 20  # bytes of pickle per data member (recorded in the index; fixed for a version)
MAX_MEMBER = 64 << 20  # reader limit: larger members (compressed or inflated) are refused as damaged

MAGIC = b"\x1f\x8b\x08"  # ID1 ID2 CM (deflate)
FHCRC, FEXTRA, FNAME, FCOMMENT = 2, 4, 8, 16
# ID1 ID2 CM FLG(FEXTRA) MTIME(0: reproducible) XFL(0) OS(255: unknown)
FIXED_HEADER = MAGIC + bytes([FEXTRA]) + b"\0\0\0\0" + b"\0\xff"
MEMBER_ID = b"CM"
INDEX_ID = b"CI"
SIGNATURE_ID = b"CU"
OWNER_ID = b"CO"
OWNER_VERSION = 1
OWNER_MAC_LEN = 32
MAX_OWNER = 1024  # bytes of UTF-8 in an owner record
SIGNATURE_VERSION = 1
MAC_LEN = 32  # HMAC-SHA256
SIGNATURE_LEN = 1 + MAC_LEN  # the `CU` subfield's data: version byte and MAC
SIGNATURE_OFFSET = len(FIXED_HEADER) + 2 + 4 + 1  # of the MAC in a signed file: after XLEN, id, len, version
INDEX_VERSION = 1
_INDEX = struct.Struct("<BIIQIQ")  # version, member size, members, length, CRC32, data bytes
_INDEX_LEN = _INDEX.size + 4  # and the CRC32 of those bytes
EMPTY_DEFLATE = b"\x03\x00"  # a final, empty, fixed-Huffman deflate block
TRAILER = struct.Struct("<II")  # CRC32, ISIZE: after each member's deflate stream
END_LEN = len(FIXED_HEADER) + 2 + 4 + _INDEX_LEN + len(EMPTY_DEFLATE) + TRAILER.size
_SIZE_FIELD = struct.Struct("<2sHI")  # subfield id, length (4), member size
# A gzip header is parsed from at most this many bytes: FEXTRA alone may take 65,537.
MAX_HEADER = 10 + 2 + 0xFFFF + 4096

Subfields = list[tuple[bytes, bytes]]


class Index(NamedTuple):
    """The `CI` index of an end member."""

    version: int
    member_size: int
    members: int
    length: int  # of the whole pickle
    crc: int  # CRC32 of the whole pickle
    data_bytes: int  # bytes of the data members, headers included


def fingerprint_of(crc: int, length: int) -> str:
    """The content fingerprint: CRC32 and length mod 2**32 of the pickle, as 16 hex digits (for a
    single-member file, exactly its gzip trailer)."""
    return f"{crc:08x}{length & 0xFFFFFFFF:08x}"


def trailer_fingerprint(trailer: bytes) -> str:
    """The content fingerprint of a single-member file from its 8-byte gzip trailer."""
    crc, isize = TRAILER.unpack(trailer)
    return fingerprint_of(crc, isize)


# --- member headers -------------------------------------------------------------------------------


def member_header(size: int, signature: bytes | None = None, owner: bytes | None = None) -> bytes:
    """A data member's gzip header; `signature` (version byte and MAC) goes first when given, then
    `owner` (a `CO` payload, see `owner_payload`)."""
    signed = b"" if signature is None else SIGNATURE_ID + struct.pack("<H", len(signature)) + signature
    owned = b"" if owner is None else OWNER_ID + struct.pack("<H", len(owner)) + owner
    extra = signed + owned + _SIZE_FIELD.pack(MEMBER_ID, 4, size)
    return FIXED_HEADER + struct.pack("<H", len(extra)) + extra


MEMBER_HEADER_LEN = len(member_header(0))
SIGNED_HEADER_LEN = len(member_header(0, bytes(SIGNATURE_LEN)))
HEAD_BYTES = 12 + 4 + SIGNATURE_LEN + _SIZE_FIELD.size  # enough for is_multimember on our headers
# Enough of a file's start for any first header of this format, owner record included.
OWNER_HEAD_BYTES = len(member_header(0, bytes(SIGNATURE_LEN), bytes(1 + OWNER_MAC_LEN + MAX_OWNER)))
# Where the owner MAC sits in a signed, owned file: after the signature subfield and CO's id,
# length and version byte.
OWNER_MAC_OFFSET = len(FIXED_HEADER) + 2 + 4 + SIGNATURE_LEN + 4 + 1


def subfields(extra: bytes) -> Subfields:
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


def _extra_length(head: bytes) -> int | None:
    """XLEN of the gzip header at the start of `head`; None when `head` does not start with a
    gzip header that has an extra field."""
    if len(head) < 12 or head[:3] != MAGIC or not head[3] & FEXTRA:
        return None
    (xlen,) = struct.unpack_from("<H", head, 10)
    return int(xlen)


def parse_header(buf: bytes) -> tuple[int, Subfields]:
    """(length, FEXTRA subfields) of any RFC 1952 member header at the start of `buf` (FNAME,
    FCOMMENT and FHCRC are skipped). Every length is checked against `buf`: a malformed header is
    a ValueError, never an IndexError."""
    if len(buf) < 10 or buf[:3] != MAGIC:
        raise ValueError("not a gzip file")
    flags = buf[3]
    pos = 10
    fields: Subfields = []
    if flags & FEXTRA:
        if pos + 2 > len(buf):
            raise ValueError("truncated gzip header")
        (xlen,) = struct.unpack_from("<H", buf, pos)
        pos += 2
        if pos + xlen > len(buf):
            raise ValueError("truncated gzip header")
        fields = subfields(buf[pos : pos + xlen])
        pos += xlen
    for flag in (FNAME, FCOMMENT):
        if flags & flag:
            zero = buf.find(b"\0", pos)
            if zero < 0:
                raise ValueError(f"gzip header longer than {MAX_HEADER} bytes, or truncated")
            pos = zero + 1
    if flags & FHCRC:
        pos += 2
    if pos > len(buf):
        raise ValueError("truncated gzip header")
    return pos, fields


def signature_in(fields: Subfields) -> bytes | None:
    """The MAC of a `CU` signature subfield of this format's version among `fields`, else None."""
    for sub_id, data in fields:
        if sub_id == SIGNATURE_ID and len(data) == SIGNATURE_LEN and data[0] == SIGNATURE_VERSION:
            return data[1:]
    return None


_FIRST_IDS = ([SIGNATURE_ID, MEMBER_ID], [OWNER_ID, MEMBER_ID], [SIGNATURE_ID, OWNER_ID, MEMBER_ID])


def member_size(header: bytes, read: int) -> int | None:
    """The whole size of the member whose header (fixed part and extra field) is `header`, read
    after `read` data members; None for the end member. ValueError when it is not a header this
    format writes, or the size is out of bounds."""
    if header[:10] != FIXED_HEADER:
        raise ValueError(f"gzip member {read + 1}: not the header this format writes")
    fields = subfields(header[12:])
    ids = [sub_id for sub_id, _ in fields]
    if ids == [INDEX_ID]:
        return None
    if ids != [MEMBER_ID] and not (read == 0 and ids in _FIRST_IDS):
        raise ValueError(f"gzip member {read + 1}: unexpected extra subfields {ids}")
    data = fields[-1][1]
    if len(data) != 4:
        raise ValueError(f"gzip member {read + 1}: size subfield of {len(data)} bytes")
    (size,) = struct.unpack("<I", data)
    if not len(header) + len(EMPTY_DEFLATE) + TRAILER.size <= size <= len(header) + MAX_MEMBER:
        raise ValueError(f"gzip member {read + 1}: impossible size {size}")
    return int(size)


def is_multimember(head: bytes) -> bool:
    """Whether `head` (a file's first bytes) starts with a member header of this format; if not,
    the file is read as one plain gzip stream. Ours: our fixed header bytes with the extra-field
    length of our unsigned or signed first header (earlier versions wrote 37: `CU` alone), or an
    extra field holding `CM`, or `CU` and another subfield; so that damage to the header is caught
    by the strict member reader, not read past by the plain one."""
    xlen = _extra_length(head)
    if xlen is None:
        return False
    if head[:10] == FIXED_HEADER and xlen + 12 in (MEMBER_HEADER_LEN, SIGNED_HEADER_LEN):
        return True
    try:
        ids = [sub_id for sub_id, _ in subfields(head[12 : 12 + xlen])]
    except ValueError:
        # An owner record makes the first header longer than `head`: its `CO` subfield comes
        # first, or right after `CU`, so its id is within `head`.
        extra = head[12 : 12 + xlen]
        at = 0 if extra[:2] != SIGNATURE_ID else 4 + SIGNATURE_LEN
        return extra[at : at + 2] == OWNER_ID
    return MEMBER_ID in ids or (ids[:1] == [SIGNATURE_ID] and len(ids) > 1)


# --- owner record -----------------------------------------------------------------------------------


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
    xlen = _extra_length(head)
    if xlen is None:
        return None
    if len(head) < 12 + xlen:
        if 12 + xlen > OWNER_HEAD_BYTES:  # not a header this format writes
            return None
        raise ValueError(f"file ends inside its gzip header of {12 + xlen} bytes")
    for sub_id, data in subfields(head[12 : 12 + xlen]):
        if sub_id == OWNER_ID:
            if len(data) <= 1 + OWNER_MAC_LEN or data[0] != OWNER_VERSION:
                raise ValueError("owner record (gzip subfield CO) damaged or of an unknown version")
            try:
                text = data[1 + OWNER_MAC_LEN :].decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"owner record (gzip subfield CO) is not UTF-8: {e}") from e
            return text, data[1 : 1 + OWNER_MAC_LEN]
    return None


# --- end member -------------------------------------------------------------------------------------

END_REST = EMPTY_DEFLATE + bytes(TRAILER.size)  # what follows the end member's header


def end_member(members: int, length: int, crc: int, data_bytes: int, member_size: int = MEMBER_SIZE) -> bytes:
    """The end member holding the index of a file of `members` data members."""
    payload = _INDEX.pack(INDEX_VERSION, member_size, members, length, crc, data_bytes)
    payload += struct.pack("<I", isal_zlib.crc32(payload))
    extra = INDEX_ID + struct.pack("<H", len(payload)) + payload
    return FIXED_HEADER + struct.pack("<H", len(extra)) + extra + END_REST


_END_HEAD_LEN = len(FIXED_HEADER) + 2 + 4  # fixed header, XLEN, `CI` id and length
_END_TEMPLATE = end_member(0, 0, 0, 0)


def parse_index(header: bytes, rest: bytes) -> Index:
    """The index in an end member whose header (found by `member_size`) is `header` and whose
    deflate block and trailer are `rest`: ValueError when it is damaged or of another version."""
    payload = subfields(header[12:])[0][1]
    if len(payload) != _INDEX_LEN or rest != END_REST:
        raise ValueError("end member damaged")
    if not _crc_matches(payload):
        raise ValueError("end member damaged: its index does not match its CRC32")
    return _checked_version(payload)


def _crc_matches(payload: bytes) -> bool:
    return bool(isal_zlib.crc32(payload[: _INDEX.size]) == struct.unpack_from("<I", payload, _INDEX.size)[0])


def _checked_version(payload: bytes) -> Index:
    index = Index(*_INDEX.unpack_from(payload))
    if index.version != INDEX_VERSION:
        raise ValueError(f"end member of format version {index.version}, this reader knows {INDEX_VERSION}")
    return index


def tail_index(tail: bytes) -> Index | None:
    """The index of the end member in `tail` (a file's last bytes); None when `tail` does not end
    with one; ValueError when it ends with a damaged one, or one of another format version."""
    if len(tail) < END_LEN:
        return None
    end = tail[-END_LEN:]
    ours = end[:3] == MAGIC and end[_END_HEAD_LEN - 4 : _END_HEAD_LEN - 2] == INDEX_ID
    payload = end[_END_HEAD_LEN : _END_HEAD_LEN + _INDEX_LEN]
    if (end[:_END_HEAD_LEN] != _END_TEMPLATE[:_END_HEAD_LEN] or end[-10:] != _END_TEMPLATE[-10:]
            or not _crc_matches(payload)):
        if ours:
            raise ValueError("the end member (content fingerprint and index) is damaged")
        return None
    return _checked_version(payload)


def check_length(size: int, tail: bytes) -> None:
    """Check that a multi-member file of `size` bytes whose last bytes are `tail` ends with an
    intact end member and is exactly as long as that index says: ValueError if not (truncated,
    padded, or a hole of zeros at its end)."""
    index = tail_index(tail)
    if index is None:
        raise ValueError("the file does not end with an end member (truncated, or padded with other bytes)")
    expected = index.data_bytes + END_LEN
    if size != expected:
        raise ValueError(f"the file is {size} bytes long, its index says {expected}")


def tail_fingerprint(tail: bytes) -> str | None:
    """The fingerprint held by an end member in `tail` (a file's last END_LEN bytes); None when
    `tail` does not end with one; ValueError when it ends with a damaged one."""
    index = tail_index(tail)
    return None if index is None else fingerprint_of(index.crc, index.length)
